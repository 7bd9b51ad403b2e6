# R expressions of a model's numeric variables -> standard SQL, for the aggregation pushed into a
# database (R/database.R).  Only what means the same in R and in SQL is translated: + - * /,
# unary minus, ^ (whole powers as products, others POWER), log (natural; log(x, base) as a
# ratio), log10, log2, exp, sqrt, abs, I(), parentheses, numbers and column names, every column
# cast to double precision so that integer columns do not divide as integers.  Anything else is
# an error naming the term, since the database would compute something else or nothing.

sql_expr <- function(e, con, dialect, term) {
  if (is.numeric(e) && length(e) == 1L && is.finite(e)) return(sql_number(e))
  if (is.name(e))
    return(sprintf("CAST(%s AS %s)", DBI::dbQuoteIdentifier(con, as.character(e)), dialect$double))
  if (!is.call(e) || !is.name(e[[1L]])) stop_push_down(term)
  f <- as.character(e[[1L]])
  arg <- function(i) sql_expr(e[[i]], con, dialect, term)
  nargs <- length(e) - 1L
  if (f == "(" || f == "I") return(paste0("(", arg(2L), ")"))
  if (f %in% c("+", "-") && nargs == 1L) return(paste0("(", f, arg(2L), ")"))
  if (f %in% c("+", "-", "*", "/") && nargs == 2L)
    return(paste0("(", arg(2L), " ", f, " ", arg(3L), ")"))
  if (f == "^" && nargs == 2L) return(sql_power(e, con, dialect, term))
  ln <- dialect$ln
  if (f == "log" && nargs == 1L) return(sprintf("%s(%s)", ln, arg(2L)))
  if (f == "log" && nargs == 2L)
    return(sprintf("(%s(%s) / %s(%s))", ln, arg(2L), ln, arg(3L)))
  if (f %in% c("log10", "log2") && nargs == 1L)
    return(sprintf("(%s(%s) / %s)", ln, arg(2L), sql_number(log(if (f == "log10") 10 else 2))))
  if (f %in% c("exp", "sqrt", "abs") && nargs == 1L)
    return(sprintf("%s(%s)", toupper(f), arg(2L)))
  stop_push_down(term)
}

# x^k: a whole k in 1..16 as a product (exact as R's), else POWER(x, k).
sql_power <- function(e, con, dialect, term) {
  base <- sql_expr(e[[2L]], con, dialect, term)
  k <- e[[3L]]
  if (is.numeric(k) && length(k) == 1L && k == round(k) && k >= 1 && k <= 16)
    return(paste0("(", paste(rep(base, k), collapse = " * "), ")"))
  sprintf("POWER(%s, %s)", base, sql_expr(k, con, dialect, term))
}

# A double written so that the database reads back the same double.
sql_number <- function(x) {
  s <- sprintf("%.17g", x)
  if (!grepl("[.eE]", s)) s <- paste0(s, ".0")
  if (x < 0) paste0("(", s, ")") else s
}

stop_push_down <- function(term) {
  stop(sprintf(paste("the term '%s' cannot be pushed down to the database: only + - * / ^,",
                     "log, exp, sqrt, abs and I() of numeric columns are translated to SQL;",
                     "add the column to the table (or a view) instead"), term), call. = FALSE)
}
