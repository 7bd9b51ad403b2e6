## lmmc beside lme4: fits of either package work with the functions of either package.
##
## Both packages export isSingular, REMLcrit, ngrps and refit. Whichever package is attached last
## masks the other's, so:
##   * lmmc's generics get default methods that hand lme4's fits ("merMod") to lme4's functions;
##   * lme4's generics (ngrps, refit, refitML, getME, isREML, isLMM, isGLMM, isNLMM, getData) get
##     "lmm" methods, registered when lme4 is loaded (S3method(lme4::..., lmm) in NAMESPACE), so
##     lme4's isSingular(), which calls getME(x, "lower") and getME(x, "theta"), works on lmm fits.
## lme4 is only in Suggests: lme4:: is called only for a "merMod", which exists only when lme4
## is loaded. lme4's REMLcrit() reads S4 slots (object@devcomp) and cannot take an S3 fit; with
## lme4 attached after lmmc, use lmmc::REMLcrit() for lmm fits.

## ---- lmmc's generics on lme4's fits --------------------------------------------------------

## Stop unless x is lme4's fit; lmm fits never reach the default methods.
need_merMod <- function(x, fun) {
  if (!inherits(x, "merMod"))
    stop(sprintf("%s() applies to fits by lmm() (or lme4's merMod fits), not to an object of class \"%s\"",
                 fun, class(x)[1L]), call. = FALSE)
}

isSingular.default <- function(x, tol = 1e-4) {
  need_merMod(x, "isSingular")
  lme4::isSingular(x, tol = tol)
}

REMLcrit.default <- function(object, ...) {
  need_merMod(object, "REMLcrit")
  lme4::REMLcrit(object)
}

## lme4 also counts the levels of a bare factor.
ngrps.default <- function(object, ...) {
  if (is.factor(object)) return(nlevels(object))
  need_merMod(object, "ngrps")
  lme4::ngrps(object, ...)
}

refit.default <- function(object, newresp = NULL, ...) {
  need_merMod(object, "refit")
  lme4::refit(object, newresp, ...)
}

## ---- lme4's generics on lmmc's fits -------------------------------------------------------

isREML.lmm <- function(x, ...) isTRUE(x$REML)
isLMM.lmm <- function(x, ...) TRUE
isGLMM.lmm <- function(x, ...) FALSE
isNLMM.lmm <- function(x, ...) FALSE
refitML.lmm <- function(x, ...) refit_ml(x)

## The data the model was fitted to: the call's data evaluated where the formula was written.
getData.lmm <- function(object) {
  cl <- object$call
  if (is.null(cl$data) || is.null(object$formula))
    stop("the fit has no call with data (it was made by lmm_fit())", call. = FALSE)
  data <- eval(cl$data, environment(object$formula))
  if (!is.data.frame(data) && !is.matrix(data))
    stop("'data' object found is not a data frame or matrix", call. = FALSE)
  data
}

## Names getME() knows for an lmm fit (lme4's names; a subset of lme4's list).
getME_names <- c("X", "Z", "Zt", "y", "mu", "offset", "u", "b", "beta", "fixef", "theta", "lower",
                 "sigma", "Lambda", "Lambdat", "Tlist", "Gp", "RX", "flist", "cnms", "devcomp",
                 "REML", "is_REML", "N", "n", "p", "q", "k", "n_rtrms", "n_rfacs", "p_i", "l_i",
                 "q_i", "m_i", "m")

## lme4's getME(): components of the fit by lme4's names. Matrices Z, Zt, Lambda and Lambdat are
## sparse (Matrix's dgCMatrix, as lme4's) -- Matrix is loaded whenever lme4 is.
getME.lmm <- function(object, name, ...) {
  if (missing(name)) stop("'name' must not be missing", call. = FALSE)
  name <- as.character(name)
  if (identical(name, "ALL")) name <- getME_names
  if (length(name) > 1L) return(setNames(lapply(name, getME.lmm, object = object), name))
  if (!name %in% getME_names)
    stop(sprintf("getME(*, \"%s\") is not available for an lmm fit; available: %s", name,
                 paste(getME_names, collapse = ", ")), call. = FALSE)
  getME_one(object, name)
}

getME_one <- function(object, name) {
  terms <- object$reterms
  p_i <- vapply(terms, function(tm) length(tm$cnms), 1L)
  l_i <- vapply(terms, function(tm) nlevels(tm$group), 1L)
  switch(name,
         X = with_frame_rownames(object, object$X),
         Z = as_sparse(dense_Z(terms)),
         Zt = as_sparse(t(dense_Z(terms))),
         y = object$y, mu = object$fitted, offset = object$offset,
         u = object$u, b = object$b,
         beta = , fixef = object$beta,
         theta = object$theta, lower = setNames(object$lower, names(object$theta)),
         sigma = object$sigma,
         Lambda = as_sparse(lambda_matrix(object)),
         Lambdat = as_sparse(t(lambda_matrix(object))),
         Tlist = lme4_tlist(object),
         Gp = c(0L, cumsum(p_i * l_i)),
         RX = chol(solve(object$vcov_beta / object$sigma^2)),
         flist = re_flist(terms),
         cnms = setNames(lapply(terms, `[[`, "cnms"), vapply(terms, `[[`, "", "name")),
         devcomp = lmm_devcomp(object),
         REML = if (object$REML) object$p else 0L,
         is_REML = isTRUE(object$REML),
         N = , n = object$n, p = object$p, q = object$q,
         k = , n_rtrms = length(terms), n_rfacs = length(re_flist(terms)),
         p_i = p_i, l_i = l_i, q_i = p_i * l_i, m_i = choose(p_i + 1L, 2L),
         m = length(object$theta))
}

