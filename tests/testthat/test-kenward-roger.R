# Kenward-Roger's adjusted covariance and df (R/kenward-roger.R), checked against a dense textbook
# computation with n x n matrices (also with prior weights, which pbkrtest ignores) and against
# pbkrtest 0.5.2 / lmerTest 3.1-3 (lme4 1.1-31): reference tables recorded below, live
# comparisons when they are installed.
#
# Recorded tables were made with lmerTest::lmer fits and summary/anova/contest(ddf =
# "Kenward-Roger"), which call pbkrtest::vcovAdj, Lb_ddf and KRmodcomp; full MathAchieve (7185
# rows, 160 schools) included (pbkrtest needs ~1.5 s there).  Our optimum and lme4's differ in
# theta by ~1e-5 relative, so the recorded numbers are compared to 1e-4 (2e-3 for df and
# p-values); the live tests plug lme4's estimates into the fit and require 1e-6.

hsb_data <- function() {
  ma <- as.data.frame(nlme::MathAchieve)
  school <- as.data.frame(nlme::MathAchSchool)
  ma$Sector <- school$Sector[match(as.character(ma$School), as.character(school$School))]
  ma$School <- factor(as.character(ma$School))
  ma
}

penicillin_x <- function() {
  pen <- ref_data("Penicillin")
  pen$x <- ((seq_len(nrow(pen)) * 37) %% 11) / 10       # a made-up covariate
  pen
}

kr_cases <- function() list(
  sleep = list(Reaction ~ Days + (Days | Subject), ref_data("sleepstudy")),
  ortho = list(distance ~ age * Sex + (1 | Subject), as.data.frame(ref_data("Orthodont"))),
  pen = list(diameter ~ x + (1 | plate) + (1 | sample), penicillin_x()),
  hsb = list(MathAch ~ SES * Sector + (1 | School), hsb_data()))

with_lme4_estimates <- function(fit, m) {
  fit$theta[] <- lme4::getME(m, "theta")
  fit$sigma <- stats::sigma(m)
  fit$beta[] <- lme4::fixef(m)
  fit$vcov_beta[] <- as.matrix(stats::vcov(m))
  fit
}

expect_f_table <- function(actual, ref, tol = 1e-4, df_tol = 2e-3) {
  actual <- as.matrix(actual)
  expect_identical(dimnames(actual)[[2]], dimnames(ref)[[2]])
  if (!is.null(rownames(ref))) expect_identical(rownames(actual), rownames(ref))
  expect_close(actual[, c("Sum Sq", "Mean Sq", "F value")], ref[, c("Sum Sq", "Mean Sq", "F value")],
               tol = tol, what = "SS, MS, F")
  expect_identical(actual[, "NumDF"], ref[, "NumDF"])
  expect_close(actual[, "DenDF"], ref[, "DenDF"], tol = df_tol, what = "DenDF")
  expect_close(actual[, "Pr(>F)"], ref[, "Pr(>F)"], tol = df_tol, scale = 1e-12, what = "Pr(>F)")
}

expect_t_table <- function(actual, ref, tol = 1e-4, df_tol = 2e-3) {
  actual <- as.matrix(actual)
  expect_identical(dimnames(actual)[[2]], dimnames(ref)[[2]])
  est <- setdiff(colnames(ref), c("df", "Pr(>|t|)"))
  expect_close(actual[, est], ref[, est], tol = tol, scale = 1e-6, what = "estimates, SE, t")
  expect_close(actual[, "df"], ref[, "df"], tol = df_tol, what = "df")
  expect_close(actual[, "Pr(>|t|)"], ref[, "Pr(>|t|)"], tol = df_tol, scale = 1e-12,
               what = "Pr(>|t|)")
}

## ---- a dense n x n reference ------------------------------------------------------------------

# Kenward-Roger by the book with n x n matrices: V = sigma^2 (W^{-1} + Z Lambda Lambda' Z'),
# gamma = (entries of each G_t, sigma^2), V_i = Z E_i Z' and W^{-1}.
dense_kr <- function(fit) {
  Z <- dense_Z(fit$reterms)
  Lambda <- dense_Lambda(fit$theta, fit$reterms)
  X <- fit$X
  s2 <- fit$sigma^2
  Winv <- diag(1 / fit$weights)
  V <- s2 * (Winv + Z %*% Lambda %*% t(Lambda) %*% t(Z))
  Vi <- solve(V)
  Phi <- solve(t(X) %*% Vi %*% X)
  G <- list()
  pos <- 0L
  for (term in fit$reterms) {
    pt <- ncol(term$Xt)
    nl <- nlevels(term$group)
    for (b in seq_len(pt)) for (a in b:pt) {
      E <- matrix(0, pt, pt)
      E[a, b] <- E[b, a] <- 1
      Zt <- Z[, pos + seq_len(pt * nl)]
      G[[length(G) + 1L]] <- Zt %*% kronecker(diag(nl), E) %*% t(Zt)
    }
    pos <- pos + pt * nl
  }
  G[[length(G) + 1L]] <- Winv
  m <- length(G)
  P <- Vi - Vi %*% X %*% Phi %*% t(X) %*% Vi
  Pl <- lapply(G, function(Gi) -t(X) %*% Vi %*% Gi %*% Vi %*% X)
  Q <- function(i, j) t(X) %*% Vi %*% G[[i]] %*% Vi %*% G[[j]] %*% Vi %*% X
  info <- outer(seq_len(m), seq_len(m), Vectorize(function(i, j)
    sum(diag(P %*% G[[i]] %*% P %*% G[[j]]))))
  W <- 2 * solve(info)
  U <- 0
  for (i in seq_len(m)) for (j in seq_len(m))
    U <- U + W[i, j] * (Q(i, j) - Pl[[i]] %*% Phi %*% Pl[[j]])
  list(Phi = Phi, PhiA = Phi + 2 * Phi %*% U %*% Phi, P = Pl, W = W)
}

