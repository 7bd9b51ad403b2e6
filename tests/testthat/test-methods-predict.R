# predict(): fixed part rebuilt on new data plus the chosen random terms' Z b.
# Reference numbers from lme4 1.1-31 (predict.merMod).

test_that("no newdata: fitted values; re.form = NA or ~0: X beta", {
  fit <- methods_fit("ss")
  expect_identical(predict(fit), fitted(fit))
  xb <- setNames(drop(fit$X %*% fit$beta), 1:180)
  expect_equal(predict(fit, re.form = NA), xb)
  expect_equal(predict(fit, re.form = ~0), xb)
  expect_equal(predict(fit, re.form = ~ (Days | Subject)), fitted(fit))
  expect_error(predict(fit, re.form = "all"), "'re.form' must be NULL, NA or a formula")
})

test_that("newdata equal to the data reproduces the fitted values", {
  for (key in c("ss", "ss2", "pen", "pas")) {
    fit <- methods_fit(key)
    expect_equal(unname(predict(fit, newdata = fit$frame)), unname(fitted(fit)), tolerance = 1e-10)
    expect_equal(unname(predict(fit, newdata = fit$frame, re.form = NA)),
                 unname(drop(fit$X %*% fit$beta)), tolerance = 1e-10)
  }
})

test_that("sleepstudy: new data, subsets of random terms, new levels", {
  fit <- methods_fit("ss")
  nd <- data.frame(Days = c(0, 4.5, 9), Subject = c("308", "335", "372"))
  p <- predict(fit, nd)
  expect_identical(names(p), c("1", "2", "3"))
  expect_equal(unname(p), c(253.6636558, 249.78948, 369.4814693), tolerance = 1e-6)
  expect_equal(unname(predict(fit, nd, re.form = NA)), c(251.4051048, 298.5078917, 345.6106785),
               tolerance = 1e-6)
  expect_equal(unname(predict(fit, nd, re.form = ~ (1 | Subject))),
               c(253.6636558, 298.1742233, 357.9252706), tolerance = 1e-6)
  # by hand: fixed part + the intercept's conditional mode only
  b0 <- ranef(fit)$Subject[c("308", "335", "372"), "(Intercept)"]
  expect_equal(unname(predict(fit, nd, re.form = ~ (1 | Subject))),
               unname(predict(fit, nd, re.form = NA)) + b0)
  nd2 <- data.frame(Days = c(2, 2), Subject = c("new", "308"))
  expect_error(predict(fit, nd2), "new levels detected in newdata.*'Subject': new")
  pn <- predict(fit, nd2, allow.new.levels = TRUE)
  expect_equal(pn[[1]], 272.3396768, tolerance = 1e-6)
  expect_equal(pn[[1]], sum(fixef(fit) * c(1, 2)))
  expect_error(predict(fit, data.frame(Days = 1, Subject = NA)), "NAs are not allowed")
  expect_equal(unname(predict(fit, data.frame(Days = 1, Subject = NA), allow.new.levels = TRUE)),
               sum(fixef(fit)))
  expect_error(predict(fit, nd, re.form = ~ (1 | Nope)), "'Nope' in re.form is not a grouping")
})

test_that("Penicillin (crossed) and Pastes (nested) as lme4", {
  pen <- methods_fit("pen")
  nd <- Penicillin[c(1, 50, 100), ]
  expect_equal(unname(predict(pen, nd)), c(25.96382753, 21.20910522, 22.58984284), tolerance = 1e-6)
  expect_equal(unname(predict(pen, nd, re.form = ~ (1 | sample))),
               c(25.15928062, 21.96174587, 22.87532723), tolerance = 1e-6)
  pas <- methods_fit("pas")
  ndp <- data.frame(batch = c("A", "C", "J"), cask = c("a", "b", "c"))
  expect_equal(unname(predict(pas, ndp)), c(62.62866464, 63.39472176, 57.81845872), tolerance = 1e-6)
  expect_equal(unname(predict(pas, ndp, re.form = ~ (1 | batch))),
               c(60.85397835, 60.77560196, 59.52157964), tolerance = 1e-6)
  expect_equal(predict(pas, ndp, re.form = ~ (1 | batch/cask)), predict(pas, ndp))
  # a new cask within a known batch: only the batch effect
  nd_new <- data.frame(batch = "A", cask = "z")
  expect_error(predict(pas, nd_new), "new levels detected.*z:A")
  expect_equal(predict(pas, nd_new, allow.new.levels = TRUE),
               predict(pas, nd_new, re.form = ~ (1 | batch)))
})

