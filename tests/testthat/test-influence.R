# Influence diagnostics (R/influence.R) against lme4 1.1-31's hatvalues.merMod,
# cooks.distance.merMod, rstudent.merMod and influence.merMod.
#
# The recorded numbers below come from lme4 1.1-31 (lmer, default control) on each data set:
# theta = getME(m, "theta"); hat / cooks / rstudent at rows idx; sums = c(sum(hat), sum(cooks),
# sum(rstudent^2)).  The diagnostics are functions of theta, so they are compared at lme4's own
# theta (the lmm fit re-solved there) to 1e-6 relative, and at lmmc's optimum to 1e-4 (the two
# optima agree to ~1e-5, which moves the diagnostics by as much).

ref_influence <- list(
  sleepstudy = list(theta = c(0.966741773967, 0.015169058896, 0.230909953208),
    idx = c(1, 50, 100, 180),
    hat = c(0.22930403774, 0.293177188099, 0.293177188099, 0.293177188099),
    cooks = c(0.00496313251482, 0.440003873233, 0.000259547031729, 0.0128606160029),
    rstudent = c(-0.182653763074, 1.45657696894, 0.0353763663093, -0.249021058325),
    sums = c(29.0221239506, 20.0227014036, 182.650564325)),
  orthodont = list(theta = c(1.26252762847),
    idx = c(1, 30, 77, 108),
    hat = c(0.234890900823, 0.220076086008, 0.235853802818, 0.235853802818),
    cooks = c(0.0240954546901, 0.204259214395, 0.0541058314022, 0.00147370703533),
    rstudent = c(0.485240204509, -1.47363913889, 0.725186066937, 0.11968314483),
    sums = c(24.6105849766, 10.6391985767, 108.019301478)),
  penicillin = list(theta = c(1.53967555415, 3.51251886001),
    idx = c(1, 50, 100, 144),
    hat = c(0.190780273372, 0.190780273372, 0.190780273372, 0.190780273372),
    cooks = c(1.03433537324, 0.0421237493469, 0.162068221067, 0.539995773621),
    rstudent = c(2.09458112624, -0.422697819143, 0.829116255213, -1.51342769673),
    sums = c(27.4723593656, 33.9492535417, 144.000242712)),
  weighted = list(theta = c(0.57207192376, 0.0252625054638, 0.152001279691),
    idx = c(1, 50, 100, 180),
    hat = c(0.10862789735, 0.297583235745, 0.15240939662, 0.383243513849),
    cooks = c(0.00129651209069, 0.19747417874, 0.000573670689401, 0.0422967469974),
    rstudent = c(-0.145868701082, 0.965524635197, -0.0798791662377, -0.368967350461),
    sums = c(27.3280542489, 26.0443753572, 191.108745401)),
  mathach = list(theta = c(0.358817344835),
    idx = c(1, 1000, 5000, 7185),
    hat = c(0.0186806199958, 0.0155197495819, 0.0164738086286, 0.015008292785),
    cooks = c(0.000585727915438, 3.03469600233e-05, 0.00995260324694, 0.0118887402302),
    rstudent = c(-0.248069004635, -0.062048850959, 1.09013253205, 1.24920454907),
    sums = c(136.038843447, 69.9706444265, 7186.06632682))
)

# lme4: influence(lmer(Reaction ~ Days + (Days | Subject), sleepstudy), groups = "Subject"):
# rows "308" and "337" of fixed.effects[-Subject], row "308" of var.cov.comps[-Subject], the
# column names, cooks.distance() of the result and row "309" of dfbetas().
ref_deletion <- list(
  fixed_308 = c(251.829365775, 9.80273204991),
  fixed_337 = c(249.128691765, 9.96383372549),
  vc_308 = c(559.177351044, 694.130056676, 8.14617610018, 30.4747326754),
  vc_names = c("sigma^2", "v[(Intercept)]", "C[Days,(Intercept)]", "v[Days]"),
  cooks = c(0.0821484050694, 0.132020797958, 0.0982407442918, 0.0741465024409, 0.0501215065064, 0.00561342403902, 0.0186401547003, 0.00552518966056, 0.11509367844, 0.111996693123, 0.045850998069, 0.0661321587322, 0.0122620871278, 0.0304437839238, 0.00106453183828, 0.0815296984257, 0.00112375552178, 0.00921615992657),
  dfbetas_309 = c(0.410874921592, 0.309896897997))

