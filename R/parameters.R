## Methods for the 'parameters' package's generics (registered lazily in NAMESPACE with
## S3method(parameters::generic, lmm)). The tables follow parameters' lmerMod output: fixed effects
## with SE, confidence interval, t, df and p under a choice of degrees of freedom, then the
## random-effect standard deviations and correlations and the residual SD.

## ---- fixed effects -----------------------------------------------------------------------------

## Degrees of freedom for ci_method / method:
##   residual, wald  n minus all parameters (lme4's df.residual), one value for every coefficient
##   normal          normal quantiles and p-values (df = Inf); the df column still shows the
##                   residual df, as parameters does for lmerMod
##   satterthwaite   Satterthwaite's df per coefficient (R/satterthwaite.R)
##   kenward, kr     Kenward-Roger df per coefficient, with the KR-adjusted covariance of beta
parameters_df_method <- function(method) {
  if (is.null(method)) return("residual")
  method <- match.arg(tolower(method), c("residual", "wald", "normal", "satterthwaite",
                                         "kenward", "kr"))
  if (method == "kr") "kenward" else method
}

## Estimate, SE, t, df and p of each fixed effect:  t = beta_j / SE_j,  p = 2 P(T_df > |t|).
fixed_effects_table <- function(model, method) {
  beta <- model$beta
  kr <- if (method == "kenward") kr_setup(model)
  V <- if (method == "kenward") kr_vcov(kr) else model$vcov_beta
  se <- sqrt(diag(as.matrix(V)))
  df <- switch(method,
               residual = , wald = , normal = rep(df.residual.lmm(model), length(beta)),
               satterthwaite = satterthwaite_df(model),
               kenward = kr_coef_df(kr))
  df_test <- if (method == "normal") Inf else unname(df)
  t <- unname(beta / se)
  out <- data.frame(Parameter = names(beta), Coefficient = unname(beta), SE = unname(se),
                    t = t, df_error = unname(df),
                    p = 2 * stats::pt(abs(t), df_test, lower.tail = FALSE),
                    stringsAsFactors = FALSE)
  attr(out, "df_test") <- rep_len(df_test, length(beta))
  out
}

## Interval beta_j -/+ qt((1 + level) / 2, df_j) SE_j.
add_ci_columns <- function(tab, ci) {
  q <- stats::qt((1 + ci) / 2, attr(tab, "df_test"))
  tab$CI <- ci
  tab$CI_low <- tab$Coefficient - q * tab$SE
  tab$CI_high <- tab$Coefficient + q * tab$SE
  attr(tab, "df_test") <- NULL
  tab
}

check_ci_level <- function(ci) {
  if (!is.numeric(ci) || length(ci) != 1L || !is.finite(ci) || ci <= 0 || ci >= 1)
    stop("'ci' must be a single number between 0 and 1", call. = FALSE)
}

ci.lmm <- function(x, ci = 0.95, method = NULL, ...) {
  check_ci_level(ci)
  tab <- add_ci_columns(fixed_effects_table(x, parameters_df_method(method)), ci)
  tab[c("Parameter", "CI", "CI_low", "CI_high")]
}

standard_error.lmm <- function(model, method = NULL, ...) {
  tab <- fixed_effects_table(model, parameters_df_method(method))
  tab[c("Parameter", "SE")]
}

p_value.lmm <- function(model, method = NULL, ...) {
  tab <- fixed_effects_table(model, parameters_df_method(method))
  tab[c("Parameter", "p")]
}

degrees_of_freedom.lmm <- function(model, method = "residual", ...) {
  if (identical(method, "any") || identical(method, "analytical")) method <- "residual"
  method <- parameters_df_method(method)
  if (method == "normal") return(Inf)
  fixed_effects_table(model, method)$df_error
}

## ---- random effects ----------------------------------------------------------------------------

## One row per standard deviation / correlation of as.data.frame(VarCorr()), named as parameters
## names them: "SD (term)", "Cor (term1~term2)", "SD (Observations)" for the residual; Group is
## the grouping factor (lme4's ".1" suffix of a repeated factor dropped). No intervals (parameters
## gives none for lmerMod without the 'merDeriv' package).
random_effects_table <- function(model, ci) {
  vc <- as.data.frame(VarCorr.lmm(model))
  residual <- vc$grp == "Residual"
  label <- ifelse(is.na(vc$var2), paste0("SD (", vc$var1, ")"),
                  paste0("Cor (", vc$var1, "~", vc$var2, ")"))
  label[residual] <- "SD (Observations)"
  label <- gsub("(Intercept)", "Intercept", label, fixed = TRUE)
  groups <- unique(vapply(model$reterms, `[[`, "", "name"))
  group <- as.character(vc$grp)
  plain <- sub("\\.[0-9]+$", "", group)
  group[plain %in% groups] <- plain[plain %in% groups]
  data.frame(Parameter = label, Coefficient = vc$sdcor, SE = NA_real_, CI = ci,
             CI_low = NA_real_, CI_high = NA_real_, t = NA_real_, df_error = NA_real_,
             p = NA_real_, Effects = "random", Group = group, stringsAsFactors = FALSE)
}

