# Stage 1: formula + data -> model pieces (response y, fixed-effects matrix X,
# prior weights, offset and the random-effects terms), as lme4's lFormula().

lmm_pieces <- function(formula, data = NULL, REML = TRUE, weights = NULL, offset = NULL,
                       subset, na.action, contrasts = NULL, control = lmm_control(),
                       random = TRUE) {
  env <- parent.frame()
  # weights, offset and subset are evaluated in `data` first (as lm and lmer do)
  weights <- eval_in_data(substitute(weights), data, env, "weights")
  offset <- eval_in_data(substitute(offset), data, env, "offset")
  subset <- if (missing(subset)) NULL else eval_in_data(substitute(subset), data, env, "subset")
  if (missing(na.action)) na.action <- NULL
  make_pieces(formula, data, REML = REML, weights = weights, offset = offset,
              subset = subset, na.action = na.action, contrasts = contrasts,
              control = control, env = env, random = random)
}

# Standard-evaluation worker of lmm_pieces(): weights, offset and subset are
# values (or NULL). `env` is used when `formula` is a character string.
make_pieces <- function(formula, data = NULL, REML = TRUE, weights = NULL, offset = NULL,
                        subset = NULL, na.action = NULL, contrasts = NULL,
                        control = lmm_control(), env = parent.frame(), random = TRUE) {
  formula <- check_formula(formula, env)
  control <- as_lmm_control(control)
  REML <- single_flag(REML, "REML")
  data <- check_data(data)
  formula <- expand_formula(formula, data)      # `||` and `.` (R/formula.R)
  bars <- find_bars(formula)
  if (!length(bars) && !isFALSE(random))
    stop("no random effects terms specified in formula", call. = FALSE)
  check_variables(formula, data)

  frame <- build_frame(formula, data, weights, offset, subset, na.action)
  n <- nrow(frame)
  y <- response_of(frame)
  w <- weights_of(frame)
  off <- offset_of(frame)
  check_finite(frame)

  fixed <- fixed_design(formula, frame, contrasts)
  reterms <- lapply(bars, make_reterm, frame = frame, env = environment(formula))
  nl <- vapply(reterms, function(term) nlevels(term$group), 0L)
  reterms <- reterms[reterms_order(nl)]
  check_levels(reterms, n, control)         # make_reterm() gives complete terms
  check_zero_columns(reterms)
  attr(reterms, "checked") <- TRUE

  X <- drop_aliased(fixed$X, control$check.rankX)
  X <- check_scale(X, control$check.scaleX)
  check_reml_df(n, ncol(X), REML)
  attr(frame, "terms") <- fixed$terms
  structure(list(formula = formula, frame = frame, fixed_terms = fixed$terms,
                 y = y, X = X, weights = w, offset = off, reterms = reterms,
                 REML = REML),
            class = "lmm_pieces")
}

# Evaluate an argument expression in `data`, then in `env`.
eval_in_data <- function(expr, data, env, what) {
  if (is.null(expr)) return(NULL)
  tryCatch(eval(expr, data, env), error = function(e)
    stop("could not evaluate '", what, "': ", conditionMessage(e), call. = FALSE))
}

# ---- argument checks -------------------------------------------------------

check_formula <- function(formula, env) {
  if (is.character(formula)) formula <- stats::as.formula(formula, env = env)
  if (!inherits(formula, "formula"))
    stop("'formula' must be a formula such as y ~ x + (1 | g)", call. = FALSE)
  if (length(formula) != 3L)
    stop("formula has no response: use response ~ fixed + (terms | group)", call. = FALSE)
  if (is.null(environment(formula))) environment(formula) <- env
  formula
}

as_lmm_control <- function(control) {
  if (inherits(control, "lmm_control")) return(control)
  if (is.list(control)) return(do.call(lmm_control, control))
  stop("'control' must be made by lmm_control()", call. = FALSE)
}

check_data <- function(data) {
  if (is.null(data) || is.data.frame(data)) return(data)
  if (!is.null(as_aggregate_source(data)))
    stop("'data' is a table or chunks: only lmm() fits from them (the pieces need the rows)",
         call. = FALSE)
  if (is.list(data)) return(as.data.frame(data))
  stop("'data' must be a data frame", call. = FALSE)
}

