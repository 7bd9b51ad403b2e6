# Support for the car package: Anova() and linearHypothesis() for "lmm" fits, registered in
# NAMESPACE by S3method(car::Anova, lmm) and S3method(car::linearHypothesis, lmm).
# car's methods for lme4 fits (Anova.merMod, linearHypothesis.merMod) are the model: the same
# hypotheses, statistics and table layout.
#
# Wald chi-square of L beta = rhs:  X2 = (L b - rhs)' (L V L')^{-1} (L b - rhs),  df = rows of L.
# F test (test.statistic = "F"): F with denominator df by
#   Kenward-Roger (the default; as car on lme4 fits, via pbkrtest): V the KR-adjusted Var(beta),
#                 F KR's scaled F (kr_test(), R/kenward-roger.R); REML fits only, as car;
#   Satterthwaite (lmerTest's F, R/satterthwaite.R; ML fits too).
# Hypotheses per term (columns of X from attr(X, "assign"); aliased columns were dropped by lmm):
#   type III  the term's coefficients are zero (the intercept included);
#   type II   the term's and its relatives' rows (relatives: terms containing all its variables),
#             the part conjugate to the relatives' rows in the inner product V (car's rule).

Anova.lmm <- function(mod, type = c("II", "III", 2, 3), test.statistic = c("Chisq", "F"),
                      vcov. = NULL, singular.ok, ddf = NULL, ...) {
  type <- as.character(type)
  type <- match.arg(type)
  type <- if (type %in% c("II", "2")) "II" else "III"
  test <- match.arg(test.statistic)
  need_formula(mod, "car::Anova()")
  if (missing(singular.ok)) singular.ok <- type == "II"
  if (!singular.ok && length(attr(mod$X, "dropped")))
    stop("there are aliased coefficients in the model", call. = FALSE)
  if (test == "F") {
    if (!is.null(vcov.)) warning("test.statistic=\"F\"; vcov. argument ignored", call. = FALSE)
    ftest <- car_ftest_setup(mod, ddf)
    V <- ftest$V
  } else {
    V <- car_vcov(mod, vcov.)
  }
  L_list <- if (type == "II") car_hypotheses_II(mod, V) else car_hypotheses_III(mod)
  if (!length(L_list))
    stop("the model has no fixed-effect terms to test", if (type == "II") " (type II tests ",
         if (type == "II") "leave out the intercept)", call. = FALSE)
  rows <- lapply(L_list, function(L) {
    if (!nrow(L)) return(c(NA, 0, NA, NA))
    if (test == "Chisq") return(c(wald_chisq(mod, L, 0, V), nrow(L), NA, NA))
    ft <- ftest$run(L, 0)
    c(ft[["F"]], ft[["ndf"]], ft[["ddf"]], NA)
  })
  car_anova_table(mod, do.call(rbind, rows), names(L_list), type, test,
                  if (test == "F") ftest$label)
}

car_vcov <- function(mod, vcov.) {
  V <- if (is.null(vcov.)) vcov(mod) else if (is.function(vcov.)) vcov.(mod) else vcov.
  V <- as.matrix(V)
  if (!is.numeric(V) || !all(dim(V) == length(mod$beta)))
    stop(sprintf("'vcov.' must be a %d x %d matrix (or a function returning one)",
                 length(mod$beta), length(mod$beta)), call. = FALSE)
  V
}

# X2 = (L b - rhs)' (L V L')^{-1} (L b - rhs).
wald_chisq <- function(mod, L, rhs, V) {
  d <- drop(L %*% mod$beta) - rhs
  sum(d * solve(L %*% V %*% t(L), d))
}

## ---- hypothesis matrices -----------------------------------------------------------------

# Term names as car writes them: "(Intercept)" first when the model has one.
car_term_names <- function(mod) {
  labels <- attr(mod$fixed_terms, "term.labels")
  if (attr(mod$fixed_terms, "intercept") > 0) c("(Intercept)", labels) else labels
}

# Rows of the identity for the columns of X belonging to each term (assign 0 = intercept).
car_term_rows <- function(mod) {
  asgn <- attr(mod$X, "assign")
  I <- diag(length(mod$beta))
  dimnames(I) <- list(colnames(mod$X), colnames(mod$X))
  labels <- attr(mod$fixed_terms, "term.labels")
  index <- c(if (attr(mod$fixed_terms, "intercept") > 0) 0L, seq_along(labels))
  stats::setNames(lapply(index, function(i) I[asgn == i, , drop = FALSE]), car_term_names(mod))
}

