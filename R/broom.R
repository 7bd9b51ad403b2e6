## broom-style summaries of a fitted "lmm" (methods for the generics package's tidy / glance /
## augment, which broom.mixed re-exports), with the columns and row order broom.mixed 0.2.9 gives
## for lme4's merMod fits -- and, for the fixed effects, the df and p.value columns it gives for
## lmerTest fits (Satterthwaite, R/satterthwaite.R).  Registered when generics is loaded; the
## results are data frames with the tibble classes (plain data frames without tibble).

## ---- tidy ------------------------------------------------------------------------------------------

tidy.lmm <- function(x, effects = c("ran_pars", "fixed"), scales = NULL, exponentiate = FALSE,
                     ran_prefix = NULL, conf.int = FALSE, conf.level = 0.95,
                     conf.method = c("Wald", "profile", "boot"),
                     ddf.method = c("Satterthwaite", "lme4", "none"), profile = NULL, ...) {
  conf.method <- match.arg(conf.method)
  ddf.method <- match.arg(ddf.method)
  bad <- setdiff(effects, c("ran_pars", "fixed", "ran_vals", "ran_coefs"))
  if (length(bad)) stop("unknown effect type ", paste(bad, collapse = ", "), call. = FALSE)
  if (!is.null(scales) && length(scales) != length(effects))
    stop("if scales are specified, values (or NA) must be provided for each effect",
         call. = FALSE)
  if (conf.int) check_conf_level(conf.level)
  ci <- if (conf.int && conf.method != "Wald" && any(c("fixed", "ran_pars") %in% effects))
    tidy_intervals(x, conf.method, conf.level, profile, ...)
  parts <- list()
  if ("fixed" %in% effects)
    parts$fixed <- tidy_fixed(x, conf.int, conf.level, ci, ddf.method, exponentiate)
  if ("ran_pars" %in% effects) {
    scale <- if (is.null(scales)) "sdcor" else scales[effects == "ran_pars"]
    parts$ran_pars <- tidy_ran_pars(x, scale, ran_prefix, if (conf.int) ci, conf.int)
  }
  if ("ran_vals" %in% effects)
    parts$ran_vals <- tidy_ran_vals(x, conf.int, conf.level, conf.method)
  if ("ran_coefs" %in% effects) parts$ran_coefs <- tidy_ran_coefs(x, conf.int)
  cols <- c("effect", "group", "level", "term", "estimate", "std.error", "statistic", "df",
            "p.value", "conf.low", "conf.high")
  out <- stack_frames(parts, "effect")
  as_tbl(out[intersect(cols, names(out))])
}

## Profile or bootstrap intervals of all parameters (sd/cor, sigma, then beta), computed once.
tidy_intervals <- function(x, method, level, profile, ...) {
  if (method == "profile" && !is.null(profile)) return(confint(profile, level = level))
  confint(x, level = level, method = method, quiet = TRUE, ...)
}

## Estimate, std.error, statistic (t), and with Satterthwaite's method df and p.value.
tidy_fixed <- function(x, conf.int, level, ci, ddf.method, exponentiate) {
  tab <- stats::coef(summary(x, ddf = ddf.method))
  out <- data.frame(term = rownames(tab), estimate = tab[, "Estimate"],
                    std.error = tab[, "Std. Error"], statistic = tab[, "t value"],
                    stringsAsFactors = FALSE)
  if ("df" %in% colnames(tab)) {
    out$df <- tab[, "df"]
    out$p.value <- tab[, "Pr(>|t|)"]
  }
  if (conf.int) {
    if (is.null(ci)) {                    # Wald: t quantiles with Satterthwaite's df, else normal
      mult <- if (is.null(out$df)) stats::qnorm((1 + level) / 2) else
        stats::qt((1 + level) / 2, out$df)
      out$conf.low <- out$estimate - mult * out$std.error
      out$conf.high <- out$estimate + mult * out$std.error
    } else {
      out$conf.low <- ci[out$term, 1L]
      out$conf.high <- ci[out$term, 2L]
    }
  }
  if (exponentiate) {
    for (v in intersect(c("estimate", "conf.low", "conf.high"), names(out))) out[[v]] <- exp(out[[v]])
    out$std.error <- out$std.error * out$estimate      # delta method
  }
  rownames(out) <- NULL
  out
}

## One row per variance parameter in lower-triangle order, then the residual SD (group
## "Residual", term "sd__Observation"); estimates on the sd/cor or var/cov scale.
tidy_ran_pars <- function(x, scale, ran_prefix, ci, conf.int) {
  if (!scale %in% c("sdcor", "vcov"))
    stop(sprintf("unrecognized ran_pars scale %s", sQuote(scale)), call. = FALSE)
  vc <- as.data.frame(VarCorr(x), order = "lower.tri")
  if (is.null(ran_prefix))
    ran_prefix <- if (scale == "vcov") c("var", "cov") else c("sd", "cor")
  sep <- getOption("broom.mixed.sep1", "__")
  term <- vapply(seq_len(nrow(vc)), function(i) {
    v <- stats::na.omit(c(vc$var1[i], vc$var2[i]))
    if (!length(v)) v <- "Observation"
    p <- paste(v, collapse = ".")
    if (identical(ran_prefix, NA)) p else paste(ran_prefix[length(v)], p, sep = sep)
  }, "")
  out <- data.frame(group = vc$grp, term = term, estimate = vc[[scale]],
                    stringsAsFactors = FALSE)
  if (conf.int) {
    nvp <- nrow(out)                      # sd/cor parameters and sigma come first in confint()
    out$conf.low <- if (is.null(ci)) NA_real_ else unname(ci[seq_len(nvp), 1L])
    out$conf.high <- if (is.null(ci)) NA_real_ else unname(ci[seq_len(nvp), 2L])
  }
  out
}

