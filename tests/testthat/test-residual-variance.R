# Variance functions (R/residual-variance.R, src/var_*.c): nlme's varFunc objects -> components
# whose multipliers s_i C evaluates.  nlme's varWeights() is 1 / s_i (times 1 / sqrt(v) for
# varFixed); the weights are compared with values recorded from nlme 3.1-162 and live with nlme.

library(nlme)

# ---- cases -------------------------------------------------------------------------------------

# data set, the varFunc, and a shift of its free unconstrained parameters (a second point)
vf_cases <- list(
  power_age = list("Orthodont", varPower(0.7, form = ~ age), 0.2),
  power_negative = list("Orthodont", varPower(0.4, form = ~ I(age - 11)), -0.3),
  power_age_sex = list("Orthodont", varPower(c(Male = 0.5, Female = -0.3), form = ~ age | Sex),
                       c(0.1, -0.2)),
  power_fixed = list("BodyWeight", varPower(0.2, form = ~ Time | Diet, fixed = c("2" = 0.5)),
                     c(-0.1, 0.3)),
  exp_pressure = list("Dialyzer", varExp(0.4, form = ~ pressure), -0.5),
  exp_pressure_qb = list("Dialyzer", varExp(c("200" = 0.3, "300" = -0.2), form = ~ pressure | QB),
                         c(0.2, 0.1)),
  exp_mare = list("Ovary", varExp(0.5, form = ~ Time | Mare), seq(-0.5, 0.5, length.out = 11)),
  constpower = list("Earthquake", varConstPower(const = 2, power = 0.6, form = ~ distance),
                    c(0.3, -0.2)),
  constpower_sex = list("Orthodont",
                        varConstPower(const = c(Male = 1, Female = 3),
                                      power = c(Male = 0.4, Female = 0.1), form = ~ age | Sex),
                        c(0.1, -0.1, 0.2, 0.3)),
  constpower_fixed = list("Ovary", varConstPower(const = 0.5, form = ~ Time,
                                                 fixed = list(power = 1)), 0.4),
  constpower_zero = list("Ovary", varConstPower(const = 0.5, power = 0.8, form = ~ Time),
                         c(0.2, 0.5)),
  ident_diet = list("BodyWeight", varIdent(c("3" = 1.4), form = ~ 1 | Diet,
                                           fixed = c("1" = 0.8)), 0.3),
  ident_soil = list("Earthquake", varIdent(form = ~ 1 | soil), -0.4),
  ident_interaction = list("Orthodont", varIdent(form = ~ 1 | Sex * age), seq(-0.3, 0.3, 0.1)),
  ident_rev = list("OrthodontRev", varIdent(c(Male = 1.5), form = ~ 1 | Sex), 0.2),
  fixed_formula = list("Orthodont", ~ age, numeric(0)),
  fixed_weight = list("BodyWeight", varFixed(~ weight), numeric(0)),
  comb_ident_exp = list("Orthodont", varComb(varIdent(c(Female = 0.5), form = ~ 1 | Sex),
                                             varExp(0.05, form = ~ age)), c(0.1, 0.02)),
  comb_fixed_power = list("BodyWeight", varComb(varFixed(~ Time),
                                                varPower(0.3, form = ~ Time | Diet)),
                          c(0.1, 0, -0.1))
)

vf_data <- function(name) {
  if (name == "OrthodontRev") return(Orthodont[rev(seq_len(nrow(Orthodont))), ])
  get(name, asNamespace("nlme"))
}

all_rows <- function(d) structure(seq_len(nrow(d)), nrow = nrow(d))

# A case's specification on its data.
vf_spec <- function(case) {
  d <- vf_data(case[[1L]])
  varfunc_spec(case[[2L]], d, all_rows(d))
}

# All components' unconstrained parameters (fixed included) and which are free.
spec_par <- function(spec) as.double(unlist(lapply(spec$components, `[[`, "par")))
spec_free <- function(spec) !as.logical(unlist(lapply(spec$components, `[[`, "fixed")))

