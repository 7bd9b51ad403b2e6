## An AKM-shaped design (issue 11, section 4): persons x firms as in Abowd, Kramarz & Margolis
## (1999) wage models -- each person works for one firm, a share of them ("movers") for two,
## firm sizes heavy-tailed; y = x + person + firm + noise, y ~ x + (1 | person) + (1 | firm).
## Usage: R_LIBS=... /usr/bin/time -v Rscript bench/akm.R [persons] [firms] [rows] [backend]
## (default 1.4e6 persons, 1e5 firms, 1e7 rows, backend "auto").
args <- commandArgs(trailingOnly = TRUE)
num <- function(i, default) if (length(args) >= i) as.numeric(args[i]) else default
np <- num(1, 1.4e6); nf <- num(2, 1e5); n <- num(3, 1e7)
backend <- if (length(args) >= 4) args[4] else "auto"
suppressMessages(library(lmmc))
set.seed(1999)
t0 <- proc.time()[["elapsed"]]
person <- sort(sample.int(np, n, TRUE))                   # about n / np spells per person
firm_of <- sample.int(nf, np, TRUE, prob = 1 / seq_len(nf)^0.8)
mover <- runif(np) < 0.05                                 # 5% move once, halfway
firm2 <- sample.int(nf, np, TRUE, prob = 1 / seq_len(nf)^0.8)
first <- !duplicated(person)
spell <- ave(seq_along(person), person, FUN = seq_along)
len <- tabulate(person, np)[person]
firm <- ifelse(mover[person] & spell > len / 2, firm2[person], firm_of[person])
d <- data.frame(person = factor(person), firm = factor(firm), x = rnorm(n))
rm(person, firm, firm_of, firm2, spell, len, first)
d$y <- 0.3 * d$x + rnorm(nlevels(d$person), sd = 0.6)[d$person] +
  rnorm(nlevels(d$firm), sd = 0.3)[d$firm] + rnorm(n, sd = 0.5)
cat(sprintf("load: %s\npersons %d firms %d rows %.0f (data %.1f s)\n", readLines("/proc/loadavg"),
            nlevels(d$person), nlevels(d$firm), nrow(d), proc.time()[["elapsed"]] - t0))
t1 <- proc.time()[["elapsed"]]
fit <- lmm(y ~ x + (1 | person) + (1 | firm), d, REML = FALSE,
           control = lmm_control(backend = backend))
cat(sprintf("lmm (%s): %.1f s, %d evaluations, converged %s, deviance %.4f\n",
            if (is.null(fit$iterative)) "direct" else "iterative",
            proc.time()[["elapsed"]] - t1, fit$optinfo$feval, fit$optinfo$converged, deviance(fit)))
print(VarCorr(fit)); print(fixef(fit))
if (!is.null(fit$iterative)) cat(sprintf("Monte Carlo SE of the criterion %.3g\n", fit$iterative$crit_se))