test_that("the cross-product algebra equals the n x n computation (with prior weights)", {
  ortho <- as.data.frame(ref_data("Orthodont"))
  sleep <- ref_data("sleepstudy")
  sleep$w <- 1 + (seq_len(nrow(sleep)) %% 3) / 2
  pen <- penicillin_x()
  fits <- list(lmm(distance ~ age * Sex + (age | Subject), ortho),
               lmm(Reaction ~ Days + (Days | Subject), sleep, weights = w),
               lmm(diameter ~ x + (1 | plate) + (1 | sample), pen))
  for (fit in fits) {
    kr <- kr_setup(fit)
    ref <- dense_kr(fit)
    expect_equal(unname(kr$Phi), unname(ref$Phi), tolerance = 1e-7)
    expect_equal(unname(kr$PhiA), unname(ref$PhiA), tolerance = 1e-8)
    expect_equal(kr$W, ref$W, tolerance = 1e-8)
    expect_equal(lapply(kr$P, unname), lapply(ref$P, unname), tolerance = 1e-8)
  }
})

test_that("Kenward-Roger's df: one contrast of a balanced design, and the F scaling", {
  # sleepstudy's slope and intercept: 18 subjects, df = 17 exactly
  fit <- lmm(Reaction ~ Days + (Days | Subject), ref_data("sleepstudy"))
  expect_equal(kr_ddf(fit, diag(2)), c(17, 17), tolerance = 1e-6)
  # a single-row test is the squared t test, F.scaling 1 here
  t1 <- contest(fit, c(0, 1), ddf = "Kenward-Roger", joint = FALSE)
  f1 <- kr_test(fit, c(0, 1))
  expect_equal(f1$F, t1[["t value"]]^2, tolerance = 1e-8)
  expect_equal(f1$ddf, t1$df, tolerance = 1e-8)
  # redundant rows are reduced to a basis of the row space
  f2 <- kr_test(fit, rbind(c(0, 1), c(0, 2)))
  expect_equal(f2$ndf, 1L)
  expect_equal(f2$F, f1$F, tolerance = 1e-8)
  expect_length(kr_test(fit, matrix(0, 0, 2))$F, 0L)
})

## ---- recorded lmerTest / pbkrtest numbers -----------------------------------------------------

