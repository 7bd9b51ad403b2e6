# Plots: each draws to a null device without error and returns the data it plotted.
# Per-group OLS coefficients of sleepstudy recorded from lme4 1.1-31:
# coef(lme4::lmList(Reaction ~ Days | Subject, sleepstudy)) for the first three subjects.

lmlist_ref <- data.frame(
  `(Intercept)` = c(244.192669090909, 205.054945454546, 203.484225454545),
  Days = c(21.7647024242424, 2.26178545454545, 6.11489878787879),
  row.names = c("308", "309", "310"), check.names = FALSE)

with_null_device <- function(code) {
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  code
}

plot_fit <- local({
  fit <- NULL
  function() {
    if (is.null(fit)) fit <<- lmm(Reaction ~ Days + (Days | Subject), ref_data("sleepstudy"))
    fit
  }
})

test_that("plot(fit): Pearson residuals against fitted values", {
  fit <- plot_fit()
  d <- with_null_device(plot(fit))
  expect_equal(names(d), c("fitted", "residual"))
  expect_equal(d$fitted, unname(fitted(fit)))
  expect_equal(d$residual, unname(residuals(fit, type = "pearson")))
  expect_equal(d$residual, ref_data("sleepstudy")$Reaction - d$fitted)
})

test_that("qqnorm(fit): scaled residuals against normal quantiles", {
  fit <- plot_fit()
  q <- with_null_device(qqnorm(fit))
  r <- unname(residuals(fit) / sigma(fit))
  expect_equal(q$sample, r)
  expect_equal(sort(q$theoretical), qnorm(ppoints(180)))
  expect_equal(order(q$theoretical), order(r))
  expect_identical(with_null_device(plot(fit, type = "qq")), q)
})

test_that("qqnorm(ranef(fit)): one panel per random-effect column", {
  fit <- plot_fit()
  q <- with_null_device(qqnorm(ranef(fit)))
  expect_equal(nrow(q), 36L)
  expect_equal(unique(q$term), c("(Intercept)", "Days"))
  re <- ranef(fit)$Subject
  days <- q[q$term == "Days", ]
  expect_equal(days$condval, re$Days)
  expect_equal(sort(days$theoretical), qnorm(ppoints(18)))
  expect_equal(order(days$theoretical), order(re$Days))
})

test_that("caterpillar plot: modes sorted, intervals mode +/- z * condsd", {
  fit <- plot_fit()
  cp <- with_null_device(caterpillar(fit, level = 0.9))
  expect_equal(nrow(cp), 36L)
  int <- cp[cp$term == "(Intercept)", ]
  expect_false(is.unsorted(int$condval))
  expect_equal(int$position, 1:18)
  pv <- attr(ranef(fit, condVar = TRUE)$Subject, "postVar")
  lev <- rownames(ranef(fit)$Subject)
  sd_int <- sqrt(pv[1, 1, match(int$grp, lev)])
  expect_equal(int$condsd, sd_int)
  expect_equal(int$upper - int$condval, qnorm(0.95) * sd_int)
  expect_equal(int$condval, ranef(fit)$Subject[match(int$grp, lev), "(Intercept)"])
  # lme4's lowest intercept mode is subject 309 (-40.4), highest 337
  expect_equal(int$grp[c(1, 18)], c("309", "337"))
  expect_identical(with_null_device(plot(ranef(fit), level = 0.9)), cp)
  expect_identical(with_null_device(plot(fit, type = "caterpillar", level = 0.9)), cp)
  expect_error(plot(ranef(fit, condVar = FALSE)), "no conditional variances")
})

test_that("shrinkage plot: separate OLS fits (lmList) against the mixed model's coef()", {
  fit <- plot_fit()
  s <- with_null_device(shrinkage_plot(fit))
  expect_equal(s$group, "Subject")
  expect_close(s$ols[1:3, ], as.matrix(lmlist_ref), 1e-6)
  for (l in c("308", "350")) {
    d <- ref_data("sleepstudy")
    d <- d[d$Subject == l, ]
    expect_equal(s$ols[l, ], coef(lm(Reaction ~ Days, d)), ignore_attr = TRUE)
  }
  expect_equal(s$mixed, as.matrix(coef(fit)$Subject))
  expect_equal(s$center, fixef(fit))
  expect_equal(s$n, rep(10L, 18))
  # partial pooling: every per-subject coefficient pair is closer to the population estimate,
  # in the metric of the random-effects covariance
  Sinv <- solve(unclass(VarCorr(fit)$Subject))
  dist <- function(M) rowSums(((sweep(M, 2, s$center)) %*% Sinv) * sweep(M, 2, s$center))
  expect_true(all(dist(s$mixed) < dist(s$ols)))
  expect_identical(with_null_device(plot(fit, type = "shrinkage")), s)
})