# sum_k log s_i of the components at par (C), and the n x npar derivatives.
spec_logs <- function(spec, par, n) {
  logs <- numeric(n)
  D <- matrix(0, n, 0)
  at <- 0L
  for (comp in spec$components) {
    out <- .Call(C_lmm_var_logs, comp, n, as.double(par[at + seq_len(comp$npar)]))
    logs <- logs + out[[1L]]
    D <- cbind(D, out[[2L]])
    at <- at + comp$npar
  }
  list(logs = logs, D = D)
}

# nlme's varWeights: 1 / s_i, times sqrt of the prior weights' multiplier (varFixed).
spec_weights <- function(spec, par, n) {
  w <- exp(-spec_logs(spec, par, n)$logs)
  if (!is.null(spec$prior_weights)) w <- w * sqrt(spec$prior_weights)
  w
}

# The case's parameters shifted on the free ones.
shifted_par <- function(spec, shift) {
  par <- spec_par(spec)
  par[spec_free(spec)] <- par[spec_free(spec)] + shift
  par
}

# nlme's initialised varFunc, its weights computed (Initialize leaves varConstPower's at 1).
nlme_vf <- function(case, free = NULL) {
  vf <- Initialize(varFunc(case[[2L]]), vf_data(case[[1L]]))
  cf <- coef(vf)
  if (length(cf)) coef(vf) <- if (is.null(free)) cf else free
  vf
}

# ---- recorded from nlme 3.1-162: sum(log(varWeights)), varWeights of rows 1 and n, at the start
# and at the shifted parameters --------------------------------------------------------------------

vf_recorded <- list(
  power_age = c(-179.6632226, 0.2332582479, 0.1576559533,
    -230.9955719, 0.1538930517, 0.09300038959),
  power_negative = c(-23.73002544, 0.644394015, 0.644394015,
    -5.932506359, 0.8959584598, 0.8959584598),
  power_age_sex = c(-44.67815589, 0.3535533906, 2.207183347,
    -38.97456152, 0.2871745887, 3.741657387),
  power_fixed = c(-151.7502627, 1, 0.4352752816,
    -165.5457411, 1, 0.125),
  exp_pressure = c(-86.1, 0.9084640161, 0.3011942119,
    21.525, 1.024290318, 1.349858808),
  exp_pressure_qb = c(-10.6475, 0.9305308958, 1.8221188,
    -42.912, 0.8869204367, 1.349858808),
  exp_mare = c(-77.0000026, 1.070559919, 0.5627048688,
    -76.85000228, 1, 0.3166367694),
  constpower = c(-401.512477, 0.186918057, 0.03063831501,
    -338.3220577, 0.2024879665, 0.08005635174),
  constpower_sex = c(-145.6529692, 0.303269545, 0.2324497285,
    -179.8464683, 0.2179896779, 0.1789460326),
  constpower_fixed = c(13.83586118, 1.571428661, 0.6060606061,
    -60.10692123, 1.133432234, 0.5274505441),
  constpower_zero = c(-2.656431254, 1.422226585, 0.6179324499,
    -5.027844676, 1.458343618, 0.5525031659),
  ident_diet = c(4.831854104, 1.25, 0.7142857143,
    -8.368145896, 1.25, 0.5291558719),
  ident_soil = c(0, 1, 1,
    11.6, 1, 1),
  ident_interaction = c(0, 1, 1,
    3, 1, 0.7408182207),
  ident_rev = c(-25.94976692, 1, 0.6666666667,
    -38.74976692, 1, 0.5458205021),
  fixed_formula = c(-128.3308733, 0.3535533906, 0.2672612419,
    -128.3308733, 0.3535533906, 0.2672612419),
  fixed_weight = c(-518.8938922, 0.06454972244, 0.04192218082,
    -518.8938922, 0.06454972244, 0.04192218082),
  comb_ident_exp = c(-28.90152406, 0.670320046, 0.9931706076,
    -57.06152406, 0.5712090638, 0.6791910513),
  comb_fixed_power = c(-441.4553097, 1, 0.03589682359,
    -455.2507881, 1, 0.05440941021)
)

