# Hypothesis matrices for the F tests of anova.lmm(): for each fixed-effect term a matrix L
# (rows = contrasts, columns = coefficients) whose test is L beta = 0.  The constructions are
# lmerTest's (Kuznetsova et al. 2017, section 3.3 and its appendix on type III):
#   type I    rows of U' where X'X = L D U (Doolittle, U unit upper after scaling), per term:
#             each term adjusted for the terms before it (sequential);
#   type II   each term adjusted for all terms that do not contain it;
#   type III  SAS's type III: the term's estimable functions in the over-parameterised
#             (full-indicator) model, orthogonalised against the terms that contain it.

## ---- the model's term structure ----------------------------------------------------------

# term label -> column indices of X (from attr(X, "assign")); "(Intercept)" included.
term_columns <- function(object, X = object$X) {
  terms <- object$fixed_terms
  labels <- attr(terms, "term.labels")
  asgn <- attr(X, "assign")
  if (is.null(asgn)) stop("the fixed-effects model matrix has no 'assign' attribute", call. = FALSE)
  col_terms <- c("(Intercept)", labels)[asgn + 1L]
  out <- lapply(setNames(nm = union(unique(col_terms), labels)), function(t) integer())
  idx <- split(seq_along(col_terms), col_terms)
  out[names(idx)] <- idx
  out
}

# For each term, the terms containing it: all of its variables are in the other term, which has
# more variables, and both have the same numeric covariates (lmerTest's rule; variables count
# where the terms' "factors" attribute is 1).
term_containment <- function(object) {
  terms <- object$fixed_terms
  labels <- attr(terms, "term.labels")
  fac <- attr(terms, "factors")
  classes <- attr(terms, "dataClasses")
  vars <- lapply(setNames(nm = labels), function(t) rownames(fac)[fac[, t] == 1])
  numerics <- lapply(vars, function(v) v[!is.na(classes[v]) & classes[v] == "numeric"])
  lapply(setNames(nm = labels), function(t) {
    contains <- vapply(labels, function(s) {
      all(vars[[t]] %in% vars[[s]]) && length(setdiff(vars[[s]], vars[[t]])) > 0L &&
        setequal(numerics[[t]], numerics[[s]])
    }, NA)
    labels[contains]
  })
}

## ---- type I ------------------------------------------------------------------------------

# Doolittle factorisation A = L U (no pivoting), L unit lower triangular; entries below eps set
# to zero (and a column of L whose pivot U_ii is below eps left zero), as lmerTest's doolittle().
doolittle <- function(A, eps = 1e-6) {
  n <- nrow(A)
  L <- diag(n)
  U <- matrix(0, n, n)
  for (i in seq_len(n)) {
    prev <- seq_len(i - 1L)
    U[i, ] <- A[i, ] - L[i, prev, drop = FALSE] %*% U[prev, , drop = FALSE]
    if (i < n) {
      below <- (i + 1L):n
      l_i <- A[below, i] - L[below, prev, drop = FALSE] %*% U[prev, i]
      L[below, i] <- if (abs(U[i, i]) < eps) 0 else l_i / U[i, i]
    }
  }
  L[abs(L) < eps] <- 0
  U[abs(U) < eps] <- 0
  list(L = L, U = U)
}

# Rows of t(L) from X'X = L D L': row j tests coefficient j adjusted for coefficients 1..j-1.
sequential_rows <- function(X) {
  p <- ncol(X)
  Lt <- if (p == 1L) matrix(1) else t(doolittle(crossprod(X))$L)
  dimnames(Lt) <- list(colnames(X), colnames(X))
  Lt
}

contrasts_type1 <- function(object) {
  X <- object$X
  labels <- attr(object$fixed_terms, "term.labels")
  if (ncol(X) == 0L || length(labels) == 0L) return(list())
  Lt <- sequential_rows(X)
  lapply(term_columns(object)[labels], function(rows) Lt[rows, , drop = FALSE])
}

## ---- marginal and type II ----------------------------------------------------------------

# Rows of the identity: the term's own coefficients are zero.
contrasts_marginal <- function(object) {
  X <- object$X
  labels <- attr(object$fixed_terms, "term.labels")
  I <- diag(ncol(X))
  dimnames(I) <- list(colnames(X), colnames(X))
  lapply(term_columns(object)[labels], function(cols) I[cols, , drop = FALSE])
}

