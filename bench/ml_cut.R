## The ml-32m-shaped design (bench/sim_ml.R, as in iterative_ml.R) cut to the items with at
## least 50 ratings, fitted exactly (issue 11, section 4: "the >= 50-ratings cut exactly in
## under 20 minutes").
## Usage: R_LIBS=... /usr/bin/time -v Rscript bench/ml_cut.R [rows] [min_ratings] [ordering]
## (ordering: "auto", the default, or "none" for options(lmmc.ordering = "none"))
args <- commandArgs(trailingOnly = TRUE)
num <- suppressWarnings(as.numeric(args))
n <- if (length(args) && !is.na(num[1])) num[1] else 32e6
cut <- if (length(args) >= 2 && !is.na(num[2])) num[2] else 50
if (length(args) >= 3) options(lmmc.ordering = args[3])
suppressMessages(library(lmmc))
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(), value = TRUE))),
                 "sim_ml.R"))
s <- sim_ml(n)
keep <- tabulate(s$i, s$ni)[s$i] >= cut
d <- data.frame(u = factor(s$u[keep]), i = factor(s$i[keep]), y = s$y[keep])
rm(s, keep)
cat(sprintf("load: %s\nusers %d items %d rows %.0f (items with >= %d ratings)\n",
            readLines("/proc/loadavg"), nlevels(d$u), nlevels(d$i), nrow(d), cut))
pc <- lmm_pieces(y ~ 1 + (1 | u) + (1 | i), d)
t0 <- proc.time()[["elapsed"]]
pred <- lmmc:::layout_prediction(pc$y, pc$X, pc$reterms, pc$weights, pc$offset)
cat(sprintf("symbolic analysis (order included): %.1f s\n", proc.time()[["elapsed"]] - t0))
print(pred[c("dense_order", "sparse_values", "bytes", "seconds")])
rm(pc)
t0 <- proc.time()[["elapsed"]]
fit <- lmm(y ~ 1 + (1 | u) + (1 | i), d,
           control = lmm_control(backend = "direct", memory_limit = Inf))
cat(sprintf("direct: %.1f s, %d evaluations, converged %s, theta %s\n",
            proc.time()[["elapsed"]] - t0, fit$optinfo$feval, fit$optinfo$converged,
            paste(format(fit$theta, digits = 6), collapse = ", ")))
