# Backward elimination as lmerTest's step(): first the random-effect terms, one at a time by
# ranova()'s likelihood-ratio tests (the reduction with the largest p-value above alpha.random
# goes), then the fixed-effect terms, one at a time by drop1()'s F tests (only terms contained in
# no other term are candidates, so marginality is respected; the largest p-value above
# alpha.fixed goes; terms in `keep` stay).  A model left with no random term is fitted by lm().

# stats::step is not generic: lmmc's step() is (as lmerTest's), other objects go to stats::step.
step <- function(object, ...) UseMethod("step")

# stats::step (lmerTest's step for lme4 fits, when lmmc's step() masks lmerTest's).  Both
# evaluate their refits in their caller's frame: they are called from the caller's frame.
step.default <- function(object, ...) {
  cl <- match.call()
  cl[[1L]] <- if (inherits(object, "merMod") && requireNamespace("lmerTest", quietly = TRUE))
    quote(lmerTest::step) else quote(stats::step)
  eval(cl, parent.frame())
}

step.lmm <- function(object, ddf = c("Satterthwaite", "Kenward-Roger"), alpha.random = 0.1,
                     alpha.fixed = 0.05, reduce.fixed = TRUE, reduce.random = TRUE, keep, ...) {
  ddf <- match.arg(ddf)
  need_formula(object, "step()")
  if (!isTRUE(reduce.random)) alpha.random <- 1
  if (!isTRUE(reduce.fixed)) alpha.fixed <- 1
  if (missing(keep)) keep <- character()
  env <- parent.frame()
  random <- reduce_random(object, alpha.random, env)
  fixed <- reduce_fixed(random$model, ddf, alpha.fixed, keep, env)
  structure(list(random = random_step_table(random), fixed = fixed_step_table(fixed, ddf)),
            model = fixed$model, drop1 = fixed$last, class = "step_lmm")
}

# The reduced model of a step().
get_model <- function(x, ...) UseMethod("get_model")

get_model.step_lmm <- function(x, ...) attr(x, "model")

get_model.default <- function(x, ...) {
  forward_to_lmerTest("get_model", x, match.call(), parent.frame())
}

print.step_lmm <- function(x, ...) {
  print(x$random)
  cat("\n")
  print(x$fixed)
  cat("\nModel found:", deparse2(formula(attr(x, "model"))), sep = "\n")
  invisible(x)
}

## ---- random part ------------------------------------------------------------------------------

# list(model, eliminated = ranova rows removed (first: the full model's <none>), last = the final
# model's ranova table).
reduce_random <- function(model, alpha, env) {
  ran <- ranova_in(model, env)
  eliminated <- ran[1L, ]
  fit <- model
  repeat {
    p <- ran[-1L, "Pr(>Chisq)"]
    if (!any(!is.na(p) & p > alpha)) break
    k <- which.max(p)
    eliminated <- rbind(eliminated, ran[1L + k, ])
    form <- attr(ran, "formulae")[[k]]
    REML <- isTRUE(fit$REML)
    fit <- refit_with_formula(fit, form, env)
    if (!inherits(fit, "lmm")) {            # no random term left: lm()
      ran <- lm_loglik_table(fit, REML)
      break
    }
    ran <- ranova_in(fit, env)
  }
  list(model = fit, eliminated = eliminated, last = ran)
}

ranova_in <- function(model, env) ranova_table(model, TRUE, env)

lm_loglik_table <- function(fit, REML) {
  table <- lr_table(loglik_df(fit, REML))
  rownames(table) <- "<none>"
  structure(table, heading = c("ANOVA-like table for random-effects: Single term deletions",
                               "\nModel:", deparse2(formula(fit))),
            class = c("anova", "data.frame"))
}

random_step_table <- function(random) {
  elim <- random$eliminated
  rest <- random$last[-1L, , drop = FALSE]
  tab <- rbind(cbind(Eliminated = c(NA_real_, seq_len(nrow(elim) - 1L)), as.data.frame(elim)),
               cbind(Eliminated = rep(0, nrow(rest)), as.data.frame(rest)))
  structure(tab, heading = "Backward reduced random-effect table:\n",
            class = c("anova", "data.frame"))
}

## ---- fixed part -------------------------------------------------------------------------------

reduce_fixed <- function(model, ddf, alpha, keep, env) {
  if (!is.character(keep)) stop("'keep' must be a character vector of term labels", call. = FALSE)
  labels <- attr(stats::terms(model), "term.labels")
  if (!all(keep %in% labels))
    warning(sprintf("Invalid 'keep' ignored: %s.\nValid terms are: %s.",
                    paste(setdiff(keep, labels), collapse = " "), paste(labels, collapse = " ")),
            call. = FALSE)
  aov <- fixed_drop1(model, ddf)
  eliminated <- aov[0L, ]
  fit <- model
  repeat {
    consider <- setdiff(rownames(aov), keep)
    p <- aov[consider, "Pr(>F)"]
    if (!any(!is.na(p) & p > alpha)) break
    term <- consider[which.max(p)]
    eliminated <- rbind(eliminated, aov[term, ])
    form <- remove_terms(formula(fit), paste0("(", term, ")"))
    new <- refit_with_formula(fit, form, env)
    if (nobs(new) != nobs(model))
      stop("number of rows in use has changed: remove missing values?", call. = FALSE)
    fit <- new
    aov <- fixed_drop1(fit, ddf)
  }
  list(model = fit, eliminated = eliminated, last = aov, lmm = inherits(fit, "lmm"))
}

# F tests of the marginal terms: lmerTest's drop1 for lmm fits, stats' for lm fits, nlme's
# marginal F tests for gls fits (a residual structure left without random terms).
fixed_drop1 <- function(fit, ddf) {
  if (inherits(fit, "lmm")) return(drop1_ftests(fit, drop.scope(fit$fixed_terms),
                                                drop.scope(fit$fixed_terms), ddf))
  if (inherits(fit, "gls")) return(gls_drop1(fit))
  stats::drop1(fit, test = "F")[-1L, , drop = FALSE]
}

gls_drop1 <- function(fit) {
  tab <- stats::anova(fit, type = "marginal")
  scope <- drop.scope(stats::terms(fit))
  out <- data.frame(NumDF = tab[scope, "numDF"], DenDF = fit$dims$N - fit$dims$p,
                    "F value" = tab[scope, "F-value"], "Pr(>F)" = tab[scope, "p-value"],
                    row.names = scope, check.names = FALSE)
  structure(out, class = c("anova", "data.frame"))
}

fixed_step_table <- function(fixed, ddf) {
  elim <- fixed$eliminated
  last <- fixed$last
  tab <- rbind(cbind(Eliminated = seq_len(nrow(elim)), as.data.frame(elim)),
               cbind(Eliminated = rep(0, nrow(last)), as.data.frame(last)))
  heading <- "Backward reduced fixed-effect table:"
  if (fixed$lmm) heading <- c(heading, paste("Degrees of freedom method:", ddf, "\n"))
  structure(tab, heading = heading, class = c("anova", "data.frame"))
}
