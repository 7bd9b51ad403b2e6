# Helpers of the tests of fits from database tables and chunks (test-database.R,
# test-refit-aggregated.R): fit comparisons, tables written to SQLite / PostgreSQL, data sets.

# differences of two fits: criterion (relative), theta, beta, vcov, conditional modes, sigma
fit_gap <- function(a, b) {
  c(crit = abs(a$crit - b$crit) / max(1, abs(a$crit)), theta = max(abs(a$theta - b$theta)),
    beta = max(abs(a$beta - b$beta) / pmax(1, abs(a$beta))),
    vcov = max(abs(a$vcov_beta - b$vcov_beta) / max(1, abs(a$vcov_beta))),
    b = max(abs(a$b - b$b)) / max(1, abs(a$b)), sigma = abs(a$sigma - b$sigma), n = abs(a$n - b$n))
}

expect_same_fit <- function(a, b, tol = 1e-10) {
  gap <- fit_gap(a, b)
  expect_true(all(gap < tol), label = paste(names(gap), signif(gap, 3), collapse = " "))
  expect_identical(names(a$beta), names(b$beta))
  expect_identical(names(a$theta), names(b$theta))
}

# data frames with character columns where the data have factors (a table has no factor type)
as_table_data <- function(d) {
  d <- as.data.frame(d)
  d[] <- lapply(d, function(x) if (is.factor(x)) as.character(x) else x)
  d
}

# write d as table `name`; the data frame read back (what the table holds)
put_table <- function(con, name, d) {
  DBI::dbWriteTable(con, name, as_table_data(d), overwrite = TRUE, row.names = FALSE)
  DBI::dbReadTable(con, name)
}

sqlite_con <- function() {
  skip_if_not_installed("RSQLite")
  skip_if_not_installed("DBI")
  DBI::dbConnect(RSQLite::SQLite(), ":memory:")
}

pg_con <- function() {
  skip_if_not_installed("RPostgreSQL")
  skip_if_not_installed("DBI")
  env <- function(v, default) { x <- Sys.getenv(v); if (nzchar(x)) x else default }
  con <- tryCatch(DBI::dbConnect(RPostgreSQL::PostgreSQL(), host = env("LMMC_PG_HOST", "localhost"),
                                 port = as.integer(env("LMMC_PG_PORT", "5432")),
                                 dbname = env("LMMC_PG_DBNAME", "lmmc"),
                                 user = env("LMMC_PG_USER", "lmmc"),
                                 password = env("LMMC_PG_PASSWORD", "lmmc")),
                  error = function(e) NULL)
  if (is.null(con)) skip("no PostgreSQL server answers (set LMMC_PG_* or run .ci/run)")
  con
}

sleep_weighted <- function() {
  set.seed(1)
  d <- lme4_sleepstudy()
  d$w <- runif(nrow(d), 0.5, 2)
  d$Reaction[c(3, 50)] <- NA
  d$Days2 <- d$Days
  d$Days2[7] <- NA
  d
}

# the data sets as lme4 ships them, stored in tests/testthat/data
ref_rds <- function(name) readRDS(test_path("data", paste0(name, ".rds")))
lme4_sleepstudy <- function() ref_rds("sleepstudy")

