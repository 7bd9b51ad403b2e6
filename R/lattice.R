## lattice graphics for lmmc fits, in lme4's look (lattice is in Suggests: these run only when
## lattice is loaded, as methods of its generics, or after requireNamespace("lattice")).
##   dotplot(ranef(fit, condVar = TRUE))  caterpillar plot per grouping factor
##   qqmath(ranef(fit, condVar = TRUE))   normal quantile plot of the conditional modes
##   plot(fit, form)                      residual plots by formula (lme4's plot.merMod)

## ---- random effects ----------------------------------------------------------------------------

## One trellis object per grouping factor: conditional modes (x) by level (y, levels ordered by the
## first column's mode), one panel per column, with intervals condval +/- z sd, z = qnorm((1+level)/2).
dotplot.ranef.lmm <- function(x, data, main = TRUE, transf = I, level = 0.95, ...) {
  check_level(level)
  z <- stats::qnorm((1 + level) / 2)
  one <- function(g) {
    d <- ranef_long(x[[g]], g)
    lattice::dotplot(grp ~ condval | term, data = d, se = d$condsd,
                     prepanel = ci_prepanel(z, transf), panel = ci_dot_panel(z, transf),
                     xlab = NULL, main = if (isTRUE(main)) g, ...)
  }
  setNames(lapply(names(x), one), names(x))
}

## x-limits wide enough for the intervals.
ci_prepanel <- function(z, transf = I) {
  function(x, y, se, subscripts, ...) {
    if (is.null(se)) return(list())
    x <- as.numeric(x)
    hw <- z * as.numeric(se[subscripts])
    list(xlim = range(transf(x - hw), transf(x + hw), finite = TRUE))
  }
}

## Reference lines at each level and at 0, the interval segments, then the points.
ci_dot_panel <- function(z, transf = I) {
  function(x, y, se, subscripts, pch = 16, ...) {
    x <- as.numeric(x)
    y <- as.numeric(y)
    ln <- lattice::trellis.par.get("dot.line")
    lattice::panel.abline(h = unique(y), col = ln$col, lty = ln$lty, lwd = ln$lwd)
    lattice::panel.abline(v = 0, col = ln$col, lty = ln$lty, lwd = ln$lwd)
    if (!is.null(se)) {
      s <- as.numeric(se[subscripts])
      lattice::panel.segments(transf(x - z * s), y, transf(x + z * s), y, col = "black")
    }
    lattice::panel.xyplot(transf(x), y, pch = pch, ...)
  }
}

## Sorted conditional modes (x) against N(0,1) quantiles qnorm((r - 0.5) / n) (y), one panel per
## column, with intervals when the conditional variances are there; else lattice's qqmath of the
## modes.
qqmath.ranef.lmm <- function(x, data, main = TRUE, level = 0.95, ...) {
  check_level(level)
  z <- stats::qnorm((1 + level) / 2)
  one <- function(g) {
    d <- ranef_long(x[[g]], g)
    ttl <- if (isTRUE(main)) g
    if (is.null(d$condsd))
      return(lattice::qqmath(~ condval | term, data = d, scales = list(y = list(relation = "free")),
                             xlab = "Standard normal quantiles", ylab = NULL, main = ttl, ...))
    d <- do.call(rbind, lapply(split(d, d$term), function(dt) {
      dt <- dt[order(dt$condval), , drop = FALSE]
      dt$quantile <- stats::qnorm((seq_len(nrow(dt)) - 0.5) / nrow(dt))
      dt
    }))
    lattice::xyplot(quantile ~ condval | term, data = d, se = d$condsd,
                    prepanel = ci_prepanel(z), panel = ci_qq_panel(z),
                    scales = list(x = list(relation = "free")),
                    ylab = "Standard normal quantiles", xlab = NULL, main = ttl, ...)
  }
  setNames(lapply(names(x), one), names(x))
}

ci_qq_panel <- function(z) {
  function(x, y, se, subscripts, pch = 16, ...) {
    lattice::panel.grid(h = -1, v = -1)
    lattice::panel.abline(v = 0)
    x <- as.numeric(x)
    y <- as.numeric(y)
    s <- as.numeric(se[subscripts])
    lattice::panel.segments(x - z * s, y, x + z * s, y, col = "black")
    lattice::panel.xyplot(x, y, pch = pch, ...)
  }
}

## ---- plot(fit, form): lme4's residual plots by formula ------------------------------------------

