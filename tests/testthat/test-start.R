# Starting values by moments (R/start.R, start_theta() in R/fit.R) and the evaluation counts they
# give with the optimiser (src/optimise.c).  Reference numbers from lme4 1.1-31 (lmer, default
# settings): REMLcrit / deviance, theta and fit@optinfo$feval, recorded literally.

data_rds <- function(name) readRDS(test_path("data", paste0(name, ".rds")))

moment_start <- function(formula, data, REML = TRUE) {
  p <- lmm_pieces(formula, data, REML = REML)
  lmmc:::theta_moments(p$y, p$X, p$reterms, p$weights, p$offset, REML)
}

test_that("balanced designs: the moment start is the REML optimum (3 digits)", {
  # one-way ANOVA = REML when balanced; lme4 theta 0.848323783
  expect_identical(moment_start(Yield ~ 1 + (1 | Batch), data_rds("Dyestuff")), 0.848)
  # nested (batch/cask), lme4 theta 3.52690179, 1.5634614
  expect_identical(moment_start(strength ~ 1 + (1 | batch / cask), data_rds("Pastes")),
                   c(3.53, 1.56))
  # balanced crossed (plate x sample), lme4 theta 1.53967555, 3.51251886
  expect_identical(moment_start(diameter ~ 1 + (1 | plate) + (1 | sample), data_rds("Penicillin")),
                   c(1.54, 3.51))
  # vector term from per-subject regressions; lme4 theta 0.966741774, 0.0151690589, 0.230909953
  expect_identical(moment_start(Reaction ~ Days + (Days | Subject), data_rds("sleepstudy")),
                   c(0.967, 0.0152, 0.231))
  # ML: level covariances with divisor J; lme4 ML theta 0.929190605, 0.0181657547, 0.222643206
  expect_identical(moment_start(Reaction ~ Days + (Days | Subject), data_rds("sleepstudy"), FALSE),
                   c(0.929, 0.0182, 0.223))
})

test_that("a variance estimated at or below 0 starts at the floor, off the boundary", {
  # Dyestuff2: lme4's optimum is theta = 0
  expect_identical(moment_start(Yield ~ 1 + (1 | Batch), data_rds("Dyestuff2")), 0.1)
  d <- data.frame(y = c(0.71, 0.43, 0.77, 0.37, 0.58, 0.69, 0.72, 0.12,
                        0.91, 0.53, 0.29, 0.39, 0.75, 0.51, 0.42, 0.31),
                  id = rep(c(1:4, 26:29), each = 2),
                  c1 = c(1, 2, 1, 2, 1, 2, 2, 1, 2, 1, 1, 2, 2, 1, 1, 2),
                  c2 = rep(1:2, each = 8))
  expect_identical(moment_start(y ~ (1 | id) + (1 | c1) + (1 | c2), d), c(0.1, 0.1, 0.1))
})

test_that("moment equation coefficients: nesting and balanced crossing", {
  p <- lmm_pieces(strength ~ 1 + (1 | batch / cask), data_rds("Pastes"))
  cask <- as.integer(p$reterms[[1]]$group)          # 30 casks, 3 in each of 10 batches
  batch <- as.integer(p$reterms[[2]]$group)
  one <- rep(1, 60)
  # each cask mean carries its batch's effect: kappa = (30 - 90 / 30) / 29; none within a cask
  expect_equal(lmmc:::pair_coefs(one, cask, one, batch), c(kappa = 27 / 29, lambda = 0))
  # each batch mean averages 3 cask effects: kappa = 1/3; within a batch casks vary fully
  expect_equal(lmmc:::pair_coefs(one, batch, one, cask), c(kappa = 1 / 3, lambda = 0.8))
  p <- lmm_pieces(diameter ~ 1 + (1 | plate) + (1 | sample), data_rds("Penicillin"))
  k <- lmmc:::pair_coefs(rep(1, 144), as.integer(p$reterms[[1]]$group), rep(1, 144),
                         as.integer(p$reterms[[2]]$group))
  expect_equal(unname(k), c(0, 1), tolerance = 1e-12)   # sample effects cancel between plates
})

test_that("terms that cannot be estimated keep lme4's start; weights are used", {
  d <- data_rds("sleepstudy")
  small <- d[d$Subject %in% levels(d$Subject)[1:2] & d$Days < 2, ]   # 2 levels, 2 rows each
  small$Subject <- droplevels(small$Subject)
  p <- lmm_pieces(Reaction ~ 1 + (Days | Subject), small,
                  control = lmm_control(check.nobs.vs.nRE = "ignore"))
  expect_identical(lmmc:::theta_moments(p$y, p$X, p$reterms, p$weights, p$offset), c(1, 0, 1))
  p <- lmm_pieces(Reaction ~ Days + (1 | Subject), d)
  w <- rep(c(1, 4), length.out = nrow(d))
  expect_false(identical(lmmc:::theta_moments(p$y, p$X, p$reterms, w, p$offset),
                         lmmc:::theta_moments(p$y, p$X, p$reterms, p$weights, p$offset)))
})

