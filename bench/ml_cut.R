## The ml-32m-shaped design of bench/iterative_ml.R (same generator and seed), cut to the items
## with at least 50 ratings, fitted exactly (issue 11, section 4: "the >= 50-ratings cut
## exactly in under 20 minutes").
## Usage: R_LIBS=... /usr/bin/time -v Rscript bench/ml_cut.R [rows] [min_ratings]
args <- suppressWarnings(as.numeric(commandArgs(trailingOnly = TRUE)))
n <- if (length(args) && !is.na(args[1])) args[1] else 32e6
cut <- if (length(args) >= 2 && !is.na(args[2])) args[2] else 50
suppressMessages(library(lmmc))
set.seed(32)
nu <- 200948; ni <- 84432
u <- sample.int(nu, n, TRUE, prob = rexp(nu))
i <- sample.int(ni, n, TRUE, prob = 1 / seq_len(ni)^0.9)
y <- 3.5 + rnorm(nu, sd = 0.4)[u] + rnorm(ni, sd = 0.5)[i] + rnorm(n, sd = 0.9)
keep <- tabulate(i, ni)[i] >= cut
d <- data.frame(u = factor(u[keep]), i = factor(i[keep]), y = y[keep])
rm(u, i, y, keep)
cat(sprintf("load: %s\nusers %d items %d rows %.0f (items with >= %d ratings)\n",
            readLines("/proc/loadavg"), nlevels(d$u), nlevels(d$i), nrow(d), cut))
pc <- lmm_pieces(y ~ 1 + (1 | u) + (1 | i), d)
pred <- lmmc:::layout_prediction(pc$y, pc$X, pc$reterms, pc$weights, pc$offset)
print(pred[c("dense_order", "sparse_values", "bytes", "seconds")])
rm(pc)
t0 <- proc.time()[["elapsed"]]
fit <- lmm(y ~ 1 + (1 | u) + (1 | i), d,
           control = lmm_control(backend = "direct", memory_limit = Inf))
cat(sprintf("direct: %.1f s, %d evaluations, converged %s, theta %s\n",
            proc.time()[["elapsed"]] - t0, fit$optinfo$feval, fit$optinfo$converged,
            paste(format(fit$theta, digits = 6), collapse = ", ")))
