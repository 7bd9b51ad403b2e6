# Likelihood-ratio tests of random-effect terms (R/ranova.R) against lmerTest 3.1-3 (lme4 1.1-31):
# tables recorded below from lmerTest::ranova() on lmerTest::lmer fits of the same models,
# live comparisons when lmerTest is installed.  Log-likelihoods agree to 1e-6 relative (our
# optimum and lme4's agree to that), the other columns to 1e-4 (p-values 2e-3).

test_that("recorded: ranova() tables (sleepstudy, Penicillin, Orthodont; REML and ML)", {
  ran_sleep <- structure(list(npar = c(6, 4), logLik = c(-871.814136, -893.2325427
  ), AIC = c(1755.628272, 1794.465085), LRT = c(NA, 42.83681343
  ), Df = c(NA, 2), `Pr(>Chisq)` = c(NA, 4.990041431e-10)), row.names = c("<none>", 
  "Days in (Days | Subject)"), class = "data.frame")
  ran_sleep_full <- structure(list(npar = c(6, 3), logLik = c(-871.814136, -946.8318317
  ), AIC = c(1755.628272, 1899.663663), LRT = c(NA, 150.0353915
  ), Df = c(NA, 3), `Pr(>Chisq)` = c(NA, 2.588998643e-32)), row.names = c("<none>", 
  "(Days | Subject)"), class = "data.frame")
  ran_sleep_dbl <- structure(list(npar = c(5, 4, 4), logLik = c(-871.8346468, -883.2625137, 
  -893.2325427), AIC = c(1753.669294, 1774.525027, 1794.465085), 
      LRT = c(NA, 22.8557339, 42.79579181), Df = c(NA, 1, 1), `Pr(>Chisq)` = c(NA, 
      1.746275897e-06, 6.076273099e-11)), row.names = c("<none>", 
  "(1 | Subject)", "Days in (0 + Days | Subject)"), class = "data.frame")
  ran_pen <- structure(list(npar = c(4, 3, 3), logLik = c(-165.4302945, -217.9589308, 
  -306.628012), AIC = c(338.860589, 441.9178616, 619.256024), LRT = c(NA, 
  105.0572726, 282.395435), Df = c(NA, 1, 1), `Pr(>Chisq)` = c(NA, 
  1.186561528e-24, 2.257340867e-63)), row.names = c("<none>", "(1 | plate)", 
  "(1 | sample)"), class = "data.frame")
  ran_ortho_ml <- structure(list(npar = c(6, 5), logLik = c(-214.319529, -239.1208799
  ), AIC = c(440.639058, 488.2417599), LRT = c(NA, 49.60270181), 
      Df = c(NA, 1), `Pr(>Chisq)` = c(NA, 1.882542749e-12)), row.names = c("<none>", 
  "(1 | Subject)"), class = "data.frame")
  ran_ortho_sex <- structure(list(npar = c(8, 6), logLik = c(-216.7581936, -216.8786246
  ), AIC = c(449.5163873, 445.7572492), LRT = c(NA, 0.2408619206
  ), Df = c(NA, 2), `Pr(>Chisq)` = c(NA, 0.8865382916)), row.names = c("<none>", 
  "Sex in (Sex | Subject)"), class = "data.frame")
  sleep <- ref_data("sleepstudy")
  ortho <- as.data.frame(ref_data("Orthodont"))
  pen <- ref_data("Penicillin")
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleep)
  r <- ranova(fit)
  expect_table_close(r, ran_sleep)
  expect_close(r$logLik, ran_sleep$logLik, tol = 1e-6, what = "logLik")
  expect_identical(attr(r, "heading")[3], "Reaction ~ Days + (Days | Subject)")
  expect_equal(deparse(attr(r, "formulae")[[1]]), "Reaction ~ Days + (1 | Subject)")
  expect_s3_class(r, "anova")
  expect_table_close(ranova(fit, reduce.terms = FALSE), ran_sleep_full)
  r <- ranova(lmm(Reaction ~ Days + (Days || Subject), sleep))
  expect_table_close(r, ran_sleep_dbl)
  expect_identical(attr(r, "heading")[3], "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)")
  r <- ranova(lmm(diameter ~ 1 + (1 | plate) + (1 | sample), pen))
  expect_table_close(r, ran_pen)
  expect_identical(attr(r, "heading")[3], "diameter ~ (1 | plate) + (1 | sample)")
  r <- ranova(lmm(distance ~ age * Sex + (1 | Subject), ortho, REML = FALSE))
  expect_table_close(r, ran_ortho_ml)
  expect_identical(attr(r, "heading")[3], "distance ~ age + Sex + (1 | Subject) + age:Sex")
  expect_table_close(ranova(lmm(distance ~ age * Sex + (Sex | Subject), ortho)), ran_ortho_sex,
                     tol = 1e-3)
})