test_that("recorded: vcovAdj, summary, anova with Kenward-Roger (sleepstudy, Orthodont, Penicillin, MathAchieve)", {
  sleep_vcov <- structure(c(46.57512005, -1.451088417, -1.451088417, 2.389465623
  ), dim = c(2L, 2L), dimnames = list(c("(Intercept)", "Days"), 
      c("(Intercept)", "Days")))
  sleep_coef <- structure(c(251.4051048, 10.46728596, 6.824596695, 1.545789644, 
  17, 17, 36.83808965, 6.771481489, 1.171003316e-17, 3.263808018e-06
  ), dim = c(2L, 5L), dimnames = list(c("(Intercept)", "Days"), 
      c("Estimate", "Std. Error", "df", "t value", "Pr(>|t|)")))
  sleep_anova_III <- structure(c(30030.93902, 30030.93902, 1, 17, 45.85296156, 3.263808018e-06
  ), dim = c(1L, 6L), dimnames = list("Days", c("Sum Sq", "Mean Sq", 
  "NumDF", "DenDF", "F value", "Pr(>F)")))
  sleep_anova_II <- structure(c(30030.93902, 30030.93902, 1, 17, 45.85296156, 3.263808018e-06
  ), dim = c(1L, 6L), dimnames = list("Days", c("Sum Sq", "Mean Sq", 
  "NumDF", "DenDF", "F value", "Pr(>F)")))
  sleep_anova_I <- structure(c(30030.93902, 30030.93902, 1, 17, 45.85296156, 3.263808018e-06
  ), dim = c(1L, 6L), dimnames = list("Days", c("Sum Sq", "Mean Sq", 
  "NumDF", "DenDF", "F value", "Pr(>F)")))
  
  ortho_vcov <- structure(c(0.962973706, -0.06607063349, -0.962973706, 0.06607063349, 
  -0.06607063349, 0.006006421226, 0.06607063349, -0.006006421226, 
  -0.962973706, 0.06607063349, 2.363662733, -0.1621733731, 0.06607063349, 
  -0.006006421226, -0.1621733731, 0.01474303392), dim = c(4L, 4L
  ), dimnames = list(c("(Intercept)", "age", "SexFemale", "age:SexFemale"
  ), c("(Intercept)", "age", "SexFemale", "age:SexFemale")))
  ortho_coef <- structure(c(16.340625, 0.784375, 1.032102273, -0.3048295455, 
  0.9813122367, 0.07750110468, 1.537420805, 0.1214208957, 103.986361, 
  79, 103.986361, 79, 16.65181008, 10.12082348, 0.6713206099, -2.510519657, 
  4.193843193e-31, 6.441814839e-16, 0.5035048739, 0.01409745039
  ), dim = 4:5, dimnames = list(c("(Intercept)", "age", "SexFemale", 
  "age:SexFemale"), c("Estimate", "Std. Error", "df", "t value", 
  "Pr(>|t|)")))
  ortho_anova_III <- structure(c(208.2660038, 0.8662150497, 12.11415194, 208.2660038, 
  0.8662150497, 12.11415194, 1, 1, 1, 79, 103.986361, 79, 108.355914, 
  0.4506713613, 6.302708946, 1.789534602e-16, 0.5035048739, 0.01409745039
  ), dim = c(3L, 6L), dimnames = list(c("age", "Sex", "age:Sex"
  ), c("Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"
  )))
  ortho_anova_II <- structure(c(235.3560185, 0.8662150497, 12.11415194, 235.3560185, 
  0.8662150497, 12.11415194, 1, 1, 1, 79, 103.986361, 79, 122.4502129, 
  0.4506713613, 6.302708946, 9.956493852e-18, 0.5035048739, 0.01409745039
  ), dim = c(3L, 6L), dimnames = list(c("age", "Sex", "age:Sex"
  ), c("Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"
  )))
  ortho_anova_I <- structure(c(235.3560185, 17.85992276, 12.11415194, 235.3560185, 
  17.85992276, 12.11415194, 1, 1, 1, 79, 25, 79, 122.4502129, 9.292098661, 
  6.302708946, 9.956493852e-18, 0.005375056309, 0.01409745039), dim = c(3L, 
  6L), dimnames = list(c("age", "Sex", "age:Sex"), c("Sum Sq", 
  "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)")))
  
  pen_vcov <- structure(c(0.6596400546, -0.01097167492, -0.01097167492, 0.0219738691
  ), dim = c(2L, 2L), dimnames = list(c("(Intercept)", "x"), c("(Intercept)", 
  "x")))
  pen_coef <- structure(c(22.87972184, 0.1852580684, 0.8121822792, 0.1482358563, 
  5.577744625, 114.6424894, 28.17067354, 1.249752071, 3.141670048e-07, 
  0.2139354534), dim = c(2L, 5L), dimnames = list(c("(Intercept)", 
  "x"), c("Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"
  )))
  pen_anova_III <- structure(c(0.4702560743, 0.4702560743, 1, 114.6424894, 1.561880239, 
  0.2139354534), dim = c(1L, 6L), dimnames = list("x", c("Sum Sq", 
  "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)")))
  pen_anova_II <- structure(c(0.4702560743, 0.4702560743, 1, 114.6424894, 1.561880239, 
  0.2139354534), dim = c(1L, 6L), dimnames = list("x", c("Sum Sq", 
  "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)")))
  pen_anova_I <- structure(c(0.4702560743, 0.4702560743, 1, 114.6424894, 1.561880239, 
  0.2139354534), dim = c(1L, 6L), dimnames = list("x", c("Sum Sq", 
  "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)")))
  
  hsb_vcov <- structure(c(0.05222464396, 0.002715565944, -0.05222464396, -0.002715565944, 
  0.002715565944, 0.01979609964, -0.002715565944, -0.01979609964, 
  -0.05222464396, -0.002715565944, 0.1165272104, -0.001270797191, 
  -0.002715565944, -0.01979609964, -0.001270797191, 0.04500786299
  ), dim = c(4L, 4L), dimnames = list(c("(Intercept)", "SES", "SectorCatholic", 
  "SES:SectorCatholic"), c("(Intercept)", "SES", "SectorCatholic", 
  "SES:SectorCatholic")))
  hsb_coef <- structure(c(11.79799405, 2.951174376, 2.138170449, -1.31284922, 
  0.2285271186, 0.1406986128, 0.3413608214, 0.2121505668, 165.8468016, 
  6864.478744, 158.2707073, 6748.382257, 51.626232, 20.97514906, 
  6.263666815, -6.18828995, 4.187832689e-104, 9.862659293e-95, 
  3.398435787e-09, 6.438282572e-10), dim = 4:5, dimnames = list(
      c("(Intercept)", "SES", "SectorCatholic", "SES:SectorCatholic"
      ), c("Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"
      )))
  hsb_anova_III <- structure(c(17241.06701, 1445.370441, 1410.792626, 17241.06701, 
  1445.370441, 1410.792626, 1, 1, 1, 6748.382257, 158.2707073, 
  6748.382257, 467.9961357, 39.23352196, 38.2949325, 2.114791983e-100, 
  3.398435787e-09, 6.438282572e-10), dim = c(3L, 6L), dimnames = list(
      c("SES", "Sector", "SES:Sector"), c("Sum Sq", "Mean Sq", 
      "NumDF", "DenDF", "F value", "Pr(>F)")))
  hsb_anova_II <- structure(c(18219.18611, 1445.370441, 1410.792626, 18219.18611, 
  1445.370441, 1410.792626, 1, 1, 1, 6764.835028, 158.2707073, 
  6748.382257, 494.5464623, 39.23352196, 38.2949325, 8.391601967e-106, 
  3.398435787e-09, 6.438282572e-10), dim = c(3L, 6L), dimnames = list(
      c("SES", "Sector", "SES:Sector"), c("Sum Sq", "Mean Sq", 
      "NumDF", "DenDF", "F value", "Pr(>F)")))
  hsb_anova_I <- structure(c(20727.08694, 1422.15808, 1410.792626, 20727.08694, 
  1422.15808, 1410.792626, 1, 1, 1, 3040.665131, 158.2133169, 6748.382257, 
  562.6215933, 38.60343943, 38.2949325, 2.940538871e-114, 4.406056874e-09, 
  6.438282572e-10), dim = c(3L, 6L), dimnames = list(c("SES", "Sector", 
  "SES:Sector"), c("Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", 
  "Pr(>F)")))
  refs <- list(sleep = list(sleep_vcov, sleep_coef, sleep_anova_III, sleep_anova_II, sleep_anova_I),
               ortho = list(ortho_vcov, ortho_coef, ortho_anova_III, ortho_anova_II, ortho_anova_I),
               pen = list(pen_vcov, pen_coef, pen_anova_III, pen_anova_II, pen_anova_I),
               hsb = list(hsb_vcov, hsb_coef, hsb_anova_III, hsb_anova_II, hsb_anova_I))
  cases <- kr_cases()
  for (nm in names(cases)) {
    fit <- lmm(cases[[nm]][[1]], data = cases[[nm]][[2]])
    ref <- refs[[nm]]
    V <- kr_vcov(fit)
    expect_identical(dimnames(V), dimnames(ref[[1]]))
    expect_close(V, ref[[1]], tol = 1e-4, scale = max(abs(ref[[1]])), what = paste(nm, "vcovAdj"))
    s <- summary(fit, ddf = "Kenward-Roger")
    expect_match(s$methTitle, "t-tests use Kenward-Roger's method", fixed = TRUE)
    expect_identical(dimnames(s$coefficients), dimnames(ref[[2]]))
    expect_t_table(s$coefficients, ref[[2]])
    for (k in 1:3) {
      a <- anova(fit, type = c("III", "II", "I")[k], ddf = "Kenward-Roger")
      expect_match(attr(a, "heading"), "with Kenward-Roger's method", fixed = TRUE)
      expect_f_table(a, ref[[2 + k]])
    }
  }
})

