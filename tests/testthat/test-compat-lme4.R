# lmmc beside lme4 (R/compat-lme4.R): the functions both packages export (isSingular, REMLcrit,
# ngrps, refit) work on fits of either package whichever is attached last; lme4's generics
# (getME, isREML, refitML, ...) work on lmm fits; anova() compares an lmm fit with an lmer fit.
# Reference numbers from lme4 1.1-31 (R 4.2.2):
#   g <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
#   REMLcrit(g); getME(g, c("theta", "sigma", "RX")); ngrps(g)
#   r <- refit(g, sleepstudy$Reaction + 5 * sin(1:180)); fixef(r); REMLcrit(r)
#   isSingular(lmer(Yield ~ 1 | Batch, Dyestuff2))                                  # TRUE
#   anova(lmer(Reaction ~ Days + (1 | Subject), sleepstudy), g)$Chisq[2]
#   ngrps / REMLcrit of lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin)

ref_compat <- list(
  remlcrit = 1743.62827195995,
  theta = c(`Subject.(Intercept)` = 0.9667417739674123, `Subject.Days.(Intercept)` = 0.0151690588960361,
            Subject.Days = 0.230909953207795),
  sigma = 25.5917957216753,
  RX = matrix(c(3.78592208655249, 0, 2.29913652354465, 16.55580746226807), 2),
  b_head = c(2.25855094990116, 9.19897576556590, -40.39873807880509, -8.61968061524321),
  refit_fixef = c(`(Intercept)` = 251.4902104763713, Days = 10.4549316499863),
  refit_remlcrit = 1752.47427725737,
  lrt_chisq = 42.1392985420164,
  pen_ngrps = c(plate = 24, sample = 6),
  pen_remlcrit = 330.860588999606)

compat_fit <- local({
  fit <- NULL
  function() {
    if (is.null(fit)) fit <<- lmm(Reaction ~ Days + (Days | Subject), ref_data("sleepstudy"))
    fit
  }
})

getME_lmm <- function(...) getFromNamespace("getME.lmm", "lmmc")(...)

test_that("getME.lmm gives lme4's components of the same model", {
  fit <- compat_fit()
  expect_close(getME_lmm(fit, "theta"), ref_compat$theta, tol = 1e-4, scale = 1)
  expect_equal(names(getME_lmm(fit, "theta")), names(ref_compat$theta))
  expect_equal(unname(getME_lmm(fit, "lower")), c(0, -Inf, 0))
  expect_close(getME_lmm(fit, "sigma"), ref_compat$sigma, tol = 1e-5)
  expect_close(getME_lmm(fit, "RX"), ref_compat$RX, tol = 1e-4, scale = 1)
  expect_close(head(getME_lmm(fit, "b"), 4), ref_compat$b_head, tol = 1e-3, scale = 10)
  dc <- getME_lmm(fit, "devcomp")
  expect_close(dc$cmp[["REML"]], ref_compat$remlcrit, tol = 1e-7)
  expect_true(is.na(dc$cmp[["dev"]]))
  expect_equal(dc$dims[c("N", "n", "p", "nmp", "q", "nth", "REML")],
               c(N = 180L, n = 180L, p = 2L, nmp = 178L, q = 36L, nth = 3L, REML = 2L))
  expect_equal(getME_lmm(fit, "Gp"), c(0L, 36L))
  expect_equal(getME_lmm(fit, "cnms"), list(Subject = c("(Intercept)", "Days")))
  expect_equal(getME_lmm(fit, "l_i"), 18L)
  expect_true(getME_lmm(fit, "is_REML"))
  parts <- getME_lmm(fit, c("n", "p", "q"))
  expect_equal(parts, list(n = 180L, p = 2L, q = 36L))
})

test_that("getME.lmm: Z, Lambda and b = Lambda u agree with the fit", {
  fit <- compat_fit()
  Z <- as.matrix(getME_lmm(fit, "Z"))
  expect_equal(unname(Z), unname(model.matrix(fit, type = "random")))
  Lambda <- as.matrix(getME_lmm(fit, "Lambda"))
  expect_equal(drop(Lambda %*% fit$u), fit$b, tolerance = 1e-10)
  th <- unname(fit$theta)
  expect_equal(getME_lmm(fit, "Tlist")$Subject, matrix(c(th[1], th[2], 0, th[3]), 2))
  expect_equal(unname(drop(getME_lmm(fit, "X") %*% fit$beta + Z %*% fit$b)),
               unname(fitted(fit)), tolerance = 1e-8)
  expect_error(getME_lmm(fit, "devfun"), "not available for an lmm fit")
  expect_error(getME_lmm(fit), "must not be missing")
})

