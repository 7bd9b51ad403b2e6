## predict() for a fitted "lmm":  eta = X_new beta + offset + sum over chosen terms of Z_new,i b_i.
## The fixed part is rebuilt from the fit's fixed-effects terms (contrasts and factor levels of the
## fit); each random term's columns from its left-hand side and its grouping expression, with the
## conditional modes b of the fit looked up by level.

predict.lmm <- function(object, newdata = NULL, re.form = NULL, allow.new.levels = FALSE,
                        type = c("response", "link"), na.action = na.pass,
                        se.fit = FALSE, interval = c("none", "confidence", "prediction"),
                        level = 0.95, ...) {
  if (...length() > 0L) warning("unused arguments ignored", call. = FALSE)
  type <- match.arg(type)                       # identical for a linear mixed model
  interval <- match.arg(interval)
  if (missing(na.action)) na.action <- NULL     # NULL: not given (see fit_na_action())
  if (se.fit || interval != "none")             # R/predict-se.R; it calls back without se.fit
    return(predict_intervals(object, newdata, re.form, allow.new.levels, se.fit = se.fit,
                             interval = interval, level = level, na.action = na.action))
  use_re <- wants_random(re.form)
  if (is.null(newdata)) {
    eta <- if (is.null(re.form)) object$fitted else
      drop(object$X %*% object$beta) + object$offset
    names(eta) <- if (is.null(object$frame)) seq_along(eta) else rownames(object$frame)
    if (use_re && !is.null(re.form)) eta <- eta + random_part_fit(object, re.form)
    na_act <- fit_na_action(object, na.action)
  } else {
    if (is.null(na.action)) na.action <- stats::na.pass
    if (is.null(object$fixed_terms))
      stop("predict() with 'newdata' needs a fit made by lmm(); this one was made by lmm_fit()",
           call. = FALSE)
    mf <- newdata_frame(object, newdata, na.action)
    na_act <- attr(mf, "na.action")
    eta <- fixed_part_new(object, mf)
    if (use_re) {
      rows <- if (is.null(na_act)) newdata else newdata[-as.integer(na_act), , drop = FALSE]
      eta <- eta + random_part_new(object, rows, re.form, allow.new.levels)
    }
  }
  stats::napredict(na_act, eta)
}

## The fit's na.action for predictions on the fitted data, as lme4's predict.merMod: the omitted
## rows are padded with NA when the fit used na.exclude; an explicit na.action (a function or its
## name) overrides that: na.exclude pads, na.omit does not (`na.action` NULL: not given).
fit_na_action <- function(object, na.action) {
  na_act <- if (is.null(object$frame)) NULL else attr(object$frame, "na.action")
  if (is.null(na.action) || is.null(na_act)) return(na_act)
  kind <- attr(match.fun(na.action)(NA), "na.action")
  class(na_act) <- class(kind)
  na_act
}

## re.form: NULL = all random terms; NA or ~0 = none; a formula = the terms it names.
wants_random <- function(re.form) {
  if (is.null(re.form)) return(TRUE)
  if (inherits(re.form, "formula"))
    return(!(length(re.form) == 2L && identical(re.form[[2L]], 0)))
  if (length(re.form) == 1L && is.na(re.form)) return(FALSE)
  stop("'re.form' must be NULL, NA or a formula", call. = FALSE)
}

## ---- fixed part ---------------------------------------------------------------------------------

## Levels (for xlev) and contrasts of the factor and character variables of the fit's frame.
frame_levels <- function(frame) {
  fac <- vapply(frame, function(v) is.factor(v) || is.character(v), NA)
  lapply(frame[fac], function(v) if (is.factor(v)) levels(v) else sort(unique(v)))
}

newdata_frame <- function(object, newdata, na.action) {
  tt <- stats::delete.response(object$fixed_terms)
  xlev <- frame_levels(object$frame)
  stats::model.frame(tt, newdata, na.action = na.action,
                     xlev = xlev[intersect(names(xlev), all.vars(tt))])
}

## X_new beta + offset, with X_new built as the fit's X (same contrasts, dropped columns removed).
fixed_part_new <- function(object, mf) {
  tt <- attr(mf, "terms")
  X <- stats::model.matrix(tt, mf, contrasts.arg = attr(object$X, "contrasts"))
  X <- X[, names(object$beta), drop = FALSE]
  off <- stats::model.offset(mf)
  if (is.null(off)) off <- 0
  drop(X %*% object$beta) + off
}

## ---- random part --------------------------------------------------------------------------------

## The random terms to use: one entry per term (re.form NULL) or per bar of re.form, each with the
## left-hand side, grouping expression, factor name and the matrix of conditional modes (levels x
## columns) restricted to the columns the term uses.
chosen_terms <- function(object, re.form) {
  if (is.null(re.form)) {
    bm <- term_b_matrix(object$b, object$reterms)
    return(lapply(seq_along(object$reterms), function(i) {
      tm <- object$reterms[[i]]
      list(lhs = tm$lhs, gexpr = tm$gexpr, name = tm$name, cnms = tm$cnms, b = bm[[i]])
    }))
  }
  re <- ranef(object, condVar = FALSE)
  lapply(find_bars(re.form), function(bar) {
    name <- bar_group_name(bar)
    if (!name %in% names(re))
      stop("grouping factor '", name, "' in re.form is not a grouping factor of the model",
           call. = FALSE)
    list(lhs = bar[[2L]], gexpr = bar[[3L]], name = name, cnms = NULL, b = as.matrix(re[[name]]))
  })
}

