# lmm() on a database table (R/database.R, R/aggregate.R): the fit from the table equals the fit
# from the same data frame to 1e-10, on SQLite (embedded) and on PostgreSQL when a server answers
# (.ci/run starts one; connection from LMMC_PG_HOST/PORT/DBNAME/USER/PASSWORD).  Reference values
# recorded from lme4 1.1-35 (lmer, default settings).

# fit_gap, expect_same_fit, put_table, sqlite_con, pg_con, ref_rds, sleep_weighted:
# helper-database.R

math_achieve <- function() {
  ma <- nlme::MathAchieve
  ma$Sector <- nlme::MathAchSchool$Sector[match(ma$School, nlme::MathAchSchool$School)]
  ma
}

# The models every backend runs, each against the data-frame fit of the table's rows.
check_backend <- function(con) {
  sleep <- put_table(con, "sleep", lme4_sleepstudy())
  f <- lmm(Reaction ~ Days + (Days | Subject), dbi_table(con, "sleep"))
  expect_same_fit(lmm(Reaction ~ Days + (Days | Subject), sleep), f)
  # lme4: REMLcrit, theta, fixef, sigma
  expect_equal(f$crit, 1743.62827195995, tolerance = 1e-7)
  expect_equal(unname(f$theta), c(0.966741773967412, 0.0151690588960361, 0.230909953207795),
               tolerance = 1e-5)
  expect_equal(unname(fixef(f)), c(251.405104848485, 10.467285959596), tolerance = 1e-7)
  expect_equal(sigma(f), 25.5917957216753, tolerance = 1e-6)
  expect_identical(nobs(f), 180L)

  pen <- put_table(con, "pen", ref_rds("Penicillin"))
  f <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), dbi_table(con, "pen"))
  expect_same_fit(lmm(diameter ~ 1 + (1 | plate) + (1 | sample), pen), f)
  expect_equal(f$crit, 330.860588999604, tolerance = 1e-7)
  expect_equal(unname(f$theta), c(1.53967555430648, 3.51251885988167), tolerance = 1e-4)

  pastes <- put_table(con, "pastes", ref_rds("Pastes"))
  f <- lmm(strength ~ 1 + (1 | batch/cask), dbi_table(con, "pastes"))
  expect_same_fit(lmm(strength ~ 1 + (1 | batch/cask), pastes), f)
  expect_equal(f$crit, 246.990745853487, tolerance = 1e-7)
  expect_equal(unname(f$theta), c(3.52690178773174, 1.56346140209686), tolerance = 1e-5)
  expect_identical(rownames(ranef(f)[["cask:batch"]]), rownames(ranef(lmm(strength ~ 1 +
    (1 | batch/cask), pastes))[["cask:batch"]]))

  # a factor covariate and an interaction (Sector: levels sorted as factor() sorts the strings)
  ma <- put_table(con, "ma", math_achieve())
  fm <- MathAch ~ SES * Sector + Minority + (1 + SES | School)
  f <- lmm(fm, dbi_table(con, "ma"))
  expect_same_fit(lmm(fm, ma), f)
  expect_equal(f$crit, 46370.1439687524, tolerance = 1e-7)
  expect_equal(unname(f$theta), c(0.272002562568804, 0.0197743071796982, 0.041527429206009),
               tolerance = 1e-3)                  # lme4 stops earlier than lmmc here
  expect_equal(unname(fixef(f)["MinorityYes"]), -2.93179128137024, tolerance = 1e-5)
  expect_equal(sigma(f), 5.9970900586896, tolerance = 1e-6)

  # fitted values and residuals computed in the database, rows with NA left out
  ma$id <- seq_len(nrow(ma))
  ma$MathAch[c(5, 9)] <- NA
  put_table(con, "ma2", ma)
  fm <- MathAch ~ SES * Sector + Minority + (1 + SES | School) + offset(SES / 10)
  f <- lmm(fm, dbi_table(con, "ma2"))
  g <- lmm(fm, ma)
  aug <- db_augment(f)
  aug <- aug[order(aug$id), ]
  expect_identical(nrow(aug), 7183L)
  expect_lt(max(abs(aug$.fitted - fitted(g))), 1e-10)
  expect_lt(max(abs(aug$.resid - residuals(g))), 1e-10)
  db_augment(f, into = "ma2_augmented")
  expect_equal(DBI::dbGetQuery(con, "SELECT COUNT(*) AS n FROM ma2_augmented")$n, 7183)
  DBI::dbRemoveTable(con, "ma2_augmented")
  expect_false(any(grepl("^lmm_cells_", DBI::dbListTables(con))))   # its cells table is gone

  # weights, rows with NA dropped (na.omit), transformations translated to SQL; ML
  sw <- put_table(con, "sw", sleep_weighted())
  f <- lmm(Reaction ~ Days + (Days | Subject), dbi_table(con, "sw"), weights = w, REML = FALSE)
  expect_same_fit(lmm(Reaction ~ Days + (Days | Subject), sw, weights = w, REML = FALSE), f)
  expect_equal(deviance(f), 1728.59700785597, tolerance = 1e-7)      # lme4, same weights
  expect_equal(unname(fixef(f)), c(252.503725890987, 10.3045672460344), tolerance = 1e-6)
  expect_identical(nobs(f), 178L)
  fm <- Reaction ~ Days + I(Days2^2) + log(w) + sqrt(Days + 1) + (Days | Subject)
  f <- lmm(fm, dbi_table(con, "sw"), weights = w)
  expect_same_fit(lmm(fm, sw, weights = w), f)
  expect_identical(nobs(f), 177L)
  expect_equal(logLik(f), logLik(lmm(fm, sw, weights = w)), tolerance = 1e-12)
  # a numeric column missing in the table's first rows keeps its type
  late <- sw
  late$Days2[1:40] <- NA
  put_table(con, "late", late)
  fm <- Reaction ~ Days2 + (1 | Subject)
  expect_same_fit(lmm(fm, DBI::dbReadTable(con, "late")), lmm(fm, dbi_table(con, "late")))
  # offsets: a term of the formula and the argument
  fm <- log(Reaction) ~ Days + offset(Days / 10) + (1 | Subject)
  expect_same_fit(lmm(fm, sw, offset = w), lmm(fm, dbi_table(con, "sw"), offset = w))
}

