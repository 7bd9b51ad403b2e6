# Refits of fits from tables and chunks (R/refit-aggregated.R): ranova(), drop1(), step() and
# pve() from the fit's own sums give the tables of the same functions on the data-frame fit
# (to 1e-8, relative), on SQLite and on PostgreSQL when a server answers; a formula the sums do
# not cover aggregates the source again.  Helpers: helper-database.R.

# The largest difference of two anova-like tables (relative to max(1, |b|)), after checking that
# they have the same rows, columns and missing cells.
table_gap <- function(a, b) {
  expect_identical(rownames(a), rownames(b))
  expect_identical(colnames(a), colnames(b))
  a <- as.matrix(a)
  b <- as.matrix(b)
  expect_identical(is.na(a), is.na(b))
  max(abs(a - b) / pmax(1, abs(b)), na.rm = TRUE)
}

expect_same_table <- function(a, b, tol = 1e-8) {
  gap <- table_gap(a, b)
  expect_lt(gap, tol)
  invisible(gap)
}

# 96 schools in 12 districts (no district effect), a school-level factor, a covariate without
# effect: step() removes (1 | district) and z.
sim_schools <- function(seed = 7) {
  set.seed(seed)
  district <- rep(1:12, each = 8)
  school <- rep(1:96, each = 15)
  n <- length(school)
  d <- data.frame(school = sprintf("s%02d", school), district = sprintf("d%02d", district[school]),
                  x = rnorm(n), z = rnorm(n),
                  sector = c("public", "private")[1 + (school %% 3 == 0)])
  d$y <- 2 + 0.5 * d$x + 0.3 * (d$sector == "private") + rnorm(96, sd = 0.7)[school] + rnorm(n)
  d
}

# MathAchieve with the school's Sector
math_achieve <- function() {
  ma <- as.data.frame(nlme::MathAchieve)
  ma$Sector <- nlme::MathAchSchool$Sector[match(ma$School, nlme::MathAchSchool$School)]
  ma
}

