## Worked analysis: High School and Beyond (Raudenbush & Bryk), nlme's MathAchieve with the school
## sector from MathAchSchool. 7185 pupils in 160 schools (70 Catholic, 90 public).
##
## Questions: how much of the variance in maths achievement lies between schools? Did pupils' SES
## explain school-level or pupil-level variance? Is the Catholic-school advantage real once SES is
## controlled, and does the SES gradient differ by sector?
##
## lme4 1.1-31 / lmerTest 3.1 reference numbers (REML):
##   MathAch ~ 1 + (1|School):            school 8.61402, residual 39.14832 (ICC 0.1804)
##   MathAch ~ SES + (1|School):           school 4.76817, residual 37.03440, logLik -23322.58
##   MathAch ~ SES + Sector + (1|School):  school 3.68504; SectorCatholic 2.10084 (SE 0.34112,
##                                         Satterthwaite df 147.36, p 6.64e-09)
##   MathAch ~ SES * Sector + (1|School):  SES 2.95117, SectorCatholic 2.13817 (p 3.87e-09),
##                                         SES:SectorCatholic -1.31285 (SE 0.21200, df 6719.7,
##                                         p 6.26e-10)

if (!"package:lmmc" %in% search()) library(lmmc)

data("MathAchieve", "MathAchSchool", package = "nlme", envir = environment())
hsb <- as.data.frame(MathAchieve)
hsb$School <- factor(as.character(hsb$School))
hsb$Sector <- MathAchSchool$Sector[match(as.character(hsb$School),
                                         as.character(MathAchSchool$School))]
stopifnot(!anyNA(hsb$Sector))

m0 <- lmm(MathAch ~ 1 + (1 | School), data = hsb)              # the empty model
m1 <- lmm(MathAch ~ SES + (1 | School), data = hsb)
m2 <- lmm(MathAch ~ SES + Sector + (1 | School), data = hsb)
m3 <- lmm(MathAch ~ SES * Sector + (1 | School), data = hsb)

## 1. Between-school share of the variance: the ICC of the empty model.
icc0 <- icc(m0, ci = TRUE, method = "profile")
print(icc0)

## 2. Variance explained at each level (Raudenbush & Bryk's pseudo-R2), each model against m0,
##    and Sector against the SES-only model.
pve1 <- pve(m1, m0)
pve2 <- pve(m2, m0)
pve_sector <- pve(m2, m1)
print(pve1); print(pve2); print(pve_sector)
r2_all <- rbind(m1 = r2(m1), m2 = r2(m2), m3 = r2(m3))
print(round(r2_all, 4))

## 3. Fixed effects with Satterthwaite p-values.
coef_m2 <- summary(m2)$coefficients
coef_m3 <- summary(m3)$coefficients
print(coef_m3)
has_p <- "Pr(>|t|)" %in% colnames(coef_m3)
if (!has_p) {
  # TODO(lead): summary(fit)$coefficients has no "Pr(>|t|)" column -- p-values need the
  # Satterthwaite summary(); the conclusion below then reports t values only.
  cat("p-values not available from summary(); t values only\n")
}
p_sector <- if (has_p) coef_m2["SectorCatholic", "Pr(>|t|)"] else NA_real_
p_interaction <- if (has_p) coef_m3["SES:SectorCatholic", "Pr(>|t|)"] else NA_real_

## Likelihood-ratio comparison of the nested models (refitted by ML).
lrt <- anova(m1, m2, m3)
print(lrt)

## 4. Conclusion.
slope_public <- unname(fixef(m3)["SES"])
slope_catholic <- unname(fixef(m3)["SES"] + fixef(m3)["SES:SectorCatholic"])
cat(sprintf(paste0(
  "\nConclusion. %.0f%% of the variance in maths achievement lies between schools ",
  "(ICC %.3f, 95%% CI %.3f to %.3f).\n",
  "Pupil SES explains %.0f%% of the between-school variance but only %.0f%% of the ",
  "within-school variance:\nschools differ largely because their intakes differ. ",
  "Controlling for SES, Catholic schools score %.2f points higher\n(SE %.2f, ",
  "Satterthwaite df %.0f, p = %.2g), and Sector explains a further %.0f%% of the remaining ",
  "school variance.\nThe SES gradient is flatter in Catholic schools (%.2f vs %.2f points per ",
  "SES unit; interaction p = %.2g):\nthe Catholic advantage is largest for low-SES pupils.\n"),
  100 * icc0$adjusted, icc0$adjusted, icc0$adjusted_lower, icc0$adjusted_upper,
  100 * pve1$pve[1], 100 * pve1$pve[2],
  coef_m2["SectorCatholic", "Estimate"], coef_m2["SectorCatholic", "Std. Error"],
  if ("df" %in% colnames(coef_m2)) coef_m2["SectorCatholic", "df"] else NA_real_,
  p_sector, 100 * pve_sector$pve[1], slope_catholic, slope_public, p_interaction))

analysis <- list(m0 = m0, m1 = m1, m2 = m2, m3 = m3, icc0 = icc0, pve1 = pve1, pve2 = pve2,
                 pve_sector = pve_sector, r2 = r2_all, coef_m2 = coef_m2, coef_m3 = coef_m3,
                 p_sector = p_sector, p_interaction = p_interaction, lrt = lrt,
                 slopes = c(public = slope_public, catholic = slope_catholic))