test_that("lmmc's generics: lme4 fits go to lme4, other objects get a clear error", {
  expect_equal(ngrps(factor(c("a", "b", "a"))), 2L)
  expect_error(isSingular(1:3), "applies to fits by lmm\\(\\)")
  expect_error(REMLcrit(list()), "not to an object of class \"list\"")
  expect_error(refit(lm(dist ~ speed, cars)), "refit\\(\\) applies to fits by lmm")
  expect_error(ngrps("a"), "ngrps\\(\\) applies")
})

test_that("lme4's generics on lmm fits (lme4 loaded)", {
  skip_if_not_installed("lme4")
  fit <- compat_fit()
  expect_true(lme4::isSingular(suppressMessages(lmm(Yield ~ 1 | Batch, ref_data("Dyestuff2")))))
  expect_false(lme4::isSingular(fit))
  expect_true(lme4::isREML(fit))
  expect_true(lme4::isLMM(fit))
  expect_false(lme4::isGLMM(fit))
  expect_equal(lme4::ngrps(fit), c(Subject = 18))
  expect_close(lme4::getME(fit, "theta"), ref_compat$theta, tol = 1e-4, scale = 1)
  expect_s4_class(lme4::getME(fit, "Z"), "dgCMatrix")
  ml <- lme4::refitML(fit)
  expect_false(ml$REML)
  expect_close(logLik(ml), -875.9696722316, tol = 1e-8)     # lme4's ML logLik (anova below)
  r <- lme4::refit(fit, fit$y + 5 * sin(seq_len(180)))
  expect_close(fixef(r), ref_compat$refit_fixef, tol = 1e-5)
})

test_that("lmmc's generics on lmer fits, in this process", {
  skip_if_not_installed("lme4")
  g <- lme4::lmer(Reaction ~ Days + (Days | Subject), ref_data("sleepstudy"))
  expect_close(lmmc::REMLcrit(g), ref_compat$remlcrit, tol = 1e-8)
  expect_false(lmmc::isSingular(g))
  expect_equal(lmmc::ngrps(g), c(Subject = 18))
  r <- lmmc::refit(g, g@resp$y + 5 * sin(seq_len(180)))
  expect_s4_class(r, "lmerMod")
  expect_close(lme4::fixef(r), ref_compat$refit_fixef, tol = 1e-5)
})

test_that("anova() of an lmm fit against an lmer fit: likelihood-ratio test as lme4's", {
  skip_if_not_installed("lme4")
  sleep <- ref_data("sleepstudy")
  small <- lmm(Reaction ~ Days + (1 | Subject), sleep)
  big <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleep)
  a <- suppressMessages(anova(small, big))
  expect_close(a$Chisq[2], ref_compat$lrt_chisq, tol = 1e-5)
  expect_equal(a$Df[2], 2)
  expect_equal(rownames(a), c("small", "big"))
  expect_message(anova(small, big), "refitting model\\(s\\) with ML")
  # lme4's own anova() recognises only merMod and lm fits in '...': it ignores the lmm fit
  expect_warning(anova(big, small), "additional arguments ignored")
  other <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleep[-1, ])
  expect_error(anova(small, other), "same size of dataset")
})

test_that("as_lmerMod(): lme4's fit at lmmc's theta has lmmc's criterion and estimates", {
  skip_if_not_installed("lme4")
  fit <- compat_fit()
  m <- as_lmerMod(fit)
  expect_s4_class(m, "lmerMod")
  # lme4's REML criterion evaluated at lmmc's theta: the same number (both solve the same system)
  expect_close(lme4::REMLcrit(m), lmmc::REMLcrit(fit), tol = 1e-10)
  expect_close(lme4::REMLcrit(m), ref_compat$remlcrit, tol = 1e-8)
  expect_close(lme4::fixef(m), fixef(fit), tol = 1e-9)
  expect_close(sigma(m), sigma(fit), tol = 1e-9)
  expect_equal(lme4::getME(m, "theta"), fit$theta)
  pen <- lmm(diameter ~ 1 + (1 | sample) + (1 | plate), ref_data("Penicillin"))
  mp <- as_lmerMod(pen)
  expect_close(lme4::REMLcrit(mp), ref_compat$pen_remlcrit, tol = 1e-8)
  expect_equal(lme4::ngrps(mp), ref_compat$pen_ngrps)
  expect_equal(ngrps(pen), ref_compat$pen_ngrps)
  ml <- lmm(Reaction ~ Days + (Days || Subject), ref_data("sleepstudy"), REML = FALSE)
  expect_close(deviance(as_lmerMod(ml)), deviance(ml), tol = 1e-10)
  expect_error(as_lmerMod(lm(dist ~ speed, cars)), "must be an \"lmm\" fit")
})

