## Standard errors and intervals for predictions of a fitted "lmm".
##
## A prediction is eta = x beta + z b (+ offset) with b = Lambda u.  Conditional on theta, the errors
## of the estimates (beta-hat - beta, u-tilde - u) have covariance sigma^2 M^{-1} with
##     M = [ Lambda'Z'WZ Lambda + I    Lambda'Z'WX ]
##         [ X'WZ Lambda               X'WX        ]      (Henderson's mixed-model equations),
## so Var(eta-hat - eta) = sigma^2 a M^{-1} a' with a = [z Lambda, x].  Random effects of levels
## not in the fit are predicted as 0 with error variance z Sigma_t z' (their prior variance).
## Population-level predictions (re.form = NA) reduce to x Var(beta-hat) x'.
## "confidence" intervals cover eta; "prediction" intervals a new observation, adding its residual
## variance sigma^2 delta_s^2 / w (w = 1 for new data; delta_s the SD ratio of the row's stratum
## under varIdent, 1 without).  Intervals use normal quantiles.
##
## The C engine's sparse/dense factor of M at (theta, rho) gives a M^{-1} a' by one forward
## substitution per row (engine_quadform(), R/objective.R), with or without a residual structure
## (with one, M = (B A)'(B A) + diag(I_q, 0), B the whitening: B'B = V^{-1}).

## se.fit and/or intervals, in predict.lm's shapes.  Called by predict.lmm().
predict_intervals <- function(object, newdata = NULL, re.form = NULL, allow.new.levels = FALSE,
                              se.fit = FALSE, interval = c("none", "confidence", "prediction"),
                              level = 0.95, na.action = NULL) {
  interval <- match.arg(interval)
  check_conf_level(level)
  fit <- predict(object, newdata = newdata, re.form = re.form,
                 allow.new.levels = allow.new.levels, na.action = na.action)
  se <- predict_se(object, newdata, re.form, allow.new.levels, na.action = na.action,
                   residual = FALSE)
  if (interval != "none") {
    sd_int <- if (interval == "confidence") se else
      predict_se(object, newdata, re.form, allow.new.levels, na.action = na.action,
                 residual = TRUE)
    z <- stats::qnorm((1 + level) / 2)
    fit <- cbind(fit = fit, lwr = fit - z * sd_int, upr = fit + z * sd_int)
  }
  if (!se.fit) return(fit)
  list(fit = fit, se.fit = se, residual.scale = object$sigma)
}

## Standard errors of the predictions (residual = TRUE: of a new observation).
predict_se <- function(object, newdata = NULL, re.form = NULL, allow.new.levels = FALSE,
                       na.action = NULL, residual = FALSE, ...) {
  if (!inherits(object, "lmm")) stop("predict_se() needs a fitted \"lmm\" object", call. = FALSE)
  design <- prediction_design(object, newdata, re.form, allow.new.levels, na.action)
  v <- object$sigma^2 * (joint_quad_form(object, design$A, design$P) + design$newvar)
  if (residual) v <- v + (object$sigma * new_observation_scale(object, design))^2
  se <- sqrt(v)
  names(se) <- design$names
  stats::napredict(design$na_action, se)
}

## The residual SD of a new observation over sigma, row by row: s_i / sqrt(w_i).  On the fit's
## data residual_scale() (R/residual.R); on new data (w = 1) the fitted variance function
## evaluated on the new rows (R/residual.R's variance_scale_new).
new_observation_scale <- function(object, design) {
  if (is.null(design$rows))
    return(if (is.null(object$residual)) 1 / sqrt(design$weights) else residual_scale(object))
  variance_scale_new(object, design$rows)
}

## ---- the joint covariance ------------------------------------------------------------------------

## a M^{-1} a' for each sparse row a = (P, A), by the C engine's factor of M at the fit's
## (theta, rho): a forward substitution per row, no dense M^{-1}, any size.
joint_quad_form <- function(object, A, P) {
  storage.mode(P) <- "integer"
  storage.mode(A) <- "double"
  engine_quadform(engine_for(object), object$theta, P, A, fit_rho(object))
}

