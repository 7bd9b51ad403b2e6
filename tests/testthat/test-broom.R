# broom tidiers (R/broom.R) against broom.mixed 0.2.9.4 on lme4 1.1-31 / lmerTest 3.1-3 fits.
#
# Recorded numbers (computed with those packages, see each list):
#  ref_tidy_sleep: tidy(lmerTest::lmer(Reaction ~ Days + (Days | Subject), sleepstudy),
#                  conf.int = TRUE) -- Satterthwaite df / p.value, t-based Wald intervals;
#  ref_tidy_orth:  tidy(lme4::lmer(distance ~ age + Sex + (1 | Subject), Orthodont, REML = FALSE),
#                  conf.int = TRUE, conf.method = "profile") and unlist(glance(.));
#  ref_tidy_pen:   tidy(lme4::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin),
#                  scales = c("vcov", NA)), unlist(glance(.)), and rows 1, 24, 25, 30 of
#                  tidy(., effects = "ran_vals", conf.int = TRUE).
ref_tidy_sleep <- list(term = c("(Intercept)", "Days", "sd__(Intercept)", "cor__(Intercept).Days", "sd__Days", "sd__Observation"),
  estimate = c(251.405104848, 10.4672859596, 24.740657995, 0.0655512382381, 5.9221376589, 25.5917957217),
  std.error = c(6.82459669495, 1.54578964391),
  df = c(16.9997262885, 16.9999837256),
  p.value = c(1.17155811121e-17, 3.26382446993e-06),
  conf.low = c(237.006446769, 7.205954651))
ref_tidy_orth <- list(term = c("(Intercept)", "age", "SexFemale", "sd__(Intercept)", "sd__Observation"),
  estimate = c(17.706712963, 0.660185185185, -2.32102272727, 1.730078729, 1.42272768966),
  conf.low = c(16.0848468921, 0.538750546145, -3.80966217945, 1.2745451783, 1.22887861088),
  conf.high = c(19.3285790365, 0.781619824528, -0.832383259465, 2.40424526526, 1.67345803353),
  glance = c(108, 1.42272768966, -217.428242547, 444.856485094, 458.267141229, 434.856485094, 103))
ref_tidy_pen <- list(group = c(NA, "plate", "sample", "Residual"), term = c("(Intercept)", "var__(Intercept)", "var__(Intercept)", "var__Observation"),
  estimate = c(22.9722222222, 0.716905141001, 3.7311318423, 0.302414956247),
  glance = c(144, 0.549922682063, -165.4302945, 338.860589, 350.739842198, 330.860589, 140),
  ran_vals_rows = 30, ran_vals_level = c("a", "x", "A", "F"), ran_vals_est = c(0.804546905841, -1.21979692176, 2.18705840183, -3.00374476707), ran_vals_se = c(0.271359302596, 0.271359302596, 0.202170685106, 0.202170685106), ran_vals_low = c(0.272692445883, -1.75165138172, 1.79081114029, -3.39999202861))

# The methods are registered on generics' generics when generics is loaded; called directly here
# so that these tests run without it.
tidy_lmm <- lmmc:::tidy.lmm
glance_lmm <- lmmc:::glance.lmm
augment_lmm <- lmmc:::augment.lmm

sleep_fit <- function() lmm(Reaction ~ Days + (Days | Subject), ref_data("sleepstudy"))

# ---- tidy -----------------------------------------------------------------------------------------

test_that("tidy(): lmerTest's fixed-effect table (Satterthwaite) and broom.mixed's ran_pars rows", {
  fit <- sleep_fit()
  td <- tidy_lmm(fit, conf.int = TRUE)
  expect_s3_class(td, "tbl_df")
  expect_named(td, c("effect", "group", "term", "estimate", "std.error", "statistic", "df",
                     "p.value", "conf.low", "conf.high"))
  expect_identical(td$effect, rep(c("fixed", "ran_pars"), c(2, 4)))
  expect_identical(td$group, c(NA, NA, "Subject", "Subject", "Subject", "Residual"))
  expect_identical(td$term, ref_tidy_sleep$term)
  expect_close(td$estimate, ref_tidy_sleep$estimate, 1e-4)
  expect_close(td$std.error[1:2], ref_tidy_sleep$std.error, 1e-4)
  expect_close(td$df[1:2], ref_tidy_sleep$df, 1e-4)
  expect_close(td$p.value[1:2], ref_tidy_sleep$p.value, 1e-3)
  expect_close(td$conf.low[1:2], ref_tidy_sleep$conf.low, 1e-4)
  expect_true(all(is.na(td$conf.low[3:6])) && all(is.na(td$std.error[3:6])))

  # lme4's columns (no df): Wald intervals with normal quantiles
  t4 <- tidy_lmm(fit, ddf.method = "lme4", conf.int = TRUE, effects = "fixed")
  expect_named(t4, c("effect", "term", "estimate", "std.error", "statistic", "conf.low",
                     "conf.high"))
  expect_equal(t4$conf.low, t4$estimate - qnorm(0.975) * t4$std.error)
  # exponentiate: estimate and limits exponentiated, std.error by the delta method
  te <- tidy_lmm(fit, ddf.method = "lme4", conf.int = TRUE, effects = "fixed",
                 exponentiate = TRUE)
  expect_equal(te$estimate, exp(t4$estimate))
  expect_equal(te$conf.high, exp(t4$conf.high))
  expect_equal(te$std.error, t4$std.error * exp(t4$estimate))
})

