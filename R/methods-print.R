## print() and summary() of a fitted "lmm", laid out as lme4 lays out a merMod.

method_title <- function(REML) {
  paste("Linear mixed model fit by", if (REML) "REML" else "maximum likelihood ")
}

print_title <- function(title, cls = "lmm") {
  if (nchar(title) + 5 + nchar(cls) > getOption("width")) {
    cat(strwrap(title, width = getOption("width") - 2, exdent = 2), " [", cls, "]",
        sep = "", fill = TRUE)
  } else cat(sprintf("%s ['%s']\n", title, cls))
}

## Formula / Data / Weights / Offset / Subset lines from the call.
print_call <- function(call) {
  show <- function(label, what) if (!is.null(what)) cat(label, deparse(what), fill = TRUE)
  if (is.null(call)) return(invisible())
  show("Formula:", call$formula)
  show("   Data:", call$data)
  show("Weights:", call$weights)
  show(" Offset:", call$offset)
  show(" Subset:", call$subset)
}

## REML fits: the REML criterion; ML fits: AIC, BIC, logLik, deviance, df.resid.
aic_table <- function(object) {
  if (object$REML) return(c(REML = object$crit))
  ll <- logLik(object)
  c(AIC = stats::AIC(ll), BIC = stats::BIC(ll), logLik = c(ll),
    deviance = lmm_crit(object, REML = FALSE), df.resid = df.residual(object))
}

print_aic_table <- function(tab, digits = 1) {
  rounded <- round(tab, digits)
  if (length(tab) == 1L && names(tab) == "REML") {
    cat("REML criterion at convergence:", rounded, fill = TRUE)
  } else {
    txt <- format(rounded)
    txt["df.resid"] <- format(rounded["df.resid"])
    print(txt, quote = FALSE)
  }
}

print_groups <- function(ng, n) {
  if (!length(ng)) return(cat(sprintf("Number of obs: %d\n", n)))    # a gls fit
  cat(sprintf("Number of obs: %d, groups: ", n),
      paste(paste(names(ng), ng, sep = ", "), collapse = "; "), fill = TRUE)
}

print_singular <- function(object) {
  tol <- if (is.null(object$singular_tol)) 1e-4 else object$singular_tol
  if (isSingular(object, tol)) cat("boundary (singular) fit: see help('isSingular')\n")
}

## "optimizer (bobyqa-lmmc) convergence code: 0 (OK); 23 evaluations"
optimizer_line <- function(oi) {
  if (is.null(oi)) return(invisible())
  ok <- isTRUE(oi$converged)
  status <- if (ok) "(OK)" else if (length(oi$message)) sprintf("(%s)", oi$message) else ""
  cat(sprintf("optimizer (%s) convergence code: %d %s; %d evaluations%s\n",
              oi$optimizer, if (ok) 0L else 1L, status, as.integer(oi$feval),
              certificate_text(oi)))
  if (length(oi$warnings)) writeLines(oi$warnings)
}

## The first-order certificate of a gradient-based fit, appended to the optimizer line:
## "(8 with gradient); max |projected gradient| 5.9e-08; on bound: 4, 6; min Hessian eigenvalue
## 0.37 (BFGS)" (the eigenvalue of the BFGS approximation, or of finite differences of the
## gradient with lmm_control(calc.derivs = TRUE))
certificate_text <- function(oi) {
  if (is.null(oi$geval) || !oi$geval || is.null(oi$pgrad)) return("")
  bound <- if (length(oi$on_bound)) paste(oi$on_bound, collapse = ", ") else "none"
  eig <- if (is.null(oi$min_eigen) || is.na(oi$min_eigen)) "" else
    sprintf("; min Hessian eigenvalue %.3g (%s)", oi$min_eigen, oi$hessian)
  sprintf(" (%d with gradient); max |projected gradient| %.2g; on bound: %s%s",
          as.integer(oi$geval), oi$pgrad, bound, eig)
}

print.lmm <- function(x, digits = max(3, getOption("digits") - 3), ranef.comp = "Std.Dev.", ...) {
  print_title(method_title(x$REML))
  print_call(x$call)
  print_aic_table(aic_table(x), 4)
  cat("Random effects:\n")
  print(format_vc(VarCorr(x), digits = digits, comp = ranef.comp), quote = FALSE, digits = digits, ...)
  print_groups(ngrps(x), x$n)
  print_residual_structure(format_residual_structure(x, digits))
  cf <- fixef(x)
  if (length(cf)) {
    cat("Fixed Effects:\n")
    print.default(format(cf, digits = digits), print.gap = 2L, quote = FALSE, ...)
  } else cat("No fixed effect coefficients\n")
  print_nonconvergence(x$optinfo)
  print_singular(x)
  print_iterative(x$iterative)
  invisible(x)
}

