# Shared helpers for the reference tests: test-reference-lme4.R, test-reference-nlme-data.R,
# test-analyses.R and test-live-lme4.R.
#
# Tolerances (from the issue): the optimised criterion must agree with lme4 to >= 6 significant
# digits and never be worse than lme4's by more than 1e-6 relative; estimates (theta, beta,
# sigma, standard errors, variance components, conditional modes and SDs) agree to 1e-4
# relative, with an absolute floor of 1e-4 * (natural scale) for components that are ~0.

# ---- comparisons -------------------------------------------------------------------------

# Element-wise: |actual - expected| <= tol * max(|expected|, scale).
# scale = 0 is a purely relative test; scale > 0 sets the absolute floor for values near 0.
expect_close <- function(object, expected, tol = 1e-4, scale = 0, what = NULL) {
  what <- if (is.null(what)) paste(deparse(substitute(object)), collapse = "") else what
  a <- as.numeric(object)
  e <- as.numeric(expected)
  if (length(a) != length(e)) {
    return(testthat::expect(FALSE, sprintf("%s has length %d, reference has length %d",
                                           what, length(a), length(e))))
  }
  bound <- tol * pmax(abs(e), rep_len(scale, length(e)))
  err <- abs(a - e)
  bad <- which(!(err <= bound))                  # NA / NaN count as failures
  msg <- if (length(bad)) {
    k <- bad[which.max((err / pmax(bound, .Machine$double.xmin))[bad])]
    nm <- if (!is.null(names(expected))) names(expected)[k] else k
    sprintf(paste("%s: %d of %d values outside tol %g; worst [%s] actual %.10g, reference %.10g",
                  "(abs err %.3g, rel err %.3g)"),
            what, length(bad), length(e), tol, nm, a[k], e[k], err[k], err[k] / abs(e[k]))
  } else ""
  testthat::expect(length(bad) == 0, msg)
  invisible(object)
}

# The optimised criterion (REML criterion or deviance): never worse than the reference by more
# than tol relative, and equal to it to tol relative (>= 6 significant digits).
expect_crit <- function(crit, ref, tol = 1e-6, what = "criterion") {
  slack <- tol * abs(ref)
  testthat::expect(isTRUE(crit <= ref + slack),
                   sprintf("%s %.12g is worse than lme4's %.12g by %.3g (relative %.3g > %g)",
                           what, crit, ref, crit - ref, (crit - ref) / abs(ref), tol))
  testthat::expect(isTRUE(abs(crit - ref) <= slack),
                   sprintf("%s %.12g differs from lme4's %.12g by %.3g (relative %.3g > %g)",
                           what, crit, ref, crit - ref, (crit - ref) / abs(ref), tol))
  invisible(crit)
}

# Only the one-sided half: never worse than the reference by more than tol relative.
expect_not_worse <- function(crit, ref, tol = 1e-6, what = "criterion") {
  testthat::expect(isTRUE(crit <= ref + tol * abs(ref)),
                   sprintf("%s %.12g is worse than lme4's (default control) %.12g by %.3g",
                           what, crit, ref, crit - ref))
  invisible(crit)
}

# Compare a fitted "lmm" object with a reference list as recorded from lme4 (the lists in
# test-reference-*.R, or ref_from_lme4() for live comparisons). Fields:
# REML, crit, logLik, nobs, theta, fixef, se, sigma, ngrps, singular, varcorr (as
# as.data.frame(VarCorr())), ranef_nrow, ranef (selected rows of as.data.frame(ranef(condVar=TRUE)),
# with their row numbers in column 'row'); optional crit_default (see expect_not_worse()).
expect_matches_reference <- function(fit, ref, tol = 1e-4, crit_tol = 1e-6) {
  testthat::expect_s3_class(fit, "lmm")
  testthat::expect_true(isTRUE(fit$optinfo$converged), label = "fit$optinfo$converged")

  crit <- if (ref$REML) REMLcrit(fit) else deviance(fit)
  expect_crit(crit, ref$crit, crit_tol, if (ref$REML) "REML criterion" else "deviance")
  if (!is.null(ref$crit_default))                  # lme4 with default control, when the
    expect_not_worse(crit, ref$crit_default, crit_tol)  # reference used a tighter one
  ll <- logLik(fit)
  expect_close(as.numeric(ll), ref$logLik, crit_tol, what = "logLik")
  testthat::expect_equal(attr(ll, "df"), length(ref$fixef) + length(ref$theta) + 1)
  testthat::expect_equal(nobs(fit), ref$nobs)

  expect_close(fit$theta, ref$theta, tol, scale = 1, what = "theta")

  testthat::expect_identical(names(fixef(fit)), names(ref$fixef))
  expect_close(fixef(fit), ref$fixef, tol, scale = ref$se, what = "fixef")
  expect_close(sqrt(diag(as.matrix(vcov(fit)))), ref$se, tol, what = "std. errors")
  expect_close(sigma(fit), ref$sigma, tol, what = "sigma")

  testthat::expect_equal(ngrps(fit), ref$ngrps)
  testthat::expect_identical(isSingular(fit), ref$singular)

  expect_varcorr_df(as.data.frame(VarCorr(fit)), ref$varcorr, ref$sigma, tol)
  expect_ranef_df(as.data.frame(ranef(fit, condVar = TRUE)), ref, tol)
  invisible(fit)
}

