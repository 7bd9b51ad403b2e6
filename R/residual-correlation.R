# Correlation families beyond AR(1): nlme's corARMA, corCompSymm, corSymm and the spatial
# corExp, corGaus, corLin, corRatio, corSpher -> the engine's description of a residual
# correlation structure (src/residual.h), from covariates already evaluated in the data
# (R/residual.R's form_variable / form_groups evaluate the forms).
#
# cor_family_spec() returns
#   list(type      "corARMA", ...                      C reads code .. dopt (residual_families.c):
#        code      LMM_COR_* (integer)
#        npar      number of parameters
#        cov       n x d double matrix, by data row: times, positions or coordinates
#        iopt      integer options            ARMA: (p, q); CompSymm, Symm: M; spatial: (nugget, metric)
#        dopt      double constants           spatial: the range's offset (nlme's minD for Lin, Spher)
#        groups    factor (n): the correlation groups
#        order     numeric (n): the rows' order within their group (times, positions, data order)
#        par       unconstrained start (the constructor's value, else nlme's default start)
#        fixed     logical (npar)
#        lower, upper   bounds on par
#        natural   function(par) -> nlme's natural values, named as coef(cs, FALSE) names them
#        unconstrained  function(value) -> par (inverse of natural)
#        label     nlme's structure name ("ARMA(1,1)", "Compound symmetry", ...)
#        formula)
# cor_family_covariates() evaluates a form's covariates and groups in the data (for
# cor_family_spec), cor_family_lines() prints the structure as nlme's summary does.
# The C families (src/cor_arma.c, cor_compsymm.c, cor_symm.c, cor_spatial.c) state the maths.

cor_family_codes <- c(corARMA = 3L, corCompSymm = 4L, corSymm = 5L, corExp = 6L, corGaus = 7L,
                      corLin = 8L, corRatio = 9L, corSpher = 10L)

# logit-type parameters stay within 1e-6 of their interval's ends
cor_logit_bound <- stats::qlogis(1 - 1e-6)

# ---- the specification -------------------------------------------------------------------------

# correlation: an nlme constructor object; covariates: the form's covariate per data row (vector or
# matrix; NULL for ~ 1 or ~ 1 | g: positions within the group in data order); groups: factor, or
# NULL for one group; n: the number of rows.
cor_family_spec <- function(correlation, covariates = NULL, groups = NULL,
                            n = NROW(if (is.null(groups)) covariates else groups),
                            formula = attr(correlation, "formula")) {
  type <- intersect(class(correlation), names(cor_family_codes))
  if (!length(type))
    stop("'correlation' must be one of nlme's ", paste(names(cor_family_codes), collapse = ", "),
         " (got ", class(correlation)[1L], ")", call. = FALSE)
  type <- type[1L]
  if (!length(n) || n < 1L)
    stop("the correlation structure needs 'covariates' or 'groups' to know the rows", call. = FALSE)
  g <- if (is.null(groups)) factor(rep(1L, n)) else factor(groups, levels = unique(groups))
  if (length(g) != n) stop("'groups' must have one value per row", call. = FALSE)
  if (anyNA(g)) stop("'groups' has missing values", call. = FALSE)
  if (!is.null(covariates) && NROW(covariates) != n)
    stop("'covariates' must have one value (row) per data row", call. = FALSE)
  what <- cor_covariate_name(formula)
  fam <- switch(type,
                corARMA = cor_spec_arma(correlation, covariates, g, what),
                corCompSymm = cor_spec_compsymm(correlation, g),
                corSymm = cor_spec_symm(correlation, covariates, g, what),
                cor_spec_spatial(correlation, type, covariates, g, what))
  c(list(type = type, code = cor_family_codes[[type]], npar = length(fam$par)),
    fam[c("cov", "iopt", "dopt")],
    list(groups = g), fam[c("order", "par")],
    list(fixed = rep(isTRUE(attr(correlation, "fixed")), length(fam$par))),
    fam[c("lower", "upper", "natural", "unconstrained", "label")],
    list(formula = formula))
}