test_that("the weights 1 / s of every family equal nlme's (recorded)", {
  for (nm in names(vf_cases)) {
    case <- vf_cases[[nm]]
    spec <- vf_spec(case)
    n <- nrow(vf_data(case[[1L]]))
    got <- c(vapply(list(spec_par(spec), shifted_par(spec, case[[3L]])), function(par) {
      w <- spec_weights(spec, par, n)
      c(sum(log(w)), w[1L], w[n])
    }, numeric(3)))
    expect_equal(got, vf_recorded[[nm]], tolerance = 1e-6, info = nm)
  }
})

test_that("the weights, parameters and natural values equal nlme's (live)", {
  skip_if_not_installed("nlme")
  for (nm in names(vf_cases)) {
    case <- vf_cases[[nm]]
    spec <- vf_spec(case)
    n <- nrow(vf_data(case[[1L]]))
    par0 <- spec_par(spec)
    free <- spec_free(spec)
    for (par in list(par0, shifted_par(spec, case[[3L]]))) {
      vf <- nlme_vf(case, if (any(free)) par[free])
      expect_equal(unname(spec_weights(spec, par, n)), as.double(varWeights(vf)),
                   tolerance = 1e-12, info = nm)
      expect_equal(spec$natural(par), coef(vf, unconstrained = FALSE), tolerance = 1e-12,
                   info = nm)
    }
    vf <- nlme_vf(case)
    expect_equal(unname(par0[free]), unname(coef(vf)), tolerance = 1e-12, info = nm)
    nlme_lines <- sub(" +$", "", utils::capture.output(print(summary(vf))))
    expect_equal(spec$lines(par0), nlme_lines, info = nm)
  }
})

test_that("d log s / d par is the derivative of log s", {
  for (nm in names(vf_cases)) {
    case <- vf_cases[[nm]]
    spec <- vf_spec(case)
    if (!length(spec$components)) next
    n <- nrow(vf_data(case[[1L]]))
    par <- shifted_par(spec, case[[3L]])
    D <- spec_logs(spec, par, n)$D
    h <- 1e-6
    num <- vapply(seq_along(par), function(k) {
      e <- replace(numeric(length(par)), k, h)
      (spec_logs(spec, par + e, n)$logs - spec_logs(spec, par - e, n)$logs) / (2 * h)
    }, numeric(n))
    expect_equal(D, matrix(num, n), tolerance = 1e-7, info = nm)
  }
})

# ---- covariates of the fitted values ------------------------------------------------------------

test_that("covariates of the fitted values are evaluated at the given fitted values, as nlme's", {
  lm_fit <- lm(distance ~ age * Sex, Orthodont)
  rows <- all_rows(Orthodont)
  n <- nrow(Orthodont)
  cases <- list(list(varPower(0.5), 0.8, c(-274.4021382, 0.08250364282, 0.07844820468)),
                list(varExp(form = ~ fitted(.) | Sex), c(0.05, -0.02),
                     c(-59.97, 0.3227809852, 1.618868216)),
                list(varConstPower(power = 0.3), c(log(2), 0.9),
                     c(-320.4566261, 0.0538895611, 0.05122315472)))
  for (case in cases) {
    spec <- varfunc_spec(case[[1L]], Orthodont, rows, fitted = fitted(lm_fit))
    expect_equal(spec$components[[1L]]$v, unname(fitted(lm_fit)))
    w <- spec_weights(spec, case[[2L]], n)
    expect_equal(c(sum(log(w)), w[1L], w[n]), case[[3L]], tolerance = 1e-8)   # nlme 3.1-162
  }
  skip_if_not_installed("nlme")
  lme_fit <- lme(distance ~ age, random = ~ 1 | Subject, data = Orthodont)
  for (fit in list(lm_fit, lme_fit))
    for (case in cases) {
      vf <- update(Initialize(case[[1L]], Orthodont), c(list(. = fit), as.list(Orthodont)))
      coef(vf) <- case[[2L]]
      spec <- varfunc_spec(case[[1L]], Orthodont, rows, fitted = fitted(fit))
      expect_equal(spec_weights(spec, case[[2L]], n), unname(varWeights(vf)), tolerance = 1e-12)
    }
  expect_error(varfunc_spec(varPower(), Orthodont, rows, fitted = 1:3), "'fitted' must be numeric")
  expect_error(varfunc_spec(varPower(form = ~ resid(.)), Orthodont, rows, fitted = fitted(lm_fit)),
               "uses the residuals")
})