# Every variable of the formula must be a column of `data` or visible from
# the formula's environment.
check_variables <- function(formula, data) {
  vars <- all.vars(formula)
  env <- environment(formula)
  found <- vars %in% names(data)
  found[!found] <- vapply(vars[!found], exists, NA, envir = env)
  if (!all(found)) {
    miss <- vars[!found]
    stop(sprintf("variable%s %s not found in 'data' or in the formula's environment",
                 if (length(miss) > 1L) "s" else "", paste0("'", miss, "'", collapse = ", ")),
         call. = FALSE)
  }
}

# ---- model frame -------------------------------------------------------------

# Model frame of every variable of both parts, with "(weights)" and
# "(offset)" when given, NA rows handled by na.action, unused factor levels
# dropped and character columns turned into factors.
build_frame <- function(formula, data, weights, offset, subset, na.action) {
  if (!is.null(weights) && !(is.numeric(weights) || is.logical(weights) && all(is.na(weights))))
    stop("'weights' must be a numeric vector", call. = FALSE)
  if (!is.null(offset) && !is.numeric(offset))
    stop("'offset' must be a numeric vector", call. = FALSE)
  if (is.null(na.action)) na.action <- getOption("na.action", "na.omit")
  frame_form <- frame_formula(formula)
  if (is.null(weights) && is.null(offset) && is.null(subset) && standard_na_action(na.action)) {
    frame <- plain_frame(frame_form, data)
    if (!is.null(frame)) return(chars_to_factors(frame))
  }
  mf <- call("model.frame", formula = quote(frame_form), data = quote(data),
             na.action = quote(na.action), drop.unused.levels = TRUE)
  mf$weights <- weights
  mf$offset <- offset
  mf$subset <- subset
  mf[[1L]] <- quote(stats::model.frame)
  frame <- tryCatch(eval(mf), error = function(e)
    stop("could not build the model frame: ", conditionMessage(e), call. = FALSE))
  if (nrow(frame) == 0L)
    stop("no observations: 0 (non-NA) cases in the data", call. = FALSE)
  chars_to_factors(frame)
}

# The na.action functions that leave data without missing values unchanged.
standard_na_action <- function(na.action) {
  if (is.character(na.action))
    return(length(na.action) == 1L && na.action %in% c("na.omit", "na.exclude", "na.fail", "na.pass"))
  any(vapply(list(stats::na.omit, stats::na.exclude, stats::na.fail, stats::na.pass),
             identical, NA, na.action))
}

chars_to_factors <- function(frame) {
  chars <- vapply(frame, is.character, NA)
  for (j in which(chars)) frame[[j]] <- factor(frame[[j]])
  frame
}

# model.frame(frame_form, data, drop.unused.levels = TRUE) for the common case, without its
# generality: `data` a data frame, no '.', no subset/weights/offset arguments, no missing
# values (so that the standard na.action functions change nothing), every variable a vector
# or matrix with one row per row of `data`, no factor with unused levels that carries
# contrasts.  The result is identical() to model.frame()'s (tests/testthat/test-model.R
# checks it); NULL when the case is not this one.
plain_frame <- function(frame_form, data) {
  if (!is.data.frame(data) || "." %in% all.vars(frame_form)) return(NULL)
  tt <- stats::terms(frame_form)
  vars <- attr(tt, "variables")
  variables <- tryCatch(eval(vars, data, environment(frame_form)), error = function(e) NULL)
  n <- .row_names_info(data, 2L)
  if (is.null(variables) || !length(variables) || n == 0L) return(NULL)
  for (v in variables)
    if (!is.atomic(v) || NROW(v) != n || anyNA(v) || length(dim(v)) > 2L) return(NULL)
  predvars <- vars
  for (i in seq_along(variables)) {
    if (!is.name(vars[[i + 1L]]))
      predvars[[i + 1L]] <- stats::makepredictcall(variables[[i]], vars[[i + 1L]])
    x <- variables[[i]]
    if (is.factor(x) && any(tabulate(x, nlevels(x)) == 0L)) {
      if (!is.null(attr(x, "contrasts"))) return(NULL)
      variables[[i]] <- x[, drop = TRUE]
    }
  }
  names(variables) <- vapply(as.list(vars)[-1L], deparse_var, "")
  attr(tt, "predvars") <- predvars
  attr(tt, "dataClasses") <- vapply(variables, stats::.MFclass, "")
  structure(variables, terms = tt, row.names = .row_names_info(data, 0L), class = "data.frame")
}