test_that("recorded: multi-df F tests and contest() with Kenward-Roger (cake, Orthodont)", {
  cake_kr_III <- structure(c(10.18586153, 2100.300017, 205.9777778, 5.092930763, 
  420.0600034, 20.59777778, 2, 5, 10, 42, 210, 210, 0.2487888123, 
  20.51986061, 1.006197985, 0.7808855849, 1.153161813e-16, 0.4392694367
  ), dim = c(3L, 6L), dimnames = list(c("recipe", "temperature", 
  "recipe:temperature"), c("Sum Sq", "Mean Sq", "NumDF", "DenDF", 
  "F value", "Pr(>F)")))
  cake_kr_II <- structure(c(10.18586046, 2100.3, 205.9777778, 5.092930231, 420.06, 
  20.59777778, 2, 5, 10, 42, 210, 210, 0.2487887863, 20.51986044, 
  1.006197985, 0.780885605, 1.153162123e-16, 0.4392694367), dim = c(3L, 
  6L), dimnames = list(c("recipe", "temperature", "recipe:temperature"
  ), c("Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"
  )))
  cake_kr_I <- structure(c(10.18586046, 2100.3, 205.9777778, 5.092930231, 420.06, 
  20.59777778, 2, 5, 10, 42, 210, 210, 0.2487887863, 20.51986044, 
  1.006197985, 0.780885605, 1.153162123e-16, 0.4392694367), dim = c(3L, 
  6L), dimnames = list(c("recipe", "temperature", "recipe:temperature"
  ), c("Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"
  )))
  ortho_joint <- structure(c(29.9740747, 14.98703735, 2, 49.94101669, 7.694968611, 
  0.001221518482), dim = c(1L, 6L), dimnames = list(NULL, c("Sum Sq", 
  "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)")))
  ortho_joint_rhs <- structure(c(5.598961691, 2.799480846, 2, 49.94101669, 1.437369957, 
  0.2472086557), dim = c(1L, 6L), dimnames = list(NULL, c("Sum Sq", 
  "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)")))
  ortho_rows <- structure(c(1.032102273, -0.3048295455, 1.537420805, 0.1214208957, 
  103.986361, 79, 0.6713206099, -2.510519657, -2.016665585, -0.5465117929, 
  4.08087013, -0.06314729803, 0.5035048739, 0.01409745039), dim = c(2L, 
  7L), dimnames = list(NULL, c("Estimate", "Std. Error", "df", 
  "t value", "lower", "upper", "Pr(>|t|)")))
  cake <- ref_data("cake")
  fit <- lmm(angle ~ recipe * temperature + (1 | recipe:replicate), cake)
  expect_f_table(anova(fit, ddf = "Kenward-Roger"), cake_kr_III)
  expect_f_table(anova(fit, type = 2, ddf = "Kenward-Roger"), cake_kr_II)
  expect_f_table(anova(fit, type = 1, ddf = "Kenward-Roger"), cake_kr_I)
  fit <- lmm(distance ~ age * Sex + (1 | Subject), as.data.frame(ref_data("Orthodont")))
  L <- rbind(c(0, 0, 1, 0), c(0, 0, 0, 1))
  expect_f_table(contest(fit, L, ddf = "Kenward-Roger"), ortho_joint)
  expect_f_table(contest(fit, L, rhs = c(1, -0.2), ddf = "Kenward-Roger"), ortho_joint_rhs)
  expect_t_table(contest(fit, L, joint = FALSE, ddf = "Kenward-Roger"), ortho_rows)
  expect_equal(kr_test(fit, L)$F.scaling, 0.9868629, tolerance = 1e-5)   # KRmodcomp(m, L)
})