# lmerTest's "marginal" type: every term's own coefficients (type I when X has one column or the
# model one term).
contrasts_marginal_all <- function(object) {
  if (ncol(object$X) <= 1L || length(attr(object$fixed_terms, "term.labels")) <= 1L)
    return(contrasts_type1(object))
  contrasts_marginal(object)
}

# Terms contained in no other: marginal test.  Other terms: the sequential rows below.
contrasts_type2 <- function(object) {
  labels <- attr(object$fixed_terms, "term.labels")
  if (ncol(object$X) <= 1L || length(labels) <= 1L) return(contrasts_type1(object))
  contained_in <- term_containment(object)
  marginal <- contrasts_marginal(object)
  lapply(setNames(nm = labels), function(t) {
    if (!length(contained_in[[t]])) marginal[[t]] else type2_rows(object, t, contained_in[[t]])
  })
}

# Type "2b": the sequential rows for every term.
contrasts_type2b <- function(object) {
  labels <- attr(object$fixed_terms, "term.labels")
  if (ncol(object$X) <= 1L || length(labels) <= 1L) return(contrasts_type1(object))
  contained_in <- term_containment(object)
  lapply(setNames(nm = labels), function(t) type2_rows(object, t, contained_in[[t]]))
}

# Order the columns as [unrelated terms, the term, terms containing it] and take the term's
# sequential (Doolittle) rows: the term adjusted for all terms that do not contain it.
type2_rows <- function(object, t, outer_terms) {
  X <- object$X
  cols <- term_columns(object)
  col_term <- rep(NA_character_, ncol(X))
  for (s in names(cols)) col_term[cols[[s]]] <- s
  last <- unlist(cols[c(t, outer_terms)])
  ord <- c(setdiff(seq_len(ncol(X)), last), last)
  Lt <- sequential_rows(X[, ord, drop = FALSE])
  Lt[col_term[ord] == t, colnames(X), drop = FALSE]
}

## ---- drop1 --------------------------------------------------------------------------------

# The hypothesis of dropping each term in scope.  Usually the term's own coefficients (marginal);
# when X lost aliased columns, the columns of a term need not carry all it adds to the model
# (a numeric temp beside the ordered factor temperature: temperature's linear contrast was
# dropped, and temp's column spans it), so, as lmerTest: the directions of span(X) not in the
# span of the model matrix without the term -- none (NA row: not testable) when the reduced
# model spans X.
contrasts_drop1 <- function(object, scope) {
  L_list <- contrasts_marginal_all(object)[scope]
  if (!length(attr(object$X, "dropped"))) return(L_list)
  Xfull <- stats::model.matrix(object$fixed_terms, data = object$frame,
                               contrasts.arg = attr(object$X, "contrasts"))
  labels <- attr(object$fixed_terms, "term.labels")
  asgn <- attr(Xfull, "assign")
  lapply(setNames(nm = scope), function(t) {
    X0 <- Xfull[, asgn != match(t, labels), drop = FALSE]
    L <- span_difference(X0, object$X)
    if (!length(L)) matrix(NA_real_, 1L, ncol(object$X), dimnames = list(NULL, colnames(object$X)))
    else L
  })
}

# Rows spanning {X'r : r = residual of a column of X on X0}: the estimable directions of
# span(X) orthogonal to span(X0), as an orthonormal basis (lmerTest's get_Ldiffmat2).
span_difference <- function(X0, X) {
  R <- stats::.lm.fit(X0, X)$residuals
  R <- R[, colSums(abs(R)) > 1e-8, drop = FALSE]
  if (!ncol(R)) return(matrix(0, 0L, ncol(X)))
  Lt <- crossprod(X, R)
  Lt[] <- zapsmall(qr.Q(qr(Lt)))
  L <- t(Lt)
  colnames(L) <- colnames(X)
  L
}

## ---- type III ----------------------------------------------------------------------------

