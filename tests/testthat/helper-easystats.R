# Shared fixtures for the easystats tests (test-insight.R, test-performance.R, test-parameters.R):
# the five test models, fitted once per session on demand, and the reference numbers.
#
# Reference numbers: computed 2026-12-01 from the lme4 1.1-31 fits of the same models with
# insight 0.19.0, performance 0.10.2, parameters 0.20.2 and lmerTest 3.1-3:
#   variance      unlist(insight::get_variance(m))
#   performance   unlist(performance::model_performance(m))
#   singular      performance::check_singularity(m)
#   fixed         parameters::model_parameters(m) fixed rows: Coefficient, SE, CI_low, CI_high,
#                 t, df_error, p (ci_method "residual")
#   random        parameters::model_parameters(m) random rows: Coefficient; random_names their
#                 paste(Parameter, Group)
#   satterthwaite parameters::model_parameters(m, ci_method = "satterthwaite", effects = "fixed"):
#                 CI_low, CI_high, df_error, p
#   hat_sum, cook_max  sum(hatvalues(m)), max(cooks.distance(m))   (lme4's methods)

es_orthodont <- function() {
  env <- new.env()
  utils::data("Orthodont", package = "nlme", envir = env)
  d <- as.data.frame(env$Orthodont)
  d$Subject <- factor(as.character(d$Subject))
  d
}

es_hsb <- function() {
  env <- new.env()
  utils::data(list = c("MathAchieve", "MathAchSchool"), package = "nlme", envir = env)
  ma <- as.data.frame(env$MathAchieve)
  school <- as.data.frame(env$MathAchSchool)
  ma$Sector <- school$Sector[match(as.character(ma$School), as.character(school$School))]
  ma$School <- factor(as.character(ma$School))
  ma
}

es_models <- list(
  sleep = list(formula = Reaction ~ Days + (Days | Subject), data = function() ref_data("sleepstudy")),
  orth = list(formula = distance ~ age + Sex + (1 | Subject), data = es_orthodont),
  hsb = list(formula = MathAch ~ SES + Sector + (1 | School), data = es_hsb),
  pen = list(formula = diameter ~ 1 + (1 | plate) + (1 | sample),
             data = function() ref_data("Penicillin")),
  dye = list(formula = Yield ~ 1 + (1 | Batch), data = function() ref_data("Dyestuff2"))
)

es_cache <- new.env()

# The lmm fit of model `name` (fitted once).
es_fit <- function(name) {
  if (is.null(es_cache[[name]])) {
    spec <- es_models[[name]]
    es_cache[[name]] <- suppressMessages(suppressWarnings(lmm(spec$formula, spec$data())))
  }
  es_cache[[name]]
}

# The lme4 fit of the same model (callers skip when lme4 is not installed).
es_lmer <- function(name) {
  key <- paste0("lmer_", name)
  if (is.null(es_cache[[key]])) {
    spec <- es_models[[name]]
    es_cache[[key]] <- suppressMessages(suppressWarnings(lme4::lmer(spec$formula, spec$data())))
  }
  es_cache[[key]]
}