# Every refitting function on the table's fit against the data frame's; the largest gap.
check_refits <- function(con) {
  gaps <- numeric()
  same <- function(a, b) gaps <<- c(gaps, expect_same_table(a, b))
  # step() on both fits, its random and fixed tables the same; both results
  same_step <- function(f, g) {
    s <- suppressMessages(step(f))
    t <- suppressMessages(step(g))
    same(s$random, t$random)
    same(s$fixed, t$fixed)
    list(table = s, frame = t)
  }
  sleep <- put_table(con, "sleep", lme4_sleepstudy())
  for (REML in c(TRUE, FALSE)) {
    f <- lmm(Reaction ~ Days + (Days | Subject), dbi_table(con, "sleep"), REML = REML)
    g <- lmm(Reaction ~ Days + (Days | Subject), sleep, REML = REML)
    same(ranova(f), ranova(g))
    same(ranova(f, reduce.terms = FALSE), ranova(g, reduce.terms = FALSE))   # down to lm()
    same(suppressMessages(drop1(f, test = "Chisq")), suppressMessages(drop1(g, test = "Chisq")))
    same(drop1(f, test = "F"), drop1(g, test = "F"))
    s <- same_step(f, g)$table
    expect_s3_class(get_model(s), "lmm_aggregated")
    p <- pve(f)
    expect_lt(max(abs(p$pve - pve(g)$pve)), 1e-8)
  }
  # a dbplyr query as the source (SQLite: with RPostgreSQL dbplyr warns of an old interface)
  if (requireNamespace("dbplyr", quietly = TRUE) && requireNamespace("dplyr", quietly = TRUE) &&
      methods::is(con, "SQLiteConnection")) {
    f <- lmm(Reaction ~ Days + (Days | Subject),
             dplyr::filter(dplyr::tbl(con, "sleep"), Days >= 1))
    g <- lmm(Reaction ~ Days + (Days | Subject), sleep[sleep$Days >= 1, ])
    same(ranova(f), ranova(g))
    same(step(f)$fixed, step(g)$fixed)
    # a formula with new sums: a new aggregation of the same query
    fm <- Reaction ~ Days + I(Days^2) + (Days | Subject)
    expect_same_fit(lmmc:::refit_aggregated(f, fm), lmm(fm, sleep[sleep$Days >= 1, ]))
  }
  # lmerTest 3.1-3: ranova of the REML fit, LRT of "Days in (Days | Subject)"
  expect_equal(ranova(lmm(Reaction ~ Days + (Days | Subject), dbi_table(con, "sleep")))$LRT[2],
               42.8367, tolerance = 1e-5)

  # two crossed terms: each removal leaves the other
  pen <- put_table(con, "pen", ref_rds("Penicillin"))
  f <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), dbi_table(con, "pen"))
  g <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), pen)
  same(ranova(f), ranova(g))
  same(step(f)$random, step(g)$random)

  # weights, rows with NA (dropped as na.omit), an offset
  sw <- put_table(con, "sw", sleep_weighted())
  fm <- Reaction ~ Days + I(Days2^2) + offset(Days / 10) + (Days | Subject)
  f <- lmm(fm, dbi_table(con, "sw"), weights = w)
  g <- lmm(fm, sw, weights = w)
  same(ranova(f), ranova(g))
  same(ranova(f, reduce.terms = FALSE), ranova(g, reduce.terms = FALSE))
  same(suppressMessages(drop1(f, test = "Chisq")), suppressMessages(drop1(g, test = "Chisq")))
  same(drop1(f), drop1(g))
  p <- pve(f)
  expect_lt(max(abs(p$pve - pve(g)$pve)), 1e-8)

  # factor covariates and an interaction: the slope goes, the interaction stays
  ma <- math_achieve()
  ma[] <- lapply(ma, function(x) if (is.factor(x)) as.character(x) else x)
  ma <- put_table(con, "ma", ma)
  fm <- MathAch ~ SES * Sector + Minority + Sex + (1 + SES | School)
  f <- lmm(fm, dbi_table(con, "ma"))
  g <- lmm(fm, ma)
  s <- same_step(f, g)$table
  expect_identical(rownames(s$random)[2], "SES in (1 + SES | School)")
  same(ranova(f, reduce.terms = FALSE), ranova(g, reduce.terms = FALSE))
  same(suppressMessages(drop1(f, test = "Chisq")), suppressMessages(drop1(g, test = "Chisq")))

  # step() down a school/district design: (1 | district) and z go
  sch <- put_table(con, "sch", sim_schools())
  fm <- y ~ x + z + sector + (1 | school) + (1 | district)
  f <- suppressMessages(lmm(fm, dbi_table(con, "sch")))
  g <- suppressMessages(lmm(fm, sch))
  st <- same_step(f, g)
  expect_identical(deparse(formula(get_model(st$table))), "y ~ x + sector + (1 | school)")
  expect_lt(max(abs(fixef(get_model(st$table)) - fixef(get_model(st$frame)))), 1e-8)

  # a small school effect (LRT 1.26, p 0.26): step() ends in a linear model, as lm() on the
  # rows.  (With an estimate at the boundary the LRT is rounding noise and its p-value, about
  # 1 - sqrt(LRT), differs at 1e-6 between any two fits.)
  e <- sim_schools()
  set.seed(1)
  e$y <- 1 + 0.5 * e$x + rnorm(96, sd = 0.08)[as.integer(factor(e$school))] + rnorm(nrow(e))
  e <- put_table(con, "e", e)
  fm <- y ~ x + z + (1 | school)
  f <- suppressMessages(lmm(fm, dbi_table(con, "e")))
  g <- suppressMessages(lmm(fm, e))
  st <- same_step(f, g)
  m <- get_model(st$table)
  m0 <- get_model(st$frame)                            # lm() on the rows
  expect_s3_class(m, "lm_aggregated")
  expect_lt(max(abs(coef(m) - coef(m0))), 1e-10)
  expect_equal(logLik(m), logLik(m0), tolerance = 1e-12)
  expect_equal(logLik(m, REML = TRUE), logLik(m0, REML = TRUE), tolerance = 1e-12)
  expect_identical(nobs(m), nobs(m0))
  expect_output(print(m), "no random terms")
  expect_equal(vcov(m), vcov(m0), tolerance = 1e-10)
  expect_equal(sigma(m), sigma(m0), tolerance = 1e-12)
  expect_equal(coef(summary(m)), coef(summary(m0)), tolerance = 1e-10)
  expect_output(print(summary(m)), "Residual standard error")
  max(gaps)
}

test_that("ranova, drop1, step and pve on an SQLite table equal those on its data frame", {
  con <- sqlite_con()
  on.exit(DBI::dbDisconnect(con))
  gap <- check_refits(con)
  expect_lt(gap, 1e-8)
})

test_that("ranova, drop1, step and pve on a PostgreSQL table equal those on its data frame", {
  con <- pg_con()
  on.exit(DBI::dbDisconnect(con))
  gap <- check_refits(con)
  expect_lt(gap, 1e-8)
})