test_that("Kenward-Roger's method: REML fits only in tests, errors named", {
  sleep <- ref_data("sleepstudy")
  ml <- lmm(Reaction ~ Days + (Days | Subject), sleep, REML = FALSE)
  reml <- lmm(Reaction ~ Days + (Days | Subject), sleep)
  expect_error(contest(ml, c(0, 1), ddf = "Kenward-Roger"), "only available for REML")
  expect_error(summary(ml, ddf = "Kenward-Roger"), "only available for REML")
  # kr_vcov() refits by REML, as pbkrtest::vcovAdj does
  expect_equal(kr_vcov(ml), kr_vcov(reml), tolerance = 1e-4)
  expect_error(kr_ddf(reml, c(1, 2, 3)), "2 columns")
  expect_error(kr_vcov(lm(Reaction ~ Days, sleep)), "fitted \"lmm\"")
  old <- options(lmmc.kr_max_q = 10)
  on.exit(options(old))
  expect_error(kr_vcov(reml), "lmmc.kr_max_q")
})

## ---- live comparisons -------------------------------------------------------------------------

test_that("at lme4's estimates vcovAdj, Lb_ddf and KRmodcomp are pbkrtest's", {
  skip_if_not_installed("pbkrtest")
  skip_if_not_installed("lme4")
  cases <- kr_cases()
  for (nm in names(cases)) {
    cs <- cases[[nm]]
    m <- lme4::lmer(cs[[1]], data = cs[[2]])
    fit <- with_lme4_estimates(lmm(cs[[1]], data = cs[[2]]), m)
    va_pb <- pbkrtest::vcovAdj(m)
    va <- as.matrix(va_pb)
    V0 <- stats::vcov(m)
    kr <- kr_setup(fit)
    expect_close(kr_vcov(kr), va, tol = 1e-6, scale = max(abs(va)), what = paste(nm, "vcovAdj"))
    p <- ncol(va)
    expect_close(kr_ddf(kr, diag(p)),
                 vapply(seq_len(p), function(j) pbkrtest::Lb_ddf(diag(p)[j, ], V0, va_pb), 0),
                 tol = 1e-6, what = paste(nm, "Lb_ddf"))
    L <- diag(p)[-1, , drop = FALSE]
    ref <- pbkrtest::KRmodcomp(m, L)$test
    ours <- kr_test(kr, L)
    expect_close(c(ours$F, ours$ddf, ours$F.scaling, ours$F_unscaled),
                 c(ref["Ftest", c("stat", "ddf", "F.scaling")], ref["FtestU", "stat"]),
                 tol = 1e-6, what = paste(nm, "KRmodcomp"))
  }
})

test_that("lmerTest's summary, anova, contest and drop1 with Kenward-Roger, live", {
  skip_if_not_installed("lmerTest")
  skip_if_not_installed("pbkrtest")
  cases <- kr_cases()[c("ortho", "pen")]
  cases$cake <- list(angle ~ recipe * temp + (1 | recipe:replicate), ref_data("cake"))
  for (cs in cases) {
    m <- suppressMessages(lmerTest::lmer(cs[[1]], data = cs[[2]]))
    fit <- lmm(cs[[1]], data = cs[[2]])
    expect_t_table(summary(fit, ddf = "Kenward-Roger")$coefficients,
                   stats::coef(summary(m, ddf = "Kenward-Roger")))
    expect_f_table(anova(fit, ddf = "Kenward-Roger"), as.matrix(anova(m, ddf = "Kenward-Roger")))
    expect_f_table(drop1(fit, test = "F", ddf = "Kenward-Roger"),
                   as.matrix(drop1(m, ddf = "Kenward-Roger")))
    p <- length(fit$beta)
    L <- diag(p)[-1, , drop = FALSE]
    expect_f_table(contest(fit, L, ddf = "Kenward-Roger"),
                   as.matrix(lmerTest::contest(m, L, ddf = "Kenward-Roger")))
  }
})