response_of <- function(frame) {
  y <- .subset2(frame, 1L)
  name <- names(frame)[1L]
  if (!is.numeric(y) || !is.null(dim(y)) && NCOL(y) != 1L)
    stop("response '", name, "' must be a numeric vector", call. = FALSE)
  y <- as.double(y)
  if (anyNA(y))
    stop("response '", name, "' has missing values: use na.action = na.omit", call. = FALSE)
  if (any(is.infinite(y)))
    stop("response '", name, "' has infinite values", call. = FALSE)
  if (min(y) == max(y))
    stop("response is constant", call. = FALSE)
  check_response_scale(y, paste0("response '", name, "'"))
}

weights_of <- function(frame) {
  w <- stats::model.weights(frame)
  if (is.null(w)) return(rep(1, nrow(frame)))
  if (anyNA(w)) stop("missing (NA) weights not allowed", call. = FALSE)
  if (any(is.infinite(w))) stop("infinite weights not allowed", call. = FALSE)
  if (any(w < 0)) stop("negative weights not allowed", call. = FALSE)
  if (any(w == 0))
    stop(sprintf("zero weights are not supported (%d rows): drop those rows", sum(w == 0)),
         call. = FALSE)
  as.double(w)
}

# Sum of the offset() terms of the formula and the offset argument.
offset_of <- function(frame) {
  off <- stats::model.offset(frame)
  if (is.null(off)) return(rep(0, nrow(frame)))
  if (any(!is.finite(off))) stop("offset has missing or infinite values", call. = FALSE)
  as.double(off)
}

# Inf/-Inf in any numeric variable is an error naming the variable.
check_finite <- function(frame) {
  for (v in names(frame)[-1L]) {
    x <- .subset2(frame, v)
    if (is.numeric(x) && any(is.infinite(x)))
      stop("variable '", v, "' has infinite values", call. = FALSE)
  }
}

# Name model.frame() gives the column of variable expression `x`.
deparse_var <- function(x) {
  if (is.symbol(x)) return(as.character(x))
  paste(deparse(x, width.cutoff = 500L, backtick = !is.symbol(x) && is.language(x)),
        collapse = " ")
}

term_vars <- function(tt) vapply(as.list(attr(tt, "variables"))[-1L], deparse_var, "")

# Columns `vars` of `frame` (the variables of terms object `tt`), as a model frame of its own.
sub_frame <- function(frame, tt, vars) {
  structure(.subset(frame, vars), names = vars, terms = tt,
            row.names = .row_names_info(frame, 0L), class = "data.frame")
}

# model.matrix(tt, sub) when every term is a plain numeric variable (no factor, no
# interaction, no matrix): the columns themselves, after an intercept column when tt has
# one.  Attributes as model.matrix gives them, without row names; NULL in any other case.
numeric_design <- function(tt, sub) {
  labels <- attr(tt, "term.labels")
  vars <- names(sub)
  if (attr(tt, "response") > 0L) vars <- vars[-1L]
  if (length(labels) && (any(attr(tt, "order") != 1L) || !identical(labels, vars)))
    return(NULL)
  cols <- .subset(sub, labels)
  for (x in cols) if (!is.numeric(x) || !is.null(attributes(x))) return(NULL)
  intercept <- attr(tt, "intercept") == 1L
  n <- .row_names_info(sub, 2L)
  X <- matrix(1, n, intercept + length(labels),
              dimnames = list(NULL, c(if (intercept) "(Intercept)", labels)))
  for (j in seq_along(cols)) X[, intercept + j] <- cols[[j]]     # in place: no n x p copies
  attr(X, "assign") <- c(if (intercept) 0L, seq_along(labels))
  X
}

# ---- fixed effects -------------------------------------------------------------