# The form's covariates and groups evaluated on the model's rows (R/residual.R's helpers):
# list(covariates = NULL (form ~ 1), a numeric vector, or for the spatial families a matrix with
# a column per term of x + y + ...; groups = factor, or NULL when the form has none).
cor_family_covariates <- function(correlation, data, rows) {
  form <- attr(correlation, "formula")
  sides <- split_form(form, "correlation")
  groups <- if (is.null(sides$groups)) NULL else
    form_groups(sides$groups, form, data, rows, "correlation")
  terms <- if (identical(sides$covariate, 1)) list() else
    if (inherits(correlation, "corSpatial")) plus_terms(sides$covariate) else
      list(sides$covariate)
  values <- lapply(terms, function(e) {
    v <- form_variable(e, form, data, rows, "correlation")
    if (!is.numeric(v))
      stop("the correlation covariate '", deparse(e), "' must be numeric (got ", class(v)[1L],
           ")", call. = FALSE)
    as.double(v)
  })
  covariates <- if (!length(values)) NULL else if (length(values) == 1L) values[[1L]] else
    do.call(cbind, values)
  list(covariates = covariates, groups = groups)
}

# The terms of x + y + z
plus_terms <- function(e) {
  if (is.call(e) && identical(e[[1L]], as.name("+")) && length(e) == 3L)
    c(plus_terms(e[[2L]]), plus_terms(e[[3L]]))
  else list(e)
}

# The covariate's text for messages ("the covariate 'time' of corARMA ...")
cor_covariate_name <- function(formula) {
  if (!inherits(formula, "formula")) return("covariate")
  deparse(split_form(formula, "correlation")$covariate)
}

# The constructor's value on nlme's natural scale (an Initialize()d object holds it unconstrained)
cor_natural_value <- function(correlation, initialized) {
  if (initialized) stats::coef(correlation, unconstrained = FALSE) else as.vector(correlation)
}

# Positions 1, 2, ... of the rows within their group, in data order
cor_positions <- function(g) as.double(stats::ave(seq_along(g), g, FUN = seq_along))

# An integer-valued numeric covariate with unique values within groups (times, positions)
cor_integer_covariate <- function(x, g, what, type) {
  if (is.null(x)) return(cor_positions(g))
  if (NCOL(x) != 1L || !is.numeric(x <- drop(as.matrix(x))))
    stop("the covariate '", what, "' of ", type, " must be one numeric variable", call. = FALSE)
  if (!all(is.finite(x)))
    stop("the covariate '", what, "' of ", type, " has non-finite values", call. = FALSE)
  if (any(abs(x - round(x)) > 1e-8))
    stop("the covariate '", what, "' of ", type, " must be integer-valued (times or positions)",
         call. = FALSE)
  x <- round(x)
  dup <- duplicated(cbind(as.integer(g), x))
  if (any(dup))
    stop(sprintf("the covariate '%s' of %s has duplicated values within a group (group %s, %s = %s)",
                 what, type, as.character(g[dup][1L]), what, format(x[dup][1L])), call. = FALSE)
  as.double(x)
}

# ---- corARMA -----------------------------------------------------------------------------------

cor_spec_arma <- function(correlation, x, g, what) {
  p <- attr(correlation, "p")
  q <- attr(correlation, "q")
  if (!length(p) || !length(q) || !(p >= 0 && q >= 0) || p + q == 0)
    stop("corARMA needs orders 'p' >= 0 and 'q' >= 0 with 'p' + 'q' > 0 (got p = ",
         format(p), ", q = ", format(q), ")", call. = FALSE)
  p <- as.integer(p)
  q <- as.integer(q)
  t <- cor_integer_covariate(x, g, what, "corARMA")
  maxlag <- max(vapply(split(t, g), function(tg) diff(range(tg)), 0))
  if (maxlag > 1e7)
    stop("the times '", what, "' of corARMA span more than 1e7 within a group: rescale them",
         call. = FALSE)
  if (max(p, q) > maxlag)
    stop(sprintf("corARMA's order (p = %d, q = %d) exceeds the largest lag in the data (%g)",
                 p, q, maxlag), call. = FALSE)
  par <- as.vector(correlation)                  # nlme's constructor stores it unconstrained
  if (!length(par)) par <- double(p + q)
  if (length(par) != p + q || !all(is.finite(par)))
    stop("the 'value' of corARMA must give p + q = ", p + q, " coefficients", call. = FALSE)
  bound <- 2 * atanh(1 - 1e-6)                    # partial autocorrelations within 1e-6 of +-1
  list(cov = matrix(t), iopt = c(p, q), dopt = double(), order = t, par = par,
       lower = rep(-bound, p + q), upper = rep(bound, p + q),
       natural = function(par) arma_natural(par, p, q),
       unconstrained = function(value) arma_unconstrained(value, p, q),
       label = sprintf("ARMA(%d,%d)", p, q))
}