test_that("a fit from an SQLite table equals the fit from its data frame (1e-10) and lme4", {
  con <- sqlite_con()
  on.exit(DBI::dbDisconnect(con))
  check_backend(con)
})

test_that("a fit from a PostgreSQL table equals the fit from its data frame (1e-10) and lme4", {
  con <- pg_con()
  on.exit(DBI::dbDisconnect(con))
  check_backend(con)
})

test_that("contrasts, factor(), terms without their margins and interaction groups", {
  con <- sqlite_con()
  on.exit(DBI::dbDisconnect(con))
  ma <- put_table(con, "ma", math_achieve())
  fm <- MathAch ~ SES * Sector + Minority * Sex + (1 + SES | School) + (1 | Sector:Sex)
  ctr <- list(Sector = "contr.sum")
  f <- suppressMessages(lmm(fm, dbi_table(con, "ma"), contrasts = ctr))
  expect_same_fit(suppressMessages(lmm(fm, ma, contrasts = ctr)), f)
  expect_true("SES:Sector1" %in% names(fixef(f)))
  fm <- MathAch ~ 0 + Sector:SES + factor(Minority) + (0 + Sector | School)
  f <- lmm(fm, dbi_table(con, "ma"))
  expect_same_fit(lmm(fm, ma), f)
  expect_identical(names(fixef(f)), c("factor(Minority)No", "factor(Minority)Yes",
                                      "SectorCatholic:SES", "SectorPublic:SES"))
})

