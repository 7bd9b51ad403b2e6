# Random-effects syntax of lme4 formulas.
#
# A mixed-model formula  y ~ fixed + (lhs | g) + (lhs2 || g2) + ...  has
#   * bar terms  (lhs | g): random effects whose model matrix is  ~ lhs,
#     one coefficient vector per level of the grouping factor g;
#   * double-bar terms (lhs || g): shorthand for uncorrelated terms
#     (1 | g) + (0 + t1 | g) + (0 + t2 | g) + ... over the term labels of lhs;
#   * nested grouping  g = a/b/c, expanded to c:b:a, b:a, a (innermost first);
#   * interactions in g (a:b): the factor of observed (a, b) combinations.
# The functions below only rewrite language objects; no data are touched.

# TRUE when `x` is a call to `|` or `||`.
is_bar <- function(x) {
  is.call(x) && (identical(x[[1L]], quote(`|`)) || identical(x[[1L]], quote(`||`)))
}

# TRUE when `x` contains a `|` or `||` anywhere.
has_bars <- function(x) {
  names <- all.names(x)
  any(names == "|") || any(names == "||")
}

# Right-hand side of a formula (or `x` itself when it is not a formula).
rhs_of <- function(x) {
  if (inherits(x, "formula") || (is.call(x) && identical(x[[1L]], as.name("~"))))
    x[[length(x)]]
  else x
}

# Replace every (lhs || g) by (1 | g) + (0 + t1 | g) + ... where t1, t2, ...
# are the term labels of ~ lhs; the (1 | g) term is present only when ~ lhs
# has an intercept (as lme4's expandDoubleVerts).
expand_double_verts <- function(term) {
  if (!is.call(term) || !("||" %in% all.names(term))) return(term)
  if (identical(term[[1L]], as.name("||"))) return(split_double_vert(term))
  for (j in seq_along(term)[-1L]) {
    if (!is.null(term[[j]])) term[[j]] <- expand_double_verts(term[[j]])
  }
  term
}

# (lhs || g) -> (1 | g) + (0 + t1 | g) + ..., each piece in parentheses.
split_double_vert <- function(term) {
  g <- term[[3L]]
  tt <- stats::terms(stats::as.formula(call("~", term[[2L]]), env = emptyenv()))
  lhs <- lapply(attr(tt, "term.labels"), function(lab) call("+", 0, str2lang(lab)))
  if (attr(tt, "intercept") != 0) lhs <- c(list(1), lhs)
  if (!length(lhs))
    stop("random-effects term (", deparse1(term), ") has no columns", call. = FALSE)
  pieces <- lapply(lhs, function(l) call("(", call("|", l, g)))
  Reduce(function(a, b) call("+", a, b), pieces)
}

# The formula a fit keeps: every (lhs || g) expanded (lme4 keeps the expanded formula, so that
# update(fit, . ~ . - (0 + x | g)) can remove one of the pieces) and a `.` in the fixed part
# replaced by the columns of `data` that are not variables of the response (what model.frame()
# makes of `.`; lme4 fits the same fixed effects, grouping variables included).
expand_formula <- function(formula, data) {
  rhs <- expand_double_verts(rhs_of(formula))
  if ("." %in% all.vars(drop_bars(rhs))) {
    if (is.null(data))
      stop("'.' in the formula needs a 'data' argument to expand it", call. = FALSE)
    lhs_vars <- if (length(formula) == 3L) all.vars(formula[[2L]]) else character(0)
    cols <- lapply(setdiff(names(data), lhs_vars), as.name)
    sum_cols <- if (length(cols)) Reduce(function(a, b) call("+", a, b), cols) else 1
    rhs <- replace_dot(rhs, sum_cols, bare = TRUE)
  }
  formula[[length(formula)]] <- rhs
  formula
}

