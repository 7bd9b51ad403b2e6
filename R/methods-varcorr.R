## Variance components of a fitted "lmm": VarCorr() and its print / as.data.frame methods.
##
## For random-effects term i with p_i columns the relative covariance factor is the lower-triangular
## template T_i, filled column by column from theta; Var(b_level) = Sigma_i = sigma^2 T_i T_i'.

## Lower-triangular templates T_i, one per random-effects term (theta in lme4's layout).
re_templates <- function(theta, reterms) {
  p <- vapply(reterms, function(tm) length(tm$cnms), 1L)
  ntheta <- p * (p + 1L) / 2L                       # lower triangle incl. diagonal
  pieces <- split(theta, rep.int(seq_along(p), ntheta))
  lapply(seq_along(p), function(i) {
    T_i <- matrix(0, p[i], p[i])
    T_i[lower.tri(T_i, diag = TRUE)] <- pieces[[i]]
    T_i
  })
}

## Names of the variance-component blocks: grouping factor names, duplicates made unique
## as lme4 does ("Subject", "Subject.1").
vc_names <- function(reterms) {
  nms <- vapply(reterms, `[[`, "", "name")
  if (anyDuplicated(nms)) make.names(nms, unique = TRUE) else nms
}

VarCorr.lmm <- function(x, sigma = 1, ...) {
  if (missing(sigma)) sigma <- x$sigma
  T_list <- re_templates(x$theta, x$reterms)
  blocks <- lapply(seq_along(T_list), function(i) {
    L_i <- sigma * T_list[[i]]
    cn <- x$reterms[[i]]$cnms
    Sigma <- tcrossprod(L_i)                         # sigma^2 T_i T_i'
    dimnames(Sigma) <- list(cn, cn)
    sd <- sqrt(diag(Sigma))
    R <- Sigma / outer(sd, sd)                       # correlation; 0/0 gives NaN as in lme4
    diag(R) <- 1
    structure(Sigma, stddev = sd, correlation = R)
  })
  names(blocks) <- vc_names(x$reterms)
  structure(blocks, sc = x$sigma, useSc = TRUE, class = "VarCorr.lmm")
}

## Character matrix laid out as lme4's random-effects table: Groups, Name, [Variance], [Std.Dev.],
## then the lower triangle of each block's correlation matrix under "Corr".
format_vc <- function(varcor, digits = max(3, getOption("digits") - 2), comp = "Std.Dev.",
                      formatter = format, useScale = attr(varcor, "useSc"), ...) {
  avail <- c("Variance", "Std.Dev.")
  which_c <- pmatch(comp, avail)
  if (anyNA(which_c))
    stop("illegal 'comp': ", paste(comp[is.na(which_c)], collapse = ", "), call. = FALSE)
  if (length(which_c) == 0L)
    stop("'comp' must select variances or standard deviations", call. = FALSE)
  cols <- c("Groups", "Name", avail[which_c])
  sds <- lapply(varcor, attr, "stddev")
  if (useScale) sds <- c(sds, list(Residual = unname(attr(varcor, "sc"))))
  len <- lengths(sds)
  nr <- sum(len)
  tab <- array("", c(nr, length(cols)), list(rep.int("", nr), cols))
  tab[1L + cumsum(len) - len, "Groups"] <- names(sds)
  tab[, "Name"] <- c(unlist(lapply(varcor, colnames)), if (useScale) "")
  sd_all <- unlist(sds)
  if ("Variance" %in% cols) tab[, "Variance"] <- formatter(sd_all^2, digits = digits, ...)
  if ("Std.Dev." %in% cols) tab[, "Std.Dev."] <- formatter(sd_all, digits = digits, ...)
  if (all(len <= 1L)) return(tab)
  cbind(tab, format_vc_corr(varcor, max(len), nr, digits))
}

## Correlation columns of the table: each block's lower triangle, padded to the widest block.
format_vc_corr <- function(varcor, maxlen, nr, digits) {
  dig <- max(2, digits - 2)
  rows <- lapply(varcor, function(v) {
    cc <- format(round(attr(v, "correlation"), dig), nsmall = dig)
    cc[!lower.tri(cc)] <- ""
    if (nrow(cc) < maxlen) cc <- cbind(cc, matrix("", nrow(cc), maxlen - nrow(cc)))
    cc
  })
  corr <- do.call(rbind, rows)[, -maxlen, drop = FALSE]
  if (nrow(corr) < nr) corr <- rbind(corr, matrix("", nr - nrow(corr), ncol(corr)))
  colnames(corr) <- c("Corr", rep.int("", ncol(corr) - 1L))
  corr
}

print.VarCorr.lmm <- function(x, digits = max(3, getOption("digits") - 2), comp = "Std.Dev.",
                              formatter = format, ...) {
  print(format_vc(x, digits = digits, comp = comp, formatter = formatter), quote = FALSE, ...)
  invisible(x)
}

as.data.frame.VarCorr.lmm <- function(x, row.names = NULL, optional = FALSE,
                                      order = c("cov.last", "lower.tri"), ...) {
  order <- match.arg(order)
  per_block <- lapply(seq_along(x), function(i) vc_block_df(x[[i]], names(x)[i], order))
  r <- do.call(rbind, per_block)
  if (attr(x, "useSc")) {
    s <- attr(x, "sc")
    r <- rbind(r, data.frame(grp = "Residual", var1 = NA, var2 = NA, vcov = s^2, sdcor = s))
  }
  rownames(r) <- NULL
  r
}

## One block's rows: variances (var2 NA) then covariances of the lower triangle column by column;
## order = "lower.tri" interleaves them in lower-triangle order instead.
vc_block_df <- function(V, grp, order) {
  k <- nrow(V)
  lt <- lower.tri(V)
  nm <- rownames(V)
  d <- data.frame(grp = grp,
                  var1 = nm[c(seq_len(k), col(V)[lt])],
                  var2 = c(rep(NA_character_, k), nm[row(V)[lt]]),
                  vcov = c(diag(V), V[lt]),
                  sdcor = c(attr(V, "stddev"), attr(V, "correlation")[lt]),
                  stringsAsFactors = FALSE)
  if (order == "lower.tri") {
    pos <- matrix(NA_integer_, k, k)
    diag(pos) <- seq_len(k)
    pos[lt] <- k + seq_len(sum(lt))
    d <- d[pos[lower.tri(pos, diag = TRUE)], ]
  }
  d
}