# Terms of response ~ fixed part (with predvars of the frame, for predict)
# and the model matrix X.
fixed_design <- function(formula, frame, contrasts) {
  tt <- stats::terms(fixed_formula(formula))
  vars <- term_vars(tt)
  idx <- match(vars, names(frame))         # the frame's columns are named by term_vars()
  if (anyNA(idx))
    stop("internal error: fixed-effects variables missing from the model frame", call. = FALSE)
  predvars <- as.list(attr(attr(frame, "terms"), "predvars"))[-1L]
  attr(tt, "predvars") <- as.call(c(as.name("list"), predvars[idx]))
  sub <- sub_frame(frame, tt, vars)
  attr(tt, "dataClasses") <- vapply(sub, stats::.MFclass, "")
  attr(sub, "terms") <- tt
  X <- numeric_design(tt, sub)
  if (is.null(X)) {
    X <- stats::model.matrix(tt, sub, contrasts.arg = contrasts)
    rownames(X) <- NULL        # the frame's row names are kept once, in the frame (n strings)
  }
  if (anyNA(X))
    stop("missing values in the fixed-effects variables: use na.action = na.omit",
         call. = FALSE)
  list(terms = tt, X = X)
}

# Drop aliased columns of X as lme4 does: pivoted QR with tolerance 1e-7,
# keep the first rank(X) pivots. attr(X, "dropped") names the dropped columns and
# attr(X, "col.dropped") gives their positions in the original X (named, as lme4's).
drop_aliased <- function(X, action) {
  attr(X, "dropped") <- character(0)
  p <- ncol(X)
  if (action == "ignore" || p == 0L) return(X)
  qx <- qr(unclass_matrix(X), tol = 1e-7, LAPACK = FALSE)
  r <- qx$rank
  if (r == p) return(X)
  if (action == "stop.deficient")
    stop(sprintf(paste("the fixed-effects model matrix is column rank deficient",
                       "(rank(X) = %d < %d = p); the fixed effects will be jointly",
                       "unidentifiable"), r, p), call. = FALSE)
  msg <- sprintf(ngettext(p - r,
                          "fixed-effect model matrix is rank deficient so dropping %d column / coefficient",
                          "fixed-effect model matrix is rank deficient so dropping %d columns / coefficients"),
                 p - r)
  if (action == "message+drop.cols") message(msg)
  if (action == "warn+drop.cols") warning(msg, call. = FALSE)
  keep <- sort(qx$pivot[seq_len(r)])
  contr <- attr(X, "contrasts")
  asgn <- attr(X, "assign")
  out <- X[, keep, drop = FALSE]
  attr(out, "assign") <- asgn[keep]
  if (!is.null(contr)) attr(out, "contrasts") <- contr
  attr(out, "dropped") <- colnames(X)[-keep]
  attr(out, "col.dropped") <- setNames(seq_len(p)[-keep], colnames(X)[-keep])   # as lme4
  out
}

unclass_matrix <- function(X) {
  attributes(X) <- list(dim = dim(X))
  X
}

# Predictors on very different scales: standard deviations of the non-0/1 columns
# differing by more than a factor 1000 from each other or from 1 (lme4's check.scaleX).
check_scale <- function(X, action) {
  if (action == "ignore" || ncol(X) == 0L) return(X)
  logsd <- numeric()
  for (j in seq_len(ncol(X))) {                  # column by column: no n x p temporaries
    x <- X[, j]
    if (all(x == 0 | x == 1)) next
    logsd <- c(logsd, log(sum((x - mean(x))^2) / (length(x) - 1)) / 2)
  }
  if (length(logsd) && (any(abs(logsd) > log(1000)) || diff(range(logsd)) > log(1000)))
    check_action(action, paste("Some predictor variables are on very different scales:",
                               "consider rescaling"))
  X
}

# ---- random effects ------------------------------------------------------------

# One random-effects term (lhs | g): grouping factor, its lme4 name, the
# model matrix of ~ lhs on the frame (columns cnms).
make_reterm <- function(bar, frame, env) {
  lhs <- bar[[2L]]
  gexpr <- bar[[3L]]
  group <- eval_group(gexpr, frame, env)
  tt <- stats::terms(make_formula(call("~", lhs), env))
  vars <- term_vars(tt)
  idx <- match(vars, names(frame))
  if (!anyNA(idx)) {
    predvars <- as.list(attr(attr(frame, "terms"), "predvars"))[-1L]
    attr(tt, "predvars") <- as.call(c(as.name("list"), predvars[idx]))
  }
  Xt <- lhs_matrix(tt, frame, bar, vars)
  list(group = group, name = bar_group_name(bar), cnms = colnames(Xt), Xt = Xt,
       lhs = lhs, gexpr = gexpr, lhs_terms = tt)
}

