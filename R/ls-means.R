# Least-squares means of the factor terms, as lmerTest's ls_means() / difflsmeans():
# over the grid of all factor levels (numeric covariates at their means), the mean of each
# level (combination) of a factor term is the average of the grid's predictions in that level:
#   L_term = diag(1 / n_cell) Ind' U,   U = model matrix of the grid, Ind = the term's indicators,
# and the LS mean is L_term beta, with a t test of = 0, Satterthwaite's or Kenward-Roger's df
# and Wald limits.  Rows that are not estimable (in the null space of the full model matrix's
# rows: missing cells) are NA.  difflsmeans(): all pairwise differences of the rows.

ls_means <- function(model, ...) UseMethod("ls_means")

difflsmeans <- function(model, ...) UseMethod("difflsmeans")

ls_means.lmm <- function(model, which = NULL, level = 0.95,
                         ddf = c("Satterthwaite", "Kenward-Roger"), pairwise = FALSE, ...) {
  ddf <- match.arg(ddf)
  need_formula(model, "ls_means()")
  check_conf_level(level)
  L_list <- lsmeans_hypotheses(model, which)
  if (isTRUE(pairwise))
    L_list <- lapply(L_list, function(L) crossprod(pairwise_differences(rownames(L)), L))
  coef_names <- names(model$beta)
  N <- null_space(full_model_matrix(model))
  setup <- if (length(L_list)) ddf_setup(model, ddf)
  tabs <- lapply(L_list, function(L) {
    L[!is_estimable(L, N), ] <- NA_real_
    L <- L[, coef_names, drop = FALSE]
    tab <- do.call(rbind, lapply(seq_len(nrow(L)), function(i) {
      if (anyNA(L[i, ])) return(na_t_row())
      add_wald_limits(contest_t(setup, L[i, ]), level)
    }))
    rownames(tab) <- rownames(L)
    tab
  })
  means <- do.call(rbind, c(list(empty_t_table(TRUE)), unname(tabs)))
  if (length(tabs)) rownames(means) <- unlist(lapply(tabs, rownames), use.names = FALSE)
  structure(means, response = deparse1(formula(model)[[2L]]), confidence_level = level,
            ddf = ddf, hypotheses = L_list, heading = "Least Squares Means table:\n",
            class = c("ls_means_lmm", "data.frame"))
}

# Without lmmc's method (an lmer fit, say): lmerTest's when it is installed.
ls_means.default <- function(model, ...) {
  forward_to_lmerTest("ls_means", model, match.call(), parent.frame())
}

difflsmeans.default <- function(model, ...) {
  forward_to_lmerTest("difflsmeans", model, match.call(), parent.frame())
}

difflsmeans.lmm <- function(model, which = NULL, level = 0.95,
                            ddf = c("Satterthwaite", "Kenward-Roger"), ...) {
  ls_means.lmm(model, which = which, level = level, ddf = ddf, pairwise = TRUE)
}

na_t_row <- function() {
  na <- NA_real_
  data.frame(Estimate = na, "Std. Error" = na, df = na, "t value" = na, lower = na, upper = na,
             "Pr(>|t|)" = na, check.names = FALSE)
}

## ---- the hypotheses ---------------------------------------------------------------------------

# One matrix per factor term (in `which`): rows = the term's levels, columns = the full model
# matrix's columns (before aliased columns were dropped).
lsmeans_hypotheses <- function(model, which = NULL) {
  terms <- model$fixed_terms
  labels <- attr(terms, "term.labels")
  factor_terms <- labels[!numeric_terms(model)]
  if (is.null(which)) which <- factor_terms
  if (!is.character(which) || !all(which %in% factor_terms))
    stop("'which' must name factor terms of the model: ",
         paste(factor_terms, collapse = ", "), call. = FALSE)
  grid <- reference_grid(model)
  U <- stats::model.matrix(stats::delete.response(terms), data = grid,
                           contrasts.arg = attr(model$X, "contrasts"))
  lapply(stats::setNames(nm = which), function(t) {
    vars <- term_variables(terms, t)
    ctr <- lapply(stats::setNames(nm = vars), function(v) "contr.treatment")
    Ind <- stats::model.matrix(stats::as.formula(paste("~ 0 +", t), env = baseenv()),
                               data = grid, contrasts.arg = ctr)
    t(Ind / rep(colSums(Ind), each = nrow(Ind))) %*% U
  })
}

# Terms with a numeric variable among their variables (not factors, ordered, logical, character).
numeric_terms <- function(model) {
  terms <- model$fixed_terms
  classes <- attr(terms, "dataClasses")
  labels <- attr(terms, "term.labels")
  vapply(labels, function(t) {
    cls <- classes[term_variables(terms, t)]
    any(is.na(cls) | !cls %in% c("factor", "ordered", "logical", "character"))
  }, NA)
}