car_hypotheses_III <- function(mod) car_term_rows(mod)

car_hypotheses_II <- function(mod, V) {
  rows <- car_term_rows(mod)
  labels <- attr(mod$fixed_terms, "term.labels")
  fac <- attr(mod$fixed_terms, "factors")
  lapply(stats::setNames(nm = labels), function(t) {
    rel <- labels[vapply(labels, function(s) s != t && all(fac[, s] | !fac[, t]), NA)]
    R1 <- do.call(rbind, c(list(rows[[t]][0L, , drop = FALSE]), rows[rel]))
    if (!nrow(R1)) return(rows[[t]])
    conjugate_complement(R1, rbind(R1, rows[[t]]), V)
  })
}

# Rows spanning {z in rowspace(R2): z V r' = 0 for every row r of R1}: with R2 V R1' = Q R
# (QR, rank k), the rows of t(Q[, -(1:k)]) R2.  Zero rows are dropped.
conjugate_complement <- function(R1, R2, V) {
  qx <- qr(R2 %*% V %*% t(R1))
  if (qx$rank == 0L) return(R2)
  Q <- qr.Q(qx, complete = TRUE)[, -seq_len(qx$rank), drop = FALSE]
  L <- crossprod(Q, R2)
  L[rowSums(abs(L)) > 0, , drop = FALSE]
}

## ---- F tests ---------------------------------------------------------------------------------

# The F method: its Var(beta) (for type II hypotheses), label and test of L beta = rhs.
car_ftest_setup <- function(mod, ddf) {
  if (car_ddf(ddf, mod) == "Kenward-Roger") car_ftest_kr(mod) else car_ftest_sat(mod)
}

# Kenward-Roger: kr_setup() once, then kr_test() per hypothesis (F scaled, ndf = rank L).
# As car on lme4 fits, ML fits are an error (pbkrtest would test their REML refit).
car_ftest_kr <- function(mod) {
  if (!isTRUE(mod$REML))
    stop("F test available only for linear mixed model fit by REML (car's rule); ",
         "use ddf = \"Satterthwaite\" for an ML fit", call. = FALSE)
  kr <- kr_setup(mod)
  list(V = kr_vcov(kr), label = "Kenward-Roger", run = function(L, rhs) {
    res <- kr_test(kr, L, rhs)
    if (!length(res$F)) return(c(F = NA, ndf = 0, ddf = NA))
    c(F = res$F, ndf = res$ndf, ddf = res$ddf)
  })
}

car_ftest_sat <- function(mod) {
  sat <- satterthwaite_setup(mod)
  list(V = sat$vcov_beta, label = "Satterthwaite", run = function(L, rhs) {
    row <- contestMD_sat(sat, L, rhs)
    if (!nrow(row)) return(c(F = NA, ndf = 0, ddf = NA))
    c(F = row[["F value"]], ndf = row$NumDF, ddf = row$DenDF)
  })
}

# NULL: Kenward-Roger (car's choice for lme4 fits); Satterthwaite for fits with a residual
# structure (car on nlme::lme has no F test to follow; Kenward-Roger is available there with
# ddf = "Kenward-Roger", at a higher cost, R/kenward-roger-residual.R).
car_ddf <- function(ddf, mod = NULL) {
  if (is.null(ddf)) return(if (is.null(mod$residual)) "Kenward-Roger" else "Satterthwaite")
  methods <- c("Kenward-Roger", "Satterthwaite")
  hit <- if (is.character(ddf) && length(ddf) == 1L) pmatch(tolower(ddf), tolower(methods))
  if (is.null(hit) || is.na(hit))
    stop("'ddf' must be \"Kenward-Roger\" or \"Satterthwaite\"", call. = FALSE)
  methods[hit]
}

## ---- tables ---------------------------------------------------------------------------------