# as.data.frame(VarCorr(fit)): grp, var1, var2 as lme4 names them. Absolute floors consistent
# with theta's (1e-4 of sigma for a standard deviation): sdcor on the scale sigma (standard
# deviations) or 1 (correlations); vcov on the scale sigma * sd (variance sd^2; for a covariance
# the larger sd of the pair).
expect_varcorr_df <- function(vc, ref_vc, sigma, tol = 1e-4) {
  testthat::expect_identical(names(vc), c("grp", "var1", "var2", "vcov", "sdcor"))
  for (k in c("grp", "var1", "var2"))
    testthat::expect_identical(as.character(vc[[k]]), as.character(ref_vc[[k]]),
                               label = paste0("VarCorr $", k))
  if (nrow(vc) != nrow(ref_vc)) return(invisible())
  is_cor <- !is.na(ref_vc$var2)
  expect_close(vc$vcov, ref_vc$vcov, tol, scale = sigma * varcorr_sd_scale(ref_vc),
               what = "VarCorr vcov")
  expect_close(vc$sdcor, ref_vc$sdcor, tol, scale = ifelse(is_cor, 1, sigma),
               what = "VarCorr sdcor")
  invisible(vc)
}

# For each row of a VarCorr data frame: its standard deviation, or for a covariance row the
# larger standard deviation of the pair.
varcorr_sd_scale <- function(vc) {
  sd_of <- function(g, v) vc$sdcor[vc$grp == g & vc$var1 %in% v & is.na(vc$var2)][1]
  vapply(seq_len(nrow(vc)), function(i) {
    if (is.na(vc$var2[i])) return(vc$sdcor[i])
    max(sd_of(vc$grp[i], vc$var1[i]), sd_of(vc$grp[i], vc$var2[i]))
  }, 0)
}

# as.data.frame(ranef(fit, condVar = TRUE)): row count and the recorded rows (by position):
# condval on the scale of its conditional SD; condsd relative (floor sigma / 100, for singular
# fits).
expect_ranef_df <- function(re, ref, tol = 1e-4) {
  testthat::expect_true(all(c("grpvar", "term", "grp", "condval", "condsd") %in% names(re)),
                        label = "as.data.frame(ranef()) has grpvar, term, grp, condval, condsd")
  testthat::expect_equal(nrow(re), ref$ranef_nrow)
  want <- ref$ranef
  if (nrow(re) < max(want$row)) return(invisible())
  got <- re[want$row, ]
  for (k in c("grpvar", "term", "grp"))
    testthat::expect_identical(as.character(got[[k]]), as.character(want[[k]]),
                               label = paste0("ranef $", k))
  expect_close(got$condval, want$condval, tol, scale = pmax(want$condsd, ref$sigma * 1e-2),
               what = "ranef condval")
  expect_close(got$condsd, want$condsd, tol, scale = ref$sigma * 1e-2, what = "ranef condsd")
  invisible(re)
}

# ---- data --------------------------------------------------------------------------------

# lme4's small data sets are stored in tests/testthat/data/<name>.rds (saved from lme4 1.1-31)
# so the reference tests run without lme4; nlme's data sets come from nlme.
ref_data <- function(name) {
  file <- testthat::test_path("data", paste0(name, ".rds"))
  if (file.exists(file)) return(readRDS(file))
  env <- new.env()
  utils::data(list = name, package = "nlme", envir = env)
  if (!exists(name, envir = env, inherits = FALSE))
    stop("no reference data set '", name, "'", call. = FALSE)
  get(name, envir = env)
}

# Evaluate 'code' with a fixed seed and R's default generators, restoring the caller's RNG.
with_seed <- function(seed, code) {
  old_kind <- RNGkind()
  had_seed <- exists(".Random.seed", envir = globalenv(), inherits = FALSE)
  if (had_seed) old_seed <- get(".Random.seed", envir = globalenv())
  on.exit({
    do.call(RNGkind, as.list(old_kind))
    if (had_seed) assign(".Random.seed", old_seed, envir = globalenv())
    else rm(".Random.seed", envir = globalenv())
  })
  RNGkind("Mersenne-Twister", "Inversion", "Rejection")
  set.seed(seed)
  code
}

