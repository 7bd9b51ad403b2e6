# Fits from aggregated data: the engine needs the data only through A = G'WG, G = [Z X y]
# (R/objective.R), so a table in a database (R/database.R) or data read in chunks is reduced to
# the moments of its "cells" -- the observed combinations of the grouping factors and factor
# covariates -- and R holds those, never the rows.
#
# Within a cell every grouping code and factor is constant, so each column of G is a constant
# (the factor part, from R's own model.matrix) times a numeric "monomial" (the product of the
# numeric variables of the column's term; 1 for the intercept), and y - offset is one more.  With
# v_i the cell's monomials of row i and w_i its prior weight, the cell contributes
#     sum_i w_i g_i g_i' = F_c' M_c F_c,   M_c = sum_i w_i [1 v_i][1 v_i]'
# (F_c the cell's factor parts), and M_c is all the database has to send: the count, sum w,
# sum w v and sum w v v' per cell (one GROUP BY).  Writing M_c = W_c [1 m'; m S + m m'] (mean m,
# covariance S = sum_j l_j l_j' with r terms, e.g. its Cholesky factor's columns), the 2r points
#     v = m +- sqrt(r) l_j,  weight W_c / (2r)
# have the same M_c (their mean is m, their covariance (1/2r) sum_j 2 r l_j l_j' = S), so
# these "pseudo-rows" through the unchanged engine give exactly the data's A.  Their first
# column is 1, so the engine's own centring and scaling (src/standardise.c) apply as usual.  The
# engine is told the three things the pseudo-rows do not carry (src/counts.c): n, the
# observations per level, and log|W| = sum_i log w_i.
#
# The sums are taken about a shift a (the monomials' mean in a sample of rows), so that a cell's
# covariance loses only the digits of (cell mean - a)^2 / variance, as the engine's centred A.

# ---- the model, as aggregation needs it ----------------------------------------------------

# What to aggregate for `formula`: the key columns (grouping variables, and the variables of
# factor covariates), the monomials (each a character vector of numeric variable labels), the
# response minus offsets, the weights, and every column the rows need (for na.omit).  `proto`:
# a few rows of the data (their types; no rows is enough).  random = FALSE: a model without
# random terms (a refit by R/refit-aggregated.R) is allowed.
aggregate_spec <- function(formula, proto, weights, offset, env, random = TRUE) {
  formula <- check_formula(formula, env)
  formula <- expand_formula(formula, proto)
  bars <- find_bars(formula)
  if (!length(bars) && random) stop("no random effects terms specified in formula", call. = FALSE)
  check_variables_in(formula, proto, weights, offset)
  ftt <- stats::terms(frame_formula(formula))
  fvars <- as.list(attr(ftt, "variables"))[-1L]
  names(fvars) <- vapply(fvars, deparse_var, "")
  off_idx <- attr(ftt, "offset")
  offsets <- c(lapply(fvars[off_idx], `[[`, 2L), if (!is.null(offset)) list(offset))
  tts <- c(list(stats::terms(fixed_formula(formula))),
           lapply(bars, function(b) stats::terms(make_formula(call("~", b[[2L]]), env))))
  used <- unique(unlist(lapply(tts, function(tt) rownames(attr(tt, "factors")))))
  used <- setdiff(used, c(names(fvars)[1L], names(fvars)[off_idx]))
  keys <- unique(unlist(lapply(bars, function(b) all.vars(b[[3L]]))))
  for (v in used) {
    x <- tryCatch(eval(fvars[[v]], proto, env), error = function(e) NULL)
    if (is.factor(x) || is.character(x) || is.logical(x)) keys <- union(keys, all.vars(fvars[[v]]))
    else if (!is.numeric(x) || !is.null(dim(x)) || length(x) != nrow(proto)) stop_push_down(v)
  }
  numeric_vars <- used[!vapply(used, function(v) all(all.vars(fvars[[v]]) %in% keys), NA)]
  monomials <- unique(unlist(lapply(tts, term_monomials, numeric_vars = numeric_vars),
                             recursive = FALSE))
  monomials <- monomials[lengths(monomials) > 0L]
  check_numeric_in(formula[[2L]], proto, env, "the response")
  check_numeric_in(weights, proto, env, "'weights'")
  for (o in offsets) check_numeric_in(o, proto, env, "the offset")
  response <- Reduce(function(a, b) call("-", a, call("(", b)), offsets, formula[[2L]])
  columns <- unique(c(all.vars(formula), all.vars(weights), all.vars(offset)))
  list(formula = formula, bars = bars, frame_terms = ftt, frame_vars = fvars, keys = keys,
       numeric_vars = numeric_vars, monomials = monomials, response = response, offsets = offsets,
       weights = weights, offset_arg = offset, columns = columns, env = env)
}