# Model matrix of ~ lhs (default contrasts, as lme4) without attributes.
lhs_matrix <- function(tt, frame, bar, vars) {
  if (!length(vars) && attr(tt, "intercept") == 0L)
    stop("random-effects term (", deparse1(bar), ") has no columns", call. = FALSE)
  sub <- sub_frame(frame, tt, vars)
  mm <- numeric_design(tt, sub)
  if (is.null(mm)) mm <- stats::model.matrix(tt, sub)
  if (ncol(mm) == 0L)
    stop("random-effects term (", deparse1(bar), ") has no columns", call. = FALSE)
  if (anyNA(mm))
    stop("missing values in random-effects term (", deparse1(bar),
         "): use na.action = na.omit", call. = FALSE)
  cn <- colnames(mm)
  mm <- unclass_matrix(mm)
  storage.mode(mm) <- "double"
  colnames(mm) <- cn
  mm
}

# Validate (and complete) a list of random-effects terms for n observations:
# each needs a grouping factor `group` of length n (atomic vectors are turned
# into factors, unused levels dropped) and a numeric n x p matrix `Xt`;
# `name` and `cnms` get defaults. With `control`, lme4's checks on the
# numbers of levels and of random effects are applied (once: the result is
# marked with attr "checked"). Term order is kept.
check_reterms <- function(reterms, n, control = NULL, allow_empty = FALSE) {
  if (is.list(reterms) && !length(reterms) && allow_empty) return(reterms)   # gls
  if (isTRUE(attr(reterms, "checked")) && length(reterms) && length(reterms[[1L]]$group) == n)
    return(reterms)                        # checked and completed already (lmm_pieces)
  if (!is.list(reterms) || !length(reterms))
    stop("'reterms' must be a non-empty list of random-effects terms (without random effects, ",
         "give a residual structure)", call. = FALSE)
  labels <- names(reterms)
  out <- lapply(seq_along(reterms), function(i) complete_reterm(reterms[[i]], i, labels[i], n))
  names(out) <- labels
  # terms from lmm_pieces() carry attr "checked": their level checks ran there
  check_zero_columns(out)
  if (!is.null(control) && !isTRUE(attr(reterms, "checked"))) {
    check_levels(out, n, as_lmm_control(control))
    attr(out, "checked") <- TRUE
  }
  out
}

complete_reterm <- function(term, i, label, n) {
  where <- sprintf("random-effects term %d", i)
  if (!is.list(term))
    stop(where, " must be a list with elements 'group' and 'Xt'", call. = FALSE)
  g <- term$group
  if (is.null(g) || !is.atomic(g) || length(g) != n)
    stop(where, ": 'group' must be a factor of length ", n, call. = FALSE)
  if (anyNA(g)) stop(where, ": 'group' has missing values", call. = FALSE)
  term$group <- keep_na_level(g)
  Xt <- term$Xt
  if (is.null(Xt)) Xt <- matrix(1, n, 1L, dimnames = list(NULL, "(Intercept)"))
  if (is.numeric(Xt) && is.null(dim(Xt))) Xt <- matrix(Xt, ncol = 1L)
  if (!is.matrix(Xt) || !is.numeric(Xt) || nrow(Xt) != n || ncol(Xt) < 1L)
    stop(where, ": 'Xt' must be a numeric matrix with ", n, " rows", call. = FALSE)
  if (any(!is.finite(Xt)))
    stop(where, ": 'Xt' has missing or infinite values", call. = FALSE)
  if (is.null(term$name))
    term$name <- if (!is.null(label) && nzchar(label)) label else paste0("g", i)
  if (is.null(term$cnms)) term$cnms <- default_cnms(Xt)
  if (length(term$cnms) != ncol(Xt))
    stop(where, ": 'cnms' must have ", ncol(Xt), " names", call. = FALSE)
  storage.mode(Xt) <- "double"
  dimnames(Xt) <- list(NULL, term$cnms)
  term$Xt <- Xt
  term
}

