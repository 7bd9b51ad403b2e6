# Reference fixtures of issue 9, section 5:
#  - MixedModels.jl's own test values (JuliaStats/MixedModels.jl, test/pls.jl at commit
#    2228a9a139bb3aae3eae115da0a38eb086879021, models from test/modelcache.jl), at the tolerances
#    used there. MixedModels.jl fits by maximum likelihood unless told REML = true; its `objective`
#    is the deviance (-2 log L), theta is in lme4's order (terms by decreasing number of levels).
#  - the table at the top of issue 9 (lme4, nlme and MixedModels.jl issue 194 numbers).
# Julia's `a ≈ b` is norm(a - b) <= max(atol, rtol * max(norm(a), norm(b))) with
# rtol = sqrt(eps) when no atol is given; jl_approx() below is that test.

jl_approx <- function(actual, expected, atol = 0, rtol = if (atol > 0) 0 else sqrt(.Machine$double.eps),
                      what = deparse(substitute(actual))) {
  a <- as.numeric(actual)
  e <- as.numeric(expected)
  ok <- length(a) == length(e) &&
    isTRUE(sqrt(sum((a - e)^2)) <= max(atol, rtol * max(sqrt(sum(a^2)), sqrt(sum(e^2)))))
  testthat::expect(ok, sprintf("%s = %s, MixedModels.jl %s (atol %g, rtol %g; difference %.3g)",
                               what, paste(format(a, digits = 15), collapse = " "),
                               paste(format(e, digits = 15), collapse = " "), atol, rtol,
                               if (length(a) == length(e)) sqrt(sum((a - e)^2)) else NA))
  invisible(actual)
}

fit_quiet <- function(...) suppressWarnings(suppressMessages(lmm(...)))

sd_of <- function(fit, grp, var1 = "(Intercept)") {
  vc <- as.data.frame(VarCorr(fit))
  vc$sdcor[vc$grp %in% grp & vc$var1 %in% var1 & is.na(vc$var2)]
}

test_that("MixedModels.jl fixture: Dyestuff, ML and REML", {
  ds <- ref_data("Dyestuff")
  fm1 <- fit_quiet(Yield ~ 1 + (1 | Batch), ds, REML = FALSE)
  jl_approx(deviance(fm1), 327.32705988112673, atol = 0.001)
  jl_approx(fm1$theta, 0.7525806540074477, atol = 1e-5)
  jl_approx(sd_of(fm1, "Batch"), 37.260343703061764, atol = 1e-4)
  jl_approx(sigma(fm1), 49.51010035223816, atol = 1e-5)
  jl_approx(fixef(fm1), 1527.5)
  jl_approx(sqrt(diag(as.matrix(vcov(fm1)))), 17.694552929494222, atol = 1e-4)
  jl_approx(AIC(fm1), 333.32705988112673, atol = 0.001)
  jl_approx(BIC(fm1), 337.5306520261132, atol = 0.001)
  jl_approx(fm1$devcomp$ldL2, 8.06014611206176, atol = 0.001)          # logdet(fm1)
  jl_approx(sigma(fm1)^2, 2451.2500368886936, atol = 0.001)            # varest(fm1)
  jl_approx(fm1$devcomp$pwrss, 73537.50110666081, atol = 0.01)         # pwrss(fm1)

  fm1r <- fit_quiet(Yield ~ 1 + (1 | Batch), ds, REML = TRUE)
  jl_approx(REMLcrit(fm1r), 319.6542768422576, atol = 1e-4)
  jl_approx(as.matrix(vcov(fm1r)), 375.7167103872769, rtol = 1e-3)
})