## ---- fits with a residual structure (R/kenward-roger-residual.R) ------------------------------
## No other software gives Kenward-Roger for nlme-type structures with random effects, so the
## references are (a) the plain fit, through a structure fixed at the identity, and (b) a
## brute-force KR written here: dense V(par) in nlme's natural parameters, V_i by Richardson
## differences of V, the formulas of Kenward & Roger (1997) with the second derivatives of V
## left out.  Our parameters (G entries, rho on the engine's unconstrained scale, sigma^2)
## differ from the brute force's (theta, phi, delta, sigma): first-order KR is invariant to the
## parametrisation, and the agreement to 1e-8 shows it.

# Phi, Phi_A, P_i and W by the book from V(par) (n x n), V_i by differences.
brute_kr <- function(V, par, X) {
  n <- nrow(X)
  Vi <- solve(V(par))
  Phi <- solve(crossprod(X, Vi %*% X))
  J <- rich_jacobian(function(p) as.vector(V(p)), par)
  Vd <- lapply(seq_along(par), function(i) matrix(J[, i], n, n))
  Pm <- Vi - Vi %*% X %*% Phi %*% t(X) %*% Vi
  VX <- Vi %*% X
  P <- lapply(Vd, function(D) -crossprod(VX, D %*% VX))
  Q <- function(i, j) crossprod(VX, Vd[[i]] %*% Vi %*% Vd[[j]] %*% VX)
  m <- length(par)
  info <- outer(seq_len(m), seq_len(m), Vectorize(function(i, j)
    sum((Pm %*% Vd[[i]]) * t(Pm %*% Vd[[j]]))))
  W <- 2 * solve(info)
  U <- 0
  for (i in seq_len(m)) for (j in seq_len(m))
    U <- U + W[i, j] * (Q(i, j) - P[[i]] %*% Phi %*% P[[j]])
  list(Phi = Phi, PhiA = Phi + 2 * Phi %*% U %*% Phi, P = P, W = W)
}

# Kenward & Roger's ddf and F scaling for the independent rows of L (their section 4, in the
# E, V* form of the paper rather than pbkrtest's algebra used by kr_adjust()).
brute_ddf <- function(kr, L) {
  q <- nrow(L)
  Theta <- t(L) %*% solve(L %*% kr$Phi %*% t(L)) %*% L
  u <- lapply(kr$P, function(Pi) Theta %*% kr$Phi %*% Pi %*% kr$Phi)
  A1 <- A2 <- 0
  for (i in seq_along(u)) for (j in seq_along(u)) {
    A1 <- A1 + kr$W[i, j] * sum(diag(u[[i]])) * sum(diag(u[[j]]))
    A2 <- A2 + kr$W[i, j] * sum(diag(u[[i]] %*% u[[j]]))
  }
  B <- (A1 + 6 * A2) / (2 * q)
  g <- ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
  den <- 3 * q + 2 * (1 - g)
  E <- 1 / (1 - A2 / q)
  Vstar <- 2 / q * (1 + g / den * B) / ((1 - (q - g) / den * B)^2 * (1 - (q + 2 - g) / den * B))
  m <- 4 + (q + 2) / (q * Vstar / (2 * E^2) - 1)
  c(ddf = m, F.scaling = m / (E * (m - 2)))
}

expect_kr_brute <- function(fit, V, par, L, tol = 1e-8) {
  kr <- kr_setup(fit)
  ref <- brute_kr(V, par, unclass_matrix(fit$X))
  expect_equal(unname(kr$Phi), unname(ref$Phi), tolerance = 1e-10)
  expect_equal(unname(kr$PhiA), unname(ref$PhiA), tolerance = tol)
  p <- length(fit$beta)
  expect_equal(kr_ddf(kr, diag(p)),
               vapply(seq_len(p), function(j) brute_ddf(ref, diag(p)[j, , drop = FALSE])[[1]], 0),
               tolerance = tol)
  ft <- kr_test(kr, L)
  expect_equal(c(ft$ddf, ft$F.scaling), unname(brute_ddf(ref, L)), tolerance = tol)
  kr
}

