## Influence diagnostics of a fitted "lmm", with lme4's definitions (lme4 1.1-31:
## hatvalues.merMod, cooks.distance.merMod, rstudent.merMod, influence.merMod and the dfbeta /
## dfbetas / cooks.distance methods of its "influence.merMod" result).
##
## Hat matrix.  The fitted values are mu = A (u, beta) + offset with A = [Z Lambda, X], and the
## estimates solve M (u, beta) = A' W (y - offset) with
##     M = A' W A + diag(I_q, 0)                      (R/predict-se.R, Henderson's equations).
## So W^(1/2) mu = H W^(1/2) y (+ offset part) with the symmetric H = W^(1/2) A M^{-1} A' W^(1/2),
## and its diagonal is h_i = w_i a_i M^{-1} a_i': one quadratic form per row, no n x n matrix.
## With a residual structure (V = S R S, whitened by B with B'B = V^{-1}, R/residual.R), W^(1/2)
## becomes B: h is the diagonal of B A M^{-1} A' B', M = A' V^{-1} A + diag(I_q, 0).
##
## The "whitened" residuals e = W^(1/2) (y - mu) (B (y - mu) with a residual structure) are lme4's
## Pearson (= deviance) residuals of a linear mixed model, and, with p = rank(X),
##     Cook's distance   D_i = e_i^2 h_i / (sigma^2 p (1 - h_i)^2),
##     studentized       r_i = e_i / (sigma sqrt(1 - h_i))       (lme4's rstudent.merMod).

## ---- hat values --------------------------------------------------------------------------------

hatvalues.lmm <- function(model, ...) {
  name_and_pad(model, lmm_hat(model), stats::napredict)
}

## The diagonal of the hat matrix (see the top of the file), in the fit's row order.
lmm_hat <- function(object) {
  design <- prediction_design(object, NULL, NULL, FALSE, stats::na.pass)
  if (is.null(object$residual))
    return(object$weights * joint_quad_form(object, design$A, design$P))
  rows <- whitened_design(object, design)
  joint_quad_form(object, rows$A, rows$P)
}

## W^(1/2) (y - mu), or B (y - mu) with a residual structure.
whitened_residuals <- function(object) {
  r <- object$y - object$fitted
  if (is.null(object$residual)) sqrt(object$weights) * r else residual_whiten(object, r)
}

## ---- Cook's distance and studentized residuals ---------------------------------------------------

cooks.distance.lmm <- function(model, ...) name_and_pad(model, lmm_cooks(model))

lmm_cooks <- function(object, h = lmm_hat(object)) {
  e <- whitened_residuals(object)
  d <- (e / (1 - h))^2 * h / (object$sigma^2 * object$p)
  d[is.infinite(d)] <- NaN
  d
}

rstudent.lmm <- function(model, ...) {
  h <- lmm_hat(model)
  r <- whitened_residuals(model) / (model$sigma * sqrt(1 - h))
  r[is.infinite(r)] <- NaN
  name_and_pad(model, r)
}

## The same internally studentized residuals (stats' rstandard() definition; lme4 has no
## rstandard method): performance::check_model's homogeneity and influence panels use them.
rstandard.lmm <- function(model, ...) rstudent.lmm(model)

## ---- case / group deletion ---------------------------------------------------------------------

## As lme4's influence.merMod: the model refitted without each case (or each level of `groups`,
## variables of `data`), from the fit's theta, at most `maxfun` evaluations each.  The result has
## lme4's fields and names, class c("influence.lmm", "influence.merMod").
influence.lmm <- function(model, groups, data, maxfun = 1000, do.coef = TRUE, start = NULL,
                          ...) {
  if (...length() > 0L) warning("disregarded additional arguments", call. = FALSE)
  if (!do.coef)
    return(structure(list(hat = hatvalues(model)), class = c("influence.lmm", "influence.merMod")))
  del <- deletion_sets(model, groups, data, parent.frame())
  theta0 <- if (is.null(start)) model$theta else if (is.list(start)) start$theta else start
  control <- refit_control(model, maxeval = maxfun, check.conv.singular = "ignore",
                         check.rankX = "silent.drop.cols", check.scaleX = "ignore")
  refit <- if (is.null(model$residual)) deletion_refit else
    deletion_refit_by_call(model, if (missing(data)) NULL else data, parent.frame())
  fits <- lapply(del$levels, function(lev) refit(model, del$which != lev, theta0, control))
  influence_result(model, fits, del)
}