check_variables_in <- function(formula, proto, weights, offset) {
  vars <- unique(c(all.vars(formula), all.vars(weights), all.vars(offset)))
  miss <- vars[!vars %in% names(proto) & !vapply(vars, exists, NA, envir = environment(formula))]
  if (length(miss))
    stop(sprintf("variable%s %s not found in the table", if (length(miss) > 1L) "s" else "",
                 paste0("'", miss, "'", collapse = ", ")), call. = FALSE)
  outside <- setdiff(vars, names(proto))
  if (length(outside))
    stop(sprintf(paste("variable%s %s not in the table: with a table as 'data' every variable",
                       "must be one of its columns"), if (length(outside) > 1L) "s" else "",
                 paste0("'", outside, "'", collapse = ", ")), call. = FALSE)
}

# expr (the response, weights, an offset) must be numeric in the sample rows.
check_numeric_in <- function(expr, proto, env, what) {
  if (is.null(expr)) return(invisible(NULL))
  x <- tryCatch(eval(expr, proto, env), error = function(e) NULL)
  if (!is.numeric(x) || !is.null(dim(x)))
    stop(sprintf("%s (%s) must be a numeric column or a numeric expression of columns", what,
                 deparse1(expr)), call. = FALSE)
  invisible(NULL)
}

# The monomial of each term of tt: its numeric (not key-determined) variables, sorted.
term_monomials <- function(tt, numeric_vars) {
  fm <- attr(tt, "factors")
  if (!length(fm)) return(list(character(0)))
  lapply(seq_len(ncol(fm)), function(j) sort(intersect(rownames(fm)[fm[, j] > 0], numeric_vars)))
}

monomial_name <- function(m) if (length(m)) paste(m, collapse = "*") else "1"

# The columns aggregated: the monomials, then y - offset (last).
moment_exprs <- function(spec) {
  exprs <- lapply(spec$monomials, function(m)
    Reduce(function(a, b) call("*", a, b), lapply(m, function(v) spec$frame_vars[[v]])))
  c(exprs, list(spec$response))
}

# ---- the fit -------------------------------------------------------------------------------

# lmm() for an aggregate source: the cell moments from the source, the model's pieces on the
# pseudo-rows, the fit, and a result that knows its rows are not the data's.
lmm_aggregated <- function(formula, src, REML, weights, offset, contrasts, control, start, env) {
  used <- unique(c(all.vars(check_formula(formula, env)), all.vars(weights), all.vars(offset)))
  proto <- source_sample(src, complete = used)
  spec <- aggregate_spec(formula, proto, weights, offset, env)
  spec$shift <- moment_shift(spec, proto)
  cm <- cell_moments(src, spec)
  if (!length(cm$W)) stop("no observations: 0 (non-NA) cases in the table", call. = FALSE)
  if (cm$wmin <= 0)
    stop("zero or negative weights are not supported: drop those rows", call. = FALSE)
  pr <- pseudo_rows(cm)
  fit <- fit_aggregated(spec, cm, pr, REML, contrasts, control, start, src,
                        unweighted_pseudo_rows(cm))
  fit$aggregate$proto <- proto[0L, , drop = FALSE]          # the columns' types, for refits
  fit
}