term_variables <- function(terms, t) {
  fac <- attr(terms, "factors")
  rownames(fac)[fac[, t] > 0]
}

# All combinations of the factors' levels, numeric variables at their means (lmerTest's grid).
reference_grid <- function(model) {
  terms <- model$fixed_terms
  frame <- model$frame
  levels <- stats::.getXlevels(terms, frame)
  vars <- vapply(as.list(attr(terms, "variables"))[-1L], deparse2, "")
  if (attr(terms, "response") > 0) vars <- vars[-attr(terms, "response")]
  nums <- lapply(frame[intersect(vars, names(frame))], function(x) if (is.numeric(x)) mean(x))
  nums <- nums[!vapply(nums, is.null, NA)]
  do.call(expand.grid, c(if (is.null(levels)) list() else levels, nums))
}

# X remade from the model frame with its contrasts, aliased columns kept.
full_model_matrix <- function(model) {
  stats::model.matrix(model$fixed_terms, data = model$frame,
                      contrasts.arg = attr(model$X, "contrasts"))
}

# Basis of the right null space of A (singular values below 1e-8 of the largest count as zero).
null_space <- function(A) {
  s <- svd(A, nv = ncol(A))
  rank <- sum(s$d > max(1e-8 * s$d[1L], 0))
  s$v[, setdiff(seq_len(ncol(A)), seq_len(rank)), drop = FALSE]
}

# l is estimable when it is orthogonal to the null space of X: |sum(l N)| < tol (lmerTest).
is_estimable <- function(L, N, tol = sqrt(.Machine$double.eps)) {
  if (!length(N)) return(rep(TRUE, nrow(L)))
  abs(rowSums(L %*% N)) < tol
}

# Columns "a - b" for every pair of levels (a before b): +1 at a, -1 at b.
pairwise_differences <- function(levs) {
  if (length(levs) < 2L) stop("pairwise differences need at least two levels", call. = FALSE)
  pairs <- utils::combn(seq_along(levs), 2L)
  D <- matrix(0, length(levs), ncol(pairs),
              dimnames = list(levs, paste(levs[pairs[1L, ]], levs[pairs[2L, ]], sep = " - ")))
  D[cbind(pairs[1L, ], seq_len(ncol(pairs)))] <- 1
  D[cbind(pairs[2L, ], seq_len(ncol(pairs)))] <- -1
  D
}

## ---- printing -------------------------------------------------------------------------------

print.ls_means_lmm <- function(x, digits = max(getOption("digits") - 2L, 3L),
                               signif.stars = getOption("show.signif.stars"), ...) {
  if (!is.null(heading <- attr(x, "heading"))) cat(heading, sep = "\n")
  tab <- as.data.frame.ls_means_lmm(x, add_levels = FALSE)
  if (nrow(tab)) tab$df <- round(tab$df, 1)
  printCoefmat(tab, digits = digits, signif.stars = signif.stars, has.Pvalue = TRUE,
               cs.ind = c(1:2, 5:6), tst.ind = 4)
  cat(paste0("\n  Confidence level: ", format(100 * attr(x, "confidence_level"), digits = 2),
             "%\n"))
  cat("  Degrees of freedom method:", attr(x, "ddf"), "\n")
  invisible(x)
}

# add_levels = TRUE: columns `term` and `levels` (the level labels without the variable names)
# before the table, as lmerTest's as.data.frame.ls_means.
as.data.frame.ls_means_lmm <- function(x, ..., add_levels = TRUE) {
  out <- x
  attributes(out) <- attributes(x)[c("names", "row.names")]
  class(out) <- "data.frame"
  if (!add_levels) return(out)
  hyp <- attr(x, "hypotheses")
  lev <- lapply(names(hyp), function(t) level_labels(t, rownames(hyp[[t]])))
  cbind(term = rep(names(hyp), lengths(lev)), levels = unlist(lev), out,
        stringsAsFactors = FALSE)
}

# "SexFemale" -> "Female", "Sex:AgeA - ..." -> per side; variable names removed from each part.
level_labels <- function(term, rows) {
  strip <- function(txt) {
    pattern <- paste(paste0("^", strsplit(term, ":", fixed = TRUE)[[1L]]), collapse = "|")
    vapply(strsplit(txt, ":", fixed = TRUE), function(p) paste(sub(pattern, "", p), collapse = ":"),
           "")
  }
  if (length(rows) && all(grepl(" - ", rows, fixed = TRUE)))
    vapply(strsplit(rows, " - ", fixed = TRUE), function(s) paste(strip(s), collapse = " - "), "")
  else strip(rows)
}