default_cnms <- function(Xt) {
  if (!is.null(colnames(Xt))) return(colnames(Xt))
  if (ncol(Xt) == 1L && all(Xt == 1)) return("(Intercept)")
  paste0("x", seq_len(ncol(Xt)))
}

# Label of a term as lme4 prints it: "Days | Subject".
reterm_label <- function(term) {
  if (!is.null(term$lhs) && !is.null(term$gexpr))
    deparse1(call("|", term$lhs, term$gexpr))
  else term$name
}

# lme4's checkNlevels and checkZdims: each grouping factor has > 1 level and
# fewer levels than observations (and, if asked, at least 5 levels); each term has
# fewer random effects than n.
check_levels <- function(reterms, n, control) {
  names_g <- vapply(reterms, `[[`, "", "name")
  nlev <- vapply(reterms, function(term) nlevels(term$group), 0L)
  first <- !duplicated(names_g)
  one <- unique(names_g[first & nlev < 2L])
  if (length(one))
    check_action(control$check.nlev.gtr.1,
                 sprintf("grouping factor%s %s must have > 1 sampled level",
                         if (length(one) > 1L) "s" else "", paste0("'", one, "'", collapse = ", ")))
  many <- unique(names_g[first & nlev >= n])
  if (length(many))
    check_action(control$check.nobs.vs.nlev,
                 paste0("number of levels of each grouping factor must be < number of ",
                        "observations (problems: ", paste(many, collapse = ", "), ")"))
  # lme4's check.nlev.gtreq.5 (off by default)
  few <- unique(names_g[first & nlev < 5L])
  if (length(few) && !is.null(control$check.nlev.gtreq.5))
    check_action(control$check.nlev.gtreq.5,
                 "grouping factors with < 5 sampled levels may give unreliable estimates")
  for (term in reterms) {
    q <- nlevels(term$group) * ncol(term$Xt)
    if (n <= q)
      check_action(control$check.nobs.vs.nRE,
                   sprintf(paste("number of observations (=%d) <= number of random effects",
                                 "(=%d) for term (%s); the random-effects parameters and the",
                                 "residual variance (or scale parameter) are probably",
                                 "unidentifiable"), n, q, reterm_label(term)))
  }
  invisible(NULL)
}

# A column of a term's model matrix that is zero in every row leaves the criterion flat in
# that column's variance parameters (they are not identifiable): an error naming it.
check_zero_columns <- function(reterms) {
  for (term in reterms) {
    zero <- colSums(term$Xt != 0) == 0L
    if (any(zero))
      stop(sprintf(paste("random-effects term (%s): column%s %s %s zero in every row, so the",
                         "criterion does not depend on %s variance: drop %s from the term"),
                   reterm_label(term), if (sum(zero) > 1L) "s" else "",
                   paste0("'", term$cnms[zero], "'", collapse = ", "),
                   if (sum(zero) > 1L) "are" else "is", if (sum(zero) > 1L) "their" else "its",
                   if (sum(zero) > 1L) "them" else "it"), call. = FALSE)
  }
  invisible(NULL)
}

# REML needs n > p (its criterion has n - p degrees of freedom).
check_reml_df <- function(n, p, REML) {
  if (REML && n <= p)
    stop(sprintf(paste("REML needs more observations than fixed effects (n = %d, p = %d):",
                       "simplify the fixed effects or fit by ML (REML = FALSE)"), n, p),
         call. = FALSE)
  invisible(NULL)
}

# The response's scale must leave sigma^2 and the variances representable in double precision.
check_response_scale <- function(y, what = "the response y") {
  big <- max(abs(y))
  spread <- max(abs(y - y[1L]))
  if (big > 1e150)
    stop(sprintf("%s is too large (max |y| = %.3g): its variance would overflow; rescale it",
                 what, big), call. = FALSE)
  if (spread > 0 && spread < 1e-150)
    stop(sprintf(paste("%s varies too little (range %.3g): its variance would underflow;",
                       "rescale it"), what, spread), call. = FALSE)
  y
}

# Put terms in lme4's order (see reterms_order()); for user-supplied terms.
order_reterms <- function(reterms) {
  nl <- vapply(reterms, function(term) nlevels(term$group), 0L)
  reterms[reterms_order(nl)]
}
