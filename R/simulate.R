## Simulation from a fitted "lmm", refitting to a new response, and the parametric bootstrap.
##
## The model: y = X beta + Z b + offset + e, b = sigma Lambda u, u ~ N(0, I_q), e ~ N(0, sigma^2 W^-1).
## simulate() draws u for the random terms not conditioned on (re.form), then e, in lme4's order:
## first all u (nsim columns of q), then all e (nsim columns of n), so that with the same seed and
## no prior weights the draws equal lme4's simulate.merMod().

simulate.lmm <- function(object, nsim = 1, seed = NULL, use.u = FALSE, re.form = NA,
                         newdata = NULL, allow.new.levels = FALSE, na.action = na.pass,
                         ...) {
  if (...length() > 0L)
    warning("unused arguments ignored: ", paste(...names(), collapse = ", "), call. = FALSE)
  nsim <- positive_count(nsim, "nsim")
  if (!missing(use.u)) {
    if (!missing(re.form)) stop("specify only one of 'use.u' and 're.form'", call. = FALSE)
    re.form <- if (single_flag(use.u, "use.u")) NULL else NA
  }
  state <- seed_rng(seed)
  if (!is.null(seed)) on.exit(restore_rng(state$saved))
  sim <- simulate_matrix(object, nsim, re.form, newdata, allow.new.levels, na.action)
  val <- as.data.frame(sim$Y)
  names(val) <- paste0("sim_", seq_len(nsim))
  if (!is.null(sim$names)) row.names(val) <- sim$names
  if (!is.null(sim$na_action) && is.null(newdata)) {
    padded <- lapply(val, function(v) stats::napredict(sim$na_action, setNames(v, sim$names)))
    val <- as.data.frame(padded)
    row.names(val) <- names(padded[[1L]])
  }
  structure(val, na.action = sim$na_action, seed = state$seed)
}

## Seed the generator as stats::simulate.lm documents: with seed, set it (and let the caller
## restore the previous state); without, record the current state.
seed_rng <- function(seed) {
  if (!exists(".Random.seed", envir = globalenv(), inherits = FALSE)) stats::runif(1)
  saved <- get(".Random.seed", envir = globalenv(), inherits = FALSE)
  if (is.null(seed)) return(list(saved = saved, seed = saved))
  set.seed(seed)
  list(saved = saved, seed = structure(seed, kind = as.list(RNGkind())))
}

restore_rng <- function(saved) assign(".Random.seed", saved, envir = globalenv())

## n x nsim matrix of simulated responses (rows: observations of the fit or rows of newdata kept).
simulate_matrix <- function(object, nsim, re.form, newdata, allow.new.levels, na.action) {
  if (inherits(object, "lmm_aggregated") && is.null(newdata))      # R/methods-aggregated.R
    stop_needs_rows("simulating responses (simulate(), bootstrap_lmm(), bootstrap intervals)")
  use <- vapply(conditioned_terms(object, re.form), `[[`, NA, "use")
  reterms <- object$reterms
  if (is.null(newdata)) {
    X <- object$X
    off <- object$offset
    tds <- lapply(reterms, function(term)
      list(Xt = term$Xt, idx = as.integer(term$group), labels = NULL))
    w <- object$weights
    nms <- if (is.null(object$frame)) NULL else rownames(object$frame)
    na_act <- if (is.null(object$frame)) NULL else attr(object$frame, "na.action")
    rows <- NULL
  } else {
    fd <- new_fixed_design(object, newdata, na.action)
    rows <- fd$rows
    X <- fd$X
    off <- fd$offset
    tds <- lapply(reterms, function(term)
      new_term_design(object, term, fd$rows, allow.new.levels))
    w <- rep(1, nrow(X))
    nms <- rownames(fd$rows)
    na_act <- fd$na_action
  }
  eta <- drop(X %*% object$beta) + off + conditioned_part(object, tds, use)
  templates <- theta_templates(object$theta, reterms)
  sims <- which(!use)
  draws <- lapply(sims, function(t)
    new_level_map(tds[[t]], nlevels(reterms[[t]]$group), reterms[[t]], rows))
  qs <- sum(vapply(seq_along(sims), function(k)
    length(reterms[[sims[k]]]$cnms) * draws[[k]]$nlev, 1))
  zu <- 0
  if (length(sims)) {
    U <- matrix(stats::rnorm(qs * nsim), qs, nsim)
    zu <- simulated_part(U, sims, draws, tds, templates, length(eta), nsim)
  }
  if (!is.null(object$residual)) {             # correlated / heteroscedastic residuals
    e <- if (is.null(newdata)) residual_errors(object, nsim) else
      residual_errors_new(object, rows, nsim)            # R/residual.R
    return(list(Y = eta + object$sigma * zu + e, names = nms, na_action = na_act))
  }
  e <- matrix(stats::rnorm(length(eta) * nsim), length(eta), nsim)
  list(Y = eta + object$sigma * (zu + e / sqrt(w)), names = nms, na_action = na_act)
}