test_that("a table fit agrees with lme4's fit of the same rows (live)", {
  skip_if_not_installed("lme4")
  con <- sqlite_con()
  on.exit(DBI::dbDisconnect(con))
  sw <- put_table(con, "sw", sleep_weighted())
  sw$Subject <- factor(sw$Subject)
  fm <- Reaction ~ Days + I(Days^2) + (Days | Subject)
  f <- lmm(fm, dbi_table(con, "sw"), weights = w, REML = FALSE)
  m <- lme4::lmer(fm, sw, weights = w, REML = FALSE)
  expect_equal(deviance(f), deviance(m), tolerance = 1e-6)
  expect_equal(unname(fixef(f)), unname(lme4::fixef(m)), tolerance = 1e-5)
  expect_equal(sigma(f), sigma(m), tolerance = 1e-5)
  expect_equal(as.matrix(ranef(f)$Subject), as.matrix(lme4::ranef(m)$Subject), tolerance = 1e-4)
})

test_that("a dbplyr query is a table: its rows are the query's", {
  skip_if_not_installed("dbplyr")
  skip_if_not_installed("dplyr")
  con <- sqlite_con()
  on.exit(DBI::dbDisconnect(con))
  sleep <- put_table(con, "sleep", lme4_sleepstudy())
  lazy <- dplyr::filter(dplyr::tbl(con, "sleep"), Days > 1)
  expect_same_fit(lmm(Reaction ~ Days + (Days | Subject), subset(sleep, Days > 1)),
                  lmm(Reaction ~ Days + (Days | Subject), lazy))
})

test_that("chunks (a list or a function) give the data frame's fit", {
  d <- as_table_data(sleep_weighted())
  fm <- Reaction ~ Days + I(Days2^2) + (Days | Subject)
  whole <- lmm(fm, d, weights = w)
  parts <- unname(split(d, rep(1:7, length.out = nrow(d))))
  expect_same_fit(whole, lmm(fm, lmm_chunks(parts), weights = w))
  i <- 0L
  next_chunk <- function() { i <<- i + 1L; if (i <= length(parts)) parts[[i]] }
  expect_same_fit(whole, lmm(fm, lmm_chunks(next_chunk), weights = w))
  expect_identical(i, length(parts) + 1L)               # one pass: every chunk read once
  expect_error(lmm(fm, lmm_chunks(function() NULL)), "first chunk")
  expect_error(lmm_chunks(d), "list of data frames")
  expect_error(lmm_chunks(list(d, 1)), "every element")
})

