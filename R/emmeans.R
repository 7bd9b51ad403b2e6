# Support for the emmeans package: the two methods emmeans needs for a new model class
# (emmeans vignette "xtending"), registered in NAMESPACE by S3method(emmeans::recover_data, lmm)
# and S3method(emmeans::emm_basis, lmm), so that emmeans is never needed to install lmmc.
#
#   recover_data.lmm  the predictors of the data the model was fitted to, from the model frame
#                     (or from the call when the formula transforms variables).
#   emm_basis.lmm     for the reference grid: its rows of X, beta-hat (NA for aliased columns),
#                     Var(beta-hat), the basis of non-estimable functions, and df of k'beta.
#
# Degrees of freedom of one linear function k'beta (argument lmer.df = or mode =):
#   "satterthwaite"  (default)  lmerTest's nu = 2 (k'Ck)^2 / (g'Ag), R/satterthwaite.R;
#   "kenward-roger"  KR-adjusted Var(beta) and pbkrtest's Lb_ddf for k, R/kenward-roger.R;
#   "containment"    nlme's "inner" df (emmeans' default for nlme::lme fits, so the df of
#                    an lme fit with a residual structure): the df of the innermost stratum where each
#                    column of X varies, the minimum over the columns that k uses;
#   "asymptotic"     Inf.

recover_data.lmm <- function(object, ...) {
  if (is.null(object$call) || is.null(object$fixed_terms) || is.null(object$frame))
    return("emmeans needs a model fitted by lmm() with a formula (not lmm_fit())")
  emmeans::recover_data(object$call, stats::delete.response(object$fixed_terms),
                        attr(object$frame, "na.action"), frame = object$frame, ...)
}

emm_basis.lmm <- function(object, trms, xlev, grid, mode = NULL, lmer.df, options = list(),
                          ...) {
  if (!missing(lmer.df)) mode <- lmer.df
  mode <- emm_df_mode(object, mode, options)
  contr <- attr(object$X, "contrasts")
  m <- stats::model.frame(trms, grid, na.action = stats::na.pass, xlev = xlev)
  X <- stats::model.matrix(trms, m, contrasts.arg = contr)
  coefs <- emm_coefficients(object, trms, X, contr)
  V <- emmeans::.my.vcov(object, ...)
  df <- emm_dffun(object, mode, V, ...)
  list(X = X, bhat = coefs$bhat, nbasis = coefs$nbasis, V = df$V, dffun = df$dffun,
       dfargs = df$dfargs, misc = list(),
       model.matrix = emm_compact_X(object))
}

# emmeans' compact model matrix (for its submodel option): R of the QR of W^(1/2) X.
emm_compact_X <- function(object) {
  w <- object$weights
  if (is.null(w)) w <- rep(1, nrow(object$X))
  emmeans::.cmpMM(unclass_matrix(object$X), w, attr(object$X, "assign"))
}

# The df method: "satterthwaite" by default (with or without a residual structure); a fixed df
# in options (emmeans' df = argument) needs none computed.
emm_df_mode <- function(object, mode, options) {
  modes <- c("satterthwaite", "kenward-roger", "containment", "asymptotic")
  if (is.null(mode)) {
    mode <- "satterthwaite"
  } else {
    if (!is.character(mode) || length(mode) != 1L || is.na(mode))
      stop("'lmer.df' (or 'mode') must be one of ", paste(dQuote(modes), collapse = ", "),
           call. = FALSE)
    hit <- pmatch(tolower(mode), modes)
    if (is.na(hit))
      stop("unknown df method '", mode, "': use one of ", paste(dQuote(modes), collapse = ", "),
           call. = FALSE)
    mode <- modes[hit]
  }
  if (!is.null(options$df) && mode != "kenward-roger") mode <- "asymptotic"
  mode
}

# beta-hat over all columns of the grid's X (NA where lmm dropped an aliased column) and the
# basis of non-estimable functions (from the full model matrix of the data when any was dropped).
emm_coefficients <- function(object, trms, X, contr) {
  beta <- object$beta
  names(beta) <- colnames(object$X)
  if (length(beta) == ncol(X)) return(list(bhat = beta, nbasis = matrix(NA)))  # all estimable
  bhat <- stats::setNames(rep(NA_real_, ncol(X)), colnames(X))
  bhat[names(beta)] <- beta
  full <- stats::model.matrix(trms, object$frame, contrasts.arg = contr)
  list(bhat = bhat, nbasis = null_space_basis(full))
}