# Unconstrained u -> (Phi1 .. Phip, Theta1 .. Thetaq): partial autocorrelations tanh(u / 2), then
# Durbin-Levinson a^(k)_j = a^(k-1)_j + s kappa_k a^(k-1)_{k-j}, s = -1 (AR) or +1 (MA).
arma_natural <- function(par, p, q) {
  from_pacf <- function(kappa, s) {
    a <- double()
    for (k in seq_along(kappa)) a <- c(a + s * kappa[k] * rev(a), kappa[k])
    a
  }
  kappa <- tanh(par / 2)
  stats::setNames(c(from_pacf(kappa[seq_len(p)], -1), from_pacf(kappa[p + seq_len(q)], 1)),
                  c(if (p) paste0("Phi", seq_len(p)), if (q) paste0("Theta", seq_len(q))))
}

# Inverse: step Durbin-Levinson down, a^(k-1) = (a^(k) - s kappa_k rev(a^(k))) / (1 - kappa_k^2),
# kappa_k = a^(k)_k; u = 2 atanh(kappa).
arma_unconstrained <- function(value, p, q) {
  if (length(value) != p + q || !all(is.finite(value)))
    stop("the corARMA 'value' must be ", p + q, " finite coefficients", call. = FALSE)
  to_pacf <- function(a, s, what) {
    kappa <- double(length(a))
    for (k in rev(seq_along(a))) {
      kappa[k] <- a[k]
      if (!(abs(kappa[k]) < 1))
        stop("the corARMA ", what, " coefficients in 'value' are not ",
             if (s < 0) "stationary" else "invertible", call. = FALSE)
      b <- a[-k]
      a <- (b - s * kappa[k] * rev(b)) / (1 - kappa[k]^2)
    }
    kappa
  }
  kappa <- c(to_pacf(value[seq_len(p)], -1, "autoregressive"),
             to_pacf(value[p + seq_len(q)], 1, "moving-average"))
  unname(2 * atanh(kappa))
}

# ---- corCompSymm -------------------------------------------------------------------------------

# r in (-a, 1), a = 1 / (M - 1) for the largest group size M: par = log((r + a) / (1 - r)).
cor_spec_compsymm <- function(correlation, g) {
  M <- max(tabulate(g))
  a <- if (M > 1L) 1 / (M - 1) else 1
  r <- cor_natural_value(correlation, !is.null(attr(correlation, "inf")))
  if (!length(r)) r <- 0
  natural <- function(par) c(Rho = (1 + a) * stats::plogis(par[[1L]]) - a)
  unconstrained <- function(value) {
    if (length(value) != 1L || !is.finite(value) || !(value > -a && value < 1))
      stop(sprintf(paste("the 'value' of corCompSymm must lie in (-1/(M - 1), 1) = (%s, 1)",
                         "for groups of up to M = %d rows (got %s)"),
                   format(-a, digits = 4), M, format(value)), call. = FALSE)
    unname(log((value + a) / (1 - value)))
  }
  list(cov = matrix(cor_positions(g)), iopt = as.integer(M), dopt = double(),
       order = seq_along(g), par = unconstrained(unname(r)),
       lower = -cor_logit_bound, upper = cor_logit_bound,
       natural = natural, unconstrained = unconstrained, label = "Compound symmetry")
}

# ---- corSymm -----------------------------------------------------------------------------------

