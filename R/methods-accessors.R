## Accessors for a fitted "lmm": likelihood quantities, counts, matrices, residuals.

## ---- generics exported by lmmc (lme4 has the same ones) ----------------------------------------

REMLcrit <- function(object, ...) UseMethod("REMLcrit")
ngrps <- function(object, ...) UseMethod("ngrps")
isSingular <- function(x, tol = 1e-4) UseMethod("isSingular")

## ---- criteria ---------------------------------------------------------------------------------

## The profiled criterion at the fitted theta, REML or ML, whichever way the model was fitted.
## With r2 = penalised weighted RSS, |L|^2 and |R_X|^2 from the fit and W the prior weights:
##   ML:   -2 log L = log|L|^2 - log|W| + n     (1 + log(2 pi r2 / n))
##   REML: crit     = log|L|^2 + log|R_X|^2 - log|W| + (n-p) (1 + log(2 pi r2 / (n-p)))
## The optimised one is stored as object$crit; the other is evaluated at the same theta.
lmm_crit <- function(object, REML = NULL) {
  if (is.null(REML) || is.na(REML[1L])) REML <- object$REML
  if (identical(REML, object$REML)) return(object$crit)
  dc <- object$devcomp
  n <- object$n
  ldW <- residual_logdet(object)                # log|W|, or log|V^-1| under a residual structure
  if (REML) {
    nmp <- n - object$p
    dc$ldL2 + dc$ldRX2 - ldW + nmp * (1 + log(2 * pi * dc$pwrss / nmp))
  } else {
    dc$ldL2 - ldW + n * (1 + log(2 * pi * dc$pwrss / n))
  }
}

## Number of parameters: p fixed effects, length(theta) covariance parameters, sigma, and the
## residual structure's phi and variance ratios.
lmm_npar <- function(object) object$p + length(object$theta) + 1L + residual_npar(object)

REMLcrit.lmm <- function(object, ...) lmm_crit(object, REML = TRUE)

logLik.lmm <- function(object, REML = NULL, ...) {
  structure(-lmm_crit(object, REML) / 2, nobs = object$n, nall = object$n,
            df = lmm_npar(object), class = "logLik")
}

## As lme4: for a REML fit without REML= the REML criterion with a deprecation warning;
## deviance(fit, REML = FALSE) is -2 log-likelihood evaluated at the REML estimates.
deviance.lmm <- function(object, REML = NULL, ...) {
  if (object$REML && is.null(REML)) {
    warning("deviance() is deprecated for REML fits; use REMLcrit for the REML criterion or ",
            "deviance(.,REML=FALSE) for deviance calculated at the REML fit", call. = FALSE)
    return(lmm_crit(object, REML = TRUE))
  }
  lmm_crit(object, REML = FALSE)
}

sigma.lmm <- function(object, ...) object$sigma

nobs.lmm <- function(object, ...) object$n

## lme4's df.residual: observations minus all parameters (fixed, covariance, residual SD).
df.residual.lmm <- function(object, ...) object$n - lmm_npar(object)

## Number of levels of each distinct grouping factor (numeric, named, as lme4's ngrps()).
ngrps.lmm <- function(object, ...) vapply(re_flist(object$reterms), nlevels, 1)

## Singular (boundary) fit: some theta with lower bound 0 (a diagonal of a template T_i) below tol.
isSingular.lmm <- function(x, tol = 1e-4) {
  any(x$theta[x$lower == 0] < tol)
}

vcov.lmm <- function(object, ...) object$vcov_beta

## ---- fitted values and residuals --------------------------------------------------------------

## Names from the model frame's row names, and padding for na.exclude (naresid / napredict),
## as lme4 does.
name_and_pad <- function(object, v, pad = stats::naresid) {
  fr <- object$frame
  names(v) <- if (is.null(fr) || is.null(rownames(fr))) seq_along(v) else rownames(fr)
  na_act <- if (is.null(fr)) NULL else attr(fr, "na.action")
  if (is.null(na_act)) v else pad(na_act, v)
}