# ---- the fits ---------------------------------------------------------------------------------

influence_fit <- function(name) {
  switch(name,
    sleepstudy = lmm(Reaction ~ Days + (Days | Subject), ref_data("sleepstudy")),
    orthodont = lmm(distance ~ age + Sex + (1 | Subject), as.data.frame(ref_data("Orthodont"))),
    penicillin = lmm(diameter ~ 1 + (1 | plate) + (1 | sample), ref_data("Penicillin")),
    weighted = {
      d <- ref_data("sleepstudy")
      d$w <- rep(1:3, 60)
      lmm(Reaction ~ Days + (Days | Subject), d, weights = w)
    },
    mathach = lmm(MathAch ~ SES + (1 | School), as.data.frame(ref_data("MathAchieve"))))
}

# The fit re-solved at a given theta (beta, sigma, u and the fitted values follow from theta).
fit_at_theta <- function(fit, theta) {
  engine <- lmmc:::engine_setup(fit$y, fit$X, fit$reterms, fit$weights, fit$offset)
  sol <- lmmc:::engine_solution(engine, theta, fit$REML)
  new <- lmmc:::assemble_fit(sol, theta, fit$lower, fit$y, fit$X, fit$reterms, fit$weights,
                             fit$offset, fit$REML, fit$n)
  fit[names(new)] <- new
  fit
}

expect_diagnostics <- function(fit, ref, tol, what) {
  h <- hatvalues(fit)
  cd <- cooks.distance(fit)
  rs <- rstudent(fit)
  i <- ref$idx
  expect_close(h[i], ref$hat, tol, what = paste(what, "hat"))
  expect_close(cd[i], ref$cooks, tol, scale = max(ref$cooks), what = paste(what, "cooks"))
  expect_close(rs[i], ref$rstudent, tol, scale = 1, what = paste(what, "rstudent"))
  expect_close(c(sum(h), sum(cd), sum(rs^2)), ref$sums, tol, what = paste(what, "sums"))
}

# ---- hat values, Cook's distances, studentized residuals --------------------------------------

test_that("hatvalues, cooks.distance and rstudent match lme4 at lme4's theta (1e-6)", {
  for (name in names(ref_influence)) {
    ref <- ref_influence[[name]]
    fit <- fit_at_theta(influence_fit(name), ref$theta)
    expect_diagnostics(fit, ref, 1e-6, name)
  }
})

test_that("at lmmc's own optimum they match lme4 to 1e-4", {
  for (name in c("sleepstudy", "orthodont", "penicillin", "weighted")) {
    expect_diagnostics(influence_fit(name), ref_influence[[name]], 1e-4, name)
  }
})

test_that("the hat values are the diagonal of the dense hat matrix; names and na.exclude", {
  fit <- influence_fit("weighted")
  Z <- model.matrix(fit, type = "random")
  Lambda <- diag(0, ncol(Z))
  T <- lmmc:::theta_templates(fit$theta, fit$reterms)[[1]]
  for (l in seq_len(18)) Lambda[2 * l - 1:0, 2 * l - 1:0] <- T
  A <- cbind(Z %*% Lambda, fit$X) * sqrt(fit$weights)
  M <- crossprod(A) + diag(c(rep(1, ncol(Z)), 0, 0))
  H <- A %*% solve(M, t(A))
  expect_equal(unname(hatvalues(fit)), unname(diag(H)), tolerance = 1e-10)
  # H maps W^(1/2) y to W^(1/2) mu
  expect_equal(unname(drop(H %*% (sqrt(fit$weights) * fit$y))), sqrt(fit$weights) * fit$fitted,
               tolerance = 1e-8)
  expect_identical(names(hatvalues(fit)), as.character(1:180))

  d <- ref_data("sleepstudy")
  d$Reaction[c(3, 7)] <- NA
  fx <- lmm(Reaction ~ Days + (Days | Subject), d, na.action = na.exclude)
  h <- hatvalues(fx)
  expect_length(h, 180)
  expect_true(all(is.na(h[c(3, 7)])) && !anyNA(h[-c(3, 7)]))
  expect_length(cooks.distance(fx), 180)
  expect_length(rstudent(fx), 180)
})