test_that("missing values in newdata follow na.action", {
  fit <- methods_fit("ss")
  nd <- data.frame(Days = c(1, NA, 3), Subject = "308")
  p <- predict(fit, nd)
  expect_length(p, 3L)
  expect_true(is.na(p[[2]]))
  expect_length(predict(fit, nd, na.action = na.omit), 2L)
  expect_identical(names(predict(fit, nd, na.action = na.omit)), c("1", "3"))
  expect_length(predict(fit, nd, na.action = na.exclude), 3L)
})

test_that("predict equals lme4's to 1e-8 on identical parameters (live)", {
  skip_if_not_installed("lme4")
  data(Machines, package = "nlme", envir = environment())
  cases <- list(
    list(lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy),
         data.frame(Days = c(0, 4.5, 9, 2), Subject = c("308", "335", "372", "new")), 1:3),
    list(lme4::lmer(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleepstudy),
         data.frame(Days = c(0, 4.5, 9, 2), Subject = c("308", "335", "372", "new")), 1:3),
    list(lme4::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin),
         rbind(Penicillin[c(1, 50, 100), ], data.frame(diameter = 0, plate = "a", sample = "X")), 1:3),
    list(lme4::lmer(strength ~ 1 + (1 | batch/cask), Pastes),
         data.frame(batch = c("A", "C", "J", "A", "Q"), cask = c("a", "b", "c", "z", "a")), 1:3),
    list(lme4::lmer(score ~ Machine + (Machine | Worker), Machines),
         data.frame(Machine = c("C", "A", "B"), Worker = c("3", "1", "6")), 1:3),
    list(lme4::lmer(Reaction ~ poly(Days, 2) + (log(Days + 1) | Subject), sleepstudy),
         sleepstudy[c(4, 90, 177), ], 1:3))
  for (cs in cases) {
    fm <- cs[[1]]
    nd <- cs[[2]]
    m <- lmm_from_lme4(fm)
    known <- cs[[3]]
    expect_equal(predict(m), predict(fm), tolerance = 1e-8)
    expect_equal(predict(m, re.form = NA), predict(fm, re.form = NA), tolerance = 1e-8)
    expect_equal(predict(m, nd, allow.new.levels = TRUE), predict(fm, nd, allow.new.levels = TRUE),
                 tolerance = 1e-8)
    expect_equal(predict(m, nd[known, ]), predict(fm, nd[known, ]), tolerance = 1e-8)
    expect_equal(predict(m, nd, re.form = NA), predict(fm, nd, re.form = NA), tolerance = 1e-8)
    for (bar in lme4::findbars(formula(fm))) {
      rf <- stats::as.formula(call("~", call("(", bar)))
      expect_equal(predict(m, nd, re.form = rf, allow.new.levels = TRUE),
                   predict(fm, nd, re.form = rf, allow.new.levels = TRUE), tolerance = 1e-8)
    }
  }
})

test_that("fits made by lmm_fit(): predictions on the data only", {
  ss <- sleepstudy
  X <- cbind(`(Intercept)` = 1, Days = ss$Days)
  rt <- list(list(group = ss$Subject, Xt = X, name = "Subject", cnms = colnames(X)))
  fit <- lmm_fit(ss$Reaction, X, rt)
  expect_equal(unname(predict(fit)), unname(fitted(fit)))
  expect_equal(unname(predict(fit, re.form = NA)), drop(X %*% fixef(fit)))
  expect_error(predict(fit, ss[1:2, ]), "needs a fit made by lmm\\(\\)")
  expect_output(print(fit), "Number of obs: 180, groups:  Subject, 18")
})
