# The cell moments of a model (R/aggregate.R) computed where the data are: one GROUP BY in the
# database over the key columns, or the same sums accumulated chunk by chunk in R.
#
#   SELECT keys, COUNT(*), SUM(w), SUM(w (v_i - a_i)), SUM(w (v_i - a_i)(v_j - a_j)), SUM(LN(w)),
#          MIN(w) [, SUM(v_i - a_i), SUM((v_i - a_i)(v_j - a_j)) over the monomials: with weights]
#   FROM (SELECT keys, w, v_1 .. v_D FROM source WHERE every used column IS NOT NULL)
#   GROUP BY keys
#
# v_1 .. v_D are the monomials and y - offset translated to SQL (R/sql-translate.R); the WHERE
# clause drops the rows na.omit would.  With prior weights the monomials' unweighted sums come too
# (M + M(M+1)/2 more columns for M monomials, in the same pass): means over the observations
# (R^2, ICC: R/methods-aggregated.R) are unweighted.

cell_moments <- function(src, spec) UseMethod("cell_moments")

cell_moments.lmm_dbi_table <- function(src, spec) {
  con <- src$con
  prepare_connection(con)
  q <- cell_query(src, spec)
  res <- DBI::dbGetQuery(con, q$sql)
  moments_from_columns(res, spec)
}

# The query and the names of its key columns.
cell_query <- function(src, spec) {
  con <- src$con
  dialect <- sql_dialect(con)
  id <- function(x) as.character(DBI::dbQuoteIdentifier(con, x))
  exprs <- moment_exprs(spec)
  labels <- c(vapply(spec$monomials, monomial_name, ""), deparse1(spec$response))
  D <- length(exprs)
  v <- vapply(seq_len(D), function(i) sql_expr(exprs[[i]], con, dialect, labels[i]), "")
  w <- if (is.null(spec$weights)) "1.0" else sql_expr(spec$weights, con, dialect, "weights")
  keys <- spec$keys
  nu <- length(spec$numeric_vars)                  # the numeric variables, for their means
  u <- vapply(spec$numeric_vars, function(x) sql_expr(spec$frame_vars[[x]], con, dialect, x), "")
  inner <- sprintf("SELECT %s FROM %s WHERE %s",
                   paste(c(id(keys), paste(w, "AS lmm_w"),
                           sprintf("%s AS lmm_v%d", v, seq_len(D)),
                           sprintf("%s AS lmm_u%d", u, seq_len(nu))), collapse = ", "),
                   src$from, paste(id(spec$columns), "IS NOT NULL", collapse = " AND "))
  centred <- sprintf("(lmm_v%d - %s)", seq_len(D), vapply(spec$shift, sql_number, ""))
  pairs <- which(upper.tri(diag(D), diag = TRUE), arr.ind = TRUE)
  pairs <- pairs[order(pairs[, "col"], pairs[, "row"]), , drop = FALSE]
  sums <- c("COUNT(*) AS lmm_n", "SUM(lmm_w) AS lmm_sw",
            sprintf("SUM(lmm_w * %s) AS lmm_s%d", centred, seq_len(D)),
            sprintf("SUM(lmm_w * %s * %s) AS lmm_s%d_%d", centred[pairs[, 1L]],
                    centred[pairs[, 2L]], pairs[, 1L], pairs[, 2L]),
            if (is.null(spec$weights)) "0.0 AS lmm_lw" else
              sprintf("SUM(%s(CASE WHEN lmm_w > 0 THEN lmm_w ELSE 1.0 END)) AS lmm_lw", dialect$ln),
            "MIN(lmm_w) AS lmm_wmin", sprintf("SUM(lmm_u%d) AS lmm_u%d", seq_len(nu), seq_len(nu)),
            unweighted_sums(spec, centred))
  sql <- sprintf("SELECT %s FROM (%s) lmm_rows GROUP BY %s", paste(c(id(keys), sums), collapse = ", "),
                 inner, paste(id(keys), collapse = ", "))
  list(sql = sql, keys = keys)
}