test_that("with a residual structure the hat matrix is whitened: B A M^-1 A' B'", {
  od <- as.data.frame(ref_data("Orthodont"))
  fit <- lmm(distance ~ age + Sex + (1 | Subject), od,
             correlation = nlme::corAR1(form = ~ age | Subject),
             variance = nlme::varIdent(form = ~ 1 | Sex))
  n <- fit$n
  rp <- residual_parameters(fit)
  d <- fit$residual$sd                                # s_i: the stratum's delta
  expect_equal(d, unname(rp$delta[as.character(od$Sex)]))
  same <- outer(od$Subject, od$Subject, `==`)
  V <- outer(d, d) * ifelse(same, rp$phi^abs(outer(od$age, od$age, `-`)), 0)
  Vi <- solve(V)
  B <- vapply(seq_len(n), function(j) lmmc:::residual_whiten(fit, as.numeric(seq_len(n) == j)),
              numeric(n))
  expect_equal(crossprod(B), Vi, tolerance = 1e-8)
  Z <- model.matrix(fit, type = "random")
  A <- cbind(Z * fit$theta, fit$X)
  M <- crossprod(A, Vi %*% A) + diag(c(rep(1, ncol(Z)), rep(0, fit$p)))
  H <- B %*% A %*% solve(M, t(A)) %*% t(B)
  expect_equal(unname(hatvalues(fit)), diag(H), tolerance = 1e-8)
  expect_equal(drop(H %*% B %*% fit$y), drop(B %*% fit$fitted), tolerance = 1e-8)
  e <- drop(B %*% (fit$y - fit$fitted))
  h <- diag(H)
  expect_equal(unname(cooks.distance(fit)), e^2 * h / ((1 - h)^2 * fit$sigma^2 * fit$p),
               tolerance = 1e-8)
  expect_equal(unname(rstudent(fit)), e / (fit$sigma * sqrt(1 - h)), tolerance = 1e-8)
})

test_that("influence() by deletion with a residual structure refits the call on the rows kept", {
  od <- as.data.frame(ref_data("Orthodont"))
  cor <- nlme::corAR1(form = ~ age | Subject)
  var <- nlme::varIdent(form = ~ 1 | Sex)
  fit <- lmm(distance ~ age + Sex + (1 | Subject), od, correlation = cor, variance = var)
  inf <- influence(fit, groups = "Subject")
  expect_identical(rownames(inf[[2]]), levels(factor(od$Subject, unique(od$Subject))))
  without <- lmm(distance ~ age + Sex + (1 | Subject), od[od$Subject != "F03", ],
                 correlation = cor, variance = var)
  expect_equal(inf[["fixed.effects[-Subject]"]]["F03", ], without$beta, tolerance = 1e-6)
  expect_equal(inf[["var.cov.comps[-Subject]"]]["F03", "sigma^2"], without$sigma^2,
               tolerance = 1e-5)
  expect_true(all(inf$converged))
  # one case: the AR(1) predecessor of the next row changes (age 10 -> 8 is a lag of 2)
  one <- influence(fit)
  del <- lmm(distance ~ age + Sex + (1 | Subject), od[-2, ], correlation = cor, variance = var)
  expect_equal(one[[2]][2, ], del$beta, tolerance = 1e-6)
  expect_equal(dim(one[[2]]), c(108L, 3L))
  expect_true(all(is.finite(cooks.distance(one))))
  # a structure fixed at the identity: the plain fit's deletions
  fits <- identity_fits()
  g_plain <- influence(fits$plain, groups = "Subject")
  g_id <- influence(fits$ar1, groups = "Subject")
  expect_equal(g_id[[2]], g_plain[[2]], tolerance = 1e-5)
  expect_equal(g_id[[4]], g_plain[[4]], tolerance = 1e-4)
})