test_that("a submodel needs no query; another formula aggregates the table again", {
  con <- sqlite_con()
  on.exit(DBI::dbDisconnect(con))
  sleep <- put_table(con, "sleep", lme4_sleepstudy())
  f <- lmm(Reaction ~ Days + (Days | Subject), dbi_table(con, "sleep"))
  # the connection closed: a submodel is fitted from the fit's sums alone
  other <- sqlite_con()
  DBI::dbWriteTable(other, "sleep", as_table_data(sleep[0, ]))    # an empty table of that name
  f$source$con <- other
  r <- lmmc:::refit_aggregated(f, Reaction ~ 1 + (Days | Subject))
  expect_same_fit(r, lmm(Reaction ~ 1 + (Days | Subject), sleep))
  expect_identical(r$call$formula, Reaction ~ 1 + (Days | Subject))
  # a new term: its sums come from the table (here empty: the error says so)
  expect_error(lmmc:::refit_aggregated(f, Reaction ~ Days + I(Days^2) + (Days | Subject)),
               "no observations")
  DBI::dbDisconnect(other)
  f$source$con <- con
  r <- lmmc:::refit_aggregated(f, Reaction ~ Days + I(Days^2) + (Days | Subject))
  expect_same_fit(r, lmm(Reaction ~ Days + I(Days^2) + (Days | Subject), sleep))
  # a model without random terms must be a submodel
  expect_error(lmmc:::refit_aggregated(f, Reaction ~ Days + I(Days^2)), "not a submodel")
  # re-estimation by ML / REML (anova, AIC, profiles, Kenward-Roger) keeps the data's counts
  g <- lmm(Reaction ~ Days + (Days | Subject), sleep)
  expect_same_fit(lmmc:::refit_ml(f), lmmc:::refit_ml(g))
  ml <- lmm(Reaction ~ Days + (Days | Subject), dbi_table(con, "sleep"), REML = FALSE)
  expect_same_fit(lmmc:::refit_reml(ml), g, tol = 1e-8)       # another start: optimiser tolerance
  expect_s3_class(lmmc:::refit_reml(ml), "lmm_aggregated")
  expect_equal(AIC(f), AIC(g), tolerance = 1e-10)
})

test_that("chunks: refits from the sums; a second pass needs a list or a reset", {
  d <- as_table_data(sleep_weighted())
  fm <- Reaction ~ Days + (Days | Subject)
  g <- lmm(fm, d, weights = w)
  parts <- unname(split(d, rep(1:5, length.out = nrow(d))))
  i <- 0L
  next_chunk <- function() { i <<- i + 1L; if (i <= length(parts)) parts[[i]] }
  f <- lmm(fm, lmm_chunks(next_chunk), weights = w)
  expect_same_table(ranova(f), ranova(g))
  expect_same_table(step(f)$random, step(g)$random)
  expect_identical(i, length(parts) + 1L)                 # no chunk read again
  new_fm <- Reaction ~ Days + I(Days^2) + (Days | Subject)
  expect_error(lmmc:::refit_aggregated(f, new_fm), "'reset' function")
  # with a reset, or from a list: a second pass
  i <- 0L
  f <- lmm(fm, lmm_chunks(next_chunk, reset = function() i <<- 0L), weights = w)
  expect_same_fit(lmmc:::refit_aggregated(f, new_fm), lmm(new_fm, d, weights = w))
  f <- lmm(fm, lmm_chunks(parts), weights = w)
  expect_same_fit(lmmc:::refit_aggregated(f, new_fm), lmm(new_fm, d, weights = w))
  expect_error(lmm_chunks(parts, reset = 1), "'reset'")
})

test_that("refits of a table fit keep its control: iterative stays iterative", {
  con <- sqlite_con()
  on.exit(DBI::dbDisconnect(con))
  set.seed(5)
  n <- 2000
  a <- sample.int(150, n, TRUE)
  b <- sample.int(60, n, TRUE)
  d <- data.frame(a = sprintf("a%03d", a), b = sprintf("b%02d", b), x = rnorm(n))
  d$y <- 1 + 0.5 * d$x + rnorm(150)[a] + rnorm(60, sd = 0.5)[b] + rnorm(n)
  d <- put_table(con, "ab", d)
  it <- lmm_control(backend = "iterative", exact_levels = 0L, probes = 12L)
  fm <- y ~ x + (1 | a) + (1 | b)
  f <- lmm(fm, dbi_table(con, "ab"), control = it)
  g <- lmm(fm, d, control = it)
  expect_false(is.null(f$iterative))
  r <- lmmc:::refit_aggregated(f, y ~ x + (1 | a))
  expect_identical(r$iterative$probes, 12L)
  expect_false(is.null(lmmc:::refit_ml(f)$iterative))
  expect_same_table(ranova(f), ranova(g), tol = 1e-6)
  expect_same_table(suppressMessages(drop1(f, test = "Chisq")),
                    suppressMessages(drop1(g, test = "Chisq")), tol = 1e-6)
})