## Z b over the conditioned terms (levels not in the fit contribute 0).
conditioned_part <- function(object, tds, use) {
  B <- term_b_matrix(object$b, object$reterms)
  total <- 0
  for (t in which(use)) {
    idx <- tds[[t]]$idx
    Bt <- B[[t]][pmax(idx, 1L), , drop = FALSE]
    Bt[is.na(idx), ] <- 0
    total <- total + rowSums(tds[[t]]$Xt * Bt)
  }
  total
}

## Level numbers for the draws.  On the fit's data: the fitted levels.  On new data (as lme4): the
## levels present there, in factor order (sorted labels unless the grouping variable is a factor);
## rows with an NA group get no random effect.
new_level_map <- function(td, nl, term = NULL, rows = NULL) {
  if (is.null(td$labels)) return(list(idx = td$idx, nlev = nl))
  labs <- unique(td$labels[!is.na(td$labels)])
  g <- if (is.name(term$gexpr)) rows[[as.character(term$gexpr)]]
  labs <- if (is.factor(g)) intersect(levels(g), labs) else sort(labs)
  list(idx = match(td$labels, labs), nlev = length(labs))
}

## sigma^-1 Z b for the simulated terms: term t's block of U (level-major, p_t x nlev_t per
## simulation) becomes b = T_t u; row i gets x_ti . b_(level of i); NA levels get 0.
simulated_part <- function(U, sims, draws, tds, templates, n, nsim) {
  total <- matrix(0, n, nsim)
  pos <- 0L
  for (k in seq_along(sims)) {
    t <- sims[k]
    Tt <- templates[[t]]
    pt <- nrow(Tt)
    nlev <- draws[[k]]$nlev
    rows <- pos + seq_len(pt * nlev)
    pos <- pos + pt * nlev
    TB <- Tt %*% matrix(U[rows, , drop = FALSE], pt, nlev * nsim)   # columns: (level, sim)
    idx <- draws[[k]]$idx
    ok <- !is.na(idx)
    for (j in seq_len(pt)) {
      Bj <- matrix(TB[j, ], nlev, nsim)[pmax(idx, 1L), , drop = FALSE]
      Bj[!ok, ] <- 0
      total <- total + tds[[t]]$Xt[, j] * Bj
    }
  }
  total
}

## ---- refit ----------------------------------------------------------------------------------------

refit <- function(object, newresp, ...) UseMethod("refit")

## The same model (X, random terms, weights, offset, REML) fitted to a new response, starting
## from the fit's theta.  newresp: numeric vector (or a one-column data frame, e.g. a column of
## simulate()); NULL refits the original response.  A response padded with NA for rows the fit
## dropped (na.exclude) has those rows removed.
refit.lmm <- function(object, newresp = NULL, control = refit_control(object), ...) {
  if (...length() > 0L)
    warning("unused arguments ignored: ", paste(...names(), collapse = ", "), call. = FALSE)
  y <- refit_response(object, newresp)
  fit <- lmm_fit(y, object$X, object$reterms, weights = object$weights, offset = object$offset,
                 REML = object$REML, control = control, start = object$theta,
                 residual = object$residual$spec)
  for (field in c("call", "formula", "frame", "fixed_terms")) fit[field] <- list(object[[field]])
  if (!is.null(fit$frame)) fit$frame[[1L]] <- replace_response(fit$frame[[1L]], y)
  fit
}

refit_response <- function(object, newresp) {
  if (is.null(newresp)) return(object$y)
  if (is.data.frame(newresp)) {
    if (ncol(newresp) != 1L)
      stop("'newresp' must be a vector or a one-column data frame", call. = FALSE)
    newresp <- newresp[[1L]]
  }
  if (!is.numeric(newresp)) stop("'newresp' must be numeric", call. = FALSE)
  na_act <- if (is.null(object$frame)) NULL else attr(object$frame, "na.action")
  if (length(newresp) != object$n && length(na_act) &&
      length(newresp) == object$n + length(na_act))
    newresp <- newresp[-as.integer(na_act)]
  if (length(newresp) != object$n)
    stop(sprintf("'newresp' has length %d, the fit has %d observations", length(newresp),
                 object$n), call. = FALSE)
  if (anyNA(newresp) || any(is.infinite(newresp)))
    stop("'newresp' has missing or infinite values", call. = FALSE)
  if (min(newresp) == max(newresp)) stop("response is constant", call. = FALSE)   # as lmm()
  as.double(newresp)
}