# ---- deletion ----------------------------------------------------------------------------------

test_that("influence(groups = ) refits without each group as lme4 does", {
  fit <- influence_fit("sleepstudy")
  inf <- influence(fit, groups = "Subject")
  expect_s3_class(inf, "influence.lmm")
  expect_named(inf, c("fixed.effects", "fixed.effects[-Subject]", "var.cov.comps",
                      "var.cov.comps[-Subject]", "vcov", "vcov[-Subject]", "groups", "deleted",
                      "converged", "function.evals"))
  expect_identical(inf$groups, "Subject")
  expect_identical(colnames(inf[["var.cov.comps[-Subject]"]]), ref_deletion$vc_names)
  expect_true(all(inf$converged))
  fx <- inf[["fixed.effects[-Subject]"]]
  expect_close(fx["308", ], ref_deletion$fixed_308, 1e-5)
  expect_close(fx["337", ], ref_deletion$fixed_337, 1e-5)
  # the covariance is flat in the criterion (lmmc's refit has the lower REML criterion): its
  # floor is 1e-4 of the product of the SDs (~150)
  expect_close(inf[["var.cov.comps[-Subject]"]]["308", ], ref_deletion$vc_308, 1e-4,
               scale = 150)
  expect_close(cooks.distance(inf), ref_deletion$cooks, 1e-4)
  expect_close(dfbetas(inf)["309", ], ref_deletion$dfbetas_309, 1e-4)
  expect_equal(dfbeta(inf)["308", ], fx["308", ] - fixef(fit))
  expect_equal(dim(dfbeta(inf, "var.cov")), c(18L, 4L))
  # one deletion by hand
  d <- ref_data("sleepstudy")
  one <- lmm(Reaction ~ Days + (Days | Subject), d[d$Subject != "337", ])
  expect_close(fx["337", ], fixef(one), 1e-6, scale = 1)
  expect_close(inf[["vcov[-Subject]"]][["337"]], vcov(one), 1e-5, scale = 1)
})

test_that("case deletion, do.coef = FALSE and bad input", {
  od <- as.data.frame(ref_data("Orthodont"))
  fit <- lmm(distance ~ age + (1 | Subject), od[od$Sex == "Female", ])
  inf <- influence(fit)
  expect_identical(inf$groups, "case")
  expect_identical(rownames(inf[["fixed.effects[-case]"]]), rownames(model.frame(fit)))
  d <- od[od$Sex == "Female", ]
  one <- lmm(distance ~ age + (1 | Subject), d[-5, ])
  expect_close(inf[["fixed.effects[-case]"]][5, ], fixef(one), 1e-6, scale = 1)
  expect_length(cooks.distance(inf), 44)
  h <- influence(fit, do.coef = FALSE)
  expect_equal(h$hat, hatvalues(fit))
  expect_error(dfbeta(h), "do.coef = TRUE")
  expect_error(influence(fit, groups = "nope"), "not in the data")
  expect_output(print(inf), "44 deletions of case")
  # data found from the caller's frame; lmm_fit() fits need data = (rows in the fit's order)
  local_fit <- function() {
    dd <- d
    influence(lmm(distance ~ age + (1 | Subject), dd), groups = "Subject")
  }
  by_subject <- influence(fit, groups = "Subject")
  expect_equal(local_fit()[[2]], by_subject[[2]])
  ff <- lmm_fit(d$distance, cbind(`(Intercept)` = 1, age = d$age),
                list(Subject = list(group = d$Subject)))
  expect_error(influence(ff, groups = "Subject"), "did not use the data")
  expect_close(influence(ff, groups = "Subject", data = d)[[2]], by_subject[[2]], 1e-6, scale = 1)
})

# ---- live comparison with lme4 -----------------------------------------------------------------

