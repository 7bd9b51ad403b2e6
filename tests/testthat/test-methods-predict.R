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

## ---- data-dependent transformations in random terms; na.action ---------------------------------
## Reference numbers from lme4 1.1-31 (predict.merMod, R 4.2.2).

test_that("poly() and splines::ns() in random terms use the fit's predvars on newdata", {
  sleep <- ref_data("sleepstudy")
  nd <- data.frame(Days = c(0.5, 2.5, 7.25, 9, 4),
                   Subject = factor(c("308", "309", "335", "372", "350")))
  f1 <- lmm(Reaction ~ Days + (splines::ns(Days, 2) | Subject), sleep)
  # lme4: REMLcrit 1731.06135467 (fit written with ns() after library(splines))
  expect_crit(REMLcrit(f1), 1731.06135467)
  expect_close(predict(f1, nd), c(258.880107301, 211.632577022, 247.634141054, 370.326978147,
                                  300.691685496), tol = 1e-5)
  expect_close(predict(f1, nd, re.form = NA), c(257.372875474, 278.393719639, 328.318224530,
                                                346.711463174, 294.159352762), tol = 1e-5)
  # a sub-term named by re.form also uses the fit's knots
  expect_equal(predict(f1, nd, re.form = ~ (splines::ns(Days, 2) | Subject)), predict(f1, nd))
  # one new row is predicted as in the whole set (no refitting of the basis to newdata)
  expect_equal(unname(predict(f1, nd[3, ])), unname(predict(f1, nd)[3]))
  expect_length(predict(f1, nd, se.fit = TRUE)$se.fit, 5L)
  f2 <- lmm(Reaction ~ poly(Days, 2) + (poly(Days, 2) | Subject), sleep)
  expect_crit(REMLcrit(f2), 1712.80848285)
  expect_close(predict(f2, nd), c(261.360633147, 210.743529685, 247.778561146, 371.416995762,
                                  300.107362530), tol = 1e-5)
  data(Orthodont, package = "nlme", envir = environment())
  nd3 <- data.frame(age = c(8.5, 11, 13.5),
                    Subject = factor(c("M01", "F05", "M16"), levels = levels(Orthodont$Subject)))
  f3 <- suppressMessages(lmm(distance ~ poly(age, 2) + (poly(age, 2) | Subject), Orthodont))
  # lme4 (singular fit): REMLcrit 432.714392717
  expect_crit(REMLcrit(f3), 432.714392717)
  expect_close(predict(f3, nd3), c(25.3680599593, 22.5125896999, 24.5673596715), tol = 1e-4)
  skip_if_not_installed("lme4")
  l1 <- lme4::lmer(Reaction ~ Days + (splines::ns(Days, 2) | Subject), sleep)
  expect_close(predict(f1, nd), predict(l1, nd), tol = 1e-5)
  l2 <- lme4::lmer(Reaction ~ poly(Days, 2) + (poly(Days, 2) | Subject), sleep)
  expect_close(predict(f2, nd), predict(l2, nd), tol = 1e-5)
})

test_that("na.action of predict() pads or drops as lme4's predict.merMod", {
  sleep <- ref_data("sleepstudy")
  s <- sleep
  s$Reaction[c(3, 10)] <- NA
  fe <- lmm(Reaction ~ Days + (Days | Subject), s, na.action = na.exclude)
  # lme4 (na.exclude fit): predict()[1:12]
  p <- predict(fe)
  expect_length(p, 180L)
  expect_identical(which(is.na(p)), c(`3` = 3L, `10` = 10L))
  expect_close(p[c(1:2, 4:9, 11:12)],
               c(266.318636547, 282.877488484, 315.995192357, 332.554044293, 349.112896230,
                 365.671748166, 382.230600103, 398.789452039, 210.366863602, 212.317105497),
               tol = 1e-5)
  # an explicit na.action overrides the fit's: na.omit gives 178 values (lme4 too)
  expect_length(predict(fe, na.action = na.omit), 178L)
  expect_length(predict(fe, re.form = NA, na.action = na.omit), 178L)
  expect_length(predict(fe, na.action = "na.omit"), 178L)
  expect_length(predict(fe, se.fit = TRUE, na.action = na.omit)$se.fit, 178L)
  expect_length(predict(fe, se.fit = TRUE)$se.fit, 180L)
  # na.omit fit: 178 values, 180 with na.action = na.exclude (NA at 3 and 10)
  fo <- lmm(Reaction ~ Days + (Days | Subject), s)
  expect_length(predict(fo), 178L)
  expect_identical(which(is.na(predict(fo, re.form = NA, na.action = na.exclude))),
                   c(`3` = 3L, `10` = 10L))
  # NA in newdata: na.pass (default) and na.exclude pad, na.omit drops, na.fail stops
  nd <- sleep[1:6, ]
  nd$Days[2] <- NA
  full <- c(266.318636547, NA, 299.436340420, 315.995192357, 332.554044293, 349.112896230)
  expect_close(predict(fe, nd)[-2], full[-2], tol = 1e-5)
  expect_true(is.na(predict(fe, nd)[2]))
  expect_identical(unname(is.na(predict(fe, nd, na.action = na.exclude))), is.na(full))
  expect_close(predict(fe, nd, na.action = na.omit), full[-2], tol = 1e-5)
  expect_identical(names(predict(fe, nd, na.action = na.omit)), c("1", "3", "4", "5", "6"))
  expect_error(predict(fe, nd, na.action = na.fail), "missing values")
  skip_if_not_installed("lme4")
  le <- lme4::lmer(Reaction ~ Days + (Days | Subject), s, na.action = na.exclude)
  expect_identical(is.na(predict(fe, na.action = na.exclude)), is.na(predict(le, na.action = na.exclude)))
  expect_identical(names(predict(fe, nd, na.action = na.omit)),
                   names(predict(le, nd, na.action = na.omit)))
})