test_that("a structure fixed at the identity gives the plain fit's Kenward-Roger exactly", {
  fits <- identity_fits()
  plain <- kr_setup(fits$plain)
  L <- rbind(c(0, 1, 0, 0), c(0, 0, 0, 1))
  expect_false(is.null(fits$ar1$residual))
  for (nm in c("ar1", "vi")) {
    fit <- at_estimates_of(fits[[nm]], fits$plain)
    kr <- kr_setup(fit)
    expect_equal(kr$PhiA, plain$PhiA, tolerance = 1e-10)
    expect_equal(kr$W, plain$W, tolerance = 1e-8)
    expect_equal(kr_ddf(kr, diag(4)), kr_ddf(plain, diag(4)), tolerance = 1e-8)
    expect_equal(kr_test(kr, L), kr_test(plain, L), tolerance = 1e-8)
    expect_equal(anova(fit, ddf = "Kenward-Roger"), anova(fits$plain, ddf = "Kenward-Roger"),
                 tolerance = 1e-6, ignore_attr = TRUE)
    # the fits' own optima (~1e-6 apart) give the same to 1e-5
    expect_equal(unname(summary(fits[[nm]], ddf = "Kenward-Roger")$coefficients),
                 unname(summary(fits$plain, ddf = "Kenward-Roger")$coefficients), tolerance = 1e-5)
  }
})

test_that("Orthodont, corAR1 x varIdent with a random intercept: the brute-force KR", {
  cs <- ar1_vi_case()
  kr <- expect_kr_brute(cs$fit, cs$V, cs$par, rbind(c(0, 1, 0), c(0, 0, 1)))
  # recorded (lmmc, equal to the brute force above)
  expect_equal(kr_ddf(kr, diag(3)), c(50.36292338, 27.15103817, 23.75841208), tolerance = 1e-6)
  expect_equal(diag(kr$PhiA), c(0.60429643657, 2.717983508e-03, 0.5902525100), tolerance = 1e-6)
  ft <- kr_test(kr, rbind(c(0, 1, 0), c(0, 0, 1)))
  expect_equal(c(ft$ddf, ft$F.scaling), c(33.27226028, 0.9799857126), tolerance = 1e-6)
})

# distance ~ age * Sex by gls with a general correlation within Subject: V = sigma^2 R,
# R the 4 x 4 correlation of positions 1..4 (par: the 6 correlations, column by column, then
# sigma).
gls_symm_case <- function(data = as.data.frame(ref_data("Orthodont"))) {
  fit <- lmm(distance ~ age * Sex, data, correlation = nlme::corSymm(form = ~ 1 | Subject))
  n <- nrow(data)
  pos <- ave(seq_len(n), data$Subject, FUN = seq_along)
  same <- outer(data$Subject, data$Subject, `==`)
  V <- function(par) {
    R <- diag(4)
    R[lower.tri(R)] <- par[1:6]
    R[upper.tri(R)] <- t(R)[upper.tri(R)]
    par[7]^2 * ifelse(same, R[cbind(rep(pos, n), rep(pos, each = n))], 0)
  }
  list(fit = fit, V = V, par = c(unname(fit$residual$phi), fit$sigma))
}

test_that("gls with corSymm (no random term): the brute-force KR", {
  cs <- gls_symm_case()
  kr <- expect_kr_brute(cs$fit, cs$V, cs$par, rbind(c(0, 0, 1, 0), c(0, 0, 0, 1)))
  expect_equal(kr_ddf(kr, diag(4)), c(33.33252544, 27.62971024, 33.33252544, 27.62971024),
               tolerance = 1e-6)
  expect_equal(diag(kr$PhiA), c(1.114166278137, 0.007792937911, 2.734771773608, 0.019128120326),
               tolerance = 1e-6)
  ft <- kr_test(kr, rbind(c(0, 0, 1, 0), c(0, 0, 0, 1)))
  expect_equal(c(ft$ddf, ft$F.scaling), c(33.17950884, 0.9791851417), tolerance = 1e-6)
})

test_that("correlated random slopes with varIdent: the brute force in (G, delta, sigma^2)", {
  od <- as.data.frame(ref_data("Orthodont"))
  fit <- lmm(distance ~ age * Sex + (age | Subject), od,
             variance = nlme::varIdent(form = ~ 1 | Sex))
  Z <- as.matrix(model.matrix(fit, type = "random"))          # level-major: (1, age) per subject
  female <- od$Sex == "Female"
  V <- function(par) {
    G <- matrix(par[c(1, 2, 2, 3)], 2)
    Z %*% kronecker(diag(nlevels(od$Subject)), G) %*% t(Z) +
      par[5] * diag(ifelse(female, par[4]^2, 1))
  }
  Tt <- theta_templates(fit$theta, fit$reterms)[[1]]
  G <- fit$sigma^2 * tcrossprod(Tt)
  par <- c(G[1, 1], G[2, 1], G[2, 2], unname(residual_parameters(fit)$delta[2]), fit$sigma^2)
  kr <- expect_kr_brute(fit, V, par, rbind(c(0, 1, 0, 0), c(0, 0, 0, 1)))
  expect_equal(kr_ddf(kr, diag(4)), c(46.81993, 46.52385, 35.65772, 36.98424), tolerance = 1e-6)
})

test_that("gls with one AR(1) series over all rows (one 108 x 108 block): the brute force", {
  od <- as.data.frame(ref_data("Orthodont"))
  fit <- lmm(distance ~ age * Sex, od, correlation = nlme::corAR1())
  lag <- abs(outer(seq_len(nrow(od)), seq_len(nrow(od)), `-`))
  V <- function(par) par[2]^2 * par[1]^lag
  phi <- unname(residual_parameters(fit)$phi)
  expect_gt(phi, 0.2)
  expect_kr_brute(fit, V, c(phi, fit$sigma), rbind(c(0, 1, 0, 0), c(0, 0, 0, 1)))
})

