# lattice plots (R/lattice.R): dotplot / qqmath of ranef() and plot(fit, formula) in lme4's form.
# Reference values from lme4 1.1-31 + lattice, g <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy):
#   b <- dotplot(ranef(g, condVar = TRUE))$Subject: levels(b$panel.args[[1]]$y), b$panel.args.common$se
#   q <- qqmath(ranef(g, condVar = TRUE))$Subject: q$panel.args[[i]]$x[1:3]
#   p <- plot(g, resid(.) ~ fitted(.) | Subject, abline = 0): p$panel.args[[1]]$x[1:3], $y[1:3]
# The lmm and lmer fits agree to about 5e-6 (relative), so panel values are compared with lme4's
# at 1e-4 and with the lmm fit's own quantities exactly; panel layout and ordering must be identical.

ref_lattice <- list(
  dot_levels = c("309", "310", "370", "349", "350", "334", "335", "371", "308", "369", "351", "332",
                 "372", "333", "352", "331", "330", "337"),
  dot_se = c(12.0708569505143, 2.30483902090028),            # condsd of (Intercept), of Days
  qq_x1 = c(-40.3987380788051, -38.9604089575579, -25.6129993067302),
  qq_x2 = c(-10.75216517663032, -8.61968061524321, -5.44885646979814),
  panel1_x = c(253.663655798386, 273.329917523548, 292.996179248710),
  panel1_y = c(-4.10365579838611, -14.62521752354803, -42.19557924870989))

lattice_fit <- local({
  fit <- NULL
  function() {
    if (is.null(fit)) fit <<- lmm(Reaction ~ Days + (Days | Subject), ref_data("sleepstudy"))
    fit
  }
})

# lattice opens a device when a trellis object is made: a null one, closed when the test ends.
local_null_device <- function(env = parent.frame()) {
  grDevices::pdf(NULL)
  dev <- grDevices::dev.cur()
  withr::defer(grDevices::dev.off(dev), envir = env)
}

render <- function(p) {
  print(p)
  invisible(p)
}

test_that("dotplot(ranef(fit)): lme4's caterpillar panels", {
  skip_if_not_installed("lattice")
  local_null_device()
  fit <- lattice_fit()
  re <- ranef(fit, condVar = TRUE)
  p <- lattice::dotplot(re)
  expect_named(p, "Subject")
  expect_s3_class(p$Subject, "trellis")
  render(p$Subject)
  pa <- p$Subject$panel.args
  expect_length(pa, 2L)
  expect_equal(levels(pa[[1]]$y), ref_lattice$dot_levels)
  lev <- rownames(re$Subject)
  expect_equal(pa[[1]]$x, re$Subject[["(Intercept)"]])
  expect_equal(pa[[2]]$x, re$Subject$Days)
  expect_equal(as.character(pa[[1]]$y), lev)
  expect_equal(pa[[2]]$subscripts, 19:36)
  se <- p$Subject$panel.args.common$se
  expect_close(se[c(1, 19)], ref_lattice$dot_se, tol = 1e-4)
  expect_equal(se[1:18], sqrt(attr(re$Subject, "postVar")[1, 1, ]))
  expect_equal(p$Subject$main, "Subject")
  expect_null(lattice::dotplot(re, main = FALSE)$Subject$main)
})

test_that("qqmath(ranef(fit)): sorted modes against normal quantiles, lme4's values", {
  skip_if_not_installed("lattice")
  local_null_device()
  fit <- lattice_fit()
  re <- ranef(fit, condVar = TRUE)
  p <- lattice::qqmath(re)$Subject
  render(p)
  pa <- p$panel.args
  expect_close(pa[[1]]$x[1:3], ref_lattice$qq_x1, tol = 1e-4, scale = 1)
  expect_close(pa[[2]]$x[1:3], ref_lattice$qq_x2, tol = 1e-4, scale = 1)
  expect_equal(pa[[1]]$x, sort(re$Subject[["(Intercept)"]]))
  expect_equal(pa[[1]]$y, qnorm((1:18 - 0.5) / 18))
  expect_equal(p$ylab, "Standard normal quantiles")
  # without conditional variances: lattice's qqmath of the modes
  q0 <- lattice::qqmath(ranef(fit, condVar = FALSE))$Subject
  render(q0)
  expect_equal(sort(q0$panel.args[[2]]$x), sort(re$Subject$Days))
})

