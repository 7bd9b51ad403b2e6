## The ml-32m-shaped design (bench/sim_ml.R) fitted whole with the iterative backend (issue 11,
## section 4: under 1 hour and 8 GiB).
## Usage: R_LIBS=... /usr/bin/time -v Rscript bench/iterative_ml.R [rows]   (default 3.2e6; the
## full design has 32e6 rows)
args <- suppressWarnings(as.numeric(commandArgs(trailingOnly = TRUE)))
n <- if (length(args) && !is.na(args[1])) args[1] else 3.2e6
suppressMessages(library(lmmc))
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(), value = TRUE))),
                 "sim_ml.R"))
s <- sim_ml(n)
d <- data.frame(u = factor(s$u), i = factor(s$i), y = s$y)
rm(s)
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