test_that("tidy(): var/cov scale, ran_vals and ran_coefs on Penicillin (crossed)", {
  fit <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), ref_data("Penicillin"))
  td <- tidy_lmm(fit, scales = c("vcov", NA))
  expect_identical(td$group, ref_tidy_pen$group)
  expect_identical(td$term, ref_tidy_pen$term)
  expect_close(td$estimate, ref_tidy_pen$estimate, 1e-4)
  rv <- tidy_lmm(fit, effects = "ran_vals", conf.int = TRUE)
  expect_named(rv, c("effect", "group", "level", "term", "estimate", "std.error", "conf.low",
                     "conf.high"))
  expect_equal(nrow(rv), ref_tidy_pen$ran_vals_rows)
  i <- c(1, 24, 25, 30)
  expect_identical(rv$level[i], ref_tidy_pen$ran_vals_level)
  expect_close(rv$estimate[i], ref_tidy_pen$ran_vals_est, 1e-4)
  expect_close(rv$std.error[i], ref_tidy_pen$ran_vals_se, 1e-4)
  expect_close(rv$conf.low[i], ref_tidy_pen$ran_vals_low, 1e-4, scale = 1)
  rc <- tidy_lmm(fit, effects = "ran_coefs")
  expect_named(rc, c("effect", "group", "level", "term", "estimate"))
  cf <- coef(fit)
  expect_equal(rc$estimate, c(cf$plate[[1]], cf$sample[[1]]))
  expect_identical(rc$group, rep(c("plate", "sample"), c(24, 6)))
  expect_warning(rc2 <- tidy_lmm(fit, effects = "ran_coefs", conf.int = TRUE), "not available")
  expect_true(all(is.na(rc2$conf.low)))
  expect_error(tidy_lmm(fit, effects = "ran_vals", conf.int = TRUE, conf.method = "profile"),
               "only Wald")
  expect_error(tidy_lmm(fit, effects = "nope"), "unknown effect")
  expect_error(tidy_lmm(fit, scales = "vcov"), "for each effect")
  expect_error(tidy_lmm(fit, scales = c("sd", NA)), "unrecognized")
  # rows: fixed, ran_pars, ran_vals, ran_coefs whatever the order asked
  all4 <- tidy_lmm(fit, effects = c("ran_coefs", "ran_vals", "ran_pars", "fixed"))
  expect_identical(unique(all4$effect), c("fixed", "ran_pars", "ran_vals", "ran_coefs"))
})

test_that("tidy(conf.method = 'profile') gives lme4's profile intervals (Orthodont, ML)", {
  fit <- lmm(distance ~ age + Sex + (1 | Subject), as.data.frame(ref_data("Orthodont")),
             REML = FALSE)
  td <- tidy_lmm(fit, conf.int = TRUE, conf.method = "profile", ddf.method = "lme4")
  expect_identical(td$term, ref_tidy_orth$term)
  expect_close(td$estimate, ref_tidy_orth$estimate, 1e-4)
  expect_close(td$conf.low, ref_tidy_orth$conf.low, 1e-4)
  expect_close(td$conf.high, ref_tidy_orth$conf.high, 1e-4)
  pr <- profile(fit)
  tp <- tidy_lmm(fit, conf.int = TRUE, conf.method = "profile", profile = pr)
  expect_close(tp$conf.low, td$conf.low, 1e-6)
})

test_that("tidy(conf.method = 'boot') uses the parametric bootstrap", {
  fit <- lmm(distance ~ age + (1 | Subject), as.data.frame(ref_data("Orthodont")))
  tb <- suppressWarnings(tidy_lmm(fit, conf.int = TRUE, conf.method = "boot", nsim = 20,
                                  seed = 1))
  ci <- suppressWarnings(confint(fit, method = "boot", nsim = 20, seed = 1))
  expect_equal(tb$conf.low, unname(ci[c(3, 4, 1, 2), 1]))
})