## Z b on the fitted data, using the stored term matrices (re.form given, newdata NULL).
random_part_fit <- function(object, re.form) {
  fl <- re_flist(object$reterms)
  asgn <- attr(fl, "assign")
  total <- numeric(object$n)
  for (tm in chosen_terms(object, re.form)) {
    j <- match(tm$name, names(fl))
    Xt <- do.call(cbind, lapply(object$reterms[asgn == j], `[[`, "Xt"))
    colnames(Xt) <- unlist(lapply(object$reterms[asgn == j], `[[`, "cnms"))
    cn <- if (is.null(tm$cnms)) re_lhs_columns(tm$lhs, object$frame, object, colnames(tm$b)) else tm$cnms
    re_check_columns(cn, colnames(tm$b), tm$name)
    total <- total + rowSums(Xt[, cn, drop = FALSE] *
                               tm$b[as.integer(fl[[j]]), cn, drop = FALSE])
  }
  total
}

## Z_new b on new data; levels not seen in the fit contribute 0 when allow.new.levels = TRUE.
random_part_new <- function(object, data, re.form, allow.new.levels) {
  total <- numeric(nrow(data))
  for (tm in chosen_terms(object, re.form)) {
    Xt <- re_lhs_matrix(tm$lhs, data, object)
    re_check_columns(colnames(Xt), colnames(tm$b), tm$name)
    lab <- group_labels(tm$gexpr, data, environment(object$formula))
    idx <- level_index(lab, rownames(tm$b), tm$name, allow.new.levels)
    B <- tm$b[pmax(idx, 1L), colnames(Xt), drop = FALSE]
    B[is.na(idx), ] <- 0                            # new level or NA group: b = 0
    total <- total + rowSums(Xt * B)
  }
  total
}

re_check_columns <- function(cn, available, name) {
  miss <- setdiff(cn, available)
  if (length(miss))
    stop("random effects in re.form not in the model for '", name, "': ",
         paste(miss, collapse = ", "), call. = FALSE)
}

## Column names of ~ lhs as the fit would build them (needed when re.form names a sub-term).
## Falls back to all the factor's columns when ~ lhs cannot be rebuilt from the model frame.
re_lhs_columns <- function(lhs, frame, object, available) {
  tryCatch(colnames(re_lhs_matrix(lhs, frame[1L, , drop = FALSE], object)),
           error = function(e) available)
}

## Terms of ~ lhs whose predvars are the fit's: data-dependent transformations such as poly(x, 2)
## or splines::ns(x, 2) are evaluated on new data with the fit's coefficients and knots (as
## model.frame() does for the fixed part), when every variable of ~ lhs is one of the fit's.
re_lhs_terms <- function(lhs, object) {
  tt <- stats::terms(make_formula(call("~", lhs), environment(object$formula)))
  known <- fit_predvars(object)
  pv <- known[term_vars(tt)]
  if (length(pv) && !any(vapply(pv, is.null, NA)))
    attr(tt, "predvars") <- as.call(c(as.name("list"), unname(pv)))
  tt
}

## The fit's predvars by variable name: of the fixed part and of every random term's ~ lhs
## (stored by make_reterm()).
fit_predvars <- function(object) {
  all_tt <- c(list(object$fixed_terms), lapply(object$reterms, `[[`, "lhs_terms"))
  out <- list()
  for (tt in all_tt) {
    pv <- attr(tt, "predvars")
    if (is.null(pv)) next
    vars <- term_vars(tt)
    pv <- as.list(pv)[-1L]
    if (length(pv) == length(vars)) out[vars] <- pv
  }
  out
}

## Model matrix of ~ lhs on data, with the fit's factor levels, contrasts and predvars.
re_lhs_matrix <- function(lhs, data, object) {
  tt <- re_lhs_terms(lhs, object)
  xlev <- frame_levels(object$frame)
  xlev <- xlev[intersect(names(xlev), all.vars(tt))]
  mf <- stats::model.frame(tt, data, na.action = na.pass, xlev = xlev)
  use <- names(xlev)[vapply(names(xlev), function(v)
    is.factor(mf[[v]]) && length(xlev[[v]]) > 1L, NA)]
  ctr <- lapply(use, function(v) stats::contrasts(factor(object$frame[[v]], levels = xlev[[v]])))
  names(ctr) <- use
  stats::model.matrix(tt, mf, contrasts.arg = if (length(ctr)) ctr)
}

## Character labels of a grouping expression on data: variables as character, `:` pastes with ":"
## (the fit's labels for interactions, "a:A"), NA propagated.
group_labels <- function(gexpr, data, env) {
  scope <- new.env(parent = if (is.null(env)) baseenv() else env)
  for (v in intersect(all.vars(gexpr), names(data)))
    assign(v, as.character(data[[v]]), envir = scope)
  assign(":", function(e1, e2) {
    out <- paste(as.character(e1), as.character(e2), sep = ":")
    out[is.na(e1) | is.na(e2)] <- NA
    out
  }, envir = scope)
  as.character(eval(gexpr, scope))
}

## Row of each label among the fitted levels; NA for new levels / NA groups when allowed.
level_index <- function(lab, levs, name, allow.new.levels) {
  idx <- match(lab, levs)
  if (allow.new.levels) return(idx)
  if (anyNA(lab))
    stop("NAs are not allowed in prediction data for grouping variables unless ",
         "allow.new.levels is TRUE", call. = FALSE)
  new <- unique(lab[is.na(idx)])
  if (length(new)) {
    shown <- paste(utils::head(new, 10L), collapse = ", ")
    if (length(new) > 10L) shown <- paste0(shown, ", ...")
    stop("new levels detected in newdata for grouping factor '", name, "': ", shown,
         call. = FALSE)
  }
  idx
}