## Matrix's sparse form when Matrix is loaded (always, with lme4), else the dense matrix.
as_sparse <- function(M) {
  if (isNamespaceLoaded("Matrix")) methods::as(M, "CsparseMatrix") else M
}

## The templates T_i named by grouping factor (lme4's "Tlist").
lme4_tlist <- function(object) {
  setNames(theta_templates(unname(object$theta), object$reterms),
           vapply(object$reterms, `[[`, "", "name"))
}

## Lambda = blockdiag over terms of (I_{l_i} kronecker T_i): b = Lambda u, level-major within a term.
lambda_matrix <- function(object) {
  Tl <- lme4_tlist(object)
  l_i <- vapply(object$reterms, function(tm) nlevels(tm$group), 1L)
  blocks <- lapply(seq_along(Tl), function(i) diag(l_i[i]) %x% Tl[[i]])
  q <- sum(vapply(blocks, nrow, 1L))
  L <- matrix(0, q, q)
  at <- 0L
  for (B in blocks) {
    idx <- at + seq_len(nrow(B))
    L[idx, idx] <- B
    at <- at + nrow(B)
  }
  L
}

## lme4's devcomp: cmp (criterion pieces) and dims (sizes). The criterion not optimised is NA,
## as in lme4.
lmm_devcomp <- function(object) {
  dc <- object$devcomp
  n <- object$n
  p <- object$p
  reml <- isTRUE(object$REML)
  cmp <- c(ldL2 = dc$ldL2, ldRX2 = dc$ldRX2, wrss = dc$wrss, ussq = dc$ussq, pwrss = dc$pwrss,
           drsum = NA, REML = if (reml) object$crit else NA,
           dev = if (reml) NA else object$crit,
           sigmaML = sqrt(dc$pwrss / n), sigmaREML = sqrt(dc$pwrss / (n - p)))
  dims <- c(N = n, n = n, p = p, nmp = n - p, q = object$q, nth = length(object$theta),
            useSc = 1L, reTrms = length(object$reterms), spFe = 0L,
            REML = if (reml) p else 0L, GLMM = 0L, NLMM = 0L)
  storage.mode(dims) <- "integer"
  list(cmp = cmp, dims = dims)
}

## ---- anova() with lme4 fits among the models ------------------------------------------------

## Fits anova() compares by likelihood ratio: lmm, lm and lme4's merMod.
is_lrt_model <- function(m) inherits(m, c("lmm", "lm", "merMod"))

is_reml_fit <- function(m) {
  if (inherits(m, "lmm")) return(isTRUE(m$REML))
  inherits(m, "merMod") && lme4::isREML(m)
}

## The ML refit of a REML fit of either package (lme4's refitML for merMod fits).
refit_ml_any <- function(m) if (inherits(m, "merMod")) lme4::refitML(m) else refit_ml(m)

## ---- an lme4 fit at lmmc's estimates ------------------------------------------------------------

## lme4's "lmerMod" for the same model at the fit's theta, built by lme4's modular stages:
## lFormula (the model pieces from the fit's call) -> mkLmerDevfun -> evaluated at theta -> mkMerMod.
## lme4 does not optimise: its beta, sigma and criterion are its own solution at lmmc's theta.
as_lmerMod <- function(fit) {
  if (!inherits(fit, "lmm")) stop("'fit' must be an \"lmm\" fit", call. = FALSE)
  if (inherits(fit, "lmm_aggregated")) as_lmerMod_aggregated(fit)
  if (!requireNamespace("lme4", quietly = TRUE))
    stop("as_lmerMod() needs the lme4 package", call. = FALSE)
  if (!is.null(fit$residual))
    stop("lme4 has no residual correlation or variance structures", call. = FALSE)
  if (is.null(fit$call) || is.null(fit$formula))
    stop("as_lmerMod() needs a fit by lmm() with a formula, not lmm_fit()", call. = FALSE)
  keep <- c("formula", "data", "REML", "subset", "weights", "na.action", "offset", "contrasts")
  cl <- fit$call[c(1L, which(names(fit$call) %in% keep))]
  cl[[1L]] <- quote(lme4::lFormula)
  cl$formula <- fit$formula
  cl$REML <- isTRUE(fit$REML)
  pieces <- eval(cl, environment(fit$formula))
  check_same_terms(pieces$reTrms$cnms, fit$reterms)
  devfun <- do.call(lme4::mkLmerDevfun, pieces)
  theta <- unname(fit$theta)
  opt <- list(par = theta, fval = devfun(theta), conv = 0L, feval = fit$optinfo$feval,
              message = "theta from lmmc")
  mc <- fit$call
  mc[[1L]] <- quote(lme4::lmer)
  lme4::mkMerMod(environment(devfun), opt, pieces$reTrms, fr = pieces$fr, mc = mc)
}

## theta is laid out term by term: lme4's terms must be lmmc's, in the same order.
check_same_terms <- function(cnms, reterms) {
  ours <- setNames(lapply(reterms, `[[`, "cnms"), vapply(reterms, `[[`, "", "name"))
  if (!identical(unname(cnms), unname(ours)) || !identical(names(cnms), names(ours)))
    stop("lme4 builds the random-effects terms differently from lmmc for this model",
         call. = FALSE)
}
