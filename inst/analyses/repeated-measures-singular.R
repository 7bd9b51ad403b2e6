## Worked analysis: a repeated-measures design whose mixed model is singular, and what that means.
##
## 8 participants are each measured twice (once per level of Condition_1); Condition_2 is a
## between-participant factor (participants 1-4 vs 26-29). The analyst fitted
##   dependent_var ~ (1 | participant_ID) + (1 | Condition_1) + (1 | Condition_2)
## lme4 1.1-31 gives REML criterion -0.8726, residual SD 0.2143 and all three variances 0:
## a singular (boundary) fit.

if (!"package:lmmc" %in% search()) library(lmmc)

rm_data <- read.table(header = TRUE, colClasses = c("factor", "factor", "factor", "numeric"),
                      text = "
participant_ID Condition_1 Condition_2 dependent_var
1 1 1 0.71
1 2 1 0.43
2 1 1 0.77
2 2 1 0.37
3 1 1 0.58
3 2 1 0.69
4 2 1 0.72
4 1 1 0.12
26 2 2 0.91
26 1 2 0.53
27 1 2 0.29
27 2 2 0.39
28 2 2 0.75
28 1 2 0.51
29 1 2 0.42
29 2 2 0.31
")

fit <- lmm(dependent_var ~ (1 | participant_ID) + (1 | Condition_1) + (1 | Condition_2),
           data = rm_data)                       # prints lmmc's "boundary (singular) fit" message
print(fit)
cat("isSingular:", isSingular(fit), "\n")
vc <- as.data.frame(VarCorr(fit))
print(vc)

## 1. With every variance at 0 the model IS the intercept-only linear model: the intercept is the
##    mean and sigma the SD of the 16 values.
ols <- lm(dependent_var ~ 1, data = rm_data)
cat(sprintf("mixed: intercept %.5f, sigma %.5f;  lm: mean %.5f, sd %.5f\n",
            fixef(fit), sigma(fit), coef(ols), sigma(ols)))

## 2. Why the participant variance is 0: in the one-way ANOVA of participants the between-participant
##    mean square is SMALLER than the within-participant one (F < 1). The moment estimate of the
##    participant variance, (MS_between - MS_within) / 2, is negative; REML cannot go below 0.
aov_tab <- anova(lm(dependent_var ~ participant_ID, data = rm_data))
ms <- aov_tab[["Mean Sq"]]
moment_estimate <- (ms[1] - ms[2]) / 2
cat(sprintf("MS between %.5f, MS within %.5f, F = %.3f, moment estimate of variance %.5f\n",
            ms[1], ms[2], ms[1] / ms[2], moment_estimate))

## 3. Condition_1 and Condition_2 have two levels each: a variance cannot be estimated from two
##    group means. They are the experiment's factors -- fixed effects. The model the design asks
##    for is:
fit_fixed <- lmm(dependent_var ~ Condition_1 + Condition_2 + (1 | participant_ID),
                 data = rm_data)
print(summary(fit_fixed))
ct <- summary(fit_fixed)$coefficients
## lme4 1.1-31: fixed effects 0.50875, 0.08, -0.035; residual variance 0.0506365, participant 0.

## 4. How large could the participant share be? The profile interval of the ICC is wide: 16
##    observations say little about it, even though the point estimate is 0.
ic <- icc(fit_fixed, ci = TRUE, method = "profile")
print(ic)

cat("\nConclusion: the singular fit is not a software failure. Participants differ less than the",
    "\ntwo measurements within a participant do (F =", round(ms[1] / ms[2], 2), "< 1), so the",
    "best estimate of the between-participant\nvariance is 0, and two-level factors cannot",
    "carry a variance at all. With all variances at 0 the\nmodel is an ordinary regression;",
    "enter the conditions as fixed effects. Neither condition\nhas a detectable effect",
    sprintf("(Condition_1: %+.3f, t = %.2f; Condition_2: %+.3f, t = %.2f),",
            ct[2, 1], ct[2, "t value"], ct[3, 1], ct[3, "t value"]),
    "\nand the data are compatible with a participant ICC anywhere from 0 to",
    round(ic$adjusted_upper, 2), ".\n")

analysis <- list(fit = fit, varcorr = vc, ols = ols, moment_estimate = moment_estimate,
                 F = ms[1] / ms[2], fit_fixed = fit_fixed, coef_fixed = ct, icc = ic)
