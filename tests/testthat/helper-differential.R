# Differential testing against lme4 (issue 9, section 4): random valid data sets and formulas
# drawn from a seed. Used by test-differential.R and by bench/make-differential-reference.R,
# which records lme4's criteria for diff_seeds() in data/differential-reference.rds.
#
# A case is a list(seed, data, formula, REML, design). Everything is drawn from R's default
# generators (Mersenne-Twister / Inversion / Rejection, as stored in the reference file), so a
# seed gives the same case in every R session.

diff_rng_kind <- c("Mersenne-Twister", "Inversion", "Rejection")

# The seeds of the recorded reference: 200 cases; every 25th is large (n 1,000 - 5,000).
diff_seeds <- function() 1:200

# Evaluate 'code' with the seed set under the default generators, restoring the caller's RNG:
# with_seed() of helper-reference.R (bench/make-differential-reference.R sources both files).
diff_with_seed <- function(seed, code) with_seed(seed, code)

diff_case <- function(seed) diff_with_seed(seed, diff_draw(seed))

# ---- the draw ------------------------------------------------------------------------------

diff_draw <- function(seed) {
  large <- seed %% 25 == 0
  n <- if (large) sample(1000:5000, 1) else round(exp(runif(1, log(10), log(400))))
  k <- if (n < 30) sample(1:2, 1) else sample(1:3, 1, prob = c(0.35, 0.4, 0.25))
  design <- if (k == 1) "single" else sample(c("nested", "crossed", "partial"), 1)
  groups <- diff_groups(n, k, design)
  d <- data.frame(x1 = rnorm(n), x2 = runif(n, 0, 10),
                  f = factor(sample(letters[seq_len(sample(2:3, 1))], n, replace = TRUE)))
  d <- cbind(d, groups$factors)
  fixed <- c("1", "x1", if (runif(1) < 0.5) "x2", if (runif(1) < 0.4) "f")
  terms <- lapply(seq_along(groups$names), function(j) diff_term(groups$names[j], d, n))
  terms <- diff_fit_sizes(terms, d, n)
  d$y <- diff_response(d, fixed, terms)
  rhs <- c(fixed, vapply(terms, diff_term_text, ""))
  list(seed = seed, data = d, REML = runif(1) < 0.5,
       formula = stats::as.formula(paste("y ~", paste(rhs, collapse = " + ")), env = globalenv()),
       design = design)
}

# Grouping factors g1..gk with unbalanced level frequencies. nested: g2 (and g3) labels are
# reused within g1 and the formula uses g1:g2; crossed: independent; partial: g2 is drawn from
# a window of levels that moves with g1, so only neighbouring g1 levels share g2 levels.
diff_groups <- function(n, k, design) {
  nlev <- function() max(2L, min(sample(2:60, 1), n %/% 3))
  draw <- function(m) sample.int(m, n, replace = TRUE, prob = rexp(m) + 0.05)
  m1 <- nlev()
  g1 <- draw(m1)
  out <- list(g1 = g1)
  names <- "g1"
  if (k >= 2) {
    m2 <- nlev()
    if (design == "nested") {
      m2 <- max(2L, min(m2, 6L))
      out$g2 <- draw(m2)
      names <- c(names, "g1:g2")
    } else if (design == "crossed") {
      out$g2 <- draw(m2)
      names <- c(names, "g2")
    } else {
      w <- max(2L, m2 %/% 3)
      out$g2 <- (round((g1 - 1) / max(1, m1 - 1) * (m2 - w)) + sample.int(w, n, TRUE) - 1L) %% m2 + 1L
      names <- c(names, "g2")
    }
  }
  if (k == 3) {
    out$g3 <- draw(nlev())                       # a third factor crossed with the others
    names <- c(names, "g3")
  }
  factors <- lapply(out, function(g) factor(paste0("L", g)))
  list(factors = as.data.frame(factors, stringsAsFactors = TRUE), names = names)
}

# One random-effects term: columns (1 to 3 of intercept, x1, x2, or the factor f), correlated
# or '||'; true standard deviations with some exact zeros (singular fits).
diff_term <- function(group, d, n) {
  width <- sample(1:3, 1, prob = c(0.45, 0.4, 0.15))
  cols <- if (width == 1) sample(c("1", "1", "x1"), 1)
          else if (width == 2 && runif(1) < 0.2 && nlevels(d$f) == 2) c("1", "f")
          else c("1", sample(c("x1", "x2"), width - 1))
  sds <- ifelse(runif(length(cols)) < 0.15, 0, exp(runif(length(cols), -1.5, 1)))
  list(group = group, cols = cols, sds = sds, double_bar = length(cols) > 1 && runif(1) < 0.3)
}