test_that("methods from cross-products work, methods needing rows say so", {
  con <- sqlite_con()
  on.exit(DBI::dbDisconnect(con))
  sleep <- put_table(con, "sleep", lme4_sleepstudy())
  f <- lmm(Reaction ~ Days + (Days | Subject), dbi_table(con, "sleep"))
  g <- lmm(Reaction ~ Days + (Days | Subject), sleep)
  expect_s3_class(f, "lmm_aggregated")
  expect_equal(predict(f, newdata = sleep[1:30, ]), predict(g, newdata = sleep[1:30, ]),
               tolerance = 1e-10)
  expect_equal(predict(f, newdata = sleep[1:30, ], se.fit = TRUE),
               predict(g, newdata = sleep[1:30, ], se.fit = TRUE), tolerance = 1e-9)
  expect_equal(coef(summary(f))[, 1:2], coef(summary(g))[, 1:2], tolerance = 1e-10)
  expect_equal(ranef(f, condVar = TRUE), ranef(g, condVar = TRUE), tolerance = 1e-9)
  expect_equal(as.data.frame(VarCorr(f)), as.data.frame(VarCorr(g)), tolerance = 1e-10)
  expect_equal(confint(f, method = "Wald"), confint(g, method = "Wald"), tolerance = 1e-10)
  expect_equal(suppressMessages(confint(f, parm = c(".sig01", ".sigma", "Days"))),   # profiles
               suppressMessages(confint(g, parm = c(".sig01", ".sigma", "Days"))), tolerance = 1e-9)
  expect_equal(anova(f)[["F value"]], anova(g)[["F value"]], tolerance = 1e-8)
  expect_output(print(summary(f)), "aggregated: no residuals")
  expect_equal(lmmc:::lmm_rmse(f), lmmc:::lmm_rmse(g), tolerance = 1e-10)   # from wrss / n
  expect_equal(lmmc:::fixed_variance(f), lmmc:::fixed_variance(g), tolerance = 1e-10)
  expect_equal(lmmc:::variance_parts(f), lmmc:::variance_parts(g), tolerance = 1e-9)   # icc, r2
  if (requireNamespace("insight", quietly = TRUE))
    expect_equal(insight::get_variance(f), insight::get_variance(g), tolerance = 1e-9)
  expect_output(print(f), "table sleep")
  f1 <- lmm(Reaction ~ Days + (Days | Subject), dbi_table(con, "sleep"), REML = FALSE)
  f0 <- lmm(Reaction ~ 1 + (Days | Subject), dbi_table(con, "sleep"), REML = FALSE)
  g1 <- lmm(Reaction ~ Days + (Days | Subject), sleep, REML = FALSE)
  g0 <- lmm(Reaction ~ 1 + (Days | Subject), sleep, REML = FALSE)
  expect_equal(anova(f1, f0)$Chisq, anova(g1, g0)$Chisq, tolerance = 1e-8)
  f0r <- lmm(Reaction ~ 1 + (Days | Subject), dbi_table(con, "sleep"))       # REML: refitted
  g0r <- lmm(Reaction ~ 1 + (Days | Subject), sleep)
  expect_equal(suppressMessages(anova(f, f0r))$Chisq, suppressMessages(anova(g, g0r))$Chisq,
               tolerance = 1e-8)
  expect_equal(suppressMessages(anova(f, f0r))$logLik, anova(f1, f0)$logLik, tolerance = 1e-8)
  if (requireNamespace("lme4", quietly = TRUE)) {
    expect_error(lme4::getME(f, "X"), "needs the rows")
    expect_equal(lme4::getME(f, "theta"), lme4::getME(g, "theta"), tolerance = 1e-10)
  }
  for (call in list(quote(residuals(f)), quote(fitted(f)), quote(predict(f)),
                    quote(model.frame(f)), quote(simulate(f)),
                    quote(confint(f, method = "boot")), quote(hatvalues(f)),
                    quote(bootstrap_lmm(f, fixef)),
                    quote(shrinkage_plot(f)), quote(as_lmerMod(f))))
    expect_error(eval(call), "needs the rows")
})

test_that("variance parts (R2, ICC) of unbalanced and weighted table fits are the data frame's", {
  con <- sqlite_con()
  on.exit(DBI::dbDisconnect(con))
  ma <- math_achieve()
  set.seed(1)
  ma$w <- runif(nrow(ma), 0.5, 2)
  ma$SES2 <- ma$SES^2
  ma <- put_table(con, "maw", ma)
  chunks <- lmm_chunks(unname(split(ma, rep(1:4, length.out = nrow(ma)))))
  parts <- function(f) unlist(lmmc:::variance_parts(f))
  for (fm in list(MathAch ~ SES + Minority + (1 + SES | School),
                  MathAch ~ SES * Minority + I(SES^2) + (1 + SES | School) + (0 + SES2 | Sector),
                  MathAch ~ 1 + (1 | School))) {
    g <- lmm(fm, ma)                        # unbalanced: the pseudo-rows' weights matter
    expect_equal(parts(lmm(fm, dbi_table(con, "maw"))), parts(g), tolerance = 1e-10)
    gw <- lmm(fm, ma, weights = w)          # weighted: means over the unweighted moments
    fw <- lmm(fm, dbi_table(con, "maw"), weights = w)
    expect_false(is.null(fw$aggregate$unweighted))
    expect_equal(parts(fw), parts(gw), tolerance = 1e-10)
    expect_equal(parts(lmm(fm, chunks, weights = w)), parts(gw), tolerance = 1e-10)
    expect_equal(icc(fw)$adjusted, icc(gw)$adjusted, tolerance = 1e-10)
    if (requireNamespace("insight", quietly = TRUE))
      expect_equal(suppressWarnings(insight::get_variance(fw)),
                   suppressWarnings(insight::get_variance(gw)), tolerance = 1e-10)
  }
  # lme4 1.1-31 (lmer, REML): the random-intercept model's variance parts
  expect_equal(unname(parts(lmm(MathAch ~ 1 + (1 | School), dbi_table(con, "maw")))),
               c(0, 8.614024837, 39.148321891), tolerance = 1e-6)
})