# ---- glance -------------------------------------------------------------------------------------

test_that("glance(): broom.mixed's columns, REMLcrit for REML fits and deviance for ML", {
  fit <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), ref_data("Penicillin"))
  g <- glance_lmm(fit)
  expect_named(g, c("nobs", "sigma", "logLik", "AIC", "BIC", "REMLcrit", "df.residual"))
  expect_close(unlist(g), ref_tidy_pen$glance, 1e-6, scale = 1)
  fo <- lmm(distance ~ age + Sex + (1 | Subject), as.data.frame(ref_data("Orthodont")),
            REML = FALSE)
  go <- glance_lmm(fo)
  expect_named(go, c("nobs", "sigma", "logLik", "AIC", "BIC", "deviance", "df.residual"))
  expect_close(unlist(go), ref_tidy_orth$glance, 1e-6, scale = 1)
})

# ---- augment ------------------------------------------------------------------------------------

test_that("augment(): data columns, then broom.mixed's columns for a weighted fit with offset", {
  d <- ref_data("sleepstudy")
  d$w <- rep(1:3, 60)
  fit <- lmm(Reaction ~ Days + (Days | Subject), d, weights = w, offset = Days / 10)
  a <- augment_lmm(fit)
  expect_named(a, c("Reaction", "Days", "Subject", "(weights)", "(offset)", ".fitted", ".resid",
                    ".hat", ".cooksd", ".fixed", ".mu", ".offset", ".sqrtXwt", ".sqrtrwt",
                    ".weights", ".wtres"))
  expect_equal(a$.fitted, unname(fitted(fit)))
  expect_equal(a$.resid, unname(residuals(fit)))
  expect_equal(a$.hat, unname(hatvalues(fit)))
  expect_equal(a$.cooksd, unname(cooks.distance(fit)))
  expect_equal(a$.fixed, unname(predict(fit, re.form = NA)))
  expect_equal(a$.offset, d$Days / 10)
  expect_equal(a$.sqrtXwt, sqrt(d$w))
  expect_equal(a$.wtres, sqrt(d$w) * a$.resid)
  # lme4 (broom.mixed 0.2.9.4, augment() of the same lmer fit), rows 1 and 3
  # (lmmc's optimum differs from lme4's by ~1e-5 relative; cooks relative to its largest value)
  expect_close(a$.hat[c(1, 3)], c(0.1086279, 0.1822151), 1e-4)
  expect_close(a$.cooksd[c(1, 3)], c(0.001296512, 0.501458014), 1e-4, scale = 0.5)
  expect_close(a$.fixed[c(1, 3)], c(251.8047, 272.6764), 1e-6)
})

test_that("augment(): newdata, na.exclude, residual structures", {
  fit <- sleep_fit()
  d <- ref_data("sleepstudy")
  an <- augment_lmm(fit, newdata = d[1:3, ])
  expect_named(an, c("Reaction", "Days", "Subject", ".fitted", ".fixed", ".resid"))
  expect_equal(an$.fitted, unname(fitted(fit)[1:3]))
  expect_equal(an$.resid, d$Reaction[1:3] - an$.fitted)

  d$Reaction[c(2, 5)] <- NA
  fx <- lmm(Reaction ~ Days + (Days | Subject), d, na.action = na.exclude)
  ax <- augment_lmm(fx, data = d)
  expect_equal(nrow(ax), 180)
  expect_true(all(is.na(ax$.fitted[c(2, 5)])) && !anyNA(ax$.hat[-c(2, 5)]))
  expect_equal(nrow(augment_lmm(fx)), 178)
  expect_error(augment_lmm(fx, data = d[1:10, ]), "10 rows")

  od <- as.data.frame(ref_data("Orthodont"))
  fr <- lmm(distance ~ age + Sex + (1 | Subject), od,
            correlation = nlme::corAR1(form = ~ age | Subject))
  ar <- augment_lmm(fr)
  expect_equal(ar$.hat, unname(hatvalues(fr)))
  tr <- tidy_lmm(fr, conf.int = TRUE)
  fixed <- tr$effect == "fixed"                       # Satterthwaite df with the structure
  expect_equal(tr$df[fixed], unname(summary(fr)$coefficients[, "df"]), tolerance = 1e-10)
  expect_equal(glance_lmm(fr)$logLik, as.numeric(logLik(fr)))
})

# ---- through the generics, and live comparisons -------------------------------------------------

