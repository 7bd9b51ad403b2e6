# Likelihood-ratio tests of the random-effect terms, as lmerTest's ranova():
# for each term (lhs | g) a reduced model is fitted and compared with the full model,
#   LRT = 2 (logLik_full - logLik_reduced),  Df = npar_full - npar_reduced,
#   p = P(chi^2_Df > LRT)  (NA when Df <= 0; no boundary correction),
# with the log-likelihoods of the fit's own criterion (REML or ML).
# reduce.terms = TRUE: a term whose lhs has terms reduces, one lhs term at a time, to the term
# without it (the last one to (1 | g)); a term with an intercept only, (1 | g), is removed.
# reduce.terms = FALSE: each term is removed entirely.  A model left with no random term is
# fitted by lm().

ranova <- function(model, reduce.terms = TRUE, ...) UseMethod("ranova")

ranova.lmm <- function(model, reduce.terms = TRUE, ...) {
  ranova_table(model, reduce.terms, parent.frame())
}

# Without lmmc's method (an lmer fit, say): lmerTest's ranova() when it is installed.
ranova.default <- function(model, reduce.terms = TRUE, ...) {
  forward_to_lmerTest("ranova", model, match.call(), parent.frame())
}

# The caller's call `cl` evaluated with lmerTest's `fun` in the caller's frame `env` (lmerTest
# evaluates its refits in its caller's frame).
forward_to_lmerTest <- function(fun, model, cl, env) {
  if (!requireNamespace("lmerTest", quietly = TRUE))
    stop(sprintf("no %s() method for an object of class %s", fun,
                 paste(dQuote(class(model), FALSE), collapse = ", ")), call. = FALSE)
  cl[[1L]] <- call("::", as.name("lmerTest"), as.name(fun))
  eval(cl, env)
}

# The refits are evaluated in `env` (see refit_with_formula()).
ranova_table <- function(model, reduce.terms, env) {
  need_formula(model, "ranova()")
  full_form <- ranova_full_formula(formula(model))
  bars <- vapply(find_bars(full_form), deparse2, "")
  new_forms <- if (isTRUE(reduce.terms)) {
    unlist(lapply(bars, reduced_forms, full_form), recursive = FALSE)
  } else removed_forms(bars, full_form)
  REML <- isTRUE(model$REML)
  ll <- list(loglik_df(model, REML))
  for (form in new_forms) {
    fit <- refit_with_formula(model, form, env)
    if (nobs(fit) != nobs(model))
      stop("number of rows in use has changed: remove missing values?", call. = FALSE)
    ll <- c(ll, list(loglik_df(fit, REML)))
  }
  table <- lr_table(do.call(rbind, ll))
  rownames(table) <- c("<none>", names(new_forms))
  structure(table,
            heading = c("ANOVA-like table for random-effects: Single term deletions",
                        "\nModel:", deparse2(full_form)),
            formulae = new_forms, class = c("anova", "data.frame"))
}

deparse2 <- function(x) paste(deparse(x, width.cutoff = 500L), collapse = " ")

# response ~ fixed part + (each bar term): `||` and `/` expanded, as lmerTest writes the model.
ranova_full_formula <- function(formula) {
  fixed <- drop_bars(rhs_of(formula))
  bars <- vapply(find_bars(formula), function(b) paste0("(", deparse2(b), ")"), "")
  rhs <- paste(c(if (is.null(fixed)) "1" else deparse2(fixed), bars), collapse = " + ")
  out <- stats::update.formula(formula, paste(". ~", rhs))
  environment(out) <- environment(formula)
  out
}

# The model without the whole bar term, named "(bar)".
removed_forms <- function(bars, full_form) {
  forms <- lapply(bars, function(bar) remove_terms(full_form, paste0("(", bar, ")")))
  stats::setNames(forms, paste0("(", bars, ")"))
}

remove_terms <- function(full_form, remove, add = NULL) {
  upd <- paste0("~ . - ", remove, if (length(add)) paste0(" + ", add))
  out <- stats::update.formula(full_form, upd)
  environment(out) <- environment(full_form)
  out
}

# Reductions of one bar term (lhs | g): for each lhs term not contained in another, the bar with
# lhs minus that term (lhs "1" when it was the only term), named "term in (bar)".
reduced_forms <- function(bar, full_form) {
  lhs <- stats::as.formula(paste("~", trimws(sub("\\|.*$", "", bar))), env = baseenv())
  g <- trimws(sub("^.*\\|", "", bar))
  labels <- attr(stats::terms(lhs), "term.labels")
  scope <- if (length(labels)) drop.scope(lhs) else character()
  if (!length(scope)) return(removed_forms(bar, full_form))
  forms <- lapply(scope, function(s) {
    new_lhs <- if (setequal(labels, s)) "1" else
      gsub("~", "", deparse2(stats::update.formula(lhs, paste("~ . -", s))), fixed = TRUE)
    remove_terms(full_form, paste0("(", bar, ")"), paste0("(", trimws(new_lhs), " | ", g, ")"))
  })
  stats::setNames(forms, paste(scope, paste0("in (", bar, ")")))
}

