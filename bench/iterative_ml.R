## An ml-32m-shaped design for the iterative backend (issue 11, section 4): users x items with
## power-law item popularity (weights 1 / rank^0.9) and exponential user activity, y = 3.5 +
## user + item + noise (SDs 0.4, 0.5, 0.9), (1 | u) + (1 | i).
## Usage: R_LIBS=... /usr/bin/time -v Rscript bench/iterative_ml.R [rows]   (default 3.2e6; the
## full design has 32e6 rows)
args <- suppressWarnings(as.numeric(commandArgs(trailingOnly = TRUE)))
n <- if (length(args) && !is.na(args[1])) args[1] else 3.2e6
suppressMessages(library(lmmc))
set.seed(32)
nu <- 200948; ni <- 84432
u <- sample.int(nu, n, TRUE, prob = rexp(nu))
i <- sample.int(ni, n, TRUE, prob = 1 / seq_len(ni)^0.9)
d <- data.frame(u = factor(u), i = factor(i))
d$y <- 3.5 + rnorm(nu, sd = 0.4)[u] + rnorm(ni, sd = 0.5)[i] + rnorm(n, sd = 0.9)
rm(u, i)
d <- droplevels(d)
cat(sprintf("load: %s\nusers %d items %d rows %.0f\n", readLines("/proc/loadavg"),
            nlevels(d$u), nlevels(d$i), nrow(d)))
t0 <- proc.time()[["elapsed"]]
fi <- lmm(y ~ 1 + (1 | u) + (1 | i), d, control = lmm_control(backend = "iterative"))
it <- fi$iterative
cat(sprintf(paste("iterative: %.1f s, %d evaluations; CG %d / %d; MC SE %.3g; theta %s;",
                  "theta_se %s\n"), proc.time()[["elapsed"]] - t0, fi$optinfo$feval,
            as.integer(it$iterations), as.integer(it$probe_iterations), it$crit_se,
            paste(format(fi$theta, digits = 6), collapse = ", "),
            paste(format(it$theta_se, digits = 3), collapse = ", ")))