# ---- the model: lme's likelihood ---------------------------------------------------------------

# ML log-likelihood of distance ~ age + (1 | Subject) on Orthodont by dense algebra, the residual
# variance sigma^2 s_i^2 / w_i from the specification at nlme's estimates.
dense_loglik <- function(fit, spec, par) {
  d <- Orthodont
  n <- nrow(d)
  s2 <- exp(2 * spec_logs(spec, par, n)$logs)
  w <- if (is.null(spec$prior_weights)) 1 else spec$prior_weights
  Z <- model.matrix(~ Subject - 1, d)
  tau <- as.numeric(VarCorr(fit)[1L, "StdDev"])
  V <- tau^2 * tcrossprod(Z) + diag(fit$sigma^2 * s2 / w)
  r <- d$distance - model.matrix(~ age, d) %*% fixef(fit)
  -0.5 * (n * log(2 * pi) + as.numeric(determinant(V)$modulus) + sum(r * solve(V, r)))
}

test_that("the specification at lme's estimates gives lme's likelihood", {
  skip_if_not_installed("nlme")
  rows <- all_rows(Orthodont)
  for (vf in list(varPower(form = ~ age | Sex), varConstPower(form = ~ age),
                  varComb(varFixed(~ age), varExp(form = ~ age | Sex)),
                  varIdent(form = ~ 1 | Sex), ~ age)) {
    fit <- lme(distance ~ age, random = ~ 1 | Subject, data = Orthodont, weights = vf,
               method = "ML")
    spec <- varfunc_spec(vf, Orthodont, rows)
    par <- spec_par(spec)
    free <- spec_free(spec)
    log_scale <- unlist(lapply(spec$components, `[[`, "log_scale"))
    nat <- coef(fit$modelStruct$varStruct, unconstrained = FALSE)
    if (length(nat)) {
      expect_equal(names(spec$natural(par)), names(nat))
      on_log <- log_scale[free]
      par[free] <- replace(unname(nat), on_log, log(nat[on_log]))
      expect_equal(spec$natural(par), nat)
    }
    expect_equal(dense_loglik(fit, spec, par), as.numeric(logLik(fit)), tolerance = 1e-10)
  }
})

# ---- the maps and the layout -------------------------------------------------------------------

test_that("unconstrained and natural values map as nlme's coef", {
  cp <- vf_spec(vf_cases$constpower_sex)$components[[1L]]
  expect_equal(cp$names, c("const.Male", "const.Female", "power.Male", "power.Female"))
  expect_equal(cp$log_scale, c(TRUE, TRUE, FALSE, FALSE))
  expect_equal(cp$par, c(log(1), log(3), 0.4, 0.1))
  expect_equal(cp$natural(c(log(2), log(5), 0.3, -0.1)),
               c(const.Male = 2, const.Female = 5, power.Male = 0.3, power.Female = -0.1))
  expect_equal(cp$natural(c(log(2), log(5), 0.3, -0.1), all = TRUE),
               rbind(const = c(Male = 2, Female = 5), power = c(Male = 0.3, Female = -0.1)))
  cf <- vf_spec(vf_cases$constpower_fixed)$components[[1L]]
  expect_equal(cf$fixed, c(FALSE, TRUE))
  expect_equal(cf$natural(c(log(0.25), 1)), c(const = 0.25))
  id <- vf_spec(vf_cases$ident_diet)$components[[1L]]
  expect_equal(id$log_scale, c(TRUE, TRUE))
  expect_equal(id$strata, c("2", "3", "1"))              # reference, free, fixed
  expect_equal(id$par, log(c(1.4, 0.8)))
  expect_equal(id$natural(log(c(2, 0.8))), c("3" = 2))
  expect_equal(id$natural(log(c(2, 0.8)), all = TRUE), c("2" = 1, "3" = 2, "1" = 0.8))
  pw <- vf_spec(vf_cases$power_fixed)$components[[1L]]
  expect_equal(pw$par, c(0.2, 0.5, 0.2))
  expect_equal(pw$fixed, c(FALSE, TRUE, FALSE))
  expect_equal(pw$natural(c(0.1, 0.5, 0.3)), c("1" = 0.1, "3" = 0.3))
  expect_equal(pw$log_scale, c(FALSE, FALSE, FALSE))
  ex <- vf_spec(vf_cases$exp_pressure)$components[[1L]]
  expect_equal(ex$natural(0.25), c(expon = 0.25))
  comb <- vf_spec(vf_cases$comb_ident_exp)
  expect_equal(comb$natural(c(log(0.5), 0.05)), c(A.Female = 0.5, B.expon = 0.05))
})