# The model refitted with another formula: lmm() with the fit's call (its residual structure
# included, with the correlation groups written out: without them they are the innermost
# random-effects grouping, which a removed term would change), or, when no random term is
# left, lm() (same data, subset, weights, offset, na.action, contrasts) -- nlme::gls() with the
# same residual structure for fits with one.  The call is evaluated in `env` (the caller of
# ranova/step), else where the formula was written.  A fit from aggregated data is refitted
# from its own sums (R/refit-aggregated.R).
refit_with_formula <- function(model, formula, env = parent.frame()) {
  if (inherits(model, c("lmm_aggregated", "lm_aggregated")))
    return(refit_aggregated(model, formula))
  cl <- model$call
  if (is.null(cl)) stop("the fit has no call to refit", call. = FALSE)
  if (inherits(model, "gls")) {                  # a gls step of step(): its own call
    cl$model <- formula
  } else if (has_bars(formula)) {
    cl$formula <- formula
    if (!is.null(model$residual$correlation)) cl$correlation <- correlation_with_groups(model)
  } else if (!is.null(model[["residual"]])) {        # [[: an lm fit has $residuals
    cl <- gls_call(model, formula)
  } else {
    keep <- c("", "formula", "data", "subset", "weights", "offset", "na.action", "contrasts")
    cl <- cl[names(cl) %in% keep | seq_along(cl) == 1L]
    cl[[1L]] <- quote(stats::lm)
    cl$formula <- formula
  }
  tryCatch(eval(cl, env), error = function(e) {
    fenv <- environment(stats::formula(model))
    if (is.null(fenv) || identical(fenv, env)) stop(e)
    eval(cl, fenv)
  })
}

# nlme::gls(formula, data, correlation, weights = variance, ...) for a fit with a residual
# structure left with no random term.  Its REML and ML log-likelihoods are lmm's (the same
# constants, R/residual.R's tests).  The correlation groups are written out: without them gls
# would take the whole data as one series, lmm the innermost random-effects grouping.
gls_call <- function(model, formula) {
  cl <- model$call
  if (!is.null(cl$weights) || !is.null(cl$offset))
    stop("the model without random terms (nlme::gls) cannot have prior weights or an offset",
         call. = FALSE)
  out <- call("gls")
  out[[1L]] <- quote(nlme::gls)
  out$model <- formula
  for (arg in c("data", "subset", "na.action")) if (!is.null(cl[[arg]])) out[[arg]] <- cl[[arg]]
  out$method <- if (isTRUE(model$REML)) "REML" else "ML"
  r <- model$residual
  if (!is.null(r$correlation))
    out$correlation <- correlation_with_groups(model, gls_group_form(r$correlation_formula))
  if (!is.null(r$variance)) out$weights <- cl$variance
  out
}

# The call's correlation argument with its form set to `form` (groups written out): the
# constructor call's form argument, else (an object) through with_cor_form().
correlation_with_groups <- function(model, form = model$residual$correlation_formula) {
  cor <- model$call$correlation
  if (is.call(cor) && identical(cor[[1L]], with_cor_form)) cor <- cor[[2L]]   # a refit's refit
  make <- if (is.call(cor)) tryCatch(eval(cor[[1L]], environment(model$formula)),
                                     error = function(e) NULL)
  if (!is.function(make)) return(as.call(list(with_cor_form, cor, form)))
  cor <- match.call(make, cor)
  cor$form <- form
  cor
}

# ~ t | a:b as ~ t | a/b: nlme's groups formulas nest with "/" (the innermost groups, those of
# a:b, are what a correlation structure uses) and do not accept ":".
gls_group_form <- function(form) {
  rhs <- form[[2L]]
  colon_to_slash <- function(e) {
    if (!is.call(e)) return(e)
    if (identical(e[[1L]], as.name(":"))) e[[1L]] <- as.name("/")
    e[-1L] <- lapply(as.list(e[-1L]), colon_to_slash)
    e
  }
  if (is.call(rhs) && identical(rhs[[1L]], as.name("|"))) rhs[[3L]] <- colon_to_slash(rhs[[3L]])
  form[[2L]] <- rhs
  form
}

# A corStruct with its grouping formula set.
with_cor_form <- function(cor, form) {
  attr(cor, "formula") <- form
  cor
}

loglik_df <- function(fit, REML) {
  ll <- if (inherits(fit, "lmm")) logLik(fit, REML = REML) else stats::logLik(fit, REML = REML)
  data.frame(Df = attr(ll, "df"), logLik = as.numeric(ll))
}

# npar, logLik, AIC, LRT, Df, Pr(>Chisq): each row against the first.
lr_table <- function(x) {
  out <- data.frame(npar = x$Df, logLik = x$logLik, AIC = -2 * x$logLik + 2 * x$Df,
                    LRT = NA_real_, Df = NA_real_, "Pr(>Chisq)" = NA_real_, check.names = FALSE)
  if (nrow(x) >= 2L) {
    rest <- -1L
    out$LRT[rest] <- 2 * (x$logLik[1L] - x$logLik[rest])
    out$Df[rest] <- x$Df[1L] - x$Df[rest]
    df <- ifelse(out$Df[rest] > 0, out$Df[rest], NA_real_)
    out[["Pr(>Chisq)"]][rest] <- pchisq(out$LRT[rest], df, lower.tail = FALSE)
  }
  out
}