## M^{-1} (see the top of the file) formed densely, order: u (q, lme4's order) then beta (p);
## fits without a residual structure only (a reference for the tests, and for small models).
joint_cov_inverse <- function(object) {
  if (!is.null(object$residual))
    stop("joint_cov_inverse() is for fits without a residual structure", call. = FALSE)
  q <- object$q
  dim <- q + object$p
  limit <- getOption("lmmc.se_fit_max_dim", 3000)
  if (dim > limit)
    stop(sprintf(paste0("a dense %d x %d inverse (q + p = %d random and fixed effects) is above ",
                        "the limit %d; raise options(lmmc.se_fit_max_dim)"), dim, dim, dim, limit),
         call. = FALSE)
  zl <- z_lambda_rows(object$reterms, object$theta, rep(list(NULL), length(object$reterms)))
  M <- crossprod_sparse_rows(zl$P, zl$A, object$X, object$weights, q)
  diag(M)[seq_len(q)] <- diag(M)[seq_len(q)] + 1
  chol2inv(chol(M))
}

## Rows of B A in the sparse (P, A) form, from the rows (P, A) of A = [Z Lambda, X] on the fit's
## data, through residual_whiten() only.  B acts within the residual structure's groups, so
## each column of A is whitened as a whole: the X columns are dense; a column k of the Z Lambda
## part stacks the columns of the levels of one term, and B applied to it is, row by row, B
## applied to the row's own level's column -- when every residual group lies within one level
## (the usual nesting).  That is checked by whitening the column with level weights r: the
## result must be r times the whitened column.  A column failing the check is whitened level by
## level (rows then get entries of several levels).
whitened_design <- function(object, design) {
  A <- design$A
  P <- design$P
  n <- nrow(A)
  trip <- lapply(seq_len(ncol(A)), function(k) {
    a <- A[, k]
    wa <- residual_whiten(object, a)
    r <- 1 + (P[, k] * 0.6180339887498949) %% 1         # distinct weights per position
    if (max(abs(residual_whiten(object, r * a) - r * wa)) <= 1e-10 * max(abs(wa)))
      return(list(i = seq_len(n), j = P[, k], x = wa))
    whiten_by_level(object, a, P[, k])
  })
  sparse_rows(unlist(lapply(trip, `[[`, "i")), unlist(lapply(trip, `[[`, "j")),
              unlist(lapply(trip, `[[`, "x")), n)
}

## B applied to each level's part of column a (positions pos): triplets (row, position, value).
whiten_by_level <- function(object, a, pos) {
  levels <- unique(pos)
  if (as.double(length(levels)) * length(a) > getOption("lmmc.whiten_max_work", 1e8))
    stop("hat values: the residual groups cross the levels of a random-effects term, and ",
         "whitening its ", length(levels), " levels one by one is too much work; raise ",
         "options(lmmc.whiten_max_work) to try", call. = FALSE)
  out <- lapply(levels, function(l) {
    w <- residual_whiten(object, ifelse(pos == l, a, 0))
    i <- which(w != 0)
    list(i = i, j = rep(l, length(i)), x = w[i])
  })
  list(i = unlist(lapply(out, `[[`, "i")), j = unlist(lapply(out, `[[`, "j")),
       x = unlist(lapply(out, `[[`, "x")))
}

## Triplets (row i, position j, value x) -> the sparse rows (P, A), padded with NA positions.
sparse_rows <- function(i, j, x, n) {
  keep <- x != 0 & !is.na(j)
  i <- i[keep]; j <- j[keep]; x <- x[keep]
  ord <- order(i)
  i <- i[ord]; j <- j[ord]; x <- x[ord]
  count <- tabulate(i, n)
  K <- max(1L, count)
  slot <- seq_along(i) - (cumsum(count) - count)[i]      # 1..count within each row
  P <- matrix(NA_integer_, n, K)
  A <- matrix(0, n, K)
  P[cbind(i, slot)] <- as.integer(j)
  A[cbind(i, slot)] <- x
  list(P = P, A = A)
}