# Orthonormal basis of {k : X k = 0}, the complement of X's row space: with t(X) = Q R
# (rank r), the last p - r columns of the complete Q.  k'beta is estimable iff k is orthogonal
# to it (emmeans' "nbasis"; matrix(NA) when X has full column rank).
null_space_basis <- function(X) {
  qx <- qr(t(unclass_matrix(X)), tol = 1e-7)
  if (qx$rank == ncol(X)) return(matrix(NA))
  qr.Q(qx, complete = TRUE)[, -seq_len(qx$rank), drop = FALSE]
}

# dffun(k, dfargs) for emmeans (k over the estimable columns), dfargs, and V (KR adjusts it).
# emmeans may evaluate dffun away from lmmc's namespace: the lmmc functions it calls travel in
# dfargs.
emm_dffun <- function(object, mode, V, ...) {
  out <- switch(mode,
    satterthwaite = list(dfargs = list(sat = satterthwaite_setup(object), t1 = contest1D_sat),
                         dffun = function(k, dfargs) dfargs$t1(dfargs$sat, k)$df),
    "kenward-roger" = emm_kr_basis(object, V, ...),
    containment = list(dfargs = list(df = containment_df(object)),
                       dffun = function(k, dfargs) {
                         used <- abs(k) > 1e-4
                         if (any(used)) min(dfargs$df[used]) else NA_real_
                       }),
    asymptotic = list(dfargs = list(), dffun = function(k, dfargs) Inf))
  if (is.null(out$V)) out$V <- V
  attr(out$dffun, "mesg") <- mode
  out
}

# Kenward-Roger: V is the adjusted Var(beta) Phi_A, and the df of k'beta pbkrtest's Lb_ddf
# (R/kenward-roger.R).  kr_setup() runs once per grid; every row's df reuses its result.
emm_kr_basis <- function(object, V, vcov., ...) {
  if (!missing(vcov.))
    stop("Kenward-Roger's df cannot be used with a user-supplied 'vcov.'", call. = FALSE)
  kr <- kr_setup(object)
  list(V = kr_vcov(kr), dfargs = list(kr = kr, ddf = kr_ddf),
       dffun = function(k, dfargs) dfargs$ddf(dfargs$kr, matrix(k, nrow = 1L)))
}

## ---- containment df (nlme's "inner" rule) ---------------------------------------------------
# Strata: the grouping factors from outermost (fewest levels) to innermost, then the residual.
# Stratum j has m_j - m_{j-1} df (m_0 = 0, m_{Q+1} = n).  A column of X belongs to the stratum
# just inside the innermost grouping factor within whose groups it varies (the outermost stratum
# when it is constant within every group of the outermost factor); each stratum loses one df per
# column it holds, and the outermost also one for the intercept.  Column df = its stratum's df;
# the intercept gets (groups of the outermost factor) - 1 (as emmeans does for nlme::lme).

containment_df <- function(object) {
  groups <- grouping_strata(object)
  X <- object$X
  n <- nrow(X)
  nl <- vapply(groups, nlevels, 1L)
  df <- diff(c(0, nl, n))
  is_const <- apply(X, 2L, function(x) all(abs(x - x[1L]) <= sqrt(.Machine$double.eps) *
                                              max(abs(x[1L]), 1)))
  stratum <- vapply(seq_len(ncol(X)), function(j) {
    varies <- vapply(groups, function(g) varies_within(X[, j], g), NA)
    if (any(varies)) max(which(varies)) + 1L else 1L
  }, 1L)
  held <- tabulate(stratum[!is_const], length(df))
  df <- df - held
  if (any(is_const)) df[1L] <- df[1L] - 1L else df[-1L] <- df[-1L] + 1L
  out <- df[stratum]
  out[is_const] <- nl[1L] - 1L
  stats::setNames(as.numeric(out), colnames(X))
}

# The distinct grouping factors, outermost first; each must be nested in the one before it.
grouping_strata <- function(object) {
  groups <- lapply(object$reterms, function(tm) droplevels(as.factor(tm$group)))
  codes <- vapply(groups, function(g) paste(as.integer(g), collapse = ","), "")
  groups <- groups[!duplicated(codes)]
  groups <- groups[order(vapply(groups, nlevels, 1L))]
  for (j in seq_along(groups)[-1L]) {
    if (!nested_in(groups[[j]], groups[[j - 1L]]))
      stop("containment df need nested grouping factors (these are crossed); ",
           "use lmer.df = \"asymptotic\"", call. = FALSE)
  }
  groups
}

# Every level of `inner` lies within one level of `outer`.
nested_in <- function(inner, outer) {
  all(tapply(as.integer(outer), inner, function(o) length(unique(o)) == 1L))
}

# x is not constant within at least one group of g.
varies_within <- function(x, g) {
  r <- tapply(x, g, function(v) diff(range(v)))
  any(r > sqrt(.Machine$double.eps) * max(abs(x), 1), na.rm = TRUE)
}
