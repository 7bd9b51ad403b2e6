## Fixed effects, conditional modes of the random effects (ranef) and per-group coefficients (coef).

fixef.lmm <- function(object, add.dropped = FALSE, ...) {
  beta <- object$beta
  dropped <- attr(object$X, "col.dropped")
  if (!isTRUE(add.dropped) || !length(dropped)) return(beta)
  # the full coefficient vector in the original column order, NA where a column was dropped
  full <- nms <- rep(NA, length(beta) + length(dropped))
  full[-dropped] <- beta
  nms[-dropped] <- names(beta)
  nms[dropped] <- names(dropped)
  setNames(as.numeric(full), nms)
}

## The distinct grouping factors in term order (lme4's "flist"), with attribute "assign" giving,
## for each random-effects term, the index of its grouping factor. Terms sharing a grouping factor
## (same name), e.g. (1|Subject) + (0+Days|Subject), share one entry.
re_flist <- function(reterms) {
  nms <- vapply(reterms, `[[`, "", "name")
  keep <- !duplicated(nms)
  fl <- lapply(reterms[keep], `[[`, "group")
  names(fl) <- nms[keep]
  structure(fl, assign = match(nms, nms[keep]))
}

## Conditional modes of one term as an nl x p matrix: b is stored level-major within the term.
term_b_matrix <- function(b, reterms) {
  p <- vapply(reterms, function(tm) length(tm$cnms), 1L)
  nl <- vapply(reterms, function(tm) nlevels(tm$group), 1L)
  if (!length(p)) return(list())                    # no random effects (a gls fit)
  pieces <- split(b, rep.int(seq_along(p), p * nl))
  lapply(seq_along(p), function(i)
    matrix(pieces[[i]], ncol = p[i], byrow = TRUE,
           dimnames = list(levels(reterms[[i]]$group), reterms[[i]]$cnms)))
}

ranef.lmm <- function(object, condVar = TRUE, drop = FALSE, whichel = names(ans),
                      postVar = FALSE, ...) {
  if (...length() > 0L)
    warning("additional arguments to ranef.lmm ignored: ", paste(...names(), collapse = ", "),
            call. = FALSE)
  if (!missing(postVar) && missing(condVar)) condVar <- postVar
  # an iterative fit has no factor for the conditional variances: by default none (R/iterative.R)
  if (missing(condVar) && missing(postVar) && !is.null(object$iterative)) condVar <- FALSE
  fl <- re_flist(object$reterms)
  asgn <- attr(fl, "assign")
  bm <- term_b_matrix(object$b, object$reterms)
  ans <- lapply(seq_along(fl), function(j) {
    m <- do.call(cbind, bm[asgn == j])
    data.frame(m, row.names = levels(fl[[j]]), check.names = FALSE)
  })
  names(ans) <- names(fl)
  if (!is.character(whichel)) stop("'whichel' must be a character vector", call. = FALSE)
  if (condVar) ans <- attach_condvar(ans, fit_condvar(object), object$reterms, asgn)
  ans <- ans[names(ans) %in% whichel]
  if (drop) ans <- lapply(ans, drop_ranef_df)
  structure(ans, class = "ranef.lmm")
}

## postVar attribute per grouping factor: the term's p x p x nl array, or, when several terms share
## the factor, a list of their arrays named by their column names (as lme4 names them).
attach_condvar <- function(ans, condvar, reterms, asgn) {
  for (j in seq_along(ans)) {
    idx <- which(asgn == j)
    pv <- if (length(idx) == 1L) condvar[[idx]] else {
      cv <- condvar[idx]
      names(cv) <- vapply(idx, function(i) as.character(list(reterms[[i]]$cnms)), "")
      cv
    }
    attr(ans[[j]], "postVar") <- pv
  }
  ans
}

## drop = TRUE: one-column data frames become named vectors (postVar dropped to a vector).
drop_ranef_df <- function(el) {
  if (ncol(el) > 1L) return(el)
  pv <- attr(el, "postVar")
  v <- setNames(el[[1L]], rownames(el))
  if (!is.null(pv)) attr(v, "postVar") <- drop(pv)
  v
}

print.ranef.lmm <- function(x, ...) {
  print(unclass(x), ...)
  has_pv <- vapply(x, function(el) !is.null(attr(el, "postVar")), NA)
  if (any(has_pv))
    cat("with conditional variances for", paste(dQuote(names(x)[has_pv]), sep = ", "), "\n")
  invisible(x)
}

## Long format as lme4: grpvar, term, grp, condval, condsd; rows run over factors, then columns,
## then levels. grp is a factor whose levels are ordered by the mean condval of the first column.
as.data.frame.ranef.lmm <- function(x, ...) {
  pieces <- lapply(names(x), function(g) ranef_long(x[[g]], g))
  do.call(rbind, pieces)
}

ranef_long <- function(df, g) {
  df <- as.data.frame(df, check.names = FALSE)
  rn <- rownames(df)
  k <- ncol(df)
  grp <- factor(rn)
  grp <- stats::reorder(grp, df[[1L]], FUN = mean)   # levels sorted by first column's mode
  out <- data.frame(grpvar = g,
                    term = factor(rep(colnames(df), each = nrow(df)), levels = colnames(df)),
                    grp = rep.int(grp, k),
                    condval = unlist(df, use.names = FALSE),
                    stringsAsFactors = FALSE)
  pv <- attr(df, "postVar")
  if (!is.null(pv)) {
    arrays <- if (is.list(pv)) pv else list(pv)
    out$condsd <- unlist(lapply(arrays, condsd_of_array), use.names = FALSE)
  }
  out
}

## Conditional SDs from a p x p x nl array: column by column, level by level.
condsd_of_array <- function(a) {
  unlist(lapply(seq_len(dim(a)[1L]), function(j) sqrt(a[j, j, ])))
}

## coef(): fixed effects plus each grouping factor's conditional modes, one data frame per factor.
coef.lmm <- function(object, ...) {
  if (...length() > 0L) warning("arguments named ", paste(sQuote(...names()), collapse = ", "),
                                " ignored", call. = FALSE)
  if (!length(object$reterms)) return(fixef(object))   # a gls fit: nlme's coef(gls)
  fe <- data.frame(rbind(fixef(object)), check.names = FALSE)
  re <- ranef(object, condVar = FALSE)
  missing_cols <- setdiff(unlist(lapply(re, colnames)), names(fe))
  if (length(missing_cols))                         # random-only columns: fixed part 0
    fe <- cbind(setNames(data.frame(rbind(rep(0, length(missing_cols)))), missing_cols), fe)
  val <- lapply(re, function(r) {
    v <- fe[rep.int(1L, nrow(r)), , drop = FALSE]
    row.names(v) <- row.names(r)
    for (nm in colnames(r)) v[[nm]] <- v[[nm]] + r[[nm]]
    v
  })
  structure(val, class = "coef.lmm")
}

print.coef.lmm <- function(x, ...) {
  print(unclass(x), ...)
  invisible(x)
}