test_that("plot(fit, formula): lme4's trellis residual plots", {
  skip_if_not_installed("lattice")
  local_null_device()
  fit <- lattice_fit()
  p <- plot(fit, resid(.) ~ fitted(.) | Subject, abline = 0)
  expect_s3_class(p, "trellis")
  render(p)
  expect_length(p$panel.args, 18L)
  expect_equal(p$condlevels$Subject, levels(ref_data("sleepstudy")$Subject))
  expect_close(p$panel.args[[1]]$x[1:3], ref_lattice$panel1_x, tol = 1e-5)
  expect_close(p$panel.args[[1]]$y[1:3], ref_lattice$panel1_y, tol = 1e-4, scale = 1)
  s308 <- ref_data("sleepstudy")$Subject == "308"
  expect_equal(p$panel.args[[1]]$x, unname(fitted(fit)[s308]))
  expect_equal(p$panel.args[[1]]$y, unname(residuals(fit)[s308]))
  expect_equal(c(p$xlab, p$ylab), c("fitted(.)", "resid(.)"))
  # a factor on the left: box plots by subject; one-sided: a histogram
  b <- plot(fit, Subject ~ resid(., type = "pearson"), abline = 0)
  render(b)
  expect_equal(b$call[[1]], quote(bwplot))
  expect_equal(b$panel.args[[1]]$x, unname(residuals(fit, type = "pearson")))
  h <- plot(fit, ~ resid(.))
  render(h)
  expect_equal(h$panel.args[[1]]$x, unname(residuals(fit)))
  # id: label points whose |Pearson residual| / sigma exceeds qnorm(1 - id / 2)
  idp <- plot(fit, resid(.) ~ fitted(.), id = 0.05)
  expect_silent(render(idp))
  expect_error(plot(fit, resid(.) ~ fitted(.), id = 2), "'id' must be between 0 and 1")
  expect_error(plot(fit, resid(.) ~ Subject), "covariate .* must be numeric")
})

test_that("plot(fit, formula) values match lme4's plot.merMod", {
  skip_if_not_installed("lattice")
  local_null_device()
  skip_if_not_installed("lme4")
  sleep <- ref_data("sleepstudy")
  fit <- lattice_fit()
  g <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleep)
  for (form in list(resid(.) ~ fitted(.) | Subject, Subject ~ resid(.),
                    resid(., type = "pearson") ~ Days)) {
    a <- plot(fit, form)
    b <- plot(g, form)
    expect_equal(length(a$panel.args), length(b$panel.args))
    for (i in seq_along(a$panel.args)) {
      expect_equal(a$panel.args[[i]]$subscripts, b$panel.args[[i]]$subscripts)
      expect_close(a$panel.args[[i]]$x, b$panel.args[[i]]$x, tol = 1e-4, scale = 10)
      ya <- a$panel.args[[i]]$y
      yb <- b$panel.args[[i]]$y
      if (is.factor(yb)) expect_equal(as.character(ya), as.character(yb))
      else expect_close(ya, yb, tol = 1e-4, scale = 10)   # residuals: sigma is 25.6
    }
  }
  re_a <- lattice::dotplot(ranef(fit, condVar = TRUE))$Subject
  re_b <- lattice::dotplot(lme4::ranef(g, condVar = TRUE))$Subject
  expect_equal(levels(re_a$panel.args[[1]]$y), levels(re_b$panel.args[[1]]$y))
  expect_close(re_a$panel.args[[2]]$x, re_b$panel.args[[2]]$x, tol = 1e-4, scale = 1)
})

test_that("plot(fit) without a formula keeps the base-graphics plot", {
  fit <- lattice_fit()
  local_null_device()
  d <- plot(fit)
  expect_equal(names(d), c("fitted", "residual"))
  expect_equal(plot(fit, "qq"), plot(fit, type = "qq"))
  expect_error(plot(fit, form = 1), "'form' must be a formula")
})