## Conditional modes and conditional SDs, as.data.frame(ranef(condVar = TRUE))'s rows.
tidy_ran_vals <- function(x, conf.int, level, method) {
  re <- as.data.frame(ranef(x, condVar = TRUE))
  out <- data.frame(group = as.character(re$grpvar), level = as.character(re$grp),
                    term = as.character(re$term), estimate = re$condval,
                    std.error = re$condsd, stringsAsFactors = FALSE)
  if (conf.int) {
    if (method != "Wald") stop("only Wald CIs available for conditional modes", call. = FALSE)
    z <- stats::qnorm((1 + level) / 2)
    out$conf.low <- out$estimate - z * out$std.error
    out$conf.high <- out$estimate + z * out$std.error
  }
  out
}

## coef(): for each grouping factor, each coefficient over the levels (coefficient-major).
tidy_ran_coefs <- function(x, conf.int) {
  cf <- coef(x)
  out <- stack_frames(lapply(cf, function(d)
    data.frame(level = rep(rownames(d), ncol(d)), term = rep(names(d), each = nrow(d)),
               estimate = unlist(d, use.names = FALSE), stringsAsFactors = FALSE)),
    "group")
  if (conf.int) {
    warning("CIs not available for random-effects coefficients: returning NA", call. = FALSE)
    out$conf.low <- out$conf.high <- NA
  }
  out
}

## rbind of data frames with different columns (missing ones NA), the list's names in column id.
stack_frames <- function(frames, id) {
  cols <- unique(unlist(lapply(frames, names)))
  rows <- lapply(names(frames), function(nm) {
    d <- frames[[nm]]
    for (v in setdiff(cols, names(d))) d[[v]] <- rep(NA, nrow(d))
    d[[id]] <- rep(nm, nrow(d))
    d[c(id, cols)]
  })
  out <- do.call(rbind, rows)
  rownames(out) <- NULL
  out
}

as_tbl <- function(d) {
  attr(d, "row.names") <- .set_row_names(nrow(d))
  class(d) <- c("tbl_df", "tbl", "data.frame")
  d
}

## ---- glance ----------------------------------------------------------------------------------------

## One row: nobs, sigma, logLik, AIC, BIC, REMLcrit (REML fits) or deviance (ML), df.residual.
glance.lmm <- function(x, ...) {
  ll <- logLik(x)
  out <- data.frame(nobs = nobs(x), sigma = sigma(x), logLik = as.numeric(ll),
                    AIC = stats::AIC(ll), BIC = stats::BIC(ll), crit = x$crit,
                    df.residual = df.residual(x))
  names(out)[6L] <- if (x$REML) "REMLcrit" else "deviance"
  as_tbl(out)
}

## ---- augment ---------------------------------------------------------------------------------------

## The data's columns, then .fitted, .resid, .hat, .cooksd, .fixed (population-level prediction),
## .mu, .offset, .sqrtXwt, .sqrtrwt, .weights, .wtres (lme4's response-module fields).  With
## newdata: its columns, .fitted, .fixed, and .resid when the response is there.
augment.lmm <- function(x, data = stats::model.frame(x), newdata = NULL, ...) {
  if (!is.null(newdata)) return(augment_newdata(x, newdata, ...))
  if (is.null(data)) stop("'data' is needed: the fit has no model frame", call. = FALSE)
  data <- as.data.frame(data)
  sw <- sqrt(x$weights)
  cols <- list(.fitted = x$fitted, .resid = x$y - x$fitted, .hat = lmm_hat(x))
  cols$.cooksd <- lmm_cooks(x, cols$.hat)
  cols$.fixed <- drop(x$X %*% x$beta) + x$offset
  cols <- c(cols, list(.mu = x$fitted, .offset = x$offset, .sqrtXwt = sw, .sqrtrwt = sw,
                       .weights = x$weights, .wtres = whitened_residuals(x)))
  rows <- augment_rows(x, nrow(data))
  cols <- lapply(cols, function(v) unname(v)[rows])
  out <- cbind(data, as.data.frame(cols))
  as_tbl(out)
}

## Which fitted value goes to each row of `data`: all rows, or (na.exclude / na.omit with the
## original data given) NA for the rows the fit dropped.
augment_rows <- function(x, nr) {
  if (nr == x$n) return(seq_len(x$n))
  na_act <- if (is.null(x$frame)) NULL else attr(x$frame, "na.action")
  if (length(na_act) && nr == x$n + length(na_act)) {
    rows <- rep(NA_integer_, nr)
    rows[-as.integer(na_act)] <- seq_len(x$n)
    return(rows)
  }
  stop(sprintf("'data' has %d rows but the fit has %d observations", nr, x$n), call. = FALSE)
}

augment_newdata <- function(x, newdata, ...) {
  newdata <- as.data.frame(newdata)
  out <- newdata
  out$.fitted <- unname(predict(x, newdata = newdata, ...))
  out$.fixed <- unname(predict(x, newdata = newdata, re.form = NA))
  resp <- if (!is.null(x$formula) && length(x$formula) == 3L) x$formula[[2L]]
  if (is.name(resp) && as.character(resp) %in% names(newdata))
    out$.resid <- newdata[[as.character(resp)]] - out$.fitted
  as_tbl(out)
}