## Conditional modes of each grouping factor's levels with their conditional SDs and Wald
## intervals (group_level = TRUE).
group_level_table <- function(model, ci) {
  re <- as.data.frame(ranef.lmm(model, condVar = TRUE))
  q <- stats::qnorm((1 + ci) / 2)
  data.frame(Parameter = as.character(re$term), Level = as.character(re$grp), Coefficient = re$condval,
             SE = re$condsd, CI = ci, CI_low = re$condval - q * re$condsd,
             CI_high = re$condval + q * re$condsd, t = NA_real_, df_error = NA_real_,
             p = NA_real_, Effects = "random", Group = as.character(re$grpvar),
             stringsAsFactors = FALSE)
}

## ---- model_parameters ---------------------------------------------------------------------------

model_parameters.lmm <- function(model, ci = 0.95, ci_method = NULL, effects = "all",
                                 group_level = FALSE, keep = NULL, drop = NULL, verbose = TRUE,
                                 ...) {
  check_ci_level(ci)
  unsupported_parameters_options(list(...))
  effects <- match.arg(effects, c("fixed", "random", "all"))
  method <- parameters_df_method(ci_method)
  out <- NULL
  if (effects != "random") {
    out <- add_ci_columns(fixed_effects_table(model, method), ci)
    out$Effects <- "fixed"
    out$Group <- ""
  }
  if (effects != "fixed") {
    random <- if (isTRUE(group_level)) group_level_table(model, ci)
              else random_effects_table(model, ci)
    if (!is.null(out) && "Level" %in% names(random)) out$Level <- NA_character_
    out <- rbind(out, random)
  }
  cols <- c("Parameter", "Level", "Coefficient", "SE", "CI", "CI_low", "CI_high", "t",
            "df_error", "p", "Effects", "Group")
  if (effects == "random") cols <- setdiff(cols, c("t", "df_error", "p"))
  if (effects == "fixed") cols <- setdiff(cols, "Group")
  out <- out[intersect(cols, names(out))]
  out <- filter_parameters_rows(out, keep, drop)
  rownames(out) <- NULL
  parameters_attributes(out, model, ci, ci_method, method, isTRUE(group_level),
                        object_name = deparse1(substitute(model)), verbose = verbose)
}

## Options of model_parameters() that these tables do not implement: a clear error rather than a
## silently unchanged table.
unsupported_parameters_options <- function(dots) {
  active <- function(v) !is.null(v) && !isFALSE(v)
  bad <- intersect(c("standardize", "bootstrap", "exponentiate", "p_adjust", "vcov", "ci_random"),
                   names(dots)[vapply(dots, active, NA)])
  if (length(bad))
    stop("model_parameters() for \"lmm\" fits does not support: ", paste(bad, collapse = ", "),
         call. = FALSE)
}

## Rows whose Parameter matches the regular expression `keep` and not `drop` (as parameters).
filter_parameters_rows <- function(out, keep, drop) {
  rows <- rep(TRUE, nrow(out))
  if (!is.null(keep)) rows <- rows & grepl(paste(keep, collapse = "|"), out$Parameter, perl = TRUE)
  if (!is.null(drop)) rows <- rows & !grepl(paste(drop, collapse = "|"), out$Parameter, perl = TRUE)
  out[rows, , drop = FALSE]
}

## The attributes parameters' print and format methods read (as set for lmerMod).
parameters_attributes <- function(out, model, ci, ci_method, method, group_level, object_name,
                                  verbose) {
  label <- switch(method, satterthwaite = "Satterthwaite", wald = "Wald",
                  kenward = if (identical(tolower(ci_method), "kr")) "kr" else "Kenward", method)
  fixed <- names(model$beta)
  pretty <- tryCatch(parameters::format_parameters(model),
                     error = function(e) stats::setNames(fixed, fixed))
  attrs <- list(pretty_names = pretty, ci = ci, ci_method = label, df_method = label,
                verbose = verbose, exponentiate = FALSE, ordinal_model = FALSE,
                linear_model = TRUE, mixed_model = TRUE, n_obs = model$n,
                model_class = class(model), bootstrap = FALSE, iterations = 1000,
                robust_vcov = FALSE, ignore_group = !group_level, ran_pars = !group_level,
                show_summary = FALSE, log_link = FALSE,
                pretty_labels = stats::setNames(out$Parameter, out$Parameter),
                test_statistic = "t-statistic", log_response = FALSE, log_predictors = FALSE,
                weighted_nobs = sum(model$weights),
                model_formula = deparse1(formula.lmm(model, fixed.only = TRUE)),
                coefficient_name = "Coefficient", zi_coefficient_name = "Log-Odds",
                digits = 2, ci_digits = 2, p_digits = 3, footer_digits = 3,
                object_name = object_name)
  attributes(out) <- c(attributes(out), attrs)
  class(out) <- c("parameters_model", "see_parameters_model", "data.frame")
  out
}