# With weights: the monomials' (the first D - 1 columns') unweighted sums, lmm_t<i> and
# lmm_t<i>_<j>, SQL sums of the centred columns `centred`.
unweighted_sums <- function(spec, centred) {
  if (is.null(spec$weights)) return(character())
  pairs <- monomial_pairs(length(spec$monomials))
  c(sprintf("SUM(%s) AS lmm_t%d", centred[seq_along(spec$monomials)], seq_along(spec$monomials)),
    sprintf("SUM(%s * %s) AS lmm_t%d_%d", centred[pairs[, 1L]], centred[pairs[, 2L]],
            pairs[, 1L], pairs[, 2L]))
}

# (i, j), i <= j, of M columns, by columns (the order of pseudo_rows()' S2).
monomial_pairs <- function(M) {
  pairs <- which(upper.tri(diag(M), diag = TRUE), arr.ind = TRUE)
  pairs[order(pairs[, "col"], pairs[, "row"]), , drop = FALSE]
}

# The query's columns (or the same from R) -> the cell moments R/aggregate.R uses, and the
# numeric variables' means over the rows (for the reference grids of emmeans and ls_means).
moments_from_columns <- function(res, spec) {
  keys <- spec$keys
  res <- res[do.call(order, unname(as.list(res[keys]))), , drop = FALSE]   # whatever the database's order
  shift <- spec$shift
  D <- length(shift)
  num <- function(x) as.double(x)
  pairs <- which(upper.tri(diag(D), diag = TRUE), arr.ind = TRUE)
  pairs <- pairs[order(pairs[, "col"], pairs[, "row"]), , drop = FALSE]
  S1 <- vapply(seq_len(D), function(i) num(res[[sprintf("lmm_s%d", i)]]), numeric(nrow(res)))
  S2 <- vapply(seq_len(nrow(pairs)), function(k)
    num(res[[sprintf("lmm_s%d_%d", pairs[k, 1L], pairs[k, 2L])]]), numeric(nrow(res)))
  M <- D - 1L
  tp <- monomial_pairs(M)
  T1 <- if (!is.null(spec$weights)) vapply(seq_len(M), function(i)
    num(res[[sprintf("lmm_t%d", i)]]), numeric(nrow(res)))
  T2 <- if (!is.null(spec$weights)) vapply(seq_len(nrow(tp)), function(k)
    num(res[[sprintf("lmm_t%d_%d", tp[k, 1L], tp[k, 2L])]]), numeric(nrow(res)))
  list(keys = as.data.frame(res[keys], stringsAsFactors = FALSE),
       n = num(res$lmm_n), W = num(res$lmm_sw),
       S1 = matrix(S1, nrow(res)), S2 = matrix(S2, nrow(res)), shift = shift,
       T1 = if (!is.null(T1)) matrix(T1, nrow(res)), T2 = if (!is.null(T2)) matrix(T2, nrow(res)),
       sumlogw = sum(num(res$lmm_lw)), lw = num(res$lmm_lw), wmin = if (nrow(res)) min(num(res$lmm_wmin)) else 1,
       means = setNames(vapply(seq_along(spec$numeric_vars), function(j)
         sum(num(res[[sprintf("lmm_u%d", j)]])) / sum(num(res$lmm_n)), 0), spec$numeric_vars))
}

# ---- chunks ----------------------------------------------------------------------------------

# A chunk function is read once; a second pass (a refit needing other sums,
# R/refit-aggregated.R) first calls the source's `reset`, and without one stops.
cell_moments.lmm_chunks <- function(src, spec) {
  chunks <- src$chunks
  again <- is.function(chunks) && isTRUE(src$state$passes > 0L)
  if (again) {
    if (is.null(src$reset))
      stop(sprintf(paste("fitting '%s' needs sums the fit does not hold, so another pass over",
                         "the chunks, and the chunk function cannot be restarted: give",
                         "lmm_chunks() a 'reset' function (rewinding the reader) or a list of",
                         "data frames"), deparse2(spec$formula)), call. = FALSE)
    src$reset()
  }
  parts <- list()
  i <- 0L
  repeat {
    i <- i + 1L
    chunk <- if (!is.function(chunks)) { if (i <= length(chunks)) chunks[[i]] } else
      if (i == 1L && !again && !is.null(src$state$first)) src$state$first else chunks()
    if (is.null(chunk)) break
    if (!is.data.frame(chunk)) stop("chunk ", i, " is not a data frame", call. = FALSE)
    parts[[length(parts) + 1L]] <- chunk_sums(chunk, spec)
    if (length(parts) > 64L) parts <- list(merge_sums(parts))      # bounded memory
  }
  src$state$passes <- if (is.null(src$state$passes)) 1L else src$state$passes + 1L
  res <- merge_sums(parts)
  moments_from_columns(res, spec)
}

