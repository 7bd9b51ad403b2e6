## Worked analysis: nested random effects -- pupils in schools in districts, school labels reused.
##
## 12 districts each have 6 schools, numbered 1..6 *within* each district: school "1" of district
## D1 and school "1" of district D2 are different schools. Pupils per school vary (5 to 25).
## Simulated truth: score = 50 + 3 ses + district (SD 4) + school (SD 3) + pupil (SD 6).
##
## lme4 1.1-31 on the same data, score ~ ses + (1 | district/school): variances school:district
## 9.47486, district 14.73123, residual 36.58516; REML criterion 6311.15755.
## The wrong model (1 | district) + (1 | school): REML criterion 6408.98149, residual 44.05470.

if (!"package:lmmc" %in% search()) library(lmmc)

set.seed(202)
n_district <- 12; n_school <- 6
size <- sample(5:25, n_district * n_school, replace = TRUE)
district <- rep(rep(seq_len(n_district), each = n_school), size)
school <- rep(rep(seq_len(n_school), n_district), size)
sid <- rep(seq_len(n_district * n_school), size)
d_eff <- rnorm(n_district, sd = 4)
s_eff <- rnorm(n_district * n_school, sd = 3)
ses <- rnorm(length(sid))
pupils <- data.frame(
  score = 50 + 3 * ses + d_eff[district] + s_eff[sid] + rnorm(length(sid), sd = 6),
  ses = ses,
  district = factor(paste0("D", district), levels = paste0("D", seq_len(n_district))),
  school = factor(school),                 # reused labels 1..6
  school_id = factor(sid))                 # a globally unique school label

## (1 | district/school) expands to (1 | district) + (1 | district:school): the interaction
## makes the reused labels unique, so there are 72 schools.
fit <- lmm(score ~ ses + (1 | district/school), data = pupils)
print(summary(fit))
print(ngrps(fit))

## Same model with unique school labels: identical fit.
fit_uid <- lmm(score ~ ses + (1 | district) + (1 | school_id), data = pupils)
cat(sprintf("REML criterion, nested syntax: %.5f; unique labels: %.5f\n",
            REMLcrit(fit), REMLcrit(fit_uid)))

## The classic mistake: (1 | school) with reused labels pools the six "school 1"s of all districts
## into one "school", so only 6 schools are seen and their variance is lost to the residual.
fit_wrong <- lmm(score ~ ses + (1 | district) + (1 | school), data = pupils)
print(ngrps(fit_wrong))
cat(sprintf("Wrong model: REML criterion %.2f (vs %.2f), residual variance %.2f (vs %.2f)\n",
            REMLcrit(fit_wrong), REMLcrit(fit), sigma(fit_wrong)^2, sigma(fit)^2))

## Variance shares. For nested factors the correlations of two pupils are
##   same school (hence same district):     (s2_district + s2_school) / total
##   same district, different schools:       s2_district / total
ic <- icc(fit, ci = TRUE, method = "profile")
print(ic)
vc <- as.data.frame(VarCorr(fit))
total <- sum(vc$vcov)
s2 <- setNames(vc$vcov, vc$grp)
implied <- c(same_school = unname(s2["school:district"] + s2["district"]) / total,
             same_district_only = unname(s2["district"]) / total)
print(round(implied, 3))

## Did ses explain variance at each level? Against the empty model with the same factors:
print(pve(fit))

cat("\nConclusion: two pupils of the same school correlate", round(implied[1], 2),
    "and two pupils of different schools in one district", round(implied[2], 2),
    "\n(truth: 25/61 = 0.41 and 16/61 = 0.26). With reused school labels the nesting must be",
    "written (1 | district/school)\nor with unique labels; (1 | school) silently fits a",
    "different, wrong model (REML criterion worse by",
    round(REMLcrit(fit_wrong) - REMLcrit(fit), 1), ").\n")

analysis <- list(fit = fit, fit_uid = fit_uid, fit_wrong = fit_wrong, icc = ic,
                 implied = implied, varcorr = vc, pve = pve(fit))