# Replace the symbol `.` outside bar terms by `by`; in parentheses unless `bare` (the top of the
# right-hand side or the left operand of + or -, where a sum needs none).
replace_dot <- function(term, by, bare = FALSE) {
  if (identical(term, as.name("."))) return(if (bare || !is.call(by)) by else call("(", by))
  if (!is.call(term) || is_bar(term)) return(term)
  additive <- identical(term[[1L]], as.name("+")) || identical(term[[1L]], as.name("-"))
  for (j in seq_along(term)[-1L])
    if (!is.null(term[[j]])) term[[j]] <- replace_dot(term[[j]], by, additive && j == 2L)
  term
}

# The bar terms of a formula in formula order, after expanding `||` and
# nested grouping `/`; a list of calls `lhs | g` (lme4's findbars).
find_bars <- function(formula) {
  rhs <- expand_double_verts(rhs_of(formula))
  bars <- collect_bars(rhs)
  unlist(lapply(bars, expand_slash), recursive = FALSE)
}

# Walk `+`, `(` and other calls left to right collecting `|` calls.
collect_bars <- function(term) {
  if (!is.call(term)) return(list())
  if (identical(term[[1L]], as.name("("))) return(collect_bars(term[[2L]]))
  if (identical(term[[1L]], as.name("|"))) return(list(term))
  if (length(term) == 2L) return(collect_bars(term[[2L]]))
  c(collect_bars(term[[2L]]), collect_bars(term[[3L]]))
}

# (lhs | a/b/c) -> list((lhs | c:(b:a)), (lhs | b:a), (lhs | a)).
expand_slash <- function(bar) {
  g <- bar[[3L]]
  if (!("/" %in% all.names(g))) return(list(bar))
  groups <- nested_groups(slash_operands(g))
  lapply(groups, function(gi) call("|", bar[[2L]], gi))
}

# a/b/c parses as (a/b)/c; return the operands outermost first: list(a, b, c).
slash_operands <- function(g) {
  if (!("/" %in% all.names(g))) return(list(g))
  if (!(is.call(g) && identical(g[[1L]], as.name("/"))))
    stop("unparseable formula for grouping factor: ", deparse1(g), call. = FALSE)
  c(slash_operands(g[[2L]]), slash_operands(g[[3L]]))
}

# Operands list(a, b, c) -> grouping expressions innermost first:
# c:(b:a), b:a, a  (the innermost factor is written first, as in lme4).
nested_groups <- function(ops) {
  out <- list(ops[[1L]])
  for (k in seq_along(ops)[-1L]) out <- c(list(call(":", ops[[k]], out[[1L]])), out)
  out
}

# Formula with every bar replaced by `+` so that model.frame() sees all
# variables of the fixed and random parts (lme4's subbars).
sub_bars <- function(term) {
  if (!is.call(term) || !has_bars(term)) return(term)
  if (is_bar(term)) term[[1L]] <- as.name("+")
  for (j in seq_along(term)[-1L]) {
    if (!is.null(term[[j]])) term[[j]] <- sub_bars(term[[j]])
  }
  term
}

# Remove the bar terms, leaving the fixed-effects part (lme4's nobars).
# Returns NULL when nothing is left of a right-hand side.
drop_bars <- function(term) {
  if (!has_bars(term)) return(term)
  if (is_bar(term)) return(NULL)
  head <- term[[1L]]
  if (!identical(head, quote(`~`)) && !identical(head, quote(`(`))) {
    for (j in seq_along(term)[-1L]) if (is_bar(term[[j]])) return(NULL)
  }
  if (length(term) == 2L) {
    inner <- drop_bars(term[[2L]])
    if (is.null(inner)) return(NULL)
    term[[2L]] <- inner
    return(term)
  }
  left <- drop_bars(term[[2L]])
  right <- drop_bars(term[[3L]])
  if (is.null(left)) return(right)
  if (is.null(right)) return(left)
  term[[2L]] <- left
  term[[3L]] <- right
  term
}

