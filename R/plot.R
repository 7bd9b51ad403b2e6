## Diagnostic plots for a fitted "lmm" in base graphics. Every function draws and returns
## (invisibly) the data it plotted, so the plotted values can be checked.

## Plots draw into the current panel(s): under the user's par(mfrow = ...) layout each plot takes
## the next panel; only multi-panel plots on a single-panel device set mfrow, and restore it.

## plot(fit): Pearson residuals sqrt(w_i) (y_i - yhat_i) against fitted values; other types
## dispatch to the functions below. plot(fit, formula) draws lme4's lattice plot (R/lattice.R).
plot.lmm <- function(x, form = NULL, type = c("residuals", "qq", "caterpillar", "shrinkage"),
                     smooth = TRUE, ...) {
  if (is.character(form)) {                       # plot(fit, "qq"): the type given by position
    type <- form
    form <- NULL
  }
  if (!is.null(form)) return(plot_formula(x, form, ...))
  type <- match.arg(type)
  switch(type,
         residuals = residual_plot(x, smooth = smooth, ...),
         qq = qqnorm.lmm(x, ...),
         caterpillar = caterpillar(x, ...),
         shrinkage = shrinkage_plot(x, ...))
}

residual_plot <- function(x, smooth = TRUE, xlab = "Fitted values", ylab = "Pearson residuals",
                          main = "Residuals vs fitted", pch = 1, ...) {
  d <- data.frame(fitted = x$fitted, residual = sqrt(x$weights) * (x$y - x$fitted))
  graphics::plot(d$fitted, d$residual, xlab = xlab, ylab = ylab, main = main, pch = pch, ...)
  graphics::abline(h = 0, lty = 2, col = grDevices::grey(0.5))
  if (smooth && nrow(d) > 2L)
    graphics::lines(stats::lowess(d$fitted, d$residual), col = "red")
  invisible(d)
}

## ---- normal quantile plots ----------------------------------------------------------------

## qqnorm(fit): scaled Pearson residuals sqrt(w_i) (y_i - yhat_i) / sigma against N(0, 1) quantiles.
qqnorm.lmm <- function(y, main = "Normal Q-Q plot of residuals",
                       ylab = "Standardised residuals", line = TRUE, ...) {
  r <- sqrt(y$weights) * (y$y - y$fitted) / y$sigma
  qq <- stats::qqnorm(r, main = main, ylab = ylab, ...)
  ab <- quartile_line(r)
  if (line) graphics::abline(ab, lty = 2, col = grDevices::grey(0.5))
  invisible(structure(data.frame(theoretical = qq$x, sample = qq$y), line = ab))
}

## qqline's reference line: through the residuals' quartiles and the normal quartiles,
##   slope = (r_.75 - r_.25) / (z_.75 - z_.25),  intercept = r_.25 - slope z_.25.
quartile_line <- function(r) {
  rq <- stats::quantile(r, c(0.25, 0.75), names = FALSE, na.rm = TRUE)
  zq <- stats::qnorm(c(0.25, 0.75))
  slope <- diff(rq) / diff(zq)
  c(intercept = rq[1L] - slope * zq[1L], slope = slope)
}

## qqnorm(ranef(fit)): one panel per grouping factor and random-effect column, conditional modes
## against N(0, 1) quantiles. Returns the long data frame (grpvar, term, grp, condval, theoretical).
qqnorm.ranef.lmm <- function(y, main = NULL, ...) {
  long <- ranef_frame(y)
  panels <- split(long, factor(paste(long$grpvar, long$term), unique(paste(long$grpvar, long$term))))
  op <- panel_layout(length(panels))
  on.exit(if (length(op)) graphics::par(op))
  out <- lapply(panels, function(d) {
    ttl <- if (is.null(main)) paste0(d$grpvar[1L], ": ", d$term[1L]) else main
    qq <- stats::qqnorm(d$condval, main = ttl, ylab = "Conditional modes", ...)
    stats::qqline(d$condval, lty = 2, col = grDevices::grey(0.5))
    d$theoretical <- qq$x
    d
  })
  out <- do.call(rbind, out)
  rownames(out) <- NULL
  invisible(out)
}

## ---- caterpillar plot -----------------------------------------------------------------------

## Conditional modes with intervals condval +/- z_{(1+level)/2} condsd, levels sorted by the mode,
## one panel per grouping factor and column.
plot.ranef.lmm <- function(x, level = 0.95, main = NULL, xlab = "Conditional mode", ...) {
  check_level(level)
  long <- ranef_frame(x)
  if (is.null(long$condsd))
    stop("the random effects have no conditional variances: use ranef(fit, condVar = TRUE)",
         call. = FALSE)
  z <- stats::qnorm((1 + level) / 2)
  long$lower <- long$condval - z * long$condsd
  long$upper <- long$condval + z * long$condsd
  key <- factor(paste(long$grpvar, long$term), unique(paste(long$grpvar, long$term)))
  op <- panel_layout(nlevels(key))
  on.exit(if (length(op)) graphics::par(op))
  out <- lapply(split(long, key), function(d) {
    d <- d[order(d$condval), , drop = FALSE]
    d$position <- seq_len(nrow(d))
    ttl <- if (is.null(main)) paste0(d$grpvar[1L], ": ", d$term[1L]) else main
    draw_caterpillar(d, ttl, xlab, ...)
    d
  })
  out <- do.call(rbind, out)
  rownames(out) <- NULL
  invisible(out)
}

