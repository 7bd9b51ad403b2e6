# Data sets shared by test-car.R and test-emmeans.R (nlme's, so they need no lme4).
orthodont <- as.data.frame(nlme::Orthodont)
orthodont_u <- orthodont[-seq(3, 108, by = 7), ]           # unbalanced: every 7th row removed
math_achieve <- local({                                    # MathAchieve with the school's Sector
  d <- as.data.frame(nlme::MathAchieve)
  d$Sector <- nlme::MathAchSchool$Sector[match(d$School, nlme::MathAchSchool$School)]
  d
})