test_that("shrinkage with a random intercept: other fixed effects are partialled out", {
  d <- ref_data("sleepstudy")
  fit <- lmm(Reaction ~ Days + (1 | Subject), d)
  s <- with_null_device(shrinkage_plot(fit))
  expect_equal(colnames(s$ols), "(Intercept)")
  # OLS intercept of subject j = mean(Reaction - beta_Days * Days) over j's rows
  adj <- d$Reaction - fixef(fit)[["Days"]] * d$Days
  expect_equal(s$ols[, 1], tapply(adj, d$Subject, mean)[rownames(s$ols)], ignore_attr = TRUE)
  # random intercept shrinkage factor lambda_j = tau^2 / (tau^2 + sigma^2 / n_j)
  tau2 <- as.data.frame(VarCorr(fit))$vcov[1]
  lambda <- tau2 / (tau2 + sigma(fit)^2 / 10)
  expect_equal(unname(s$mixed[, 1] - s$center), unname(lambda * (s$ols[, 1] - s$center)),
               tolerance = 1e-8)
})

test_that("shrinkage_plot argument checks", {
  fit <- plot_fit()
  expect_error(shrinkage_plot(fit, group = "School"), "'group' must name one grouping factor")
  expect_error(with_null_device(shrinkage_plot(fit, which = "Age")), "'which' must name")
  s1 <- with_null_device(shrinkage_plot(fit, which = "Days"))
  expect_close(s1$ols[1:3, "Days"], lmlist_ref$Days, 1e-6)
})

test_that("groups that cannot identify their own regression give NA, and still draw", {
  d <- ref_data("sleepstudy")
  d <- d[!(d$Subject == "308" & d$Days > 0), ]           # subject 308 keeps a single day
  fit <- lmm(Reaction ~ Days + (Days | Subject), d)
  s <- with_null_device(shrinkage_plot(fit))
  expect_true(all(is.na(s$ols["308", ])))
  expect_false(anyNA(s$ols[-1, ]))
  expect_false(anyNA(s$mixed))
})

test_that("qqnorm(fit): the reference line runs through the residuals' quartiles (qqline)", {
  fit <- plot_fit()
  q <- with_null_device(qqnorm(fit))
  r <- unname(residuals(fit) / sigma(fit))
  rq <- quantile(r, c(0.25, 0.75), names = FALSE)
  slope <- diff(rq) / diff(qnorm(c(0.25, 0.75)))
  expect_equal(attr(q, "line"), c(intercept = rq[1] - slope * qnorm(0.25), slope = slope))
  expect_false(isTRUE(all.equal(unname(attr(q, "line")), c(0, 1))))
})

test_that("base plots draw into the user's par(mfrow) layout and restore their own", {
  fit <- plot_fit()
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  graphics::par(mfrow = c(2, 2))
  plot(fit)
  expect_equal(graphics::par("mfg")[1:2], c(1L, 1L))
  qqnorm(ranef(fit))                                   # two panels: the next two of the user's four
  expect_equal(graphics::par("mfrow"), c(2L, 2L))
  expect_equal(graphics::par("mfg")[1:2], c(2L, 1L))
  qqnorm(fit)
  expect_equal(graphics::par("mfg")[1:2], c(2L, 2L))
  graphics::par(mfrow = c(1, 1))
  caterpillar(fit)                                     # on a one-panel device: its own 1 x 2 layout
  expect_equal(graphics::par("mfrow"), c(1L, 1L))
})

test_that("shrinkage plot legend goes to the corner with the fewest points", {
  fit <- plot_fit()
  s <- with_null_device(shrinkage_plot(fit))
  expect_true(s$legend %in% c("topleft", "topright", "bottomleft", "bottomright"))
  corner <- function(x, y) with_null_device({
    graphics::plot(0:1, 0:1, type = "n")
    lmmc:::emptiest_corner(x, y)
  })
  expect_equal(corner(c(0.1, 0.1, 0.9, 0.9, 0.1), c(0.9, 0.1, 0.9, 0.1, 0.95)), "topright")
  expect_equal(corner(c(0.1, 0.9, 0.9, 0.1), c(0.9, 0.9, 0.1, 0.5)), "bottomleft")
})