draw_caterpillar <- function(d, main, xlab, pch = 19, ...) {
  n <- nrow(d)
  graphics::plot(range(d$lower, d$upper, 0), c(0.5, n + 0.5), type = "n", yaxt = "n",
                 xlab = xlab, ylab = "", main = main, ...)
  graphics::abline(v = 0, lty = 2, col = grDevices::grey(0.5))
  graphics::segments(d$lower, d$position, d$upper, d$position, col = grDevices::grey(0.4))
  graphics::points(d$condval, d$position, pch = pch)
  graphics::axis(2, at = d$position, labels = as.character(d$grp), las = 1,
                 cex.axis = if (n > 30L) 0.5 else 0.8, tick = FALSE)
}

caterpillar <- function(fit, level = 0.95, ...) {
  if (!inherits(fit, "lmm")) stop("'fit' must be an \"lmm\" fit", call. = FALSE)
  plot.ranef.lmm(ranef(fit, condVar = TRUE), level = level, ...)
}

## Long form of a ranef.lmm object with plain character columns.
ranef_frame <- function(re) {
  long <- as.data.frame(re)
  long$grpvar <- as.character(long$grpvar)
  long$term <- as.character(long$term)
  long$grp <- as.character(long$grp)
  long
}

## mfrow for k panels (at most 3 columns) when the device shows one panel; returns the old par()
## for on.exit, or NULL when the user's own multi-panel layout is kept.
panel_layout <- function(k) {
  if (k <= 1L || any(graphics::par("mfrow") != 1L)) return(NULL)
  nc <- min(k, 3L)
  graphics::par(mfrow = c(ceiling(k / nc), nc))
}

## ---- shrinkage plot -------------------------------------------------------------------------

## Per-group coefficients of the random-effect columns of grouping factor `group`:
##   no pooling: for each level j, OLS of y~ = y - offset - X_o beta_o on the factor's columns Z_j,
##               where X_o are fixed-effect columns not among the factor's columns (held at the
##               mixed model's estimates; with none, this is lmList's per-group regression);
##   mixed:      coef(fit) = beta + b_j (partial pooling), pulled toward beta.
shrinkage_coefs <- function(fit, group = NULL) {
  if (inherits(fit, "lmm_aggregated")) stop_needs_rows("the per-group fits of shrinkage_plot()")
  groups <- vapply(fit$reterms, `[[`, "", "name")
  if (is.null(group)) group <- groups[1L]
  if (!is.character(group) || length(group) != 1L || !(group %in% groups))
    stop("'group' must name one grouping factor: ", paste(unique(groups), collapse = ", "),
         call. = FALSE)
  idx <- which(groups == group)
  g <- fit$reterms[[idx[1L]]]$group
  Z <- do.call(cbind, lapply(fit$reterms[idx], `[[`, "Xt"))
  colnames(Z) <- unlist(lapply(fit$reterms[idx], `[[`, "cnms"))
  other <- setdiff(colnames(fit$X), colnames(Z))
  y_adj <- fit$y - fit$offset - drop(fit$X[, other, drop = FALSE] %*% fit$beta[other])
  ols <- t(vapply(levels(g), function(l) group_ols(Z[g == l, , drop = FALSE], y_adj[g == l],
                                                    fit$weights[g == l]),
                  numeric(ncol(Z))))
  if (ncol(Z) == 1L) ols <- t(ols)
  dimnames(ols) <- list(levels(g), colnames(Z))
  mixed <- as.matrix(coef(fit)[[group]][, colnames(Z), drop = FALSE])
  center <- setNames(ifelse(colnames(Z) %in% names(fit$beta), fit$beta[colnames(Z)], 0),
                     colnames(Z))
  list(group = group, ols = ols, mixed = mixed, center = center, n = as.vector(table(g)))
}

## Weighted OLS coefficients of one group; NA when the group cannot identify them.
group_ols <- function(Z, y, w) {
  k <- ncol(Z)
  if (nrow(Z) < k) return(rep(NA_real_, k))
  qr_z <- qr(sqrt(w) * Z)
  if (qr_z$rank < k) return(rep(NA_real_, k))
  qr.coef(qr_z, sqrt(w) * y)
}