# ---- simulated designs (test-analyses.R) ---------------------------------------------------

# Partially crossed teachers x students: each of n_student students is rated by k of the
# n_teacher teachers, drawn at random. score = 10 + 0.5 x + a_teacher + b_student + e with
# SDs 1.5, 2.5 and 2.
sim_crossed <- function(seed = 101, n_teacher = 30, n_student = 200, k = 5) {
  with_seed(seed, {
    teacher <- unlist(lapply(seq_len(n_student), function(i) sample.int(n_teacher, k)))
    student <- rep(seq_len(n_student), each = k)
    a <- rnorm(n_teacher, sd = 1.5)
    b <- rnorm(n_student, sd = 2.5)
    x <- rnorm(length(student))
    score <- 10 + 0.5 * x + a[teacher] + b[student] + rnorm(length(student), sd = 2)
    data.frame(score = score, x = x,
               teacher = factor(sprintf("T%02d", teacher)),
               student = factor(sprintf("S%03d", student)))
  })
}

# Schools nested in districts, with school labels REUSED across districts (school "1" exists
# in every district). Pupils per school vary from 5 to 25. score = 50 + 3 ses + d + s + e with
# SDs 4 (district), 3 (school) and 6 (pupil). school_id is a globally unique school label.
sim_nested <- function(seed = 202, n_district = 12, n_school = 6) {
  with_seed(seed, {
    size <- sample(5:25, n_district * n_school, replace = TRUE)
    district <- rep(rep(seq_len(n_district), each = n_school), size)
    school <- rep(rep(seq_len(n_school), n_district), size)
    sid <- rep(seq_len(n_district * n_school), size)
    d <- rnorm(n_district, sd = 4)
    s <- rnorm(n_district * n_school, sd = 3)
    ses <- rnorm(length(sid))
    score <- 50 + 3 * ses + d[district] + s[sid] + rnorm(length(sid), sd = 6)
    data.frame(score = score, ses = ses,
               district = factor(paste0("D", district), levels = paste0("D", seq_len(n_district))),
               school = factor(school),
               school_id = factor(sid))
  })
}

# The repeated-measures table from the issue (16 rows; lme4 gives a singular fit with all three
# variance components 0).
issue_repeated <- function() {
  data.frame(
    participant_ID = factor(c(1, 1, 2, 2, 3, 3, 4, 4, 26, 26, 27, 27, 28, 28, 29, 29)),
    Condition_1 = factor(c(1, 2, 1, 2, 1, 2, 2, 1, 2, 1, 1, 2, 2, 1, 1, 2)),
    Condition_2 = factor(rep(1:2, each = 8)),
    dependent_var = c(0.71, 0.43, 0.77, 0.37, 0.58, 0.69, 0.72, 0.12,
                      0.91, 0.53, 0.29, 0.39, 0.75, 0.51, 0.42, 0.31))
}

# ---- live lme4 (test-live-lme4.R) ----------------------------------------------------------

# lme4's default optimiser (nloptwrap BOBYQA) with a tight stopping rule.
lme4_tight_control <- function() {
  lme4::lmerControl(optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, xtol_rel = 0,
                                   ftol_rel = 0, maxeval = 1e5))
}

# The same reference list as recorded in the test files, computed from a live lme4 fit.
ref_from_lme4 <- function(mfit) {
  REML <- lme4::isREML(mfit)
  re <- as.data.frame(lme4::ranef(mfit, condVar = TRUE))
  key <- paste(re$grpvar, re$term)
  rows <- unlist(lapply(split(seq_len(nrow(re)), factor(key, unique(key))), utils::head, 3),
                 use.names = FALSE)
  vc <- as.data.frame(lme4::VarCorr(mfit))
  vc[] <- lapply(vc, function(x) if (is.factor(x)) as.character(x) else x)
  list(REML = REML,
       crit = if (REML) lme4::REMLcrit(mfit) else stats::deviance(mfit),
       logLik = as.numeric(stats::logLik(mfit)),
       nobs = stats::nobs(mfit),
       theta = unname(lme4::getME(mfit, "theta")),
       fixef = lme4::fixef(mfit),
       se = sqrt(diag(as.matrix(stats::vcov(mfit)))),
       sigma = stats::sigma(mfit),
       ngrps = lme4::ngrps(mfit),
       singular = lme4::isSingular(mfit),
       varcorr = vc,
       ranef_nrow = nrow(re),
       ranef = data.frame(row = rows, grpvar = as.character(re$grpvar[rows]),
                          term = as.character(re$term[rows]), grp = as.character(re$grp[rows]),
                          condval = re$condval[rows], condsd = re$condsd[rows],
                          stringsAsFactors = FALSE),
       feval = mfit@optinfo$feval)
}
