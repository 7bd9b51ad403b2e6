## Large crossed designs: lmmc::lmm() with the fill-reducing level order (src/ordering.c)
## against lme4::lmer(), one fit each, in separate R processes so that each one's peak RSS is
## its own (/usr/bin/time -v when present, else the VmHWM of /proc/self/status).
##
## Usage:  Rscript bench/bench_scale.R [--only=hub7500|hub20500|crossed20k] [--engine=lmm|lme4]
##                                       [--ordering=none]
## Without --engine, runs each design with lmm and then lme4 as child processes and prints one
## table.  Designs (fixed seeds):
##   hub7500   users x items, 20,000 users, 140 communities of 50 items + 500 hub items (7,500
##             items); each user rates 7 items of one community and 3 hubs (popularity ~ 1/rank):
##             2e5 rows.  y ~ x + (1 | user) + (1 | item).
##   hub20500  the same with 400 communities (20,500 items), 2e5 rows.
##   crossed20k (1 | f1) + (1 | f2), 20,000 x 10,000 levels assigned at random, 1e6 rows.

args <- commandArgs(trailingOnly = TRUE)
arg_value <- function(name, default = NULL) {
  v <- sub(paste0("^--", name, "="), "", grep(paste0("^--", name, "="), args, value = TRUE))
  if (length(v)) v else default
}

sim_hub <- function(ncomm = 140, csize = 50, nhub = 500, nusers = 20000, per_comm = 7,
                    per_hub = 3, seed = 11) {
  set.seed(seed)
  comm <- sample.int(ncomm, nusers, replace = TRUE)
  hub_p <- 1 / seq_len(nhub)
  user <- rep(seq_len(nusers), each = per_comm + per_hub)
  item <- integer(length(user))
  for (u in seq_len(nusers)) {
    own <- (comm[u] - 1L) * csize + sample.int(csize, per_comm)
    hubs <- ncomm * csize + sample.int(nhub, per_hub, prob = hub_p)
    item[(u - 1L) * (per_comm + per_hub) + seq_len(per_comm + per_hub)] <- c(own, hubs)
  }
  nitems <- ncomm * csize + nhub
  perm <- sample.int(nitems)                  # item labels in no helpful order
  item <- perm[item]
  n <- length(user)
  x <- rnorm(n)
  y <- 3 + 0.5 * x + rnorm(nusers, sd = 0.8)[user] + rnorm(nitems, sd = 0.6)[item] + rnorm(n)
  data.frame(y = y, x = x, user = factor(user), item = factor(item))
}

script <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
source(file.path(dirname(script), "sim_crossed.R"))      # sim_crossed()

designs <- list(
  hub7500 = list(data = function() sim_hub(), formula = y ~ x + (1 | user) + (1 | item)),
  hub20500 = list(data = function() sim_hub(ncomm = 400), formula = y ~ x + (1 | user) + (1 | item)),
  crossed20k = list(data = function() sim_crossed(n1 = 20000, n2 = 10000),
                    formula = y ~ x + (1 | f1) + (1 | f2))
)

peak_rss_mb <- function() {
  s <- readLines("/proc/self/status")
  as.numeric(sub("\\D*(\\d+).*", "\\1", grep("^VmHWM", s, value = TRUE))) / 1024
}

run_one <- function(design, engine) {
  d <- designs[[design]]$data()
  f <- designs[[design]]$formula
  if (engine == "lmm") {
    suppressPackageStartupMessages(library(lmmc))
    if (identical(arg_value("ordering"), "none")) options(lmmc.ordering = "none")
    t0 <- proc.time()[["elapsed"]]
    fit <- lmm(f, d, REML = FALSE)
    el <- proc.time()[["elapsed"]] - t0
    lay <- lmmc:::engine_layout_prediction(lmmc:::engine_for(fit))
    res <- list(seconds = el, feval = fit$optinfo$feval, dev = deviance(fit),
                theta = paste(signif(fit$theta, 6), collapse = " "),
                layout = sprintf("dense %d (split +%d in term), sparse values %.3g, predicted %.2f GB %.2f s/eval",
                                 as.integer(lay[["dense_order"]]), as.integer(lay[["split_in_term"]]),
                                 lay[["sparse_values"]], lay[["bytes"]] / 1e9, lay[["seconds"]]))
  } else if (design == "crossed20k") {      # a full lmer() fit takes hours: one evaluation
    suppressPackageStartupMessages(library(lme4))
    t0 <- proc.time()[["elapsed"]]
    dev <- lmer(f, d, REML = FALSE, devFunOnly = TRUE)
    t1 <- proc.time()[["elapsed"]]
    v <- dev(c(1, 0.5))
    el <- proc.time()[["elapsed"]] - t1
    res <- list(seconds = el, feval = 1L, dev = v, theta = "1 0.5 (one evaluation)",
                layout = sprintf("setup %.1f s; one devfun evaluation timed", t1 - t0))
  } else {
    suppressPackageStartupMessages(library(lme4))
    t0 <- proc.time()[["elapsed"]]
    fit <- lmer(f, d, REML = FALSE)
    el <- proc.time()[["elapsed"]] - t0
    res <- list(seconds = el, feval = fit@optinfo$feval, dev = deviance(fit),
                theta = paste(signif(getME(fit, "theta"), 6), collapse = " "), layout = "")
  }
  res$rss_mb <- peak_rss_mb()
  cat(sprintf("RESULT\t%s\t%s\t%.1f\t%d\t%.4f\t%s\t%.0f\t%s\n", design, engine, res$seconds,
              as.integer(res$feval), res$dev, res$theta, res$rss_mb, res$layout))
}

engine <- arg_value("engine")
only <- arg_value("only", names(designs))
if (!is.null(engine)) {
  for (d in only) run_one(d, engine)
} else {
  cat("load:", system("uptime", intern = TRUE), "\n")
  cat("design\tengine\tseconds\tfeval\tdeviance\ttheta\tpeak_rss_mb\tlayout\n")
  for (d in only) for (e in c("lmm", "lme4")) {
    out <- system2("Rscript", c(script, paste0("--only=", d), paste0("--engine=", e),
                                grep("^--ordering=", args, value = TRUE)), stdout = TRUE)
    cat(sub("^RESULT\t", "", grep("^RESULT", out, value = TRUE)), sep = "\n")
  }
}