shrinkage_plot <- function(fit, group = NULL, which = NULL, main = NULL, ...) {
  if (!inherits(fit, "lmm")) stop("'fit' must be an \"lmm\" fit", call. = FALSE)
  s <- shrinkage_coefs(fit, group)
  cols <- if (is.null(which)) utils::head(colnames(s$ols), 2L) else which
  if (!all(cols %in% colnames(s$ols)) || !length(cols) || length(cols) > 2L)
    stop("'which' must name one or two of: ", paste(colnames(s$ols), collapse = ", "),
         call. = FALSE)
  if (is.null(main)) main <- paste("Shrinkage of per-group coefficients:", s$group)
  two <- length(cols) == 2L
  xy <- if (two) draw_shrinkage_2d(s, cols, main, ...) else draw_shrinkage_1d(s, cols, main, ...)
  s$legend <- emptiest_corner(xy$x, xy$y)
  graphics::legend(s$legend, c("separate OLS", "mixed model", "population"),
                   pch = c(1, 19, if (two) 4 else NA), lty = c(0, 0, if (two) 0 else 2),
                   col = c(grDevices::grey(0.4), "black", "red"), bg = "white",
                   box.col = grDevices::grey(0.8), cex = 0.8, inset = 0.01)
  invisible(s)
}

## The plot corner whose quarter-by-quarter box (of the axis ranges) holds the fewest points.
emptiest_corner <- function(x, y) {
  ok <- is.finite(x) & is.finite(y)
  usr <- graphics::par("usr")
  fx <- (x[ok] - usr[1L]) / (usr[2L] - usr[1L])   # positions as fractions of the plot region
  fy <- (y[ok] - usr[3L]) / (usr[4L] - usr[3L])
  count <- c(topleft = sum(fx < 0.35 & fy > 0.65), topright = sum(fx > 0.65 & fy > 0.65),
             bottomleft = sum(fx < 0.35 & fy < 0.35), bottomright = sum(fx > 0.65 & fy < 0.35))
  names(count)[which.min(count)]
}

## Two columns: scatter of (c1, c2) per group, arrows OLS -> mixed, population estimate marked.
draw_shrinkage_2d <- function(s, cols, main, ...) {
  o <- s$ols[, cols, drop = FALSE]
  m <- s$mixed[, cols, drop = FALSE]
  graphics::plot(range(o[, 1L], m[, 1L], na.rm = TRUE), range(o[, 2L], m[, 2L], na.rm = TRUE),
                 type = "n", xlab = cols[1L], ylab = cols[2L], main = main, ...)
  ok <- stats::complete.cases(o)
  moved <- ok & (visible_move(o[, 1L], m[, 1L]) | visible_move(o[, 2L], m[, 2L]))
  graphics::points(o[, 1L], o[, 2L], pch = 1, col = grDevices::grey(0.4))
  graphics::points(m[, 1L], m[, 2L], pch = 19, cex = 0.8)
  graphics::points(s$center[cols[1L]], s$center[cols[2L]], pch = 4, col = "red", cex = 2, lwd = 2)
  shrink_arrows(o[moved, 1L], o[moved, 2L], m[moved, 1L], m[moved, 2L])
  list(x = c(o[, 1L], m[, 1L], s$center[cols[1L]]), y = c(o[, 2L], m[, 2L], s$center[cols[2L]]))
}

## Arrows OLS -> mixed drawn above the points, heads in a darker colour so they stay visible.
shrink_arrows <- function(x0, y0, x1, y1) {
  if (length(x0))
    graphics::arrows(x0, y0, x1, y1, length = 0.08, angle = 25, col = "steelblue4", lwd = 1.2)
}

## Moves longer than 1/1000 of the axis range (arrows() warns on zero-length arrows).
visible_move <- function(from, to) {
  span <- diff(range(from, to, na.rm = TRUE))
  abs(to - from) > 1e-3 * span
}

## One column: groups along x (sorted by the OLS estimate), arrows OLS -> mixed, line at beta.
draw_shrinkage_1d <- function(s, col, main, ...) {
  o <- s$ols[, col]
  m <- s$mixed[, col]
  ord <- order(o, m)
  pos <- seq_along(ord)
  graphics::plot(range(pos), range(o, m, na.rm = TRUE), type = "n", xaxt = "n",
                 xlab = paste(s$group, "(sorted by separate OLS estimate)"), ylab = col,
                 main = main, ...)
  graphics::abline(h = s$center[col], col = "red", lty = 2)
  ok <- !is.na(o[ord]) & visible_move(o[ord], m[ord])
  graphics::points(pos, o[ord], pch = 1, col = grDevices::grey(0.4))
  graphics::points(pos, m[ord], pch = 19, cex = 0.8)
  shrink_arrows(pos[ok], o[ord][ok], pos[ok], m[ord][ok])
  list(x = c(pos, pos), y = c(o[ord], m[ord]))
}