## Rows of Z Lambda in a sparse form: P[i, k] the column (in u's order) and A[i, k] the value of
## row i's k-th nonzero.  For term t with template T_t, row i in level l holds (x_ti T_t) in
## columns offset_t + (l - 1) p_t + 1..p_t.  `masks` optionally zeroes columns of x_ti (re.form).
## idx: level numbers (NA = level not in the fit); defaults to the fitted grouping factors.
z_lambda_rows <- function(reterms, theta, masks, Xts = NULL, idxs = NULL) {
  templates <- theta_templates(theta, reterms)
  offset <- 0L
  P <- A <- list()
  for (t in seq_along(reterms)) {
    term <- reterms[[t]]
    pt <- length(term$cnms)
    Xt <- if (is.null(Xts)) term$Xt else Xts[[t]]
    idx <- if (is.null(idxs)) as.integer(term$group) else idxs[[t]]
    if (!is.null(masks[[t]])) Xt <- sweep(Xt, 2L, masks[[t]], `*`)
    V <- Xt %*% templates[[t]]                          # x_ti T_t
    cols <- outer(offset + (idx - 1L) * pt, seq_len(pt), `+`)
    P[[t]] <- cols
    A[[t]] <- V
    offset <- offset + pt * nlevels(term$group)
  }
  list(P = do.call(cbind, P), A = do.call(cbind, A), templates = templates)
}

## [Z Lambda, X]' W [Z Lambda, X] from the sparse rows of Z Lambda (dense result).
crossprod_sparse_rows <- function(P, A, X, w, q) {
  p <- ncol(X)
  dim <- q + p
  M <- matrix(0, dim, dim)
  add <- function(rows, cols, vals) {
    s <- rowsum(vals, (cols - 1L) * dim + rows)
    k <- as.integer(rownames(s))
    M[k] <<- M[k] + s[, 1L]
  }
  K <- ncol(P)
  for (a in seq_len(K)) {
    for (b in seq_len(K)) add(P[, a], P[, b], w * A[, a] * A[, b])
    for (j in seq_len(p)) {
      add(P[, a], rep(q + j, nrow(P)), w * A[, a] * X[, j])
      add(rep(q + j, nrow(P)), P[, a], w * A[, a] * X[, j])
    }
  }
  if (p) M[q + seq_len(p), q + seq_len(p)] <- crossprod(X * sqrt(w))
  M
}

## sum_k sum_l A[i, k] A[i, l] Minv[P[i, k], P[i, l]] for each row i (NA positions count 0).
quad_form_rows <- function(A, P, Minv) {
  out <- numeric(nrow(A))
  ok <- !is.na(P)
  A[!ok] <- 0
  P[!ok] <- 1L
  for (k in seq_len(ncol(A))) for (l in seq_len(ncol(A)))
    out <- out + A[, k] * A[, l] * Minv[cbind(P[, k], P[, l])]
  out
}

## ---- the design of the predictions ---------------------------------------------------------------

## Rows a = [z Lambda, x] of the predictions (sparse: A values at positions P), the prior variance
## (over sigma^2) of new levels' effects, prior weights, row names, the na.action to pad with and
## the rows of new data kept (NULL on the fit's data).
prediction_design <- function(object, newdata, re.form, allow.new.levels, na.action) {
  use <- conditioned_terms(object, re.form)
  q <- object$q
  if (is.null(newdata)) {
    X <- object$X
    Xts <- NULL
    idxs <- NULL
    w <- object$weights
    nms <- if (is.null(object$frame)) NULL else rownames(object$frame)
    na_act <- fit_na_action(object, na.action)    # R/methods-predict.R
  } else {
    if (is.null(na.action)) na.action <- stats::na.pass
    fd <- new_fixed_design(object, newdata, na.action)
    X <- fd$X
    tds <- lapply(seq_along(use), function(t) {
      term <- object$reterms[[t]]
      if (use[[t]]$use) return(new_term_design(object, term, fd$rows, allow.new.levels))
      list(Xt = matrix(0, nrow(X), length(term$cnms)), idx = rep(1L, nrow(X)))  # not used
    })
    Xts <- lapply(tds, `[[`, "Xt")
    idxs <- lapply(tds, `[[`, "idx")
    w <- rep(1, nrow(X))
    nms <- rownames(fd$rows)
    rows <- fd$rows
    na_act <- fd$na_action
  }
  masks <- lapply(seq_along(use), function(t) if (use[[t]]$use) use[[t]]$mask else
    rep(0, length(object$reterms[[t]]$cnms)))
  zl <- z_lambda_rows(object$reterms, object$theta, masks, Xts, idxs)
  newvar <- new_level_variance(zl, idxs, nrow(X))
  keep <- vapply(use, `[[`, NA, "use")[rep(seq_along(use),
                                           vapply(object$reterms, function(t) length(t$cnms), 1L))]
  P <- cbind(zl$P[, keep, drop = FALSE], matrix(q + seq_len(ncol(X)), nrow(X), ncol(X),
                                                 byrow = TRUE))
  A <- cbind(zl$A[, keep, drop = FALSE], X)
  list(A = A, P = P, newvar = newvar, weights = w, names = nms, na_action = na_act,
       rows = if (!is.null(newdata)) rows)
}