test_that("MixedModels.jl fixture: Dyestuff2 (singular, theta exactly 0)", {
  fm <- fit_quiet(Yield ~ 1 + (1 | Batch), ref_data("Dyestuff2"), REML = FALSE)
  jl_approx(fm$theta, 0)
  jl_approx(deviance(fm), 162.87303665382575)
  jl_approx(sigma(fm), 3.6532313513746537)
  jl_approx(sqrt(diag(as.matrix(vcov(fm)))), 0.6669857396443264)
  jl_approx(fixef(fm), 5.6656)
  jl_approx(fm$devcomp$ldL2, 0)
  expect_true(isSingular(fm))
})

test_that("MixedModels.jl fixture: Penicillin (crossed)", {
  fm <- fit_quiet(diameter ~ 1 + (1 | plate) + (1 | sample), ref_data("Penicillin"), REML = FALSE)
  jl_approx(deviance(fm), 332.1883486700085, atol = 0.001)
  jl_approx(fixef(fm), 22.97222222222222, atol = 0.001)
  jl_approx(sqrt(diag(as.matrix(vcov(fm)))), 0.7446037806555799, atol = 1e-4)
  jl_approx(fm$theta, c(1.5375939045981573, 3.219792193110907), atol = 0.001)
  jl_approx(sd_of(fm, "plate"), 0.845571948075415, atol = 1e-4)
  jl_approx(sd_of(fm, "sample"), 1.770666460750787, atol = 1e-4)
  jl_approx(sigma(fm), 0.549931906953287, atol = 1e-4)
  jl_approx(sigma(fm)^2, 0.30242510228527864, atol = 1e-4)
  jl_approx(fm$devcomp$ldL2, 95.74676552743833, atol = 0.005)
  re <- ranef(fm, condVar = TRUE)
  jl_approx(attr(re$plate, "postVar")[1, 1, 1], 0.07331356908917808, rtol = 1e-4)
  jl_approx(attr(re$sample, "postVar")[1, 1, 6], 0.04051591717427688, rtol = 1e-4)
  jl_approx(re$sample[6, 1], -3.0018241391465703, rtol = 1e-4)        # sample F
})

test_that("MixedModels.jl fixture: Pastes (nested, batch/cask) and its likelihood-ratio test", {
  pastes <- ref_data("Pastes")
  fm <- fit_quiet(strength ~ 1 + (1 | batch / cask), pastes, REML = FALSE)
  jl_approx(deviance(fm), 247.9944658624955, atol = 0.001)
  jl_approx(fixef(fm), 60.0533333333333, atol = 0.001)
  jl_approx(sqrt(diag(as.matrix(vcov(fm)))), 0.6421355774401101, atol = 1e-4)
  jl_approx(fm$theta, c(3.5269029347766856, 1.3299137410046242), atol = 0.001)
  jl_approx(sd_of(fm, "cask:batch"), 2.90407793598792, atol = 0.001)
  jl_approx(sd_of(fm, "batch"), 1.0950608007768226, atol = 1e-4)
  jl_approx(sigma(fm), 0.8234073887751603, atol = 1e-4)
  jl_approx(sigma(fm)^2, 0.677999727889528, atol = 1e-4)
  jl_approx(fm$devcomp$ldL2, 101.03834542101686, atol = 0.001)
  re <- ranef(fm, condVar = TRUE)
  jl_approx(attr(re[["cask:batch"]], "postVar")[1, 1, 1], 1.1118647819999143, rtol = 1e-4)
  jl_approx(attr(re$batch, "postVar")[1, 1, 10], 0.850420001234007, rtol = 1e-4)
  fm0 <- fit_quiet(strength ~ 1 + (1 | batch:cask), pastes, REML = FALSE)
  jl_approx(stats::pchisq(deviance(fm0) - deviance(fm), 1, lower.tail = FALSE),
            0.5233767965780878, atol = 1e-4)
})