test_that("rows out of time order, prior weights: corCAR1 on shuffled Orthodont, the brute force", {
  od <- as.data.frame(ref_data("Orthodont"))
  od <- od[c(seq(2, nrow(od), 2), seq(1, nrow(od), 2)), ]     # every subject's rows apart
  od$w <- 1 + (seq_len(nrow(od)) %% 4) / 4
  fit <- lmm(distance ~ age + Sex + (1 | Subject), od, weights = w,
             correlation = nlme::corCAR1(form = ~ age | Subject))
  Z <- as.matrix(model.matrix(fit, type = "random"))
  same <- outer(od$Subject, od$Subject, `==`)
  lag <- abs(outer(od$age, od$age, `-`))
  sw <- 1 / sqrt(od$w)
  V <- function(par) par[3]^2 * (par[1]^2 * tcrossprod(Z) +
                                   outer(sw, sw) * ifelse(same, par[2]^lag, 0))
  phi <- unname(residual_parameters(fit)$phi)
  expect_gt(phi, 0.2)                                  # away from 0, where dV/dphi = 0
  expect_kr_brute(fit, V, c(unname(fit$theta), phi, fit$sigma), rbind(c(0, 1, 0), c(0, 0, 1)))
})

test_that("summary, anova, contest, ls_means, emmeans, car: Kenward-Roger on residual fits", {
  od <- as.data.frame(ref_data("Orthodont"))
  fit <- lmm(distance ~ age * Sex + (1 | Subject), od,
             correlation = nlme::corAR1(form = ~ 1 | Subject))
  kr <- kr_setup(fit)
  s <- summary(fit, ddf = "Kenward-Roger")
  expect_match(s$methTitle, "Kenward-Roger")
  sat <- summary(fit)$coefficients[, "df"]
  expect_equal(unname(s$coefficients[, "df"]), c(54.73516198, 35.53417556, 54.73516198,
                                                 35.53417556), tolerance = 1e-6)
  expect_true(all(s$coefficients[, "df"] / sat > 0.8 & s$coefficients[, "df"] / sat < 1.25))
  expect_equal(unname(s$coefficients[, "Std. Error"]), sqrt(diag(kr$PhiA)), tolerance = 1e-12)
  expect_true(all(diag(kr$PhiA) > diag(kr$Phi)))
  a <- anova(fit, ddf = "Kenward-Roger")
  expect_equal(a$DenDF, c(35.53417556, 54.73516198, 35.53417556), tolerance = 1e-6)
  expect_equal(a[["F value"]], c(111.08433, 0.47547, 6.51132), tolerance = 1e-5)
  joint <- contest(fit, rbind(c(0, 1, 0, 0), c(0, 0, 0, 1)), ddf = "Kenward-Roger")
  expect_equal(joint$DenDF, 35.53417556, tolerance = 1e-6)
  lsm <- ls_means(fit, ddf = "Kenward-Roger")
  expect_equal(lsm$df, c(25, 25), tolerance = 1e-6)   # Sex is between subjects: 27 - 2
  skip_if_not_installed("emmeans")
  e <- as.data.frame(suppressMessages(emmeans::emmeans(fit, ~ Sex, lmer.df = "kenward-roger")))
  expect_equal(e$df, lsm$df, tolerance = 1e-8)
  expect_equal(e$SE, lsm[["Std. Error"]], tolerance = 1e-8)
  skip_if_not_installed("car")
  a3 <- car::Anova(fit, type = 3, test.statistic = "F", ddf = "Kenward-Roger")
  expect_match(attr(a3, "heading")[1], "Kenward-Roger")
  # type III on single coefficients: F = t^2 (F.scaling 1), the t test's df
  expect_equal(a3$Df.res, unname(s$coefficients[, "df"]), tolerance = 1e-8)
  expect_equal(a3$F, unname(s$coefficients[, "t value"]^2), tolerance = 1e-8)
})

test_that("Kenward-Roger on residual fits: ML refitted by REML, the size limit named", {
  od <- as.data.frame(ref_data("Orthodont"))
  f <- distance ~ age + Sex + (1 | Subject)
  reml <- lmm(f, od, correlation = nlme::corAR1(form = ~ 1 | Subject))
  ml <- lmm(f, od, REML = FALSE, correlation = nlme::corAR1(form = ~ 1 | Subject))
  expect_error(summary(ml, ddf = "Kenward-Roger"), "only available for REML")
  expect_equal(kr_vcov(ml), kr_vcov(reml), tolerance = 1e-5)
  old <- options(lmmc.kr_max_n = 100)
  on.exit(options(old))
  expect_equal(kr_vcov(reml), kr_vcov(ml), tolerance = 1e-5)     # groups of 4 rows
  one_series <- lmm(distance ~ age + Sex, od, correlation = nlme::corAR1())
  expect_error(kr_vcov(one_series), "largest group has 108 rows.*lmmc.kr_max_n")
})