# Fixed-effects formula: response ~ (right-hand side without bars); an
# empty right-hand side becomes 1. Environment of `formula` kept.
fixed_formula <- function(formula) {
  rhs <- drop_bars(rhs_of(formula))
  if (is.null(rhs)) rhs <- 1
  out <- if (length(formula) == 3L) call("~", formula[[2L]], rhs) else call("~", rhs)
  make_formula(out, environment(formula))
}

# The formula object of a call to `~` with environment `env` (what evaluating the call in
# `env` gives, as stats::as.formula does, without the evaluation).
make_formula <- function(tilde_call, env) {
  structure(tilde_call, class = "formula", .Environment = env)
}

# Formula for the model frame: all variables of both parts (bars -> `+`),
# `||` expanded first so that the frame equals lme4's.
frame_formula <- function(formula) {
  f <- formula
  f[[length(f)]] <- sub_bars(expand_double_verts(rhs_of(formula)))
  f
}

# lme4's name of a bar term's grouping factor, e.g. "Subject", "cask:batch".
bar_group_name <- function(bar) {
  g <- bar[[3L]]
  if (is.symbol(g)) as.character(g) else deparse1(g)
}

# Factor of the observed combinations of two factors: labels "a:b", levels
# ordered with f1 varying slowest (f1 level order, then f2 level order),
# unobserved combinations dropped.
interact_factors <- function(f1, f2) {
  lab <- paste(as.character(f1), as.character(f2), sep = ":")
  first <- which(!duplicated(lab))
  ord <- order(as.integer(f1[first]), as.integer(f2[first]))
  factor(lab, levels = lab[first][ord])
}

# Evaluate a grouping expression on the model frame: every variable becomes
# a factor and `:` forms interact_factors(). Result: factor, unused levels dropped.
eval_group <- function(gexpr, frame, env) {
  if (is.name(gexpr)) {                    # a column of the frame, usually a factor already
    g <- .subset2(frame, as.character(gexpr))
    if (is_plain_factor(g)) return(g)
  }
  label <- deparse1(gexpr)
  if (label %in% names(frame) && !is.name(gexpr) && !is_interaction_call(gexpr)) {
    g <- frame[[label]]
  } else {
    scope <- new.env(parent = env)
    for (v in intersect(all.vars(gexpr), names(frame))) {
      x <- frame[[v]]
      assign(v, if (is.factor(x)) x else factor(x), envir = scope)
    }
    assign(":", function(e1, e2) {
      if (is.factor(e1) && is.factor(e2)) interact_factors(e1, e2) else base::`:`(e1, e2)
    }, envir = scope)
    g <- tryCatch(eval(gexpr, scope), error = function(e)
      stop("could not evaluate grouping factor '", label, "': ", conditionMessage(e),
           call. = FALSE))
  }
  if (length(g) != nrow(frame))
    stop("grouping factor '", label, "' has length ", length(g), ", not the ",
         nrow(frame), " rows of the model frame", call. = FALSE)
  if (anyNA(g))
    stop("grouping factor '", label, "' has missing values", call. = FALSE)
  keep_na_level(g)
}

# factor(g) without unused levels; NA stays a level when g has it as one (addNA(), as lme4).
keep_na_level <- function(g) {
  factor(g, exclude = if (is.factor(g) && anyNA(levels(g))) NULL else NA)
}

# TRUE for a factor that factor(g, exclude = NA) returns unchanged: every level used,
# no NA, no attributes beyond levels and class.
is_plain_factor <- function(g) {
  is.factor(g) && !anyNA(g) && !anyNA(levels(g)) &&
    length(attributes(g)) == 2L && all(tabulate(g, nlevels(g)) > 0L)
}

is_interaction_call <- function(x) is.call(x) && identical(x[[1L]], as.name(":"))

# lme4's term order: keep formula order when the numbers of levels nl are
# non-increasing, otherwise rev(order(nl)) (ties end up reversed).
reterms_order <- function(nl) {
  if (any(diff(nl) > 0)) rev(order(nl)) else seq_along(nl)
}
