# Fitted values and residuals of a fit from a database table, computed in the database.
#
# Within a cell the linear predictor is a combination of the cell's monomials (R/aggregate.R):
#     eta_i = sum_mu k_mu(c) mu(row i) + offset_i,
#     k_mu(c) = sum_{j: mono(j) = mu} beta_j F_cj + sum_t sum_{col: mono = mu} b_t[level_t(c), col] F_tc,
# with F the cell's factor parts of X's and each term's columns and b the conditional modes.
# The coefficients k (a row per cell, #cells x #monomials: small) go to the database as a table,
# and one query joins them to the rows by the key columns:
#     SELECT source.*, k_1 + k_2 mu_2 + ... + offset AS .fitted, response - that AS .resid
#     FROM source JOIN cells ON keys WHERE every used column IS NOT NULL

db_augment <- function(fit, into = NULL) {
  if (!inherits(fit, "lmm_aggregated") || !inherits(fit$source, "lmm_dbi_table"))
    stop("'fit' must be a fit from a database table (lmm(data = dbi_table(...)))", call. = FALSE)
  if (!is.null(into) && !(is.character(into) && length(into) == 1L && !is.na(into)))
    stop("'into' must be NULL or a table name", call. = FALSE)
  src <- fit$source
  con <- src$con
  prepare_connection(con)
  coefs <- cell_coefficients(fit)
  tmp <- paste0("lmm_cells_", Sys.getpid(), "_", as.integer(stats::runif(1L, 1, 1e9)))
  DBI::dbWriteTable(con, tmp, coefs, row.names = FALSE)
  on.exit(DBI::dbRemoveTable(con, tmp))
  sql <- augment_query(fit, tmp)
  if (is.null(into)) return(DBI::dbGetQuery(con, sql))
  DBI::dbExecute(con, sprintf("CREATE TABLE %s AS %s", DBI::dbQuoteIdentifier(con, into), sql))
  invisible(into)
}

# The cells' keys and the coefficients k_0 (of the constant) .. k_M of their monomials.
cell_coefficients <- function(fit) {
  cells <- fit$cells
  M <- length(fit$spec$monomials)
  k <- matrix(0, nrow(cells$keys), M + 1L)
  fx <- cells$fixed
  beta <- fit$beta
  for (j in seq_along(fx$names)) {
    if (!fx$names[j] %in% names(beta)) next                  # an aliased (dropped) column
    k[, fx$mono[j] + 1L] <- k[, fx$mono[j] + 1L] + beta[[fx$names[j]]] * fx$F[, j]
  }
  pos <- 0L
  for (t in seq_along(fit$reterms)) {
    ct <- cells$terms[[t]]
    p <- ncol(ct$F)
    nl <- nlevels(fit$reterms[[t]]$group)
    B <- matrix(fit$b[pos + seq_len(p * nl)], p, nl)         # column l: level l's coefficients
    pos <- pos + p * nl
    for (c in seq_len(p))
      k[, ct$mono[c] + 1L] <- k[, ct$mono[c] + 1L] + B[c, ct$level] * ct$F[, c]
  }
  colnames(k) <- sprintf("lmm_k%d", seq_len(M + 1L) - 1L)
  data.frame(cells$keys, k, check.names = FALSE)
}

# The query: the source's rows with .fitted and .resid.
augment_query <- function(fit, tmp) {
  spec <- fit$spec
  con <- fit$source$con
  dialect <- sql_dialect(con)
  id <- function(x) as.character(DBI::dbQuoteIdentifier(con, x))
  mono <- lapply(spec$monomials, function(m)
    Reduce(function(a, b) call("*", a, b), lapply(m, function(v) spec$frame_vars[[v]])))
  terms <- c("c.lmm_k0", vapply(seq_along(mono), function(i)
    sprintf("c.lmm_k%d * %s", i, sql_expr(mono[[i]], con, dialect, "a monomial")), ""))
  terms <- c(terms, vapply(spec$offsets, sql_expr, "", con = con, dialect = dialect,
                           term = "offset"))
  eta <- paste0("(", paste(terms, collapse = " + "), ")")
  y <- sql_expr(spec$formula[[2L]], con, dialect, "the response")
  on <- paste(sprintf("s.%s = c.%s", id(spec$keys), id(spec$keys)), collapse = " AND ")
  notnull <- paste(sprintf("s.%s IS NOT NULL", id(spec$columns)), collapse = " AND ")
  sprintf("SELECT s.*, %s AS %s, %s - %s AS %s FROM %s s JOIN %s c ON %s WHERE %s",
          eta, id(".fitted"), y, eta, id(".resid"), sub(" AS lmm_src$", "", fit$source$from),
          id(tmp), on, notnull)
}