# Positions 1 .. M (the covariate, or the rows' order within their group): C[pos_a, pos_b].
cor_spec_symm <- function(correlation, x, g, what) {
  pos <- cor_integer_covariate(x, g, what, "corSymm")
  M <- max(pos)
  if (min(pos) < 1 || length(unique(pos)) != M)
    stop("the positions '", what, "' of corSymm must be the integers 1 .. M, each present ",
         "(got ", paste(format(sort(unique(pos))), collapse = ", "), ")", call. = FALSE)
  value <- cor_natural_value(correlation, !is.null(attr(correlation, "maxCov")))
  np <- M * (M - 1L) / 2L
  par <- if (length(value)) symm_unconstrained(unname(value), M) else double(np)
  list(cov = matrix(pos - 1), iopt = as.integer(M), dopt = double(), order = pos, par = par,
       lower = rep(-cor_logit_bound, np), upper = rep(cor_logit_bound, np),
       natural = function(par) symm_natural(par, M),
       unconstrained = function(value) symm_unconstrained(value, M),
       label = "General")
}

# Spherical parametrisation (src/cor_symm.c): C = U'U, column i of U the unit vector with angles
# omega = pi plogis(par); natural values: C's lower triangle by columns, cor(1,2), cor(1,3), ...
symm_natural <- function(par, M) {
  C <- crossprod(symm_factor(par, M))
  low <- lower.tri(C)
  stats::setNames(C[low], paste0("cor(", col(C)[low], ",", row(C)[low], ")"))
}

symm_factor <- function(par, M) {
  U <- diag(M)
  omega <- pi * stats::plogis(par)
  at <- 0
  for (i in seq_len(M)[-1L]) {
    w <- omega[at + seq_len(i - 1L)]
    at <- at + i - 1L
    s <- cumprod(c(1, sin(w)))                  # products of the sines before each angle
    U[seq_len(i), i] <- c(s[seq_len(i - 1L)] * cos(w), s[i])
  }
  U
}

# Inverse: U = chol(C); cos(omega_k) = U[k, i] / |U[k:i, i]|; par = qlogis(omega / pi).
symm_unconstrained <- function(value, M) {
  np <- M * (M - 1L) / 2L
  if (length(value) != np || !all(is.finite(value)) || any(abs(value) >= 1))
    stop(sprintf("the 'value' of corSymm must be %d correlations in (-1, 1) for M = %d positions",
                 np, M), call. = FALSE)
  C <- diag(M)
  C[lower.tri(C)] <- value
  C[upper.tri(C)] <- t(C)[upper.tri(C)]
  value <- unname(value)
  U <- tryCatch(chol(C), error = function(e)
    stop("the 'value' of corSymm is not a positive-definite correlation matrix", call. = FALSE))
  par <- double()
  for (i in seq_len(M)[-1L]) {
    tail_norm <- sqrt(rev(cumsum(rev(U[seq_len(i), i]^2))))[seq_len(i - 1L)]
    omega <- acos(pmin(1, pmax(-1, U[seq_len(i - 1L), i] / tail_norm)))
    par <- c(par, stats::qlogis(omega / pi))
  }
  par
}

# ---- spatial: corExp, corGaus, corLin, corRatio, corSpher --------------------------------------

spatial_labels <- c(corExp = "Exponential spatial correlation",
                    corGaus = "Gaussian spatial correlation",
                    corLin = "Linear spatial correlation",
                    corRatio = "Rational quadratic spatial correlation",
                    corSpher = "Spherical spatial correlation")

# range = d0 + exp(par[1]) (d0 = the smallest distance for corLin, corSpher, as nlme; else 0),
# nugget = plogis(par[2]).
cor_spec_spatial <- function(correlation, type, x, g, what) {
  nugget <- isTRUE(attr(correlation, "nugget"))
  metric <- attr(correlation, "metric")
  if (is.null(metric)) metric <- "euclidean"
  metric_code <- match(metric, c("euclidean", "maximum", "manhattan")) - 1L
  if (is.na(metric_code))
    stop("the 'metric' of ", type, " must be euclidean, maximum or manhattan", call. = FALSE)
  xy <- spatial_coordinates(x, g, what, type)
  minD <- spatial_min_distance(xy, g, metric, what, type)
  d0 <- if (type %in% c("corLin", "corSpher")) minD else 0
  value <- cor_natural_value(correlation, !is.null(attr(correlation, "minD")))
  natural <- function(par)
    c(range = d0 + exp(par[[1L]]), if (nugget) c(nugget = stats::plogis(par[[2L]])))
  unconstrained <- function(value) spatial_unconstrained(value, nugget, d0, type)
  list(cov = xy, iopt = c(as.integer(nugget), metric_code), dopt = d0,
       order = seq_along(g),
       par = unconstrained(spatial_start(unname(value), nugget, minD, d0, type)),
       lower = c(-Inf, if (nugget) -cor_logit_bound), upper = c(Inf, if (nugget) cor_logit_bound),
       natural = natural, unconstrained = unconstrained, label = spatial_labels[[type]])
}