## lme4's line when the optimiser stopped early, e.g. at maxeval:
## "optimizer (bobyqa-lmmc) convergence code: 1 (maximum number of evaluations reached)"
print_nonconvergence <- function(oi) {
  if (is.null(oi) || isTRUE(oi$converged)) return(invisible())
  cat(sprintf("optimizer (%s) convergence code: %d (%s)\n", oi$optimizer,
              max(1L, as.integer(oi$status)), oi$message))
}

# ddf = "Satterthwaite" (the default) or "Kenward-Roger" adds lmerTest's df and Pr(>|t|) columns
# (Kenward-Roger: also its adjusted standard errors); "none" (or "lme4") prints lme4's exact table.
# With a residual structure its free parameters are among Satterthwaite's variance parameters.
summary.lmm <- function(object, correlation = (p <= 12),
                        ddf = c("Satterthwaite", "Kenward-Roger", "none", "lme4"), ...) {
  ddf <- match.arg(ddf)
  beta <- fixef(object)
  p <- length(beta)
  se <- sqrt(diag(object$vcov_beta))
  coefs <- cbind(Estimate = beta, `Std. Error` = se, `t value` = beta / se)
  title <- method_title(object$REML)
  if (ddf %in% c("Satterthwaite", "Kenward-Roger") && p > 0L) {
    setup <- ddf_setup(object, ddf)
    coefs <- ddf_coef_table(object, setup)
    title <- paste0(title, ". t-tests use ", ddf_method_name(setup), " method")
  }
  structure(list(methTitle = title, objClass = class(object),
                 REML = object$REML, n = object$n, logLik = logLik(object),
                 ngrps = ngrps(object), coefficients = coefs, sigma = object$sigma,
                 vcov = object$vcov_beta, correlation = correlation,
                 varcor = VarCorr(object), AICtab = aic_table(object), call = object$call,
                 residuals = residuals(object, "pearson", scaled = TRUE),
                 optinfo = object$optinfo, singular = isSingular(object),
                 residual_lines = format_residual_structure(object),
                 iterative = object$iterative),
            class = "summary.lmm")
}

print.summary.lmm <- function(x, digits = max(3, getOption("digits") - 3), correlation = NULL,
                              signif.stars = getOption("show.signif.stars"),
                              ranef.comp = c("Variance", "Std.Dev."), show.resids = TRUE, ...) {
  print_title(x$methTitle, x$objClass[1L])
  print_call(x$call)
  cat("\n")
  print_aic_table(x$AICtab)
  cat("\n")
  if (show.resids) print_scaled_resids(x$residuals, digits)
  cat("Random effects:\n")
  print(format_vc(x$varcor, digits = digits, comp = ranef.comp), quote = FALSE, digits = digits, ...)
  print_groups(x$ngrps, x$n)
  print_residual_structure(x$residual_lines)
  p <- nrow(x$coefficients)
  if (p > 0L) {
    cat("\nFixed effects:\n")
    printCoefmat(x$coefficients, digits = digits, signif.stars = signif.stars)
    if (is.null(correlation)) correlation <- x$correlation
    if (!is.logical(correlation)) stop("'correlation' must be NULL or logical", call. = FALSE)
    if (correlation && p > 1L) print_fixef_corr(x$vcov, rownames(x$coefficients))
    if (!correlation && p > 12L)
      message(sprintf("\nCorrelation matrix not shown by default, as p = %d > 12.\n", p),
              "Use print(summary(fit), correlation=TRUE)  or\n    vcov(fit)        if you need it\n")
  }
  optimizer_line(x$optinfo)
  if (isTRUE(x$singular)) cat("boundary (singular) fit: see help('isSingular')\n")
  print_iterative(x$iterative)
  invisible(x)
}

## The residual correlation/variance structure (R/residual.R), nlme's layout; nothing without one.
print_residual_structure <- function(lines) {
  if (length(lines)) cat(lines, sep = "\n")
}

print_scaled_resids <- function(r, digits) {
  cat("Scaled residuals:", "\n")
  q <- setNames(zapsmall(quantile(r, na.rm = TRUE), digits + 1L),
                c("Min", "1Q", "Median", "3Q", "Max"))
  print(q, digits = digits)
  cat("\n")
}

## Lower triangle of the correlation of the fixed effects, 3 decimals, abbreviated names.
print_fixef_corr <- function(V, rn) {
  R <- cov2cor(V)
  p <- ncol(R)
  txt <- matrix(format(round(R, 3), nsmall = 3), p, p,
                dimnames = list(abbreviate(rn, minlength = 11), abbreviate(rn, minlength = 6)))
  txt[!lower.tri(txt)] <- ""
  cat("\nCorrelation of Fixed Effects:\n")
  print(txt[-1L, -p, drop = FALSE], quote = FALSE)
}
