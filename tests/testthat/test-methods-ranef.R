# fixef(), ranef() (+ print, as.data.frame), coef(). Reference numbers from lme4 1.1-31.

test_that("fixef is the named beta", {
  fit <- methods_fit("ss")
  expect_identical(fixef(fit), fit$beta)
  expect_equal(fixef(fit), c(`(Intercept)` = 251.4051048, Days = 10.46728596), tolerance = 1e-6)
})

test_that("ranef of a correlated vector term: values, rownames, postVar", {
  re <- ranef(methods_fit("ss"))
  expect_s3_class(re, "ranef.lmm")
  expect_named(re, "Subject")
  s <- re$Subject
  expect_s3_class(s, "data.frame")
  expect_named(s, c("(Intercept)", "Days"))
  expect_identical(rownames(s), levels(sleepstudy$Subject))
  ref <- matrix(c(2.25855095, -40.39873808, -38.96040896, 9.198975766, -8.619680615, -5.44885647),
                3, dimnames = list(c("308", "309", "310"), c("(Intercept)", "Days")))
  expect_equal(as.matrix(s[1:3, ]), ref, tolerance = 1e-4)
  pv <- attr(s, "postVar")
  expect_identical(dim(pv), c(2L, 2L, 18L))
  expect_equal(pv[, , 1], matrix(c(145.7055875, -21.4445036, -21.4445036, 5.312282912), 2),
               tolerance = 1e-4)
  expect_null(attr(ranef(methods_fit("ss"), condVar = FALSE)$Subject, "postVar"))
})

test_that("terms sharing a grouping factor are combined as lme4 combines them", {
  s <- ranef(methods_fit("ss2"))$Subject
  ref <- matrix(c(1.512664769, -40.37387283, -39.1810279, 9.32349704, -8.599175741, -5.387794427),
                3, dimnames = list(c("308", "309", "310"), c("(Intercept)", "Days")))
  expect_equal(as.matrix(s[1:3, ]), ref, tolerance = 1e-4)
  pv <- attr(s, "postVar")
  expect_type(pv, "list")
  expect_named(pv, c("(Intercept)", "Days"))
  expect_identical(dim(pv$Days), c(1L, 1L, 18L))
  expect_equal(c(pv[[1]][1, 1, 1], pv[[2]][1, 1, 1]), c(149.7916784, 5.454391689), tolerance = 1e-4)
  d <- as.data.frame(ranef(methods_fit("ss2")))
  expect_equal(d$condsd[c(1, 19)], sqrt(c(149.7916784, 5.454391689)), tolerance = 1e-4)
})

test_that("nested factors: one entry per factor, lme4's names; drop = TRUE; whichel", {
  re <- ranef(methods_fit("pas"))
  expect_named(re, c("cask:batch", "batch"))
  expect_equal(re$batch[1:3, 1], c(0.80064502, -0.2725086966, 0.722268625), tolerance = 1e-4)
  expect_equal(re$`cask:batch`[1:3, 1], c(1.774686285, 0.8836558953, -2.572209329), tolerance = 1e-4)
  expect_identical(rownames(re$`cask:batch`)[1:3], c("a:A", "a:B", "a:C"))
  expect_equal(attr(re$batch, "postVar")[1, 1, 1], 1.05779989, tolerance = 1e-4)
  dr <- ranef(methods_fit("pas"), drop = TRUE)
  expect_type(dr$batch, "double")
  expect_identical(names(dr$batch), LETTERS[1:10])
  expect_length(attr(dr$batch, "postVar"), 10L)
  expect_named(ranef(methods_fit("pas"), whichel = "batch"), "batch")
})

test_that("as.data.frame.ranef.lmm has lme4's columns and row order", {
  re <- ranef(methods_fit("ss"))
  d <- as.data.frame(re)
  expect_named(d, c("grpvar", "term", "grp", "condval", "condsd"))
  expect_identical(nrow(d), 36L)
  expect_identical(as.character(d$term), rep(c("(Intercept)", "Days"), each = 18))
  expect_identical(as.character(d$grp), rep(levels(sleepstudy$Subject), 2))
  expect_equal(d$condval, c(re$Subject[[1]], re$Subject[[2]]))
  pv <- attr(re$Subject, "postVar")
  expect_equal(d$condsd, c(sqrt(pv[1, 1, ]), sqrt(pv[2, 2, ])))
  # grp levels ordered by the intercept's conditional mode, as lme4
  expect_identical(levels(d$grp), c("309", "310", "370", "349", "350", "334", "335", "371", "308",
                                    "369", "351", "332", "372", "333", "352", "331", "330", "337"))
  dn <- as.data.frame(ranef(methods_fit("pas")))
  expect_identical(unique(dn$grpvar), c("cask:batch", "batch"))
  expect_identical(nrow(dn), 40L)
})

test_that("print.ranef.lmm notes the conditional variances", {
  out <- capture.output(print(ranef(methods_fit("ss"))))
  expect_identical(out[1], "$Subject")
  expect_match(out[3], "^308 +2\\.25[0-9]* +9\\.19")
  expect_match(tail(out, 1), "^with conditional variances for .Subject. $")
  expect_false(any(grepl("conditional variances", capture.output(print(ranef(methods_fit("ss"),
                                                                              condVar = FALSE))))))
})

test_that("coef = fixef + ranef per level", {
  fit <- methods_fit("ss")
  cf <- coef(fit)
  expect_s3_class(cf, "coef.lmm")
  re <- ranef(fit, condVar = FALSE)$Subject
  expect_equal(cf$Subject$Days, fixef(fit)[["Days"]] + re$Days)
  expect_equal(cf$Subject$`(Intercept)`, fixef(fit)[[1]] + re$`(Intercept)`)
  ref <- matrix(c(253.6636558, 211.0063668, 212.4446959, 19.66626173, 1.847605344, 5.01842949), 3,
                dimnames = list(c("308", "309", "310"), c("(Intercept)", "Days")))
  expect_equal(as.matrix(cf$Subject[1:3, ]), ref, tolerance = 1e-5)
  out <- capture.output(print(cf))
  expect_false(any(grepl("class", out)))
  expect_match(out[2], "\\(Intercept\\) +Days")
  # random-only columns get a fixed part of 0
  cp <- coef(methods_fit("pas"))
  expect_equal(cp$batch[[1]], fixef(methods_fit("pas"))[[1]] + ranef(methods_fit("pas"))$batch[[1]])
})

test_that("ranef / coef / as.data.frame equal lme4's on identical parameters (live)", {
  skip_if_not_installed("lme4")
  fits <- list(
    lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy),
    lme4::lmer(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleepstudy),
    lme4::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin),
    lme4::lmer(strength ~ 1 + (1 | batch/cask), Pastes))
  for (fm in fits) {
    m <- lmm_from_lme4(fm)
    expect_equal(unclass(ranef(m)), unclass(lme4::ranef(fm)), tolerance = 1e-8)
    expect_equal(unclass(ranef(m, drop = TRUE)), unclass(lme4::ranef(fm, drop = TRUE)),
                 tolerance = 1e-8)
    expect_equal(as.data.frame(ranef(m)), as.data.frame(lme4::ranef(fm)), tolerance = 1e-8)
    expect_equal(unclass(coef(m)), unclass(coef(fm)), tolerance = 1e-8)
  }
})