# Coordinates: the covariates as a numeric matrix, or positions within the group (form ~ 1).
spatial_coordinates <- function(x, g, what, type) {
  if (is.null(x)) return(matrix(cor_positions(g)))
  xy <- as.matrix(x)
  if (!is.numeric(xy))
    stop("the coordinates '", what, "' of ", type, " must be numeric", call. = FALSE)
  if (!all(is.finite(xy)))
    stop("the coordinates '", what, "' of ", type, " have non-finite values", call. = FALSE)
  storage.mode(xy) <- "double"
  dimnames(xy) <- NULL
  xy
}

# The smallest distance between two rows of a group (1 when no group has two rows); zero
# distances are an error, as in nlme (the correlation matrix would be singular).
spatial_min_distance <- function(xy, g, metric, what, type) {
  d <- unlist(lapply(split(seq_along(g), g), function(i)
    if (length(i) > 1L) as.vector(stats::dist(xy[i, , drop = FALSE], method = metric))))
  if (!length(d)) return(1)
  if (any(d == 0))
    stop("two rows of a group are at distance zero in '", what, "': ", type,
         " needs distinct coordinates within groups", call. = FALSE)
  min(d)
}

# nlme's start: range 0.9 min distance (1.1 for corLin, corSpher), nugget 0.1; a given range of
# corLin / corSpher at most the smallest distance is raised to 1.1 times it, with a warning.
spatial_start <- function(value, nugget, minD, d0, type) {
  if (!length(value)) value <- if (d0 > 0) 1.1 * minD else 0.9 * minD
  if (nugget && length(value) == 1L) value <- c(value, 0.1)
  if (d0 > 0 && length(value) >= 1L && is.finite(value[1L]) && value[1L] > 0 &&
      value[1L] <= d0) {
    warning("the starting 'range' of ", type, " is at most the smallest distance (", format(d0),
            "): using 1.1 times that", call. = FALSE)
    value[1L] <- 1.1 * d0
  }
  value
}

spatial_unconstrained <- function(value, nugget, d0, type) {
  if (length(value) != 1L + nugget)
    stop("the 'value' of ", type, " must be ", if (nugget) "c(range, nugget)" else "the range",
         call. = FALSE)
  if (!is.finite(value[1L]) || value[1L] <= d0)
    stop("the 'range' of ", type, " must be > ", format(d0), " (got ", format(value[1L]), ")",
         call. = FALSE)
  if (nugget && !(is.finite(value[2L]) && value[2L] > 0 && value[2L] < 1))
    stop("the 'nugget' of ", type, " must be in (0, 1) (got ", format(value[2L]), ")",
         call. = FALSE)
  unname(c(log(value[1L] - d0), if (nugget) stats::qlogis(value[2L])))
}

# ---- printing ----------------------------------------------------------------------------------

# nlme-style lines for the structure at the (full, unconstrained) parameters par.
cor_family_lines <- function(spec, par, digits = max(3L, getOption("digits") - 3L)) {
  est <- spec$natural(par)
  shown <- if (spec$type == "corSymm") symm_lines(est, spec$iopt[1L]) else
    utils::capture.output(print(est, digits = digits))
  c(paste("Correlation Structure:", spec$label),
    paste(" Formula:", paste(deparse(spec$formula), collapse = " ")),
    " Parameter estimate(s):", shown)
}

# corSymm's estimates as nlme prints them: the lower triangle of C, 3 decimals.
symm_lines <- function(est, M) {
  if (M < 2L) return(character())
  C <- matrix("", M, M, dimnames = list(seq_len(M), seq_len(M)))
  low <- lower.tri(C)
  C[low] <- format(round(unname(est), 3L))
  c(" Correlation: ",
    utils::capture.output(print(C[-1L, -M, drop = FALSE], quote = FALSE)))
}