test_that("the components carry what C reads", {
  spec <- vf_spec(vf_cases$power_age_sex)
  comp <- spec$components[[1L]]
  expect_equal(comp[c("type", "code", "npar", "nstrata")],
               list(type = "varPower", code = 2L, npar = 2L, nstrata = 2L))
  expect_equal(comp$stratum, as.integer(Orthodont$Sex == "Female"))
  expect_equal(comp$v, Orthodont$age)
  expect_null(spec$prior_weights)
  cp <- vf_spec(vf_cases$constpower)$components[[1L]]
  expect_null(cp$stratum)
  expect_equal(c(cp$code, cp$npar, cp$nstrata), c(4L, 2L, 1L))
  fx <- vf_spec(vf_cases$fixed_formula)
  expect_length(fx$components, 0L)
  expect_equal(fx$prior_weights, 1 / Orthodont$age)
  expect_equal(fx$lines(numeric(0)),
               c("Variance function:", " Structure: fixed weights", " Formula: ~age"))
  comb <- vf_spec(vf_cases$comb_fixed_power)
  expect_equal(comb$prior_weights, 1 / BodyWeight$Time)
  expect_equal(comb$npar, 3L)
})

test_that("varComb multiplies its components' s", {
  spec <- vf_spec(vf_cases$comb_ident_exp)
  n <- nrow(Orthodont)
  par <- c(log(0.5), 0.05)
  s <- ifelse(Orthodont$Sex == "Female", 0.5, 1) * exp(0.05 * Orthodont$age)
  expect_equal(spec_logs(spec, par, n)$logs, log(s))
  spec <- vf_spec(vf_cases$comb_fixed_power)
  par <- c(0.3, 0.1, -0.2)
  w <- BodyWeight$Time^-par[as.integer(BodyWeight$Diet)] / sqrt(BodyWeight$Time)
  expect_equal(spec_weights(spec, par, nrow(BodyWeight)), w)
})

test_that("strata with one level, and fixed identities, vanish as in nlme", {
  d <- Orthodont[Orthodont$Sex == "Male", ]
  expect_null(varfunc_spec(varIdent(form = ~ 1 | Sex), d, all_rows(d)))
  spec <- varfunc_spec(varPower(0.4, form = ~ age | Sex), d, all_rows(d))
  expect_null(spec$components[[1L]]$stratum)
  expect_equal(spec$lines(0.4)[3L], " Formula: ~age")
  expect_null(varfunc_spec(varPower(form = ~ age, fixed = 0), Orthodont, all_rows(Orthodont)))
  expect_null(varfunc_spec(varIdent(form = ~ 1 | Sex, fixed = c(Female = 1)), Orthodont,
                           all_rows(Orthodont)))
})

test_that("varIdent's named starting value picks the reference by name", {
  # nlme gives a single starting value to the strata after the first, whatever its name: on
  # Female-first data varIdent(c(Female = 0.6)) makes Male 0.6 times Female.  lmmc follows the name.
  d <- vf_data("OrthodontRev")
  comp <- varfunc_spec(varIdent(c(Female = 0.6), form = ~ 1 | Sex), d, all_rows(d))$components[[1L]]
  expect_equal(comp$strata, c("Male", "Female"))
  expect_equal(comp$par, log(0.6))
  expect_equal(comp$stratum, as.integer(d$Sex == "Female"))
})

# ---- the C entry -------------------------------------------------------------------------------