# Drop slopes (then the whole term's width) until every term has fewer random effects than
# observations and every grouping factor fewer levels than observations (lme4's checks).
diff_fit_sizes <- function(terms, d, n) {
  for (j in seq_along(terms)) {
    nl <- nlevels(interaction(d[strsplit(terms[[j]]$group, ":")[[1]]], drop = TRUE))
    while (length(terms[[j]]$cols) > 1 && nl * length(terms[[j]]$cols) >= n) {
      terms[[j]]$cols <- terms[[j]]$cols[-length(terms[[j]]$cols)]
      terms[[j]]$sds <- terms[[j]]$sds[-length(terms[[j]]$sds)]
    }
    terms[[j]]$double_bar <- terms[[j]]$double_bar && length(terms[[j]]$cols) > 1
  }
  terms
}

diff_term_text <- function(t) {
  lhs <- if (identical(t$cols, "x1")) "0 + x1" else paste(t$cols, collapse = " + ")
  sprintf("(%s %s %s)", lhs, if (t$double_bar) "||" else "|", t$group)
}

# y = X beta + sum_terms Z b + e, with correlated random effects (random correlation matrix).
diff_response <- function(d, fixed, terms) {
  n <- nrow(d)
  X <- stats::model.matrix(stats::as.formula(paste("~", paste(fixed, collapse = "+"))), d)
  y <- drop(X %*% rnorm(ncol(X), sd = 3))
  for (t in terms) {
    g <- interaction(d[strsplit(t$group, ":")[[1]]], drop = TRUE)
    Zc <- if (t$cols[1] == "1")
      stats::model.matrix(stats::as.formula(paste("~", paste(t$cols, collapse = "+"))), d)
    else as.matrix(d["x1"])
    m <- length(t$sds)
    R <- if (m > 1 && !t$double_bar) qr.Q(qr(matrix(rnorm(m * m), m))) else diag(m)
    b <- matrix(rnorm(nlevels(g) * m), ncol = m) %*% t(R) %*% diag(t$sds, m)
    y <- y + rowSums(Zc * b[as.integer(g), , drop = FALSE])
  }
  y + rnorm(n, sd = exp(runif(1, -1, 1)))
}

# ---- fitting -------------------------------------------------------------------------------

# The fitted criterion and theta of lmm on a case, or an error string.
diff_fit_lmm <- function(case) {
  fit <- tryCatch(suppressWarnings(suppressMessages(
    lmmc::lmm(case$formula, data = case$data, REML = case$REML))),
    error = function(e) conditionMessage(e))
  if (is.character(fit)) return(list(crit = NA_real_, theta = NULL, error = fit))
  list(crit = fit$crit, theta = unname(fit$theta), error = NA_character_, fit = fit)
}

# A degenerate design: [X Z] of full column rank n (the response can be interpolated) and the
# fit drives sigma to ~0 (below 1e-6 sd(y)) with theta growing without bound; the criterion then
# has no attained minimum and its values out there are dominated by rounding, so no optimiser's
# stopping value is a reference.  (Rank n alone is not enough: most such designs have an
# interior optimum.)
diff_unbounded <- function(fit) {
  if (is.null(fit)) return(FALSE)
  XZ <- cbind(stats::model.matrix(fit), stats::model.matrix(fit, type = "random"))
  qr(XZ)$rank >= nrow(XZ) && fit$sigma < 1e-6 * stats::sd(fit$y)
}

# Largest projected-gradient component of lmm's criterion at theta (bounds at 0 for diagonals).
diff_pgrad <- function(fit, theta) {
  obj <- lmmc::lmm_objective(fit, gradient = TRUE)
  g <- obj$gr(theta)
  free <- !(theta <= obj$lower & g > 0)
  max(abs(g[free]), 0)
}

# Relative difference of a criterion from the best reference: positive = lmm worse.
diff_rel <- function(crit, best) (crit - best) / abs(best)

# Theta agreement in units of the tolerance (<= 1 passes): 1e-6 relative, 1e-7 absolute near 0.
diff_theta_err <- function(theta, ref) {
  if (length(theta) != length(ref)) return(Inf)
  max(abs(theta - ref) / pmax(abs(ref) * 1e-6, 1e-7))
}