test_that("MixedModels.jl fixture: sleepstudy, four models", {
  sl <- ref_data("sleepstudy")
  fm <- fit_quiet(Reaction ~ 1 + Days + (1 + Days | Subject), sl, REML = FALSE)
  jl_approx(deviance(fm), 1751.9393444636682)
  jl_approx(fm$theta, c(0.9292297167514472, 0.01816466496782548, 0.22264601131030412), atol = 5e-5)
  jl_approx(fm$devcomp$pwrss, 117889.27379003687, rtol = 1e-5)
  jl_approx(fm$devcomp$ldL2, 73.90350673367566, atol = 0.001)
  jl_approx(sqrt(diag(as.matrix(vcov(fm)))), c(6.632295312722272, 1.5022387911441102), atol = 1e-4)
  jl_approx(fixef(fm), c(251.40510484848454, 10.467285959596126), atol = 1e-5)
  jl_approx(sd_of(fm, "Subject", c("(Intercept)", "Days")),
            c(23.78066438213187, 5.7168446983832775), atol = 0.01)
  jl_approx(as.numeric(logLik(fm)), -875.9696722318341, atol = 1e-5)
  jl_approx(stats::cov2cor(as.matrix(vcov(fm)))[1, 2], -0.13755599049585931, atol = 1e-4)  # fm.corr
  re <- ranef(fm, condVar = TRUE)
  pv <- attr(re$Subject, "postVar")
  jl_approx(pv[1, 1, 1], 140.96755256125914, rtol = 1e-4)
  jl_approx(pv[2, 2, 18], 5.157794803497628, rtol = 1e-4)
  jl_approx(pv[2, 1, 1], -20.604544204749537, rtol = 1e-4)
  jl_approx(re$Subject[1, 1], 2.8156104060324334, atol = 0.001)

  for (form in list(Reaction ~ 1 + Days + (1 + Days || Subject),
                    Reaction ~ 1 + Days + (1 | Subject) + (0 + Days | Subject))) {
    fmnc <- fit_quiet(form, sl, REML = FALSE)
    jl_approx(deviance(fmnc), 1752.003255140962, atol = 0.001)
    jl_approx(sqrt(diag(as.matrix(vcov(fmnc)))), c(6.707646513654387, 1.5193112497954953),
              atol = 0.001)
    jl_approx(fmnc$theta, c(0.9458043022417869, 0.22692740996014607), atol = 1e-4)
    jl_approx(sd_of(fmnc, c("Subject", "Subject.1"), c("(Intercept)", "Days")),
              c(24.171269957611873, 5.79939919963132), atol = 5e-4)
    jl_approx(sigma(fmnc), 25.55613836753517, atol = 1e-4)
    jl_approx(fmnc$devcomp$ldL2, 74.4694698615524, atol = 0.001)
  }

  fmrs <- fit_quiet(Reaction ~ 1 + Days + (0 + Days | Subject), sl, REML = FALSE)
  jl_approx(deviance(fmrs), 1774.080315280526, rtol = 1e-5)
  jl_approx(fmrs$theta, 0.24353985601485326, rtol = 1e-5)
})

test_that("MixedModels.jl fixture: InstEval, two models", {
  skip_on_cran()
  skip_if_not_installed("lme4")
  ie <- get(utils::data("InstEval", package = "lme4", envir = environment()))
  fm1 <- fit_quiet(y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept), ie, REML = FALSE)
  jl_approx(deviance(fm1), 237721.76877450474, atol = 0.001)
  jl_approx(fitted(fm1)[[1]], 3.1787619026604945, atol = 1e-4)
  jl_approx(residuals(fm1)[[1]], 1.8212380973395055, atol = 1e-5)
  fm2 <- fit_quiet(y ~ 1 + service * dept + (1 | s) + (1 | d), ie, REML = FALSE)
  jl_approx(deviance(fm2), 237585.5534151695, atol = 0.001)
})

# ---- the table of issue 9 -------------------------------------------------------------------