test_that("start_method = 'ones' is lme4's start and reaches the same optimum", {
  d <- data_rds("Penicillin")
  f <- diameter ~ 1 + (1 | plate) + (1 | sample)
  fit <- lmm(f, d)
  ones <- lmm(f, d, control = lmm_control(start_method = "ones"))
  expect_equal(ones$crit, fit$crit, tolerance = 1e-10)
  expect_gt(ones$optinfo$feval, fit$optinfo$feval)
  expect_error(lmm_control(start_method = "zero"), "'start_method' must be one of")
  p <- lmm_pieces(Reaction ~ Days + (Days | Subject), data_rds("sleepstudy"))
  lower <- c(0, -Inf, 0)
  start <- function(start, control)
    lmmc:::start_theta(start, p$reterms, lower, p$y, p$X, p$weights, p$offset, TRUE, control)
  expect_identical(start(NULL, lmm_control(start_method = "ones")), c(1, 0, 1))
  th <- start(NULL, lmm_control())
  expect_equal(c(th), c(0.967, 0.0152, 0.231))
  expect_equal(attr(th, "rhobeg"), 0.05 * 0.231)        # 5% of the least diagonal entry
  expect_equal(lmmc:::optimiser_settings(lmm_control(), th)$rhobeg, 0.05 * 0.231)
  expect_identical(start(c(2, 0, -1), lmm_control()), c(2, 0, 0))
})

# Models whose data need no lme4: lme4's criterion and evaluation count.
count_cases <- list(
  list(Reaction ~ Days + (Days | Subject), "sleepstudy", TRUE, 1743.62827196, 43),
  list(Reaction ~ Days + (Days | Subject), "sleepstudy", FALSE, 1751.93934449, 53),
  list(diameter ~ 1 + (1 | plate) + (1 | sample), "Penicillin", TRUE, 330.860589, 41),
  list(strength ~ 1 + (1 | batch / cask), "Pastes", TRUE, 246.990745853, 36),
  list(Yield ~ 1 + (1 | Batch), "Dyestuff", TRUE, 319.654276842, 17),
  list(Yield ~ 1 + (1 | Batch), "Dyestuff2", TRUE, 161.828277812, 10),
  list(angle ~ recipe * temperature + (1 | recipe:replicate), "cake", TRUE, 1638.62145988, 13),
  list(distance ~ age + (age | Subject), "Orthodont", TRUE, 442.636685982, 88),
  list(distance ~ age + (age | Subject), "Orthodont", FALSE, 439.21160129, 107),
  list(score ~ Machine + (1 | Worker / Machine), "Machines", TRUE, 215.687568008, 40),
  list(score ~ Machine + (1 | Worker / Machine), "Machines", FALSE, 225.26944694, 54),
  list(travel ~ 1 + (1 | Rail), "Rail", TRUE, 122.177000809, 18),
  list(effort ~ Type + (1 | Subject), "ergoStool", TRUE, 121.130788702, 14)
)

test_that("fewer evaluations than lme4, and an optimum at least as good", {
  for (case in count_cases) {
    d <- if (case[[2]] %in% c("Orthodont", "Machines", "Rail", "ergoStool"))
      as.data.frame(do.call(`::`, list("nlme", case[[2]]))) else data_rds(case[[2]])
    fit <- suppressMessages(lmm(case[[1]], d, REML = case[[3]]))
    label <- paste(deparse(case[[1]]), if (case[[3]]) "REML" else "ML")
    expect_lt(fit$optinfo$feval, case[[5]], label = label)
    expect_lte(fit$crit, case[[4]] + 1e-9 * abs(case[[4]]), label = label)
    expect_true(fit$optinfo$converged, label = label)
  }
})

test_that("live: fewer evaluations than lme4 on the same models", {
  skip_if_not_installed("lme4")
  for (case in count_cases[c(1, 3, 8)]) {
    d <- if (case[[2]] == "Orthodont") as.data.frame(nlme::Orthodont) else data_rds(case[[2]])
    ref <- lme4::lmer(case[[1]], d, REML = case[[3]])
    fit <- lmm(case[[1]], d, REML = case[[3]])
    expect_lt(fit$optinfo$feval, ref@optinfo$feval)
    expect_lte(fit$crit, lme4::REMLcrit(ref) + 1e-9 * abs(lme4::REMLcrit(ref)))
  }
})