contrasts_type3 <- function(object) {
  X <- object$X
  labels <- attr(object$fixed_terms, "term.labels")
  if (ncol(X) <= 1L || length(labels) <= 1L) return(contrasts_type1(object))
  codings <- unlist(attr(X, "contrasts"))
  if (length(codings) && is.character(codings) && all(codings == "contr.treatment"))
    return(type3_treatment(object, X))
  # Other codings: build the hypotheses in treatment coding, then map them to X's coding by
  # M = X_trt^+ X (X_trt M = X, so L_trt beta_trt = L_trt M beta).
  Xtrt <- full_rank_columns(treatment_model_matrix(object))
  L_trt <- type3_treatment(object, Xtrt)
  M <- zapsmall(pseudo_inverse(Xtrt) %*% X)
  lapply(L_trt, function(L) L %*% M)
}

# In treatment coding every column of X is also a column of the full-indicator matrix Z_full
# (same name).  B = X^+ Z_full expresses each full-indicator parameter through beta; its columns
# for a term are orthogonalised (least-squares residuals over the rows of B) against the columns
# of the terms containing it, higher-order terms first; the rows for X's columns give L.
type3_treatment <- function(object, X) {
  labels <- attr(object$fixed_terms, "term.labels")
  Zfull <- full_indicator_matrix(object)
  B <- zapsmall(t(pseudo_inverse(X) %*% Zfull))
  dimnames(B) <- list(colnames(Zfull), colnames(X))
  cols <- term_columns(object, X)
  contained_in <- term_containment(object)
  order_of <- attr(object$fixed_terms, "order")
  for (t in labels[order(order_of, decreasing = TRUE)]) {
    if (length(outer_terms <- contained_in[[t]])) {
      basis <- B[, unlist(cols[outer_terms]), drop = FALSE]
      B[, cols[[t]]] <- zapsmall(qr.resid(qr(basis, tol = 1e-7), B[, cols[[t]], drop = FALSE]))
    }
  }
  missing_names <- setdiff(colnames(X), rownames(B))
  if (length(missing_names))
    stop("cannot match the model matrix columns ", paste(missing_names, collapse = ", "),
         " for type III tests", call. = FALSE)
  B <- B[colnames(X), , drop = FALSE]
  lapply(cols[labels], function(cj) {
    L <- t(B[, cj, drop = FALSE])
    L[rowSums(abs(L)) > 1e-8, , drop = FALSE]
  })
}

# Each term coded by indicators of all levels of its factors (times its covariates), built from
# the model frame (matched by variable names, so nothing is re-evaluated); intercept first.
full_indicator_matrix <- function(object) {
  terms <- object$fixed_terms
  labels <- attr(terms, "term.labels")
  frame <- object$frame
  blocks <- lapply(labels, function(t) {
    tt <- terms(stats::as.formula(paste("~ 0 +", t), env = baseenv()))
    stats::model.matrix(tt, data = frame)
  })
  Z <- if (length(blocks)) do.call(cbind, blocks) else matrix(0, nrow(frame), 0L)
  nm <- unlist(lapply(blocks, colnames))
  if (attr(terms, "intercept") != 0) {
    Z <- cbind(1, Z)
    nm <- c("(Intercept)", nm)
  }
  colnames(Z) <- nm
  empty <- colSums(Z != 0) == 0
  if (any(empty))
    message("Missing cells for: ", paste(nm[empty], collapse = ", "),
            ".  \nInterpret type III hypotheses with care.")
  Z
}

# X remade from the model frame with treatment contrasts for every factor.
treatment_model_matrix <- function(object) {
  terms <- object$fixed_terms
  frame <- object$frame
  ctr <- stats::.getXlevels(terms, frame)
  ctr[] <- "contr.treatment"
  stats::model.matrix(terms, data = frame, contrasts.arg = if (length(ctr)) ctr)
}

# Keep the first rank(X) pivoted columns (QR with tolerance 1e-7), with their "assign".
full_rank_columns <- function(X, tol = 1e-7) {
  qx <- qr(X, tol = tol, LAPACK = FALSE)
  if (qx$rank == ncol(X)) return(X)
  keep <- qx$pivot[seq_len(qx$rank)]
  out <- X[, keep, drop = FALSE]
  attr(out, "assign") <- attr(X, "assign")[keep]
  attr(out, "contrasts") <- attr(X, "contrasts")
  out
}
