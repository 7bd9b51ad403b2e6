# Analysis of variance for "lmm" fits.
#   anova(m)            F tests of the fixed-effect terms, Satterthwaite denominator df (as lmerTest),
#                       or lme4's table of sequential Wald F statistics (ddf = "lme4" / "none").
#   anova(m1, m2, ...)  likelihood-ratio tests of nested models (as lme4), REML fits refitted by ML.
#   drop1(m)            single-term deletions: AIC / likelihood-ratio (as lme4) or F tests (lmerTest).
# The hypothesis matrices of the F tests (types I, II, III) are built in R/anova-contrasts.R.

anova.lmm <- function(object, ..., type = c("III", "II", "I", "3", "2", "1", "marginal", "2b"),
                      ddf = c("Satterthwaite", "Kenward-Roger", "lme4", "none"),
                      refit = TRUE, model.names = NULL) {
  dots <- list(...)
  is_model <- vapply(dots, is_lrt_model, NA)          # lmm, lm, lme4 fits (R/compat-lme4.R)
  if (any(is_model)) {
    mcall <- match.call(expand.dots = TRUE)
    args <- as.list(mcall)[1L + seq_len(1L + length(dots))]     # object, then the dots
    arg_names <- vapply(args[c(TRUE, is_model)], deparse1, "")
    if (!is.null(model.names)) arg_names <- model.names
    return(anova_lrt(c(list(object), dots[is_model]), arg_names, refit))
  }
  if (length(dots)) {
    nd <- names(dots)
    nd <- nd[!is.null(nd) & nzchar(nd)]
    warning("additional arguments ignored",
            if (length(nd)) paste0(": ", paste(sQuote(nd), collapse = ", ")), call. = FALSE)
  }
  ddf <- match.arg(ddf)
  if (ddf %in% c("lme4", "none")) return(anova_wald_sequential(object))
  type <- anova_type(type)
  anova_ftests(object, type, ddf)
}

# "III"/"3" -> "3", "II"/"2" -> "2", "I"/"1" -> "1"; "marginal" and "2b" as they are (lmerTest's
# names): "marginal" tests each term's own coefficients given all other terms (as nlme's
# anova.lme(type = "marginal")); "2b" builds every term's type II hypothesis by the sequential
# (Doolittle) construction, also for terms contained in no other.
anova_type <- function(type) {
  type <- as.character(type[1L])
  ok <- c("III", "II", "I", "3", "2", "1", "marginal", "2b")
  if (!type %in% ok)
    stop("'type' must be one of \"III\", \"II\", \"I\" (or 3, 2, 1), \"marginal\" or \"2b\"",
         call. = FALSE)
  if (type %in% c("I", "II", "III")) type <- as.character(as.integer(utils::as.roman(type)))
  type
}

anova_type_title <- function(type) {
  switch(type, marginal = "Marginal", "2b" = "Type IIb",
         paste("Type", utils::as.roman(as.integer(type))))
}

## ---- F tests with Satterthwaite's or Kenward-Roger's df ---------------------------------------

# One F test per term of L_term beta = 0, L_term from the chosen type of hypothesis.
anova_ftests <- function(object, type, ddf = "Satterthwaite") {
  need_formula(object, "anova() F tests of terms")
  L_list <- switch(type, "1" = contrasts_type1(object), "2" = contrasts_type2(object),
                   "3" = contrasts_type3(object), "marginal" = contrasts_marginal_all(object),
                   "2b" = contrasts_type2b(object))
  setup <- ddf_setup(object, ddf)
  table <- ftest_table(setup, L_list)
  structure(table,
            heading = paste(anova_type_title(type), "Analysis of Variance Table with",
                            ddf_method_name(setup), "method"),
            hypotheses = L_list, class = c("anova", "data.frame"))
}

# One row per hypothesis; hypotheses without a testable row (no rows, or NA) give NA rows
# placed last (lmerTest's layout).
ftest_table <- function(setup, L_list) {
  rows <- lapply(L_list, function(L) {
    if (anyNA(L)) return(f_table_row(NA_real_, NA_real_, NA_real_, NA_real_))
    contest_F(setup, L)
  })
  table <- do.call(rbind, c(list(f_table_row(numeric(), numeric(), numeric(), numeric())), rows))
  tested <- names(L_list)[vapply(rows, nrow, 1L) > 0]
  rownames(table) <- tested
  untested <- setdiff(names(L_list), tested)
  if (length(untested)) {
    na <- table[rep(NA_integer_, length(untested)), , drop = FALSE]
    rownames(na) <- untested
    table <- rbind(table, na)
  }
  table
}

need_formula <- function(object, what) {
  if (is.null(object$fixed_terms) || is.null(object$frame))
    stop(what, " need a model fitted by lmm() with a formula; for lmm_fit() fits use contest()",
         call. = FALSE)
}

## ---- lme4's single-model table: sequential Wald F statistics without df --------------------