## The model frame's response column with new values (matrix responses are left alone).
replace_response <- function(old, y) {
  if (is.null(dim(old)) && length(old) == length(y)) {
    attrs <- attributes(old)
    old <- y
    attributes(old) <- attrs
  }
  old
}

## ---- parametric bootstrap -------------------------------------------------------------------------

## nsim responses simulated from the fit (simulate(), seeded once), each refitted; FUN(refit)
## collected.  The responses are drawn in the main process in blocks, so the result depends only
## on the seed, not on `parallel` or `ncpus`.  Not called bootMer() so as not to mask lme4's.
bootstrap_lmm <- function(fit, FUN, nsim = 1, seed = NULL, use.u = FALSE, re.form = NA,
                          parallel = c("no", "multicore", "snow"),
                          ncpus = getOption("boot.ncpus", 1L), cl = NULL,
                          progress = interactive(), control = NULL) {
  if (!inherits(fit, "lmm")) stop("bootstrap_lmm() needs a fitted \"lmm\" object", call. = FALSE)
  FUN <- match.fun(FUN)
  parallel <- match.arg(parallel)
  nsim <- positive_count(nsim, "nsim")
  if (!missing(use.u)) {
    if (!missing(re.form)) stop("specify only one of 'use.u' and 're.form'", call. = FALSE)
    re.form <- if (single_flag(use.u, "use.u")) NULL else NA
  }
  t0 <- FUN(fit)
  if (!is.numeric(t0) || !length(t0)) stop("FUN(fit) must return a numeric vector", call. = FALSE)
  if (is.null(control))
    control <- refit_control(fit, check.conv.singular = "ignore", check.scaleX = "ignore",
                           check.rankX = "ignore")
  state <- seed_rng(seed)
  if (!is.null(seed)) on.exit(restore_rng(state$saved))
  one <- function(y) boot_replicate(fit, y, FUN, control, length(t0))
  block <- max(1L, min(nsim, floor(2e7 / fit$n)))       # responses held at once: <= 2e7 values
  res <- vector("list", nsim)
  bar <- if (progress && parallel == "no") utils::txtProgressBar(0, nsim, style = 3)
  if (!is.null(bar)) on.exit(close(bar), add = TRUE)
  done <- 0L
  while (done < nsim) {
    m <- min(block, nsim - done)
    Y <- simulate_matrix(fit, m, re.form, NULL, FALSE, stats::na.pass)$Y
    cols <- lapply(seq_len(m), function(i) Y[, i])
    res[done + seq_len(m)] <- if (is.null(bar)) run_tasks(cols, one, parallel, ncpus, cl) else
      lapply(seq_len(m), function(i) {
        r <- one(cols[[i]])
        utils::setTxtProgressBar(bar, done + i)
        r
      })
    done <- done + m
  }
  boot_result(t0, res, nsim, state$seed, match.call(), FUN)
}

## One replicate: FUN of the refit, or NA with the error / warning messages kept.
boot_replicate <- function(fit, y, FUN, control, k) {
  warns <- character()
  val <- withCallingHandlers(
    tryCatch(FUN(refit(fit, y, control = control)), error = function(e) e),
    warning = function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
  if (inherits(val, "error")) return(list(t = rep(NA_real_, k), error = conditionMessage(val),
                                          warnings = warns))
  if (length(val) != k) return(list(t = rep(NA_real_, k),
                                    error = "FUN returned a vector of another length",
                                    warnings = warns))
  list(t = as.numeric(val), error = NA_character_, warnings = warns)
}

boot_result <- function(t0, res, nsim, seed, call, FUN) {
  t <- matrix(unlist(lapply(res, `[[`, "t")), nsim, length(t0), byrow = TRUE,
              dimnames = list(NULL, names(t0)))
  errors <- vapply(res, `[[`, "", "error")
  warnings <- lapply(res, `[[`, "warnings")
  structure(list(t0 = t0, t = t, R = nsim, seed = seed, call = call, statistic = FUN,
                 errors = errors, warnings = warnings),
            class = "bootstrap_lmm")
}

print.bootstrap_lmm <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  cat("Parametric bootstrap of an lmm fit:", x$R, "simulations\n")
  nfail <- sum(!is.na(x$errors))
  nwarn <- sum(lengths(x$warnings) > 0L)
  if (nfail) cat(nfail, "refit(s) failed:", unique(stats::na.omit(x$errors))[1L], "\n")
  if (nwarn) cat(nwarn, "refit(s) gave warnings\n")
  tab <- cbind(original = x$t0, bias = colMeans(x$t, na.rm = TRUE) - x$t0,
               `std. error` = apply(x$t, 2L, stats::sd, na.rm = TRUE))
  if (is.null(rownames(tab))) rownames(tab) <- paste0("t", seq_len(nrow(tab)), "*")
  print(tab, digits = digits)
  invisible(x)
}