test_that("live: the same numbers as lme4 at lme4's theta, and its influence()", {
  skip_if_not_installed("lme4")
  fits <- list(
    sleepstudy = lme4::lmer(Reaction ~ Days + (Days | Subject), ref_data("sleepstudy")),
    penicillin = lme4::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), ref_data("Penicillin")))
  for (name in names(fits)) {
    m <- fits[[name]]
    fit <- fit_at_theta(influence_fit(name), lme4::getME(m, "theta"))
    expect_close(hatvalues(fit), hatvalues(m), 1e-6, what = paste(name, "hat"))
    expect_close(cooks.distance(fit), cooks.distance(m), 1e-6,
                 scale = max(cooks.distance(m)), what = paste(name, "cooks"))
    expect_close(rstudent(fit), stats::rstudent(m), 1e-6, scale = 1, what = paste(name, "rstudent"))
  }
  od <- as.data.frame(ref_data("Orthodont"))
  od <- od[od$Sex == "Female", ]
  m <- lme4::lmer(distance ~ age + (1 | Subject), od)
  im <- influence(m, groups = "Subject")
  inf <- influence(lmm(distance ~ age + (1 | Subject), od), groups = "Subject")
  expect_identical(names(inf), names(im))
  expect_identical(dimnames(inf[[4]]), dimnames(im[[4]]))
  expect_close(inf[[2]], im[[2]], 1e-5)
  expect_close(inf[[4]], im[[4]], 1e-4)
  expect_close(cooks.distance(inf), cooks.distance(im), 1e-4)
})

test_that("deletion refits use the fit's control (iterative stays iterative)", {
  d <- small_crossed(n = 600, n1 = 60, n2 = 6)
  it <- iterative_control()
  f <- lmm(y ~ x + (1 | a) + (1 | b), d, control = it)
  inf <- influence(f, groups = "b")
  lev <- levels(d$b)[2]
  # the refit without b02, from the fit's theta, with the fit's control
  g <- lmm(y ~ x + (1 | a) + (1 | b), droplevels(d[d$b != lev, ]), control = it,
           start = f$theta)
  expect_false(is.null(g$iterative))
  expect_equal(unname(inf[["fixed.effects[-b]"]][lev, ]), unname(fixef(g)), tolerance = 1e-8)
  e <- lmm(y ~ x + (1 | a) + (1 | b), droplevels(d[d$b != lev, ]), start = f$theta)
  expect_gt(max(abs(inf[["fixed.effects[-b]"]][lev, ] - fixef(e))), 1e-7)
})

test_that("influence(groups = ) of a table fit deletes cells: the data frame's numbers", {
  skip_if_not_installed("RSQLite")
  skip_if_not_installed("DBI")
  con <- DBI::dbConnect(RSQLite::SQLite(), ":memory:")
  on.exit(DBI::dbDisconnect(con))
  od <- as.data.frame(ref_data("Orthodont"))
  od[] <- lapply(od, function(x) if (is.factor(x)) as.character(x) else x)
  set.seed(3)
  od$w <- runif(nrow(od), 0.5, 2)
  DBI::dbWriteTable(con, "od", od)
  od <- DBI::dbReadTable(con, "od")
  fm <- distance ~ age * Sex + (age | Subject)
  for (weighted in c(FALSE, TRUE)) {
    f <- if (weighted) lmm(fm, dbi_table(con, "od"), weights = w) else lmm(fm, dbi_table(con, "od"))
    g <- if (weighted) lmm(fm, od, weights = w) else lmm(fm, od)
    a <- influence(f, groups = "Subject")
    b <- influence(g, groups = "Subject")
    rows <- rownames(a[[2L]])                     # the cells' (sorted) order
    expect_setequal(rows, rownames(b[[2L]]))
    expect_close(a[[2L]], b[[2L]][rows, ], 1e-8)
    expect_close(a[[4L]], b[[4L]][rows, ], 1e-6)
    expect_close(cooks.distance(a), cooks.distance(b)[rows], 1e-8, scale = 1)
    # a level of a factor covariate: its coefficients are aliased without it (NA)
    a <- influence(f, groups = "Sex")
    b <- influence(g, groups = "Sex")
    expect_identical(is.na(a[[2L]]), is.na(b[[2L]][rownames(a[[2L]]), ]))
  }
  expect_error(influence(f, groups = "age"), "'groups' must name grouping or factor variables")
  expect_error(influence(f), "needs the rows")
  expect_warning(influence(f, groups = "Subject", data = od), "'data' is not used")
})