# With R_X the Cholesky factor of Var(beta)^{-1} sigma^2, the "effects" e = R_X beta; a term's
# Sum Sq is the sum of e_j^2 over its columns, F = (Sum Sq / npar) / sigma^2.
anova_wald_sequential <- function(object) {
  X <- object$X
  asgn <- attr(X, "assign")
  if (is.null(asgn) || is.null(object$fixed_terms))
    stop("anova() needs a model fitted by lmm() with a formula", call. = FALSE)
  RX <- chol(solve(object$vcov_beta / object$sigma^2))
  ss <- drop(RX %*% object$beta)^2
  labels <- attr(object$fixed_terms, "term.labels")[unique(asgn)]
  if (any(asgn == 0L)) labels <- c("(Intercept)", labels)
  ss <- vapply(split(ss, asgn), sum, 0)
  npar <- lengths(split(asgn, asgn))
  table <- data.frame(npar = npar, "Sum Sq" = ss, "Mean Sq" = ss / npar,
                      "F value" = ss / npar / object$sigma^2, check.names = FALSE)
  rownames(table) <- labels
  table <- table[labels != "(Intercept)", , drop = FALSE]
  structure(table, heading = "Analysis of Variance Table", class = c("anova", "data.frame"))
}

## ---- likelihood-ratio tests of several models (lme4's anova.merMod) --------------------------

anova_lrt <- function(models, model_names, refit = TRUE) {
  nobs_each <- vapply(models, nobs, 1)
  if (length(unique(nobs_each)) > 1L)
    stop("models were not all fitted to the same size of dataset", call. = FALSE)
  if (length(model_names) != length(models))
    stop("model names vector and model list have different lengths", call. = FALSE)
  if (anyDuplicated(model_names) || max(nchar(model_names)) > 200) {
    warning("failed to find model names, assigning generic names", call. = FALSE)
    model_names <- paste0("MODEL", seq_along(models))
  }
  names(models) <- model_names
  calls <- lapply(models, getCall)
  data <- lapply(calls, `[[`, "data")
  if (!all(vapply(data, identical, NA, data[[1L]])))
    stop("all models must be fit to the same data object", call. = FALSE)
  subset <- lapply(calls, `[[`, "subset")
  if (!all(vapply(subset, identical, NA, subset[[1L]])))
    stop("all models must use the same subset", call. = FALSE)
  responses <- lapply(models, model_response)
  if (!all(vapply(responses, function(y) isTRUE(all.equal(y, responses[[1L]])), NA)))
    stop("models were not fitted to the same response values", call. = FALSE)

  is_reml <- vapply(models, is_reml_fit, NA)
  if (refit) {
    if (any(is_reml)) message("refitting model(s) with ML (instead of REML)")
    models[is_reml] <- lapply(models[is_reml], refit_ml_any)
  } else if (any(is_reml) && !all(is_reml)) {
    warning("some models fit with REML = TRUE, some not", call. = FALSE)
  }
  llks <- lapply(models, logLik)
  npar <- vapply(llks, attr, 1, "df")
  ord <- order(npar)
  models <- models[ord]
  llks <- llks[ord]
  npar <- npar[ord]
  llk <- unlist(llks)
  chisq <- 2 * pmax(0, c(NA, diff(llk)))
  df_chisq <- c(NA, diff(npar))
  table <- data.frame(npar = npar, AIC = vapply(llks, AIC, 1), BIC = vapply(llks, BIC, 1),
                      logLik = llk, deviance = -2 * llk, Chisq = chisq, Df = df_chisq,
                      "Pr(>Chisq)" = ifelse(df_chisq == 0, NA,
                                            pchisq(chisq, df_chisq, lower.tail = FALSE)),
                      row.names = names(models), check.names = FALSE)
  structure(table, heading = lrt_heading(models, data[[1L]], subset[[1L]]),
            class = c("anova", "data.frame"))
}

model_response <- function(m) if (inherits(m, "lmm")) m$y else unname(stats::model.response(
  stats::model.frame(m)))

# "Data: ...", "Subset: ...", "Models:", "name: formula" as lme4 prints them.
lrt_heading <- function(models, data, subset) {
  short <- function(x) {
    d <- deparse(x, width.cutoff = 60L)
    if (length(d) > 1L) paste(d[1L], "...") else d
  }
  forms <- vapply(models, function(m) {
    f <- getCall(m)$formula
    deparse1(if (is.null(f)) getCall(m) else f)
  }, "")
  c(paste("Data:", short(data)),
    if (!is.null(subset)) paste("Subset:", short(subset)),
    "Models:", paste(names(models), forms, sep = ": "))
}

# The same model fitted by maximum likelihood, starting from the REML estimate of theta
# (as lme4's refitML).  Fields describing the model (call with REML = FALSE, formula, frame, ...)
# are carried over.
refit_ml <- function(fit) {
  if (!isTRUE(fit$REML)) return(fit)
  refit_estimation(fit, REML = FALSE)
}

