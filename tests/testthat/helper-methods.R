# Helpers for test-methods-*.R: data sets stored in tests/testthat/data (saved from lme4 1.1-31),
# cached lmm() fits, and (only when lme4 is installed) a converter building an "lmm" object from an
# lme4 fit so that the methods can be checked to 1e-8 against lme4 on identical parameters.

methods_data <- function(name) {
  file <- tryCatch(testthat::test_path("data", paste0(name, ".rds")),
                   error = function(e) file.path("tests", "testthat", "data", paste0(name, ".rds")))
  readRDS(file)
}

# Read on first use (load_all() sources helpers too, from the package root).
delayedAssign("sleepstudy", methods_data("sleepstudy"))
delayedAssign("Penicillin", methods_data("Penicillin"))
delayedAssign("Pastes", methods_data("Pastes"))
delayedAssign("cake", methods_data("cake"))
delayedAssign("Dyestuff2", methods_data("Dyestuff2"))

# Fits used by several method tests, made once per test run.
methods_fit <- local({
  cache <- list()
  function(key) {
    if (is.null(cache[[key]])) {
      cache[[key]] <<- switch(key,
        ss = lmm(Reaction ~ Days + (Days | Subject), data = sleepstudy),
        ssML = lmm(Reaction ~ Days + (Days | Subject), data = sleepstudy, REML = FALSE),
        ss2 = lmm(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), data = sleepstudy),
        pen = lmm(diameter ~ 1 + (1 | plate) + (1 | sample), data = Penicillin),
        pas = lmm(strength ~ 1 + (1 | batch/cask), data = Pastes),
        sing = suppressMessages(lmm(Yield ~ 1 + (1 | Batch), data = Dyestuff2)),
        stop("unknown fit ", key))
    }
    cache[[key]]
  }
})

# An "lmm" object (CONTRACT.md fields) holding an lme4 fit's parameters; lme4 must be installed.
lmm_from_lme4 <- function(fit) {
  getME <- lme4::getME
  fr <- stats::model.frame(fit)
  bars <- lme4::findbars(stats::formula(fit))
  nl <- vapply(bars, function(b) nlevels(factor(eval(b[[3]], fr))), 1)
  bars <- bars[if (any(diff(nl) > 0)) rev(order(nl)) else seq_along(nl)]
  flist <- getME(fit, "flist")
  asgn <- attr(flist, "assign")
  cnms <- getME(fit, "cnms")
  mm <- getME(fit, "mmList")
  reterms <- lapply(seq_along(cnms), function(i) {
    Xt <- matrix(as.numeric(mm[[i]]), nrow(fr), dimnames = list(NULL, cnms[[i]]))
    list(group = flist[[asgn[i]]], name = names(flist)[asgn[i]], cnms = cnms[[i]], Xt = Xt,
         lhs = bars[[i]][[2]], gexpr = bars[[i]][[3]])
  })
  rv <- lme4::ranef(fit, condVar = TRUE)
  condvar <- unlist(lapply(rv, function(r) {
    pv <- attr(r, "postVar")
    if (is.list(pv)) unname(pv) else list(pv)
  }), recursive = FALSE)
  cmp <- getME(fit, "devcomp")$cmp
  REML <- lme4::isREML(fit)
  fixed_f <- lme4::nobars(stats::formula(fit))
  beta <- lme4::fixef(fit)
  structure(list(
    call = fit@call, formula = stats::formula(fit), frame = fr,
    fixed_terms = attr(stats::model.frame(fixed_f, data = lme4::getData(fit)), "terms"),
    y = getME(fit, "y"), X = getME(fit, "X"), weights = stats::weights(fit),
    offset = rep(0, nrow(fr)), reterms = reterms, REML = REML,
    n = nrow(fr), p = length(beta), q = length(getME(fit, "u")),
    theta = getME(fit, "theta"), lower = getME(fit, "lower"), beta = beta,
    sigma = stats::sigma(fit), u = getME(fit, "u"), b = as.vector(getME(fit, "b")),
    condvar = condvar,
    vcov_beta = matrix(as.matrix(stats::vcov(fit)), length(beta),
                       dimnames = list(names(beta), names(beta))),
    crit = if (REML) cmp[["REML"]] else cmp[["dev"]],
    devcomp = as.list(cmp[c("ldL2", "ldRX2", "pwrss", "wrss", "ussq")]),
    fitted = fit@resp$mu, resid = fit@resp$y - fit@resp$mu,
    optinfo = list(feval = fit@optinfo$feval, converged = TRUE, message = "",
                   optimizer = "nloptwrap", warnings = character()),
    singular_tol = 1e-4), class = "lmm")
}