test_that("C refuses malformed components and flags multipliers outside the space", {
  comp <- vf_spec(vf_cases$exp_pressure)$components[[1L]]
  n <- nrow(Dialyzer)
  expect_null(.Call(C_lmm_var_logs, comp, n, 1000))          # exp(1000 v) overflows
  expect_null(.Call(C_lmm_var_logs, comp, n, NaN))
  bad <- comp
  bad$npar <- 2L
  expect_error(.Call(C_lmm_var_logs, bad, n, c(0, 0)), "malformed")
  bad <- comp
  bad["v"] <- list(NULL)
  expect_error(.Call(C_lmm_var_logs, bad, n, 0), "malformed")
  zero <- list(code = 2L, npar = 1L, nstrata = 1L, stratum = NULL, v = c(0, 1, 2))
  expect_null(.Call(C_lmm_var_logs, zero, 3L, 0.5))           # 0^0.5 = 0
  expect_equal(.Call(C_lmm_var_logs, zero, 3L, 0)[[1L]], c(0, 0, 0))
  cp <- list(code = 4L, npar = 2L, nstrata = 1L, stratum = NULL, v = c(0, 1, 2))
  expect_equal(.Call(C_lmm_var_logs, cp, 3L, c(log(0.5), 2))[[1L]], log(0.5 + c(0, 1, 4)))
  expect_null(.Call(C_lmm_var_logs, cp, 3L, c(log(0.5), -1)))  # 0^-1 = Inf
})

# ---- bad input ---------------------------------------------------------------------------------

test_that("bad variance functions give clear errors naming the argument", {
  rows <- all_rows(Orthodont)
  expect_error(varfunc_spec(varPower(), Orthodont, rows), "fitted values")
  expect_error(varfunc_spec(varExp(), Orthodont, rows), "fitted values")
  expect_error(varfunc_spec(varConstPower(), Orthodont, rows), "fitted values")
  expect_error(varfunc_spec(varPower(form = ~ Sex), Orthodont, rows), "must be numeric")
  expect_error(varfunc_spec(varPower(form = ~ nope), Orthodont, rows), "cannot evaluate 'nope'")
  expect_error(varfunc_spec(corAR1(), Orthodont, rows), "'weights' must be")
  expect_error(varfunc_spec(varConstProp(form = ~ age), Orthodont, rows), "not supported")
  expect_error(varfunc_spec(varIdent(form = ~ 1 | Sex, fixed = c(Female = 0)), Orthodont, rows),
               "'fixed' values must be positive")
  expect_error(varfunc_spec(varIdent(form = ~ 1 | Sex, fixed = c(Girl = 2)), Orthodont, rows),
               "'fixed' names strata not in the data: Girl")
  expect_error(varfunc_spec(varIdent(form = ~ 1 | Sex, fixed = c(Female = 2, Male = 1)),
                            Orthodont, rows), "cannot fix every stratum")
  expect_error(varfunc_spec(varPower(c(Male = 1, Girl = 2), form = ~ age | Sex), Orthodont, rows),
               "'value' must be one number or one per stratum")
  expect_error(varfunc_spec(varPower(Inf, form = ~ age), Orthodont, rows),
               "'value' values must be finite")
  vcp <- varConstPower(form = ~ age)
  attr(vcp$const, "fixed") <- -Inf                            # const 0, past nlme's own check
  expect_error(varfunc_spec(vcp, Orthodont, rows), "'const' must be positive")
  expect_error(varfunc_spec(varConstPower(power = c(1, 2), form = ~ age), Orthodont, rows),
               "'power' must be a single number")
  ov <- all_rows(Ovary)
  expect_error(varfunc_spec(varPower(form = ~ Time), Ovary, ov),
               "varPower's covariate is 0 at 11 rows")
  expect_error(varfunc_spec(varPower(form = ~ Time, fixed = -0.5), Ovary, ov),
               "varPower's covariate is 0")
  expect_error(varfunc_spec(varConstPower(power = -0.5, form = ~ Time), Ovary, ov),
               "'power' must not be negative")
  expect_error(varfunc_spec(varFixed(~ Time), Ovary, ov),
               "varFixed's covariate .* must be positive")
  expect_error(varfunc_spec(~ Time, Ovary, ov), "must be positive")
  d <- Orthodont
  d$age[3] <- NA
  expect_error(varfunc_spec(varExp(form = ~ age), d, rows), "missing values")
})