fitted.lmm <- function(object, ...) name_and_pad(object, object$fitted, stats::napredict)

## response / working: y - mu;  pearson / deviance: sqrt(w) (y - mu);  scaled: divided by sigma.
residuals.lmm <- function(object, type = c("response", "pearson", "working", "deviance"),
                          scaled = FALSE, ...) {
  type <- match.arg(type)
  r <- object$y - object$fitted
  if (type %in% c("pearson", "deviance")) r <- r / residual_scale(object)
  if (scaled) r <- r / object$sigma
  name_and_pad(object, r)
}

weights.lmm <- function(object, type = c("prior", "working"), ...) {
  type <- match.arg(type)
  if (type == "working") stop("working weights only available for GLMMs", call. = FALSE)
  object$weights
}

## ---- model structure --------------------------------------------------------------------------

## type = "fixed": the n x p X; "random": the n x q Z as a dense base-R matrix (columns term by term,
## level-major within a term, named by level as lme4's Z).
model.matrix.lmm <- function(object, type = c("fixed", "random"), ...) {
  switch(match.arg(type), fixed = with_frame_rownames(object, object$X),
         random = dense_Z(object$reterms))
}

## X with the model frame's row names (the fit stores them once, in the frame).
with_frame_rownames <- function(object, X) {
  if (!is.null(object$frame)) rownames(X) <- rownames(object$frame)
  X
}

dense_Z <- function(reterms) {
  blocks <- lapply(reterms, function(tm) {
    g <- tm$group
    nl <- nlevels(g)
    k <- ncol(tm$Xt)
    Z_i <- matrix(0, length(g), nl * k)
    cols <- (as.integer(g) - 1L) * k              # level-major: level l occupies (l-1)k + 1..k
    for (j in seq_len(k)) Z_i[cbind(seq_along(g), cols + j)] <- tm$Xt[, j]
    colnames(Z_i) <- rep(levels(g), each = k)
    Z_i
  })
  Z <- do.call(cbind, blocks)
  rownames(Z) <- seq_len(nrow(Z))
  Z
}

model.frame.lmm <- function(formula, fixed.only = FALSE, ...) {
  fr <- formula$frame
  if (fixed.only) {              # lme4: the columns of the fixed part's own model frame
    vars <- c(term_vars(formula$fixed_terms),
              intersect(names(fr), c("(weights)", "(offset)")))
    fr <- fr[intersect(vars, names(fr))]
  }
  fr
}

## formula(); fixed.only gives response ~ fixed part, random.only response ~ random terms.
formula.lmm <- function(x, fixed.only = FALSE, random.only = FALSE, ...) {
  if (fixed.only && random.only)
    stop("can't specify 'only fixed' and 'only random' terms", call. = FALSE)
  f <- x$formula
  if (is.null(f)) stop("the fit has no formula (it was made by lmm_fit())", call. = FALSE)
  if (fixed.only) {
    f <- stats::formula(x$fixed_terms)
    attributes(f) <- list(class = "formula", .Environment = environment(x$formula))
  }
  if (random.only) f <- random_formula(x)
  f
}

## response ~ (lhs | gexpr) + ... rebuilt from the random-effects terms.
random_formula <- function(x) {
  bars <- lapply(x$reterms, function(tm) call("(", call("|", tm$lhs, tm$gexpr)))
  rhs <- Reduce(function(a, b) call("+", a, b), bars)
  f <- if (length(x$formula) == 3L) call("~", x$formula[[2L]], rhs) else call("~", rhs)
  stats::as.formula(f, env = environment(x$formula))
}

terms.lmm <- function(x, fixed.only = TRUE, random.only = FALSE, ...) {
  if (random.only) return(stats::terms(random_formula(x)))
  x$fixed_terms
}