## The deletion label of each row of the fit: ".case" (row names) or the levels of `groups`.
deletion_sets <- function(model, groups, data, env) {
  if (missing(groups)) {
    lab <- if (is.null(model$frame)) as.character(seq_len(model$n)) else rownames(model$frame)
    return(list(which = lab, levels = unique(lab), name = "case"))
  }
  if (!is.character(groups) || !length(groups))
    stop("'groups' must name one or more variables of the data", call. = FALSE)
  data <- if (missing(data)) deletion_data(model, env) else as.data.frame(data)
  miss <- setdiff(groups, names(data))
  if (length(miss)) stop("'groups' variable(s) not in the data: ", paste(miss, collapse = ", "),
                         call. = FALSE)
  rows <- if (is.null(model$frame) && nrow(data) == model$n) seq_len(model$n) else
    match(rownames(model$frame), rownames(data))
  if (!length(rows) || anyNA(rows))
    stop("cannot match the fit's rows to the rows of 'data'", call. = FALSE)
  name <- paste(groups, collapse = ".")
  lab <- if (length(groups) == 1L) data[[groups]] else
    apply(data[groups], 1L, paste0, collapse = ".")     # lme4 pastes the whole row
  lab <- lab[rows]
  list(which = lab, levels = unique(lab), name = name)
}

## The fit's data from its call, evaluated where the formula was made, else in the caller's frame.
deletion_data <- function(model, env) {
  d <- model$call$data
  if (is.null(d) || is.null(model$frame)) stop("model did not use the data argument", call. = FALSE)
  val <- tryCatch(eval(d, environment(model$formula)), error = function(e) eval(d, env))
  as.data.frame(val)
}

## The model refitted to the rows `keep` (levels no longer present are dropped).
deletion_refit <- function(model, keep, theta0, control) {
  reterms <- lapply(model$reterms, function(term) {
    term$group <- factor(term$group[keep])
    term$Xt <- term$Xt[keep, , drop = FALSE]
    term
  })
  X <- model$X[keep, , drop = FALSE]
  fit <- suppressWarnings(lmm_fit(model$y[keep], X, reterms, weights = model$weights[keep],
                                  offset = model$offset[keep], REML = model$REML,
                                  control = control, start = theta0))
  list(fixed = fit$beta, vc = vc_vector(fit), vcov = fit$vcov_beta,
       converged = isTRUE(fit$optinfo$converged) && !length(fit$optinfo$warnings),
       feval = fit$optinfo$feval)
}

## With a residual structure the structure itself depends on the rows (predecessors in time,
## strata), so the deletion refits evaluate the fit's call on the rows kept of its data: a
## function(model, keep, theta0, control) as deletion_refit().
deletion_refit_by_call <- function(model, data, env) {
  if (is.null(model$call) || is.null(model$frame))
    stop("influence() by case deletion with a residual structure needs a fit made by lmm() ",
         "with its data", call. = FALSE)
  data <- if (is.null(data)) deletion_data(model, env) else as.data.frame(data)
  rows <- match(rownames(model$frame), rownames(data))
  if (anyNA(rows)) stop("cannot match the fit's rows to the rows of 'data'", call. = FALSE)
  fenv <- environment(model$formula)
  function(model, keep, theta0, control) {
    cl <- model$call
    cl$data <- data[rows[keep], , drop = FALSE]
    cl$start <- theta0
    cl$control <- control
    fit <- suppressWarnings(eval(cl, fenv))
    list(fixed = fit$beta, vc = vc_vector(fit), vcov = fit$vcov_beta,
         converged = isTRUE(fit$optinfo$converged) && !length(fit$optinfo$warnings),
         feval = fit$optinfo$feval)
  }
}

## sigma^2, then each block's lower triangle (variances and covariances), named as lme4 names them.
vc_vector <- function(fit) {
  vc <- VarCorr(fit)
  vals <- c(fit$sigma^2, unlist(lapply(vc, function(V) V[lower.tri(V, diag = TRUE)])))
  nms <- unlist(lapply(seq_along(vc), function(i) {
    cn <- colnames(vc[[i]])
    e <- outer(cn, cn, function(a, b) paste0("C[", a, ",", b, "]"))
    diag(e) <- paste0("v[", cn, "]")
    prefix <- if (length(vc) == 1L) "" else paste0(names(vc)[i], ":")
    paste0(prefix, e[lower.tri(e, diag = TRUE)])
  }))
  setNames(vals, c("sigma^2", nms))
}