es_ref <- list(
  sleep = list(
    variance = c(var.fixed = 908.9533626, var.random = 1698.0837, var.residual = 654.9400083, var.distribution = 654.9400083, var.dispersion = 0, var.intercept.Subject = 612.100158, var.slope.Subject.Days = 35.07171445, cor.slope_intercept.Subject = 0.06555123824),
    performance = c(AIC = 1755.628272, AICc = 1756.113821, BIC = 1774.786013, R2_conditional = 0.7992199228, R2_marginal = 0.2786510582, ICC = 0.7216602596, RMSE = 23.43804699, Sigma = 25.59179572),
    singular = FALSE,
    fixed = structure(c(251.4051048, 10.46728596, 6.824596695, 1.545789644, 237.9354568, 7.416374172, 264.8747529, 13.51819775, 36.83808965, 6.771481489, 174, 174, 4.37279064e-84, 1.882719368e-10), dim = c(2L, 7L), dimnames = list(NULL, c("Coefficient", "SE", "CI_low", "CI_high", "t", "df_error", "p"))),
    random = c(24.74065799, 5.922137659, 0.06555123824, 25.59179572),
    random_names = c("SD (Intercept) Subject", "SD (Days) Subject", "Cor (Intercept~Days) Subject", "SD (Observations) Residual"),
    satterthwaite = structure(c(237.0064468, 7.205954651, 265.8037629, 13.72861727, 16.99972629, 16.99998373, 1.171558111e-17, 3.26382447e-06), dim = c(2L, 4L), dimnames = list(NULL, c("CI_low", "CI_high", "df_error", "p"))),
    hat_sum = 29.02212395, cook_max = 4.332163703
  ),
  orth = list(
    variance = c(var.fixed = 3.51234463, var.random = 3.26678373, var.residual = 2.049456017, var.distribution = 2.049456017, var.dispersion = 0, var.intercept.Subject = 3.26678373),
    performance = c(AIC = 447.5125078, AICc = 448.1007431, BIC = 460.923164, R2_conditional = 0.7678613094, R2_marginal = 0.397837805, ICC = 0.6144914235, RMSE = 1.257948574, Sigma = 1.431592127),
    singular = FALSE,
    fixed = structure(c(17.70671296, 0.6601851852, -2.321022727, 0.8339224741, 0.06160591628, 0.7614168493, 16.05282442, 0.5380043803, -3.831113464, 19.36060151, 0.7823659901, -0.8109319908, 21.23304445, 10.71626274, -3.048294412, 103, 103, 103, 2.065118052e-39, 1.892609048e-18, 0.002924787398), dim = c(3L, 7L), dimnames = list(NULL, c("Coefficient", "SE", "CI_low", "CI_high", "t", "df_error", "p"))),
    random = c(1.807424613, 1.431592127),
    random_names = c("SD (Intercept) Subject", "SD (Observations) Residual"),
    satterthwaite = structure(c(16.05210245, 0.5375855047, -3.889190083, 19.36132348, 0.7827848657, -0.7528553712, 99.35236523, 79.99999995, 24.99999993, 1.043198938e-38, 3.952235384e-17, 0.005375055972), dim = 3:4, dimnames = list(    NULL, c("CI_low", "CI_high", "df_error", "p"))),
    hat_sum = 24.61058498, cook_max = 1.879771284
  ),
  hsb = list(
    variance = c(var.fixed = 5.265570555, var.random = 3.685039685, var.residual = 37.03691256, var.distribution = 37.03691256, var.dispersion = 0, var.intercept.School = 3.685039685),
    performance = c(AIC = 46621.15092, AICc = 46621.15928, BIC = 46655.54968, R2_conditional = 0.1946312759, R2_marginal = 0.1144999825, ICC = 0.0904927068, RMSE = 6.030311856, Sigma = 6.085795968),
    singular = FALSE,
    fixed = structure(c(11.71890772, 2.374711306, 2.100836542, 0.2280584914, 0.1054910715, 0.3411242781, 11.27184593, 2.167917745, 1.432132516, 12.16596952, 2.581504867, 2.769540567, 51.38553558, 22.51101702, 6.158566472, 7180, 7180, 7180, 0, 1.716245462e-108, 7.736454924e-10), dim = c(3L, 7L), dimnames = list(NULL, c("Coefficient", "SE", "CI_low", "CI_high", "t", "df_error", "p"))),
    random = c(1.919645719, 6.085795968),
    random_names = c("SD (Intercept) School", "SD (Observations) Residual"),
    satterthwaite = structure(c(11.26837124, 2.167915462, 1.426708951, 12.16944421, 2.581507149, 2.774964133, 153.5841677, 6738.858264, 147.357394, 1.176743776e-98, 2.930134706e-108, 6.638230829e-09), dim = 3:4, dimnames = list(    NULL, c("CI_low", "CI_high", "df_error", "p"))),
    hat_sum = 130.413872, cook_max = 0.07808954152
  ),
  pen = list(
    variance = c(var.fixed = 0, var.random = 4.448036983, var.residual = 0.3024149562, var.distribution = 0.3024149562, var.dispersion = 0, var.intercept.plate = 0.716905141, var.intercept.sample = 3.731131842),
    performance = c(AIC = 338.860589, AICc = 339.1483588, BIC = 350.7398422, R2_conditional = 0.9363397504, R2_marginal = 0, ICC = 0.9363397504, RMSE = 0.49469239, Sigma = 0.5499226821),
    singular = FALSE,
    fixed = structure(c(22.97222222, 0.8085953614, 21.37358576, 24.57085869, 28.41003463, 140, 5.528323818e-60), dim = c(1L, 7L), dimnames = list(NULL, c("Coefficient", "SE", "CI_low", "CI_high", "t", "df_error", "p"))),
    random = c(0.8467025103, 1.931613792, 0.5499226821),
    random_names = c("SD (Intercept) plate", "SD (Intercept) sample", "SD (Observations) Residual"),
    satterthwaite = structure(c(20.9479027, 24.99654174, 5.486592362, 3.623520241e-07), dim = c(1L, 4L), dimnames = list(    NULL, c("CI_low", "CI_high", "df_error", "p"))),
    hat_sum = 27.47235937, cook_max = 2.586499136
  ),
  dye = list(
    variance = c(var.fixed = 0, var.residual = 13.80630963, var.distribution = 13.80630963, var.dispersion = 0, var.intercept.Batch = 0),
    performance = c(AIC = 167.8282778, AICc = 168.7513547, BIC = 172.03187, R2_conditional = NA, R2_marginal = 0, RMSE = 3.653231351, Sigma = 3.715684274),
    singular = TRUE,
    fixed = structure(c(5.6656, 0.6783880312, 4.273662736, 7.057537264, 8.351562438, 27, 5.81931856e-09), dim = c(1L, 7L), dimnames = list(NULL, c("Coefficient", "SE", "CI_low", "CI_high", "t", "df_error", "p"))),
    random = c(0, 3.715684274),
    random_names = c("SD (Intercept) Batch", "SD (Observations) Residual"),
    satterthwaite = structure(c(4.27814069, 7.05305931, 29, 3.318292749e-09), dim = c(1L, 4L), dimnames = list(    NULL, c("CI_low", "CI_high", "df_error", "p"))),
    hat_sum = 1, cook_max = 0.1559232251
  )
)

# performance::check_model() data; its newer releases need 'see' even to build the data (skip)
es_check_model <- function(fit) {
  tryCatch(suppressMessages(performance::check_model(fit)), error = function(e) {
    if (grepl("'see'", conditionMessage(e), fixed = TRUE))
      skip("this release of performance::check_model() needs the 'see' package")
    stop(e)
  })
}
