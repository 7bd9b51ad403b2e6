# Data that lmm() does not hold as a data frame: a table behind a DBI connection (dbi_table(), or a
# dbplyr lazy table), or data read in chunks (lmm_chunks()).  Each source answers two questions:
# a few of its rows (to learn the variables' types) and the cell moments of a model
# (R/aggregate.R, R/database.R); the rows themselves never come into R as a whole.

dbi_table <- function(con, name) {
  if (!requireNamespace("DBI", quietly = TRUE))
    stop("dbi_table() needs the 'DBI' package", call. = FALSE)
  if (!methods::is(con, "DBIConnection"))
    stop("'con' must be a DBI connection (DBI::dbConnect())", call. = FALSE)
  if (!(is.character(name) && length(name) == 1L && !is.na(name) && nzchar(name)) &&
      !methods::is(name, "Id") && !methods::is(name, "SQL"))
    stop("'name' must be a table name (a string, DBI::Id() or DBI::SQL())", call. = FALSE)
  from <- if (methods::is(name, "SQL")) paste0("(", name, ") AS lmm_src") else
    as.character(DBI::dbQuoteIdentifier(con, name))
  structure(list(con = con, from = from, label = if (is.character(name)) name else format(name)),
            class = "lmm_dbi_table")
}

print.lmm_dbi_table <- function(x, ...) {
  cat("<lmmc table source> ", x$label, " via ", class(x$con)[1L], "\n", sep = "")
  invisible(x)
}

# reset: for a chunk function, a function of no arguments that rewinds it (reopens the file,
# restarts the query), called before another pass over the data: a refit with a formula whose
# sums the fit does not hold (R/refit-aggregated.R).
lmm_chunks <- function(chunks, reset = NULL) {
  if (is.data.frame(chunks) || !(is.list(chunks) || is.function(chunks)))
    stop("'chunks' must be a list of data frames or a function returning the next data frame ",
         "(NULL when done)", call. = FALSE)
  if (is.list(chunks) && !length(chunks)) stop("'chunks' is empty", call. = FALSE)
  if (is.list(chunks) && !all(vapply(chunks, is.data.frame, NA)))
    stop("every element of 'chunks' must be a data frame", call. = FALSE)
  if (!is.null(reset) && !is.function(reset))
    stop("'reset' must be NULL or a function of no arguments rewinding 'chunks'", call. = FALSE)
  state <- new.env(parent = emptyenv())   # a function's first chunk, read once; passes made
  structure(list(chunks = chunks, state = state, reset = reset), class = "lmm_chunks")
}

# A dbplyr lazy table as a table source: its query as a derived table.
lazy_table_source <- function(data) {
  if (!requireNamespace("dbplyr", quietly = TRUE))
    stop("a dbplyr table as 'data' needs the 'dbplyr' package", call. = FALSE)
  con <- dbplyr::remote_con(data)
  sql <- as.character(dbplyr::sql_render(data))
  structure(list(con = con, from = paste0("(", sql, ") AS lmm_src"), label = "a dbplyr query"),
            class = "lmm_dbi_table")
}

# data as an aggregate source, or NULL when it is an ordinary data frame / list / NULL.
as_aggregate_source <- function(data) {
  if (is.null(data) || is.data.frame(data)) return(NULL)       # the common case, at once
  if (inherits(data, c("lmm_dbi_table", "lmm_chunks"))) return(data)
  if (inherits(data, "tbl_lazy")) return(lazy_table_source(data))
  if (isS4(data) && methods::is(data, "DBIConnection"))
    stop("'data' is a connection: name the table, data = dbi_table(con, \"table\")", call. = FALSE)
  NULL
}

# A few rows of the source (a data frame), to learn the variables' types; with `complete`, rows
# where those of its columns are not missing (a column missing in the first rows would come
# back as logical NA, not as its type).
source_sample <- function(src, n = 1000L, complete = character(0)) UseMethod("source_sample")

source_sample.lmm_dbi_table <- function(src, n = 1000L, complete = character(0)) {
  con <- src$con
  prepare_connection(con)
  names0 <- names(DBI::dbGetQuery(con, sprintf("SELECT * FROM %s LIMIT 0", src$from)))
  complete <- intersect(complete, names0)
  where <- if (length(complete)) paste(" WHERE", paste(DBI::dbQuoteIdentifier(con, complete),
                                                       "IS NOT NULL", collapse = " AND "))
  out <- DBI::dbGetQuery(con, sprintf("SELECT * FROM %s%s LIMIT %d", src$from, where, as.integer(n)))
  if (!nrow(out)) out <- out[0L, names0, drop = FALSE]
  out
}

# A function's first chunk is kept (src$state) and given to the aggregation first: one pass.
source_sample.lmm_chunks <- function(src, n = 1000L, complete = character(0)) {
  first <- if (!is.function(src$chunks)) src$chunks[[1L]] else {
    if (is.null(src$state$first)) src$state$first <- src$chunks()
    src$state$first
  }
  if (!is.data.frame(first) || !nrow(first))
    stop("the first chunk must be a data frame with rows", call. = FALSE)
  ok <- stats::complete.cases(first[intersect(complete, names(first))])
  if (any(ok)) first <- first[ok, , drop = FALSE]
  first[seq_len(min(n, nrow(first))), , drop = FALSE]
}

# What the fit's print says about where the data were.
source_label <- function(src) {
  if (inherits(src, "lmm_chunks")) return("data read in chunks")
  sprintf("table %s (%s)", src$label, class(src$con)[1L])
}

# SQLite has no LN/EXP/SQRT/POWER until RSQLite's math extension is loaded; the others are
# standard SQL.
prepare_connection <- function(con) {
  if (methods::is(con, "SQLiteConnection") && requireNamespace("RSQLite", quietly = TRUE))
    RSQLite::initExtension(con, "math")
  invisible(con)
}

# The dialect's spelling of the few things standard SQL leaves open.
sql_dialect <- function(con) {
  if (methods::is(con, "SQLiteConnection"))
    return(list(double = "REAL", ln = "LOG"))         # RSQLite's math extension: LOG is ln
  list(double = "DOUBLE PRECISION", ln = "LN")
}