# ---- both load orders, each in a fresh R process ------------------------------------------------

# Runs `code` in a new Rscript with this process's library path; returns the value the code
# leaves in `out` (saved by the child, read back here).
run_fresh <- function(code) {
  res <- tempfile(fileext = ".rds")
  data_file <- normalizePath(testthat::test_path("data", "sleepstudy.rds"))
  dye_file <- normalizePath(testthat::test_path("data", "Dyestuff2.rds"))
  script <- c(sprintf("ss <- readRDS(%s); dye <- readRDS(%s)", deparse(data_file), deparse(dye_file)),
              code, sprintf("saveRDS(out, %s)", deparse(res)))
  file <- tempfile(fileext = ".R")
  writeLines(script, file)
  # R CMD check sets R_TESTS to a startup file relative to its own folder: not for the child
  env <- c(paste0("R_LIBS=", paste(.libPaths(), collapse = .Platform$path.sep)), "R_TESTS=")
  log <- suppressWarnings(system2(file.path(R.home("bin"), "Rscript"), file, env = env,
                                  stdout = TRUE, stderr = TRUE))
  if (!file.exists(res)) stop("child R process failed:\n", paste(log, collapse = "\n"))
  readRDS(res)
}

# Each generic called by its bare name on an lmm and an lmer fit; errors are kept as text.
fresh_calls <- c(
  "f <- lmmc::lmm(Reaction ~ Days + (Days | Subject), ss)",
  "g <- lme4::lmer(Reaction ~ Days + (Days | Subject), ss)",
  "y2 <- ss$Reaction + 5 * sin(seq_len(180))",
  "try_val <- function(expr) tryCatch(expr, error = function(e) conditionMessage(e))",
  "out <- list(first = search()[2],",
  "  sing_f = isSingular(f), sing_g = isSingular(g),",
  "  sing_dye = isSingular(lmmc::lmm(Yield ~ 1 | Batch, dye)),",
  "  reml_f = try_val(REMLcrit(f)), reml_g = REMLcrit(g),",
  "  ngrps_f = ngrps(f), ngrps_g = ngrps(g),",
  "  refit_f = lmmc::fixef(refit(f, y2)), refit_g = lme4::fixef(refit(g, y2)))")

check_fresh <- function(out, reml_f_works = TRUE) {
  expect_false(out$sing_f)
  expect_false(out$sing_g)
  expect_true(out$sing_dye)
  expect_close(out$reml_g, ref_compat$remlcrit, tol = 1e-8)
  if (reml_f_works) expect_close(out$reml_f, ref_compat$remlcrit, tol = 1e-7)
  expect_equal(out$ngrps_f, c(Subject = 18))
  expect_equal(out$ngrps_g, c(Subject = 18))
  expect_close(out$refit_f, ref_compat$refit_fixef, tol = 1e-5)
  expect_close(out$refit_g, ref_compat$refit_fixef, tol = 1e-6)
}

test_that("library(lme4); library(lmmc): every shared generic works on both fits", {
  skip_if_not_installed("lme4")
  out <- run_fresh(c("suppressMessages({library(lme4); library(lmmc)})", fresh_calls))
  expect_equal(out$first, "package:lmmc")
  check_fresh(out)
})

test_that("library(lmmc); library(lme4): every shared generic but REMLcrit works on lmm fits", {
  skip_if_not_installed("lme4")
  out <- run_fresh(c("suppressMessages({library(lmmc); library(lme4)})", fresh_calls))
  expect_equal(out$first, "package:lme4")
  check_fresh(out, reml_f_works = FALSE)
  # lme4's REMLcrit() reads the S4 slot object@devcomp: documented limitation (?REMLcrit)
  expect_match(out$reml_f, "slot \"devcomp\"")
})

test_that("only lmmc attached (lme4 loaded through lme4::): shared generics on both fits", {
  skip_if_not_installed("lme4")
  out <- run_fresh(c("suppressMessages(library(lmmc))", fresh_calls))
  expect_equal(out$first, "package:lmmc")
  check_fresh(out)
})

test_that("only lme4 attached: lme4's generics work on lmm fits", {
  skip_if_not_installed("lme4")
  out <- run_fresh(c("suppressMessages(library(lme4))", fresh_calls))
  expect_equal(out$first, "package:lme4")
  check_fresh(out, reml_f_works = FALSE)
})