test_that("issue 9 table: Dyestuff REML and ML optimum", {
  ds <- ref_data("Dyestuff")
  fm <- fit_quiet(Yield ~ 1 + (1 | Batch), ds)
  # lme4's tests/lmer-1.R: theta 0.84832031 with all.equal tolerance 6e-6; the optimum
  # (lme4 1.1-31, bobyqa with rhoend 1e-12) is 0.848323767, criterion 319.654276842257.
  expect_equal(unname(fm$theta), 0.84832031, tolerance = 6e-6)
  expect_equal(unname(fm$theta), 0.8483238, tolerance = 1e-6)
  expect_lte(REMLcrit(fm) - 319.654276842257, 1e-10 * 319.654276842257)
  fm <- fit_quiet(Yield ~ 1 + (1 | Batch), ds, REML = FALSE)
  # MixedModels.jl: theta 0.7525806540, sd 37.2603437, sigma 49.5101004 (tol 1e-5 relative)
  expect_equal(unname(fm$theta), 0.7525807, tolerance = 1e-5)
  expect_equal(sd_of(fm, "Batch"), 37.260344, tolerance = 1e-5)
  expect_equal(sigma(fm), 49.5101004, tolerance = 1e-5)
})

test_that("issue 9 table: weighted model of MixedModels.jl issue 194 (ML)", {
  # MixedModels.jl test/pls.jl, testset "wts" (values there from lme4), atol 1e-4.
  d194 <- data.frame(
    a = c(1.55945122, 0.004391538, 0.005554163, -0.173029772, 4.586284429, 0.259493671,
          -0.091735715, 5.546487603, 0.457734831, -0.030169602),
    b = c(0.24520519, 0.080624178, 0.228083467, 0.2471453, 0.398994279, 0.037213859,
          0.102144973, 0.241380251, 0.206570975, 0.15980803),
    c = factor(c("H", "F", "K", "P", "P", "P", "D", "M", "I", "D")),
    w1 = c(20, 40, 35, 12, 29, 25, 65, 105, 30, 75))
  m2 <- suppressWarnings(lmm(a ~ 1 + b + (1 | c), d194, weights = w1, REML = FALSE))
  jl_approx(m2$theta, 0.2951818091809752, atol = 1e-4)
  jl_approx(sqrt(diag(as.matrix(vcov(m2)))), c(0.964016663994572, 3.6309691484830533), atol = 1e-4)
  V <- as.matrix(vcov(m2))
  jl_approx(V, c(0.9293281284592235, -2.5575260810649962, -2.5575260810649962, 13.18393695723575),
            atol = 1e-4)
  expect_equal(V[2, 2], 13.183937, tolerance = 1e-4 / 13.183937)      # absolute 1e-4
})

test_that("issue 9 table: poly(x, 2) slopes reach lme4's REML criterion 557.5399", {
  dd <- with_seed(101, data.frame(x = 1:200, f = factor(rep(1:10, 20)),
                                  g = factor(rep(1:20, each = 10)), y = rnorm(200)))
  fm <- fit_quiet(y ~ 1 + f + (poly(x, 2) | g), dd)
  # lme4 1.1-31 default control: 557.539921649257 (Nelder_Mead tight: 557.5399216616).
  expect_lte(REMLcrit(fm), 557.539921649257 * (1 + 1e-10))
  expect_equal(REMLcrit(fm), 557.5399, tolerance = 1e-4 / 557.5399)
})

test_that("issue 9 table: Ovary with corCAR1 reaches nlme's REML logLik -775.7676", {
  ov <- as.data.frame(nlme::Ovary)
  fm <- fit_quiet(follicles ~ sin(2 * pi * Time) + cos(2 * pi * Time) + (sin(2 * pi * Time) || Mare),
                  ov, correlation = nlme::corCAR1(form = ~ Time))
  # nlme 3.1: lme(..., random = list(Mare = pdDiag(~ sin(2*pi*Time))), correlation =
  # corCAR1(form = ~ Time)) gives logLik -775.767622191391.
  ll <- as.numeric(logLik(fm))
  expect_gte(ll, -775.767622191391 - 1e-10 * 775.767622191391)
  expect_equal(ll, -775.7676, tolerance = 1e-4 / 775.7676)
})