test_that("reference grids (emmeans, ls_means) use the data's covariate means", {
  con <- sqlite_con()
  on.exit(DBI::dbDisconnect(con))
  ma <- put_table(con, "ma", math_achieve())
  fm <- MathAch ~ SES * Sector + Minority + (1 + SES | School)
  f <- lmm(fm, dbi_table(con, "ma"))
  g <- lmm(fm, ma)
  expect_equal(mean(f$frame$SES), mean(ma$SES), tolerance = 1e-12)
  expect_equal(as.data.frame(ls_means(f))[, 1:3], as.data.frame(ls_means(g))[, 1:3],
               tolerance = 1e-8)
  skip_if_not_installed("emmeans")
  ef <- as.data.frame(suppressMessages(emmeans::emmeans(f, ~ Sector)))
  eg <- as.data.frame(suppressMessages(emmeans::emmeans(g, ~ Sector)))
  expect_equal(ef$emmean, eg$emmean, tolerance = 1e-10)
  expect_equal(ef$SE, eg$SE, tolerance = 1e-10)
  expect_equal(ef$emmean, c(13.34094965, 11.02018851), tolerance = 1e-8)   # the data-frame fit
})

test_that("what cannot be pushed down is an error naming it", {
  con <- sqlite_con()
  on.exit(DBI::dbDisconnect(con))
  put_table(con, "sleep", lme4_sleepstudy())
  tab <- dbi_table(con, "sleep")
  expect_error(lmm(Reaction ~ poly(Days, 2) + (1 | Subject), tab), "'poly\\(Days, 2\\)' cannot be pushed down")
  expect_error(lmm(Reaction ~ sin(Days) + (1 | Subject), tab), "'sin\\(Days\\)' cannot be pushed down")
  expect_error(lmm(Reaction ~ Days + (1 | Subject), tab, subset = Days > 2), "'subset'")
  expect_error(lmm(Reaction ~ Days + (1 | Subject), tab, correlation = nlme::corAR1()), "need the rows")
  expect_error(lmm(Reaction ~ nope + (1 | Subject), tab), "'nope' not found")
  expect_error(lmm(Subject ~ Days + (1 | Subject), tab), "the response \\(Subject\\) must be a numeric")
  expect_error(lmm(Reaction ~ Days + (1 | Subject), tab, weights = Subject), "'weights' \\(Subject\\)")
  expect_error(lmm(Reaction ~ Days + (1 | Subject), con), "dbi_table")
  expect_error(lmm_pieces(Reaction ~ Days + (1 | Subject), tab), "only lmm\\(\\) fits")
  expect_error(dbi_table(1, "sleep"), "DBI connection")
  expect_error(db_augment(lmm(Reaction ~ Days + (1 | Subject), DBI::dbReadTable(con, "sleep"))),
               "fit from a database table")
  expect_error(dbi_table(con, NA_character_), "table name")
})

test_that("the engine's counts hook checks its input", {
  e <- lmmc:::engine_setup(c(1, 2, 4, 3), matrix(1, 4, 1), list(list(group = factor(c(1, 1, 2, 2)),
                           Xt = matrix(1, 4, 1))), rep(1, 4), rep(0, 4))
  expect_error(.Call(lmmc:::C_lmm_set_counts, e, 0, list(1:2), 0), "positive count")
  expect_error(.Call(lmmc:::C_lmm_set_counts, e, 10, list(1:3), 0), "2 integer counts")
  expect_error(.Call(lmmc:::C_lmm_set_counts, e, 10, list(c(5L, NA)), 0), "negative or missing")
  expect_error(.Call(lmmc:::C_lmm_set_counts, e, 10, list(c(5L, 5L)), NA_real_), "finite")
  c0 <- lmmc:::engine_crit(e, 1, TRUE)
  .Call(lmmc:::C_lmm_set_counts, e, 4, list(c(2L, 2L)), 0)
  expect_identical(lmmc:::engine_crit(e, 1, TRUE), c0)  # the true counts: unchanged
})