test_that("ranova() computes LRT = 2 (logLik - logLik_reduced) from the refits", {
  sleep <- ref_data("sleepstudy")
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleep)
  small <- lmm(Reaction ~ Days + (1 | Subject), sleep)
  r <- ranova(fit)
  expect_equal(r$LRT[2], 2 * (as.numeric(logLik(fit)) - as.numeric(logLik(small))),
               tolerance = 1e-10)
  expect_equal(r$npar, c(6, 4))
  # without a random term left: lm(), its REML log-likelihood for a REML fit
  r <- ranova(fit, reduce.terms = FALSE)
  expect_equal(r$logLik[2], as.numeric(logLik(lm(Reaction ~ Days, sleep), REML = TRUE)),
               tolerance = 1e-10)
})

test_that("ranova() errors are named", {
  s <- ref_data("sleepstudy")
  fit <- lmm_fit(s$Reaction, cbind("(Intercept)" = 1, Days = s$Days),
                 list(list(group = s$Subject, Xt = matrix(1, nrow(s), 1), name = "Subject",
                           cnms = "(Intercept)")))
  expect_error(ranova(fit), "formula")
  expect_error(ranova(lm(Reaction ~ Days, s)), "ranova|lmer")
})

test_that("ranova() matches lmerTest live (also for other models)", {
  skip_if_not_installed("lmerTest")
  ham <- ref_data("ham")
  cases <- list(
    list(Informed.liking ~ Product * Information + (1 | Consumer) + (1 | Consumer:Product), ham),
    list(distance ~ age + (age | Subject), as.data.frame(ref_data("Orthodont"))),
    list(Reaction ~ Days + (Days | Subject), ref_data("sleepstudy")))
  for (cs in cases) {
    m <- suppressMessages(lmerTest::lmer(cs[[1]], data = cs[[2]]))
    ref <- as.data.frame(lmerTest::ranova(m))
    attributes(ref) <- attributes(ref)[c("names", "row.names", "class")]
    expect_table_close(ranova(lmm(cs[[1]], data = cs[[2]])), ref)
  }
})

test_that("ranova() of a residual fit keeps the structure; no random term left: nlme::gls", {
  od <- as.data.frame(ref_data("Orthodont"))
  cor <- nlme::corAR1(form = ~ 1 | Subject)
  fit <- lmm(distance ~ age * Sex + (1 | Subject), od, correlation = cor)
  r <- ranova(fit)
  g <- nlme::gls(distance ~ age * Sex, od, correlation = cor)      # REML, as the fit
  expect_equal(r$logLik, c(as.numeric(logLik(fit)), as.numeric(logLik(g))), tolerance = 1e-7)
  expect_equal(r$npar, c(7, 6))
  expect_equal(r$LRT[2], 10.879, tolerance = 1e-4)                 # recorded 2026-12
  # corAR1() without groups: the fit's AR groups (Subject) are written out for gls
  fit2 <- lmm(distance ~ age * Sex + (1 | Subject), od, correlation = nlme::corAR1())
  expect_equal(ranova(fit2)$logLik, r$logLik, tolerance = 1e-7)
  # a slope removed: the reduced lmm keeps the structure
  slope <- lmm(distance ~ age + (age | Subject), od, correlation = cor)
  rs <- ranova(slope)
  red <- lmm(distance ~ age + (1 | Subject), od, correlation = cor)
  expect_equal(rs$logLik[2], as.numeric(logLik(red)), tolerance = 1e-7)
})

test_that("ranova() of a residual fit keeps the AR groups when the innermost term goes", {
  # corAR1() without groups follows the innermost random-effects grouping (Class:School); the
  # refit without that term must keep those groups, not take School's
  set.seed(5)
  d <- expand.grid(t = 1:5, Class = factor(1:4), School = factor(1:10))
  d$x <- rnorm(nrow(d))
  d$y <- d$x + rep(rnorm(10), each = 20) + rep(rnorm(40, sd = 0.5), each = 5) + rnorm(nrow(d))
  ar <- nlme::corAR1()
  fit <- lmm(y ~ x + (1 | School/Class), d, correlation = ar)     # an object, not a call
  r <- ranova(fit)
  keep <- lmm(y ~ x + (1 | School), d, correlation = nlme::corAR1(form = ~ 1 | School:Class))
  expect_equal(r$logLik[2], as.numeric(logLik(keep)), tolerance = 1e-7)
  expect_equal(r$logLik[2], -310.8274, tolerance = 1e-6)             # recorded 2026-12
  # both terms gone: gls with the groups nested as nlme writes them
  g <- nlme::gls(y ~ x, d, correlation = nlme::corAR1(form = ~ 1 | School/Class))
  expect_equal(ranova(keep)$logLik[2], as.numeric(logLik(g)), tolerance = 1e-7)
  expect_identical(deparse(gls_group_form(~ t | a:b)), "~t | a/b")
})