# The fit from the cells' pseudo-rows (pr) of the model spec.  It keeps what refits with other
# formulas need (R/refit-aggregated.R): the cells (keys, counts, sum log w, means) and their
# pseudo-rows, and with weights the pseudo-rows of the monomials' unweighted moments (pu).
fit_aggregated <- function(spec, cm, pr, REML, contrasts, control, start, src, pu = NULL) {
  pieces <- aggregated_pieces(spec, cm, pr, REML, contrasts, control)
  fit <- fit_checked(pieces$y, pieces$X, pieces$reterms, pr$w, numeric(length(pr$w)),
                     pieces$REML, control, start, NULL, counts = pieces$counts)
  fit$counts <- pieces$counts
  fit$fitted <- NULL
  fit$formula <- spec$formula
  fit$frame <- summary_frame(pieces$frame, spec, cm, pr)
  fit$fixed_terms <- pieces$fixed_terms
  fit$data_source <- source_label(src)
  fit$cells <- c(pieces$cells, list(keys = cm$keys))        # for db_augment()
  fit$spec <- spec
  fit$source <- src
  fit$aggregate <- list(cm = cm[c("keys", "n", "sumlogw", "lw", "means")], pr = pr,
                        contrasts = contrasts, unweighted = pu)
  class(fit) <- c("lmm_aggregated", class(fit))
  fit
}

# With weights: pseudo-rows of the monomials' unweighted moments (count, sum v, sum v v' per
# cell), weights summing to each cell's count; NULL without weights (pr are those).
unweighted_pseudo_rows <- function(cm) {
  if (is.null(cm$T1)) return(NULL)
  M <- ncol(cm$T1)
  if (!M) return(list(cell = seq_along(cm$n), V = matrix(0, length(cm$n), 0L), w = cm$n))
  pseudo_rows(list(W = cm$n, S1 = cm$T1, S2 = cm$T2, shift = cm$shift[seq_len(M)], n = cm$n))
}

# The shift a: the monomials' means over the sample's complete rows (0 where there is none).
moment_shift <- function(spec, proto) {
  ok <- stats::complete.cases(proto[, intersect(spec$columns, names(proto)), drop = FALSE])
  rows <- proto[ok, , drop = FALSE]
  vapply(moment_exprs(spec), function(e) {
    v <- tryCatch(as.double(eval(e, rows, spec$env)), error = function(err) NA_real_)
    a <- mean(v[is.finite(v)])
    if (is.finite(a)) signif(a, 8) else 0
  }, 0)
}

# The model's pieces on the pseudo-rows: the frame (keys per cell, numeric variables 1), X and
# the random-effects terms' model matrices as factor parts times monomials, the counts.
aggregated_pieces <- function(spec, cm, pr, REML, contrasts, control) {
  control <- as_lmm_control(control)
  REML <- single_flag(REML, "REML")
  frame <- pseudo_frame(spec, cm, pr)
  D <- length(spec$shift)
  y <- pr$V[, D]
  n <- as.integer(sum(cm$n))
  first <- !duplicated(pr$cell)                     # each cell's first pseudo-row
  fixed <- fixed_design(spec$formula, frame, contrasts)
  X <- times_monomials(fixed$X, fixed$terms, spec, pr$V)
  cell_fixed <- cell_parts(fixed$X, fixed$terms, spec, first)
  reterms <- lapply(spec$bars, function(bar) {
    term <- make_reterm(bar, frame, spec$env)
    mm <- stats::model.matrix(term$lhs_terms, sub_frame(frame, term$lhs_terms,
                                                        term_vars(term$lhs_terms)))
    Xt <- structure(term$Xt, assign = attr(mm, "assign"))
    term$cell <- cell_parts(Xt, term$lhs_terms, spec, first)
    term$Xt <- times_monomials(Xt, term$lhs_terms, spec, pr$V)
    attr(term$Xt, "assign") <- NULL
    term$group <- droplevels(term$group)
    term$cell$level <- as.integer(term$group)[first]
    term
  })
  nl <- vapply(reterms, function(term) nlevels(term$group), 0L)
  reterms <- reterms[reterms_order(nl)]
  cell_terms <- lapply(reterms, `[[`, "cell")
  reterms <- lapply(reterms, function(term) { term$cell <- NULL; term })
  check_levels(reterms, n, control)
  check_zero_columns(reterms)
  attr(reterms, "checked") <- TRUE
  X <- drop_aliased(X, control$check.rankX)
  check_reml_df(n, ncol(X), REML)
  nrows <- lapply(reterms, function(term) {
    level <- as.integer(term$group)[!duplicated(pr$cell)]        # each cell's level
    as.integer(tabulate_weighted(level, cm$n, nlevels(term$group)))
  })
  attr(frame, "terms") <- fixed$terms
  list(y = y, X = X, reterms = reterms, REML = REML, frame = frame,
       fixed_terms = fixed$terms, cells = list(fixed = cell_fixed, terms = cell_terms),
       counts = list(n = n, nrows = nrows, sumlogw = cm$sumlogw))
}