test_that("generics::tidy/glance/augment dispatch to the methods", {
  skip_if_not_installed("generics")
  fit <- sleep_fit()
  expect_identical(generics::tidy(fit), tidy_lmm(fit))
  expect_identical(generics::glance(fit), glance_lmm(fit))
  expect_identical(generics::augment(fit), augment_lmm(fit))
})

test_that("live: the same table as broom.mixed on lmerTest and lme4 fits", {
  skip_if_not_installed("broom.mixed")
  skip_if_not_installed("lmerTest")
  d <- ref_data("sleepstudy")
  fit <- lmm(Reaction ~ Days + (Days | Subject), d)
  mt <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), d)
  m4 <- lme4::lmer(Reaction ~ Days + (Days | Subject), d)
  same <- function(a, b, tol = 1e-4) {
    a <- as.data.frame(a)
    b <- as.data.frame(b)
    expect_identical(names(a), names(b))
    for (v in names(b)) {
      if (is.numeric(b[[v]])) {
        expect_identical(is.na(a[[v]]), is.na(b[[v]]))
        ok <- !is.na(b[[v]])
        expect_close(a[[v]][ok], b[[v]][ok], tol, scale = max(1, abs(b[[v]][ok])), what = v)
      } else expect_identical(a[[v]], b[[v]])
    }
  }
  same(tidy_lmm(fit, conf.int = TRUE), broom.mixed::tidy(mt, conf.int = TRUE), 1e-3)
  same(tidy_lmm(fit, ddf.method = "lme4", conf.int = TRUE),
       broom.mixed::tidy(m4, conf.int = TRUE))
  all <- c("fixed", "ran_pars", "ran_vals", "ran_coefs")
  same(tidy_lmm(fit, effects = all, ddf.method = "lme4"), broom.mixed::tidy(m4, effects = all))
  same(glance_lmm(fit), broom.mixed::glance(m4), 1e-6)
  same(augment_lmm(fit), broom.mixed::augment(m4))
})

test_that("texreg tables go through tidy/glance", {
  skip_if_not_installed("texreg")
  skip_if_not_installed("generics")
  fit <- lmm(distance ~ age + Sex + (1 | Subject), as.data.frame(ref_data("Orthodont")))
  out <- utils::capture.output(texreg::screenreg(fit))
  expect_true(any(grepl("SexFemale", out)) && any(grepl("sd__Observation", out)))
  expect_true(any(grepl("-2\\.32", out)))
})

# modelsummary goes through tidy/glance (and insight/performance for its goodness-of-fit rows).
# Its current releases need insight >= 1.4, newer than Debian's easystats packages, so .ci/run
# runs this file a second time with CRAN's current modelsummary/easystats in a side library.
modelsummary_numbers <- function(fits) {
  tab <- modelsummary::modelsummary(fits, output = "data.frame", fmt = 8,
                                    statistic = c("std.error", "conf.int"))
  nums <- lapply(tab[-(1:3)], function(col) {
    parts <- regmatches(col, gregexpr("-?[0-9.]+(e[-+]?[0-9]+)?", col))
    vapply(parts, function(p) if (length(p)) sum(as.numeric(p)) else NA_real_, 1)
  })
  list(rows = paste(tab$part, tab$term, tab$statistic), values = nums)
}

test_that("modelsummary tables of lmm fits equal those of the lmer fits", {
  skip_if_not_installed("modelsummary")
  skip_if_not_installed("lme4")
  skip_if_not_installed("generics")
  models <- list(
    sleep = list(Reaction ~ Days + (Days | Subject), as.data.frame(ref_data("sleepstudy"))),
    orth = list(distance ~ age + Sex + (1 | Subject), as.data.frame(ref_data("Orthodont"))),
    pen = list(diameter ~ 1 + (1 | plate) + (1 | sample), as.data.frame(ref_data("Penicillin"))))
  for (name in names(models)) {
    f <- models[[name]][[1]]
    d <- models[[name]][[2]]
    out <- modelsummary_numbers(list(lmm = lmm(f, d), lmer = lme4::lmer(f, d)))
    expect_true(any(grepl("SD \\(Observations\\)|sd__Observation", out$rows)))
    expect_true(any(grepl("Num.Obs.", out$rows)))
    # lme4 stops its optimiser earlier than lmmc: relative agreement to 1e-4
    expect_close(out$values$lmm, out$values$lmer, tol = 1e-4,
                 scale = pmax(1, abs(out$values$lmer)), what = paste(name, "modelsummary"))
    expect_identical(is.na(out$values$lmm), is.na(out$values$lmer))
    expect_gt(sum(!is.na(out$values$lmm)), 10)
  }
})