# The same model fitted by ML (REML = FALSE) or REML, started from the fit's theta; the fields
# describing the model (formula, frame, ...) are carried over, the residual structure kept.
refit_estimation <- function(fit, REML) {
  if (inherits(fit, "lmm_aggregated")) return(refit_estimation_aggregated(fit, REML))
  other <- lmm_fit(fit$y, fit$X, fit$reterms, weights = fit$weights, offset = fit$offset,
                   REML = REML, control = refit_control(fit, check.conv.singular = "ignore"),
                   start = unname(fit$theta), residual = fit$residual$spec)
  carry <- setdiff(names(fit), names(other))
  other[carry] <- fit[carry]
  other$call <- fit$call
  if (!is.null(other$call)) other$call$REML <- REML
  other
}

## ---- drop1 -----------------------------------------------------------------------------------

# test = "none"/"Chisq": lme4's drop1 (ML fits without each term: AIC and likelihood-ratio test);
# test = "F": lmerTest's drop1 (F test that the term's coefficients are zero, Satterthwaite df).
drop1.lmm <- function(object, scope, scale = 0, test = c("none", "Chisq", "F"), k = 2,
                      trace = FALSE, ddf = c("Satterthwaite", "Kenward-Roger"), ...) {
  test <- match.arg(test)
  need_formula(object, "drop1()")
  terms <- object$fixed_terms
  labels <- attr(terms, "term.labels")
  marginal <- drop.scope(terms)
  if (missing(scope)) {
    scope <- marginal
  } else {
    if (!is.character(scope)) scope <- attr(terms(update.formula(terms, scope)), "term.labels")
    if (!all(scope %in% labels)) stop("scope is not a subset of term labels", call. = FALSE)
  }
  if (test == "F") return(drop1_ftests(object, scope, marginal, match.arg(ddf)))
  drop1_lrt(object, scope, test, k, trace, scale)
}

drop1_lrt <- function(object, scope, test, k, trace, scale) {
  full <- refit_ml(object)
  cols <- term_columns(object)
  ans <- matrix(NA_real_, length(scope) + 1L, 2L,
                dimnames = list(c("<none>", scope), c("df", "AIC")))
  ans[1L, ] <- ml_aic(full, k)
  for (i in seq_along(scope)) {
    if (trace > 1) message("trying - ", scope[i])
    keep <- setdiff(seq_len(ncol(full$X)), cols[[scope[i]]])
    ans[i + 1L, ] <- ml_aic(refit_columns(full, keep), k)
  }
  dfs <- ans[1L, 1L] - ans[, 1L]
  dfs[1L] <- NA
  aod <- data.frame(npar = dfs, AIC = ans[, 2L])
  if (test == "Chisq") {
    dev <- ans[, 2L] - k * ans[, 1L]
    dev <- dev - dev[1L]
    dev[1L] <- NA
    aod$LRT <- dev
    aod[["Pr(Chi)"]] <- ifelse(is.na(dev), NA, pchisq(dev, dfs, lower.tail = FALSE))
  }
  head <- c("Single term deletions", "\nModel:", deparse(formula(object)),
            if (scale > 0) paste("\nscale: ", format(scale), "\n"))
  structure(aod, heading = head, class = c("anova", "data.frame"))
}

# The ML fit `full` with only the columns `keep` of X, from its theta, with its control; the
# rows are its own (for aggregated data: pseudo-rows standing for the data's counts).
refit_columns <- function(full, keep) {
  X <- full$X[, keep, drop = FALSE]
  attr(X, "assign") <- attr(full$X, "assign")[keep]
  control <- refit_control(full, check.conv.singular = "ignore")
  if (!is.null(full$counts))
    return(fit_checked(full$y, X, full$reterms, full$weights, full$offset, REML = FALSE,
                       control = control, start = unname(full$theta), residual = NULL,
                       counts = full$counts))
  lmm_fit(full$y, X, full$reterms, weights = full$weights, offset = full$offset, REML = FALSE,
          control = control, start = unname(full$theta), residual = full$residual$spec)
}

# c(df, AIC) of an ML fit: AIC = -2 logLik + k df.
ml_aic <- function(fit, k) {
  ll <- logLik(fit, REML = FALSE)
  c(attr(ll, "df"), -2 * as.numeric(ll) + k * attr(ll, "df"))
}

drop1_ftests <- function(object, scope, marginal, ddf) {
  if (!all(scope %in% marginal))
    stop("Only marginal terms can be dropped from the model", call. = FALSE)
  L_list <- contrasts_drop1(object, scope)
  setup <- ddf_setup(object, ddf)
  table <- ftest_table(setup, L_list)
  structure(table, heading = c(paste("Single term deletions using", ddf_method_name(setup),
                                     "method:"), "\nModel:", deparse1(formula(object))),
            hypotheses = L_list, class = c("anova", "data.frame"))
}