tabulate_weighted <- function(code, w, nbins) {
  out <- numeric(nbins)
  s <- rowsum(as.double(w), code)
  out[as.integer(rownames(s))] <- s[, 1L]
  out
}

# The frame of the pseudo-rows: key-determined variables evaluated on the cells, numeric ones 1,
# the response y - offset, offsets 0.
pseudo_frame <- function(spec, cm, pr) {
  cells <- chars_to_factors(cm$keys)
  fv <- spec$frame_vars
  cols <- lapply(names(fv), function(v) {
    if (v == names(fv)[1L]) return(pr$V[, ncol(pr$V)])
    if (v %in% names(fv)[attr(spec$frame_terms, "offset")]) return(numeric(length(pr$cell)))
    if (v %in% spec$numeric_vars) return(rep(1, length(pr$cell)))
    x <- eval(fv[[v]], cells, spec$env)
    if (is.character(x)) x <- factor(x)
    if (is.factor(x)) x <- droplevels(x)              # model.frame's drop.unused.levels
    x[pr$cell]
  })
  names(cols) <- names(fv)
  tt <- spec$frame_terms
  attr(tt, "predvars") <- attr(tt, "variables")
  structure(cols, terms = tt, row.names = .set_row_names(length(pr$cell)),
            class = "data.frame")
}

# The frame the fit keeps (for predict's factor levels and the reference grids of emmeans and
# ls_means): the pseudo frame with each numeric variable that is a column of its own at its
# pseudo values shifted to the data's mean (the frame's mean is then the data's, and its model
# matrix has X's rank), and the others at the data's mean.
summary_frame <- function(frame, spec, cm, pr) {
  names_m <- vapply(spec$monomials, monomial_name, "")
  for (v in spec$numeric_vars) {
    k <- match(v, names_m)
    frame[[v]] <- if (is.na(k)) rep(cm$means[[v]], nrow(frame)) else
      pr$V[, k] - mean(pr$V[, k]) + cm$means[[v]]
  }
  frame
}

# Column j of M (a model matrix on the pseudo frame) times the monomial of its term.
times_monomials <- function(M, tt, spec, V) {
  k <- column_monomials(M, tt, spec)
  for (j in which(k > 0L)) M[, j] <- M[, j] * V[, k[j]]
  M
}

# The monomial (its index in spec$monomials; 0 for the constant 1) of each column of M.
column_monomials <- function(M, tt, spec) {
  mono <- term_monomials(tt, spec$numeric_vars)
  names_m <- vapply(spec$monomials, monomial_name, "")
  vapply(attr(M, "assign"), function(a)
    if (a == 0L || !length(mono[[a]])) 0L else match(monomial_name(mono[[a]]), names_m), 0L)
}

# Each cell's factor parts of M's columns and their monomials (R/augment-table.R).
cell_parts <- function(M, tt, spec, first) {
  list(F = unclass_matrix(M[first, , drop = FALSE]), names = colnames(M),
       mono = column_monomials(M, tt, spec))
}

# lmm()'s arguments that an aggregate source cannot honour.
check_aggregate_args <- function(mc, correlation, variance) {
  if (!is.null(correlation) || !is.null(variance))
    stop("residual correlation/variance structures need the rows: with a table as 'data' only ",
         "models without 'correlation' and 'variance' can be fitted", call. = FALSE)
  if (!is.null(mc$subset))
    stop("'subset' is not available with a table as 'data': filter the table (a view, or ",
         "dplyr::filter() on a dbplyr table) instead", call. = FALSE)
  if (!is.null(mc$na.action) && !deparse1(mc$na.action) %in% c("na.omit", "na.exclude"))
    stop("with a table as 'data' rows with missing values are dropped (na.omit); 'na.action' ",
         "cannot be changed", call. = FALSE)
  invisible(NULL)
}
