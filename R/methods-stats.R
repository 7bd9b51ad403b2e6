## Generics of package stats that lme4 gives "merMod" fits and other software calls: the family
## (a linear mixed model is a gaussian model with the identity link) and extractAIC (used by
## step() and its relatives).

family.lmm <- function(object, ...) stats::gaussian()

## c(edf, AIC) of the maximum-likelihood fit, as lme4: REML fits are refitted by ML first
## (R/anova.R refit_ml), then AIC = -2 log L + k edf with edf the number of parameters.
extractAIC.lmm <- function(fit, scale = 0, k = 2, ...) {
  ll <- logLik(refit_ml(fit))
  edf <- attr(ll, "df")
  c(edf, -2 * as.numeric(ll) + k * edf)
}