## form = y ~ x | g: y and x are expressions in the data's variables and `.` (the fit), e.g.
## resid(., type = "pearson") ~ fitted(.) | Subject. Numeric y: xyplot; a factor y: bwplot; one-sided
## ~ x: histogram. abline: c(a, b) for a line, else horizontal (xyplot) or vertical positions.
## id: a probability (label points whose |Pearson residual| / sigma exceeds qnorm(1 - id/2)) or a
## one-sided formula giving a logical vector; idLabels: labels (vector or one-sided formula).
plot_formula <- function(x, form, abline = NULL, id = NULL, idLabels = NULL, grid = NULL, ...) {
  if (!requireNamespace("lattice", quietly = TRUE))
    stop("plot(fit, formula) needs the lattice package", call. = FALSE)
  if (!inherits(form, "formula")) stop("'form' must be a formula", call. = FALSE)
  env <- plot_data(x, environment(form))
  rhs <- form[[length(form)]]
  groups <- NULL
  if (is.call(rhs) && identical(rhs[[1L]], as.name("|"))) {
    groups <- rhs[[3L]]
    rhs <- rhs[[2L]]
  }
  d <- data.frame(.x = eval_plot(rhs, env, x))
  if (!is.numeric(d$.x)) stop("the covariate (right of ~) must be numeric", call. = FALSE)
  args <- list(...)
  if (is.null(args$xlab)) args$xlab <- deparse1(rhs)
  two_sided <- length(form) == 3L
  if (two_sided) {
    d$.y <- eval_plot(form[[2L]], env, x)
    if (is.null(args$ylab)) args$ylab <- deparse1(form[[2L]])
  }
  f <- if (two_sided) .y ~ .x else ~ .x
  if (!is.null(groups)) {
    for (v in all.vars(groups)) d[[v]] <- eval(as.name(v), env)
    f <- stats::as.formula(call("~", if (two_sided) quote(.y), call("|", quote(.x), groups)))
    if (!two_sided) f <- stats::as.formula(call("~", call("|", quote(.x), groups)))
  }
  if (is.null(args$strip)) args$strip <- function(...) lattice::strip.default(..., style = 1)
  labels <- id_labels(x, env, id, idLabels)
  kind <- if (!two_sided) "histogram" else if (is.numeric(d$.y)) "xyplot" else "bwplot"
  if (is.null(grid)) grid <- kind == "xyplot"
  if (is.null(args$panel)) args$panel <- formula_panel(kind, abline, grid, labels)
  do.call(getExportedValue("lattice", kind), c(list(f, data = d), args))
}

## The data the formula reads: the fit's data set (when its rows are the fit's) or model frame,
## with `.` bound to the fit and `.obs` the row number.
plot_data <- function(x, enclos) {
  data <- tryCatch(getData.lmm(x), error = function(e) NULL)
  if (is.null(data) || nrow(data) != x$n) data <- x$frame
  env <- list2env(as.list(data), parent = enclos)
  env$. <- x
  env$.obs <- seq_len(nrow(data))
  env
}

eval_plot <- function(expr, env, x) {
  v <- eval(expr, env)
  if (length(v) != x$n)
    stop(sprintf("'%s' has length %d, the fit has %d observations", deparse1(expr), length(v), x$n),
         call. = FALSE)
  unname(v)
}

## NULL, or a list(which = logical n-vector, labels = character n-vector).
id_labels <- function(x, env, id, idLabels) {
  if (is.null(id)) return(NULL)
  which <- if (is.numeric(id)) {
    if (id <= 0 || id >= 1) stop("'id' must be between 0 and 1", call. = FALSE)
    abs(residuals(x, type = "pearson")) / x$sigma > -stats::qnorm(id / 2)
  } else if (inherits(id, "formula")) {
    eval(id[[length(id)]], env)
  } else stop("'id' must be a number in (0, 1) or a one-sided formula", call. = FALSE)
  labels <- if (is.null(idLabels)) {
    rn <- rownames(x$frame)
    if (is.null(rn)) seq_len(x$n) else rn
  } else if (inherits(idLabels, "formula")) {
    eval(idLabels[[length(idLabels)]], env)
  } else idLabels
  if (length(labels) != x$n) stop("'idLabels' has the wrong length", call. = FALSE)
  list(which = as.logical(which), labels = as.character(labels))
}

formula_panel <- function(kind, abline, grid, labels) {
  switch(kind,
    xyplot = function(x, y, subscripts, ...) {
      if (grid) lattice::panel.grid()
      lattice::panel.xyplot(x, y, ...)
      if (!is.null(labels)) {
        show <- labels$which[subscripts]
        if (any(show)) lattice::ltext(x[show], y[show], labels$labels[subscripts][show])
      }
      if (length(abline) == 2L) lattice::panel.abline(a = abline)
      else if (length(abline)) lattice::panel.abline(h = abline)
    },
    bwplot = function(x, y, ...) {
      if (grid) lattice::panel.grid()
      lattice::panel.bwplot(x, y, ...)
      if (length(abline)) lattice::panel.abline(v = abline[1L])
    },
    histogram = function(x, ...) {
      if (grid) lattice::panel.grid()
      lattice::panel.histogram(x, ...)
      if (length(abline)) lattice::panel.abline(v = abline[1L])
    })
}