car_anova_table <- function(mod, stats, terms, type, test, ddf_label) {
  response <- deparse(mod$formula[[2L]])
  if (test == "Chisq") {
    out <- data.frame(stats[, 1L], stats[, 2L],
                      stats::pchisq(stats[, 1L], stats[, 2L], lower.tail = FALSE))
    names(out) <- c("Chisq", "Df", "Pr(>Chisq)")
    head <- sprintf("Analysis of Deviance Table (Type %s Wald chisquare tests)\n", type)
  } else {
    out <- data.frame(stats[, 1L], stats[, 2L], stats[, 3L],
                      stats::pf(stats[, 1L], stats[, 2L], stats[, 3L], lower.tail = FALSE))
    names(out) <- c("F", "Df", "Df.res", "Pr(>F)")
    head <- sprintf("Analysis of Deviance Table (Type %s Wald F tests with %s df)\n", type,
                    ddf_label)
  }
  row.names(out) <- terms
  structure(out, heading = c(head, paste("Response:", response)),
            class = c("anova", "data.frame"))
}

## ---- linearHypothesis -------------------------------------------------------------------------

# Hypotheses given as a matrix (rows = contrasts, one column per fixed effect) or as character
# equations in the coefficient names ("Days = 0", "age:SexFemale = age").
linearHypothesis.lmm <- function(model, hypothesis.matrix, rhs = NULL, vcov. = NULL,
                                 test = c("Chisq", "F"), singular.ok = FALSE, verbose = FALSE,
                                 ddf = NULL, ...) {
  test <- match.arg(test)
  b <- fixef(model)
  hyp <- car_hypothesis(hypothesis.matrix, rhs, names(b))
  L <- hyp$L
  q <- nrow(L)
  if (verbose) {
    cat("\nHypothesis matrix:\n"); print(L)
    cat("\nRight-hand-side vector:\n"); print(hyp$rhs)
    cat("\nEstimated linear function (hypothesis.matrix %*% coef - rhs)\n")
    print(drop(L %*% b - hyp$rhs)); cat("\n")
  }
  if (test == "Chisq") {
    stat <- wald_chisq(model, L, hyp$rhs, car_vcov(model, vcov.))
    rval <- data.frame(Df = c(NA, q), Chisq = c(NA, stat),
                       "Pr(>Chisq)" = c(NA, stats::pchisq(stat, q, lower.tail = FALSE)),
                       check.names = FALSE)
  } else {
    ft <- car_ftest_setup(model, ddf)$run(L, hyp$rhs)
    rval <- data.frame(Res.Df = c(ft[["ddf"]] + ft[["ndf"]], ft[["ddf"]]), Df = c(NA, ft[["ndf"]]),
                       F = c(NA, ft[["F"]]),
                       "Pr(>F)" = c(NA, stats::pf(ft[["F"]], ft[["ndf"]], ft[["ddf"]],
                                                  lower.tail = FALSE)),
                       check.names = FALSE)
  }
  rownames(rval) <- 1:2
  name <- if (is.null(model$formula)) "lmm_fit() model" else deparse(model$formula)
  structure(rval, heading = c("Linear hypothesis test\n\nHypothesis:",
                              car::printHypothesis(L, hyp$rhs, names(b)), "",
                              paste0("Model 1: restricted model\nModel 2: ",
                                     paste(name, collapse = "\n")),
                              if (is.null(vcov.)) "" else
                                "\nNote: Coefficient covariance matrix supplied.\n"),
            class = c("anova", "data.frame"))
}

# L and rhs from character equations (car::makeHypothesis) or a matrix / vector.
car_hypothesis <- function(hypothesis.matrix, rhs, cnames) {
  p <- length(cnames)
  if (is.character(hypothesis.matrix)) {
    L <- car::makeHypothesis(cnames, hypothesis.matrix, rhs)
    if (is.null(dim(L))) L <- t(L)
    rhs <- L[, ncol(L)]
    L <- L[, -ncol(L), drop = FALSE]
    rownames(L) <- hypothesis.matrix
  } else {
    L <- if (is.null(dim(hypothesis.matrix))) t(hypothesis.matrix) else hypothesis.matrix
    if (!is.numeric(L) || ncol(L) != p)
      stop(sprintf("'hypothesis.matrix' must have %d columns (one per fixed effect)", p),
           call. = FALSE)
    if (is.null(rhs)) rhs <- rep(0, nrow(L))
  }
  if (length(rhs) != nrow(L)) stop("'rhs' must have one value per hypothesis", call. = FALSE)
  L <- as.matrix(L)
  storage.mode(L) <- "double"
  list(L = L, rhs = as.numeric(rhs))
}