## Prior variance (over sigma^2) of the random part of rows in levels not in the fit:
## ||x_ti T_t||^2 summed over such terms (their columns of zl have NA positions).
new_level_variance <- function(zl, idxs, n) {
  v <- numeric(n)
  if (is.null(idxs)) return(v)
  new <- is.na(zl$P)
  if (any(new)) v <- rowSums(ifelse(new, zl$A^2, 0))
  v
}

## Which random terms enter the prediction (re.form: NULL all, NA or ~0 none, a formula the terms
## of the grouping factors it names, restricted to the columns its bars name).
conditioned_terms <- function(object, re.form) {
  all_cols <- function(term) rep(1, length(term$cnms))
  if (!wants_random(re.form))
    return(lapply(object$reterms, function(term) list(use = FALSE, mask = all_cols(term))))
  if (is.null(re.form))
    return(lapply(object$reterms, function(term) list(use = TRUE, mask = all_cols(term))))
  bars <- find_bars(re.form)
  bar_names <- vapply(bars, bar_group_name, "")
  bad <- setdiff(bar_names, vapply(object$reterms, `[[`, "", "name"))
  if (length(bad))
    stop("grouping factor '", bad[1L], "' in re.form is not a grouping factor of the model",
         call. = FALSE)
  lapply(object$reterms, function(term) {
    hit <- bars[bar_names == term$name]
    if (!length(hit)) return(list(use = FALSE, mask = all_cols(term)))
    cols <- unique(unlist(lapply(hit, function(bar)
      if (is.null(object$frame)) term$cnms else
        re_lhs_columns(bar[[2L]], object$frame, object, term$cnms))))
    mask <- as.numeric(term$cnms %in% cols)
    list(use = any(mask > 0), mask = mask)
  })
}

## X, offset and the kept rows of new data, built as predict.lmm() builds them.
new_fixed_design <- function(object, newdata, na.action) {
  if (is.null(object$fixed_terms))
    stop("'newdata' needs a fit made by lmm() (with a formula); this fit was made by lmm_fit()",
         call. = FALSE)
  if (!is.data.frame(newdata)) newdata <- as.data.frame(newdata)
  mf <- newdata_frame(object, newdata, na.action)
  na_act <- attr(mf, "na.action")
  X <- stats::model.matrix(attr(mf, "terms"), mf, contrasts.arg = attr(object$X, "contrasts"))
  X <- X[, names(object$beta), drop = FALSE]
  off <- stats::model.offset(mf)
  rows <- if (is.null(na_act)) newdata else newdata[-as.integer(na_act), , drop = FALSE]
  list(X = X, offset = if (is.null(off)) rep(0, nrow(X)) else off, rows = rows,
       na_action = na_act)
}

## A random term's columns and level numbers on new rows (NA: a level not in the fit, allowed only
## with allow.new.levels).
new_term_design <- function(object, term, rows, allow.new.levels) {
  Xt <- re_lhs_matrix(term$lhs, rows, object)
  miss <- setdiff(term$cnms, colnames(Xt))
  if (length(miss))
    stop("cannot rebuild the random-effects columns ", paste(miss, collapse = ", "),
         " of '", term$name, "' on newdata", call. = FALSE)
  lab <- group_labels(term$gexpr, rows, environment(object$formula))
  idx <- level_index(lab, levels(term$group), term$name, allow.new.levels)
  list(Xt = Xt[, term$cnms, drop = FALSE], idx = idx, labels = lab)
}
