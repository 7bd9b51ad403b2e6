# R expressions -> SQL (R/sql-translate.R), on SQLite's dialect.

sql_of <- function(e) {
  skip_if_not_installed("RSQLite")
  con <- DBI::dbConnect(RSQLite::SQLite(), ":memory:")
  on.exit(DBI::dbDisconnect(con))
  lmmc:::sql_expr(e, con, lmmc:::sql_dialect(con), deparse1(e))
}

test_that("arithmetic, powers and functions translate", {
  expect_identical(sql_of(quote(x)), "CAST(`x` AS REAL)")
  expect_identical(sql_of(quote(x / 2)), "(CAST(`x` AS REAL) / 2.0)")
  expect_identical(sql_of(quote(-x)), "(-CAST(`x` AS REAL))")
  expect_identical(sql_of(quote(I(x^2))), "((CAST(`x` AS REAL) * CAST(`x` AS REAL)))")
  expect_identical(sql_of(quote(x^0.5)), "POWER(CAST(`x` AS REAL), 0.5)")
  expect_identical(sql_of(quote(log(x))), "LOG(CAST(`x` AS REAL))")
  expect_match(sql_of(quote(log(x, 2))), "^\\(LOG\\(CAST\\(`x` AS REAL\\)\\) / LOG\\(2.0\\)\\)$")
  expect_identical(sql_of(quote(exp(x - y))), "EXP((CAST(`x` AS REAL) - CAST(`y` AS REAL)))")
  expect_identical(sql_of(quote(x * -1.5)), "(CAST(`x` AS REAL) * (-1.5))")
})

test_that("numbers are written to round-trip", {
  expect_identical(lmmc:::sql_number(0.1), "0.10000000000000001")
  expect_identical(lmmc:::sql_number(3), "3.0")
  expect_identical(lmmc:::sql_number(-2e-300), "(-2.0000000000000001e-300)")
  expect_identical(as.numeric(lmmc:::sql_number(1 / 3)), 1 / 3)
})

test_that("what has no SQL translation is an error naming the term", {
  expect_error(sql_of(quote(sin(x))), "'sin\\(x\\)' cannot be pushed down")
  expect_error(sql_of(quote(x %% 2)), "cannot be pushed down")
  expect_error(sql_of(quote(log(x, 2, 3))), "cannot be pushed down")
})

test_that("a computed column equals R's value in SQLite", {
  skip_if_not_installed("RSQLite")
  con <- DBI::dbConnect(RSQLite::SQLite(), ":memory:")
  on.exit(DBI::dbDisconnect(con))
  lmmc:::prepare_connection(con)
  d <- data.frame(x = c(1L, 2L, 7L), y = c(0.5, 2.25, 10))
  DBI::dbWriteTable(con, "d", d)
  e <- quote(log(y) * x / 2 + sqrt(x)^3 - exp(-y) + abs(x - 5) + log10(y))
  got <- DBI::dbGetQuery(con, paste("SELECT", lmmc:::sql_expr(e, con, lmmc:::sql_dialect(con), "e"),
                                    "AS v FROM d"))$v
  expect_equal(got, eval(e, d), tolerance = 1e-14)
})