## lme4's list: fixed.effects, fixed.effects[-g], var.cov.comps, var.cov.comps[-g], vcov,
## vcov[-g], groups, deleted, converged, function.evals.  A refit that dropped an aliased column
## gets NA for it (and NA rows/columns in its vcov).
influence_result <- function(model, fits, del) {
  fixed <- model$beta
  vc <- vc_vector(model)
  labs <- as.character(del$levels)
  fill <- function(v, nms) { out <- setNames(rep(NA_real_, length(nms)), nms); out[names(v)] <- v; out }
  fixed1 <- do.call(rbind, lapply(fits, function(f) fill(f$fixed, names(fixed))))
  vc1 <- do.call(rbind, lapply(fits, function(f) fill(f$vc, names(vc))))
  dimnames(fixed1) <- list(labs, names(fixed))
  dimnames(vc1) <- list(labs, names(vc))
  vcov1 <- lapply(fits, function(f) {
    V <- matrix(NA_real_, length(fixed), length(fixed), dimnames = list(names(fixed), names(fixed)))
    V[rownames(f$vcov), colnames(f$vcov)] <- f$vcov
    V
  })
  names(vcov1) <- labs
  converged <- setNames(vapply(fits, `[[`, NA, "converged"), labs)
  feval <- setNames(as.numeric(vapply(fits, `[[`, 0, "feval")), labs)
  g <- del$name
  res <- list(fixed, fixed1, vc, vc1, as.matrix(model$vcov_beta), vcov1, g, del$levels,
              converged, feval)
  names(res) <- c("fixed.effects", sprintf("fixed.effects[-%s]", g), "var.cov.comps",
                  sprintf("var.cov.comps[-%s]", g), "vcov", sprintf("vcov[-%s]", g), "groups",
                  "deleted", "converged", "function.evals")
  structure(res, class = c("influence.lmm", "influence.merMod"))
}

## ---- methods for the influence result (lme4's definitions) ----------------------------------------

## Change in the estimates when a case (group) is deleted: estimate[-i] - estimate.
dfbeta.influence.lmm <- function(model, which = c("fixed", "var.cov"), ...) {
  which <- match.arg(which)
  check_influence_coef(model)
  k <- if (which == "fixed") 1L else 3L
  b <- model[[k + 1L]]
  b - matrix(model[[k]], nrow(b), ncol(b), byrow = TRUE)
}

## dfbeta of the fixed effects over their standard errors in the deletion fit.
dfbetas.influence.lmm <- function(model, ...) {
  check_influence_coef(model)
  se <- t(vapply(model[[6L]], function(V) sqrt(diag(V)), numeric(ncol(model[[2L]]))))
  dfbeta(model) / se
}

## lme4's group-deletion Cook's distance: D_i = (n - p) / (n p) db_i' Var(beta)^{-1} db_i with
## n the number of deletions.
cooks.distance.influence.lmm <- function(model, ...) {
  check_influence_coef(model)
  db <- dfbeta(model)
  n <- nrow(db)
  p <- ncol(db)
  Vinv <- (n - p) / (n * p) * solve(model$vcov)
  setNames(rowSums((db %*% Vinv) * db), rownames(db))
}

check_influence_coef <- function(model) {
  if (is.null(model$fixed.effects))
    stop("the influence object has no deletion estimates: compute it with do.coef = TRUE",
         call. = FALSE)
}

print.influence.lmm <- function(x, ...) {
  if (is.null(x$fixed.effects)) {
    cat("Influence of an lmm fit: hat values only (do.coef = FALSE)\n")
    return(invisible(x))
  }
  cat(sprintf("Influence of an lmm fit: %d deletions of %s", length(x$deleted), x$groups),
      sprintf("(%d not converged)\n", sum(!x$converged)))
  cat("Changes in the fixed effects (dfbeta), first rows:\n")
  print(utils::head(dfbeta(x)), ...)
  invisible(x)
}