# One chunk's sums per cell, as the query's columns.
chunk_sums <- function(chunk, spec) {
  miss <- setdiff(spec$columns, names(chunk))
  if (length(miss)) stop("chunk lacks column(s) ", paste0("'", miss, "'", collapse = ", "),
                         call. = FALSE)
  rows <- chunk[stats::complete.cases(chunk[spec$columns]), , drop = FALSE]
  exprs <- moment_exprs(spec)
  V <- vapply(exprs, function(e) rep_len(as.double(eval(e, rows, spec$env)), nrow(rows)),
              numeric(nrow(rows)))
  V <- sweep(matrix(V, nrow(rows)), 2L, spec$shift)
  w <- if (is.null(spec$weights)) rep(1, nrow(rows)) else as.double(eval(spec$weights, rows, spec$env))
  key <- do.call(paste, c(lapply(rows[spec$keys], as.character), sep = "\r"))
  D <- ncol(V)
  pairs <- which(upper.tri(diag(D), diag = TRUE), arr.ind = TRUE)
  pairs <- pairs[order(pairs[, "col"], pairs[, "row"]), , drop = FALSE]
  U <- vapply(spec$numeric_vars, function(x)
    rep_len(as.double(eval(spec$frame_vars[[x]], rows, spec$env)), nrow(rows)), numeric(nrow(rows)))
  cols <- cbind(lmm_n = 1, lmm_sw = w, w * V,
                w * V[, pairs[, 1L], drop = FALSE] * V[, pairs[, 2L], drop = FALSE],
                lmm_lw = if (is.null(spec$weights)) 0 else log(w), matrix(U, nrow(rows)))
  colnames(cols) <- c("lmm_n", "lmm_sw", sprintf("lmm_s%d", seq_len(D)),
                      sprintf("lmm_s%d_%d", pairs[, 1L], pairs[, 2L]), "lmm_lw",
                      sprintf("lmm_u%d", seq_along(spec$numeric_vars)))
  if (!is.null(spec$weights)) {                    # the monomials' unweighted sums
    M <- D - 1L
    tp <- monomial_pairs(M)
    Tm <- cbind(V[, seq_len(M), drop = FALSE],
                V[, tp[, 1L], drop = FALSE] * V[, tp[, 2L], drop = FALSE])
    colnames(Tm) <- c(sprintf("lmm_t%d", seq_len(M)), sprintf("lmm_t%d_%d", tp[, 1L], tp[, 2L]))
    cols <- cbind(cols, Tm)
  }
  s <- rowsum(cols, key, reorder = FALSE)
  first <- !duplicated(key)
  out <- data.frame(rows[first, spec$keys, drop = FALSE], s[key[first], , drop = FALSE],
                    check.names = FALSE)
  out$lmm_wmin <- if (nrow(rows)) as.vector(tapply(w, key, min)[key[first]]) else numeric()
  out$lmm_key <- key[first]
  out
}

# Chunk sums with the same cells added up.
merge_sums <- function(parts) {
  all <- do.call(rbind, parts)
  if (!nrow(all)) return(all)
  num <- grep("^lmm_(n|sw|s[0-9_]+|t[0-9_]+|lw|u[0-9]+)$", names(all), value = TRUE)
  s <- rowsum(as.matrix(all[num]), all$lmm_key, reorder = FALSE)
  first <- !duplicated(all$lmm_key)
  out <- all[first, setdiff(names(all), c(num, "lmm_wmin")), drop = FALSE]
  out[num] <- s[out$lmm_key, , drop = FALSE]
  out$lmm_wmin <- as.vector(tapply(all$lmm_wmin, all$lmm_key, min)[out$lmm_key])
  out
}
