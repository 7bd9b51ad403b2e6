# lmm_pieces(): model frame, y, X, weights, offset and random-effects terms.
# Reference values were taken from lme4 1.1-31 lFormula() on the same data.

re_names <- function(p) vapply(p$reterms, `[[`, "", "name")
re_cnms <- function(p) lapply(p$reterms, `[[`, "cnms")
re_nl <- function(p) vapply(p$reterms, function(t) nlevels(t$group), 0L)

small_data <- function() {
  data.frame(y = c(2.1, 3.4, 1.9, 4.2, 5.0, 3.3, 2.8, 4.4, 3.9, 1.2, 2.5, 3.1),
             x = c(0.5, 1.2, -0.3, 2.0, 1.7, 0.1, -1.1, 0.9, 1.4, -0.6, 0.3, 0.8),
             g = rep(c("b", "a", "c"), 4), h = rep(1:2, each = 6),
             w = rep(c(1, 2, 0.5), 4), stringsAsFactors = FALSE)
}

test_that("Orthodont (age | Subject): names, cnms, levels, X and Xt", {
  p <- lmm_pieces(distance ~ age + (age | Subject), nlme::Orthodont)
  expect_s3_class(p, "lmm_pieces")
  expect_identical(re_names(p), "Subject")
  expect_identical(re_cnms(p), list(c("(Intercept)", "age")))
  expect_identical(re_nl(p), 27L)
  g <- p$reterms[[1]]$group
  expect_identical(head(levels(g), 4), c("M16", "M05", "M02", "M11"))
  expect_identical(as.integer(head(g, 5)), c(15L, 15L, 15L, 15L, 3L))
  expect_identical(colnames(p$X), c("(Intercept)", "age"))
  expect_identical(dim(p$X), c(108L, 2L))
  expect_identical(unname(p$reterms[[1]]$Xt[1:4, 2]), c(8, 10, 12, 14))
  expect_identical(p$reterms[[1]]$gexpr, quote(Subject))
  expect_identical(p$y[1:4], c(26, 25, 29, 31))
  expect_identical(p$weights, rep(1, 108))
  expect_identical(p$offset, rep(0, 108))
  expect_true(p$REML)
  expect_identical(attr(p$X, "dropped"), character(0))
  expect_identical(attr(p$X, "assign"), 0:1)
  expect_identical(deparse1(formula(p$fixed_terms)), "distance ~ age")
  expect_identical(attr(p$frame, "terms"), p$fixed_terms)
})

test_that("(age || Subject) gives two uncorrelated terms on Subject", {
  p <- lmm_pieces(distance ~ age + Sex + (age || Subject), nlme::Orthodont)
  expect_identical(re_names(p), c("Subject", "Subject"))
  expect_identical(re_cnms(p), list("(Intercept)", "age"))
  expect_identical(re_nl(p), c(27L, 27L))
  expect_identical(colnames(p$X), c("(Intercept)", "age", "SexFemale"))
  expect_identical(sum(p$X[, "SexFemale"]), 44)
})

test_that("Machines (1 | Worker/Machine) is named and ordered as lme4", {
  p <- lmm_pieces(score ~ Machine + (1 | Worker/Machine), nlme::Machines)
  expect_identical(re_names(p), c("Machine:Worker", "Worker"))
  expect_identical(re_nl(p), c(18L, 6L))
  expect_identical(head(levels(p$reterms[[1]]$group), 4), c("A:6", "A:2", "A:4", "A:1"))
  expect_identical(as.integer(head(p$reterms[[1]]$group, 5)), c(4L, 4L, 4L, 2L, 2L))
  expect_identical(head(levels(p$reterms[[2]]$group), 4), c("6", "2", "4", "1"))
  expect_identical(colnames(p$X), c("(Intercept)", "MachineB", "MachineC"))
  expect_identical(as.vector(table(p$reterms[[1]]$group)[1:3]), c(3L, 3L, 3L))
  # the crossed spelling (1 | Worker) + (1 | Worker:Machine) is reordered (6 < 18 levels)
  p2 <- lmm_pieces(score ~ Machine + (1 | Worker) + (1 | Worker:Machine), nlme::Machines)
  expect_identical(re_names(p2), c("Worker:Machine", "Worker"))
  expect_identical(head(levels(p2$reterms[[1]]$group), 4), c("6:A", "6:B", "6:C", "2:A"))
  expect_identical(as.integer(head(p2$reterms[[1]]$group, 5)), c(10L, 10L, 10L, 4L, 4L))
})

test_that("factor-valued slopes (0 + Machine | Worker) give one column per level", {
  p <- lmm_pieces(score ~ Machine + (0 + Machine | Worker), nlme::Machines)
  expect_identical(re_cnms(p), list(c("MachineA", "MachineB", "MachineC")))
  expect_identical(unname(rowSums(p$reterms[[1]]$Xt)), rep(1, 54))
})

test_that("Oats, Rail, ergoStool and MathAchieve pieces match lme4's", {
  p <- lmm_pieces(yield ~ nitro + Variety + (1 | Block/Variety), nlme::Oats)
  expect_identical(re_names(p), c("Variety:Block", "Block"))
  expect_identical(re_nl(p), c(18L, 6L))
  expect_identical(head(levels(p$reterms[[1]]$group), 2), c("Golden Rain:VI", "Golden Rain:V"))
  expect_identical(as.integer(head(p$reterms[[1]]$group, 5)), c(18L, 18L, 18L, 18L, 6L))
  expect_identical(colnames(p$X), c("(Intercept)", "nitro", "VarietyMarvellous", "VarietyVictory"))

  p <- lmm_pieces(travel ~ 1 + (1 | Rail), nlme::Rail)
  expect_identical(levels(p$reterms[[1]]$group), c("2", "5", "1", "6", "3", "4"))
  expect_identical(dim(p$X), c(18L, 1L))

  p <- lmm_pieces(effort ~ Type + (1 | Subject), nlme::ergoStool)
  expect_identical(re_nl(p), 9L)
  expect_identical(colnames(p$X), c("(Intercept)", "TypeT2", "TypeT3", "TypeT4"))

  p <- lmm_pieces(MathAch ~ SES * Sex + (SES | School), nlme::MathAchieve)
  expect_identical(re_nl(p), 160L)
  expect_identical(head(levels(p$reterms[[1]]$group), 4), c("8367", "8854", "4458", "5762"))
  expect_identical(colnames(p$X), c("(Intercept)", "SES", "SexFemale", "SES:SexFemale"))
})

test_that("random-only formulas, I(), function calls and offsets", {
  d <- small_data()
  p <- lmm_pieces(y ~ (1 | g), d)
  expect_identical(colnames(p$X), "(Intercept)")
  p0 <- lmm_pieces(y ~ 0 + (1 | g), d)
  expect_identical(dim(p0$X), c(12L, 0L))
  p <- lmm_pieces(y ~ I(x^2) + log(x + 2) + (log(x + 2) | g), d)
  expect_identical(colnames(p$X), c("(Intercept)", "I(x^2)", "log(x + 2)"))
  expect_identical(p$reterms[[1]]$cnms, c("(Intercept)", "log(x + 2)"))
  expect_equal(unname(p$reterms[[1]]$Xt[, 2]), log(d$x + 2))
  # offset() in the formula plus the offset argument (a column of data)
  p <- lmm_pieces(y ~ x + offset(2 * x) + (1 | g), d, offset = h)
  expect_equal(p$offset, 2 * d$x + d$h)
  expect_identical(colnames(p$X), c("(Intercept)", "x"))
  expect_true("(offset)" %in% names(p$frame))
  # character and numeric grouping variables become factors
  p <- lmm_pieces(y ~ x + (1 | g) + (1 | h), d)
  expect_identical(levels(p$reterms[[1]]$group), c("a", "b", "c"))
  expect_identical(levels(p$reterms[[2]]$group), c("1", "2"))
  expect_identical(re_names(p), c("g", "h"))
  p <- lmm_pieces(y ~ x + (1 | g:h), d)
  expect_identical(levels(p$reterms[[1]]$group), c("a:1", "a:2", "b:1", "b:2", "c:1", "c:2"))
  expect_identical(p$reterms[[1]]$name, "g:h")
})

test_that("poly() in the fixed part keeps predvars for prediction", {
  d <- small_data()
  p <- lmm_pieces(y ~ poly(x, 2) + (1 | g), d)
  expect_identical(colnames(p$X), c("(Intercept)", "poly(x, 2)1", "poly(x, 2)2"))
  pv <- attr(p$fixed_terms, "predvars")
  expect_true("coefs" %in% names(pv[[3]]))
  nd <- data.frame(x = d$x[1:3])
  mm <- model.matrix(delete.response(p$fixed_terms), model.frame(delete.response(p$fixed_terms), nd))
  expect_equal(unname(mm), unname(p$X[1:3, ]), ignore_attr = TRUE)
})

test_that("weights, subset and na.action are evaluated as in lm()", {
  d <- small_data()
  p <- lmm_pieces(y ~ x + (1 | g), d, weights = w)
  expect_identical(p$weights, d$w)
  wts <- d$w * 2
  p <- lmm_pieces(y ~ x + (1 | g), d, weights = wts)
  expect_identical(p$weights, d$w * 2)
  p <- lmm_pieces(y ~ x + (1 | g), d, subset = x > 0)
  expect_identical(length(p$y), sum(d$x > 0))
  d$x[c(2, 5)] <- NA
  p <- lmm_pieces(y ~ x + (1 | g), d)
  expect_identical(length(p$y), 10L)
  expect_identical(as.vector(attr(p$frame, "na.action")), c(2L, 5L))
  expect_identical(nrow(p$reterms[[1]]$Xt), 10L)
  p <- lmm_pieces(y ~ x + (1 | g), d, na.action = na.exclude)
  expect_s3_class(attr(p$frame, "na.action"), "exclude")
  expect_error(lmm_pieces(y ~ x + (1 | g), d, na.action = na.fail), "missing values")
  # NA weights are dropped with the row (lm and lme4 do the same)
  wna <- rep(1, 12)
  wna[3] <- NA
  d <- small_data()
  expect_identical(length(lmm_pieces(y ~ x + (1 | g), d, weights = wna)$y), 11L)
  expect_error(lmm_pieces(y ~ x + (1 | g), d, weights = wna, na.action = na.pass),
               "missing \\(NA\\) weights not allowed")
})

test_that("bad input gives clear errors", {
  d <- small_data()
  expect_error(lmm_pieces(y ~ x, d), "no random effects terms specified in formula")
  expect_error(lmm_pieces(y ~ x + (1 | zz), d), "variable 'zz' not found")
  expect_error(lmm_pieces(y ~ qq + (1 | zz), d), "variables 'qq', 'zz' not found")
  expect_error(lmm_pieces(~ x + (1 | g), d), "formula has no response")
  expect_error(lmm_pieces(g ~ x + (1 | h), d), "response 'g' must be a numeric vector")
  d2 <- d
  d2$y <- factor(d2$y > 3)
  expect_error(lmm_pieces(y ~ x + (1 | g), d2), "must be a numeric vector")
  d2 <- d
  d2$y <- 1
  expect_error(lmm_pieces(y ~ x + (1 | g), d2), "response is constant")
  d2 <- d
  d2$x[4] <- Inf
  expect_error(lmm_pieces(y ~ x + (1 | g), d2), "variable 'x' has infinite values")
  d2 <- d
  d2$y[4] <- -Inf
  expect_error(lmm_pieces(y ~ x + (1 | g), d2), "response 'y' has infinite values")
  d2 <- d
  d2$x <- NA
  expect_error(lmm_pieces(y ~ x + (1 | g), d2), "0 \\(non-NA\\) cases")
  expect_error(lmm_pieces(y ~ x + (1 | g), d[0, ]), "0 \\(non-NA\\) cases")
  expect_error(lmm_pieces(y ~ x + (1 | g), d, weights = -w), "negative weights not allowed")
  expect_error(lmm_pieces(y ~ x + (1 | g), d, weights = 1:3), "variable lengths differ")
  expect_error(lmm_pieces(y ~ x + (1 | g), d, weights = g), "'weights' must be a numeric vector")
  expect_error(lmm_pieces(y ~ x + (1 | g), "d"), "'data' must be a data frame")
  expect_error(lmm_pieces(y ~ x + (0 | g), d), "has no columns")
  expect_error(lmm_pieces(y ~ x + (1 | g), d, REML = NA), "'REML' must be TRUE or FALSE")
  expect_error(lmm_pieces(y ~ x + (1 | g), d, control = list(check.rankX = "oops")),
               "'check.rankX' must be one of")
})

test_that("lme4's checks on levels and numbers of random effects", {
  d <- small_data()
  d$one <- "k"
  expect_error(lmm_pieces(y ~ x + (1 | one), d),
               "grouping factor 'one' must have > 1 sampled level")
  d$id <- seq_len(12)
  expect_error(lmm_pieces(y ~ x + (1 | id), d),
               "number of levels of each grouping factor must be < number of observations \\(problems: id\\)")
  expect_warning(p <- lmm_pieces(y ~ x + (1 | id), d,
                                 control = lmm_control(check.nobs.vs.nlev = "warning",
                                                       check.nobs.vs.nRE = "ignore")),
                 "problems: id")
  expect_identical(re_nl(p), 12L)
  expect_error(lmm_pieces(y ~ x + (x | h:g), d),
               "number of observations \\(=12\\) <= number of random effects \\(=12\\) for term \\(x \\| h:g\\)")
  expect_silent(lmm_pieces(y ~ x + (x | h:g), d, control = lmm_control(check.nobs.vs.nRE = "ignore")))
})

test_that("rank-deficient X loses aliased columns with lme4's message", {
  d <- small_data()
  d$x2 <- 2 * d$x
  d$x3 <- d$x + d$h
  expect_message(p <- lmm_pieces(y ~ x + x2 + h + x3 + (1 | g), d),
                 "fixed-effect model matrix is rank deficient so dropping 2 columns / coefficients")
  expect_identical(colnames(p$X), c("(Intercept)", "x", "h"))
  expect_identical(attr(p$X, "dropped"), c("x2", "x3"))
  expect_identical(attr(p$X, "assign"), c(0L, 1L, 3L))
  expect_message(lmm_pieces(y ~ x + x2 + (1 | g), d), "dropping 1 column / coefficient")
  expect_error(lmm_pieces(y ~ x + x2 + (1 | g), d, control = lmm_control(check.rankX = "stop.deficient")),
               "rank deficient \\(rank\\(X\\) = 2 < 3 = p\\)")
  p <- lmm_pieces(y ~ x + x2 + (1 | g), d, control = lmm_control(check.rankX = "ignore"))
  expect_identical(ncol(p$X), 3L)
})

test_that("predictors on very different scales give lme4's warning", {
  d <- small_data()
  d$big <- d$x * 1e5 + d$h
  expect_warning(lmm_pieces(y ~ x + big + (1 | g), d),
                 "Some predictor variables are on very different scales: consider rescaling")
  expect_silent(lmm_pieces(y ~ x + big + (1 | g), d, control = lmm_control(check.scaleX = "ignore")))
  expect_error(lmm_pieces(y ~ x + big + (1 | g), d, control = lmm_control(check.scaleX = "stop")),
               "very different scales")
})

test_that("check_reterms validates and completes user-supplied terms", {
  g <- factor(rep(c("a", "b", "c"), 4), levels = c("c", "b", "a", "z"))
  rt <- check_reterms(list(list(group = g, Xt = matrix(1, 12, 1))), 12)
  expect_identical(levels(rt[[1]]$group), c("c", "b", "a"))
  expect_identical(rt[[1]]$name, "g1")
  expect_identical(rt[[1]]$cnms, "(Intercept)")
  rt <- check_reterms(list(site = list(group = rep(1:3, 4), Xt = cbind(1, 1:12))), 12)
  expect_identical(rt[[1]]$name, "site")
  expect_identical(rt[[1]]$cnms, c("x1", "x2"))
  expect_identical(colnames(rt[[1]]$Xt), c("x1", "x2"))
  expect_true(is.factor(rt[[1]]$group))
  expect_error(check_reterms(list(list(group = g[1:5], Xt = matrix(1, 12, 1))), 12),
               "'group' must be a factor of length 12")
  expect_error(check_reterms(list(list(group = g, Xt = matrix("a", 12, 1))), 12),
               "'Xt' must be a numeric matrix with 12 rows")
  expect_error(check_reterms(list(list(group = g, Xt = matrix(1, 12, 2), cnms = "a")), 12),
               "'cnms' must have 2 names")
  expect_error(check_reterms(list(), 12), "non-empty list")
  expect_error(check_reterms(list(list(group = factor(rep("a", 12)))), 12, lmm_control()),
               "must have > 1 sampled level")
  expect_identical(order_reterms(list(list(group = g), list(group = factor(1:12))))[[1]]$group,
                   factor(1:12))
})

test_that("lmm_control stores and validates its settings", {
  ctrl <- lmm_control()
  expect_s3_class(ctrl, "lmm_control")
  expect_identical(ctrl$optimizer, "quasi-newton")
  expect_identical(ctrl$maxeval, 10000L)
  expect_identical(ctrl$ftol_abs, 1e-8)
  expect_identical(ctrl$check.rankX, "message+drop.cols")
  expect_identical(ctrl$check.conv.singular, "message")
  expect_false(ctrl$calc.derivs)
  expect_null(ctrl$rhobeg)
  expect_identical(lmm_control(maxeval = 50)$maxeval, 50L)
  expect_error(lmm_control(optimizer = "foo"), "'optimizer' must be one of")
  expect_error(lmm_control(maxeval = -1), "'maxeval' must be a single positive whole number")
  expect_error(lmm_control(ftol_abs = NA), "'ftol_abs' must be a single non-negative number")
  expect_error(lmm_control(rhobeg = 0), "'rhobeg' must be NULL or a single positive number")
  expect_error(lmm_control(rhobeg = 0.1, rhoend = 1), "must not exceed 'rhobeg'")
  expect_error(lmm_control(check.conv.singular = "loud"), "'check.conv.singular' must be one of")
  expect_error(lmm_control(calc.derivs = "yes"), "'calc.derivs' must be TRUE or FALSE")
})

# ---- live comparisons with lme4::lFormula ----------------------------------------

expect_pieces_match_lme4 <- function(p, lf) {
  rt <- lf$reTrms
  expect_identical(re_names(p), names(rt$cnms))
  expect_identical(re_cnms(p), unname(rt$cnms))
  expect_identical(re_nl(p), unname(rt$nl))
  grp <- unique(lapply(p$reterms, `[[`, "group"))
  expect_identical(lapply(grp, levels), unname(lapply(rt$flist, levels)))
  expect_identical(lapply(grp, as.integer), unname(lapply(rt$flist, as.integer)))
  for (i in seq_along(p$reterms)) {
    # Zt of term i: row (level l, column j) holds Xt[, j] where group == l
    Zt <- rt$Ztlist[[i]]
    term <- p$reterms[[i]]
    k <- ncol(term$Xt)
    rows <- (as.integer(term$group) - 1L) * k
    for (j in seq_len(k)) {
      z <- as.matrix(Zt[cbind(rows + j, seq_along(rows))])
      expect_equal(as.vector(z), unname(term$Xt[, j]))
    }
  }
  expect_identical(colnames(p$X), colnames(lf$X))
  expect_equal(unname(p$X), unname(lf$X), ignore_attr = TRUE)
  expect_equal(p$y, unname(model.response(lf$fr)))
}

test_that("pieces equal lme4's lFormula on the reference data sets", {
  skip_if_not_installed("lme4")
  lf <- function(f, d) suppressMessages(lme4::lFormula(f, d))
  pc <- function(f, d) suppressMessages(lmm_pieces(f, d))
  ss <- lme4::sleepstudy
  ss$f <- factor(ss$Days %% 3)
  cases <- list(
    list(Reaction ~ Days + (Days | Subject), ss),
    list(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), ss),
    list(Reaction ~ Days + (Days || Subject), ss),
    list(Reaction ~ Days + (f || Subject), ss),
    list(Reaction ~ Days + (1 | f) + (Days | f:Subject) + (1 | Subject), ss),
    list(Reaction ~ log(Days + 1) + (poly(Days, 2) | Subject), ss),
    list(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin),
    list(strength ~ (1 | batch/cask), lme4::Pastes),
    list(angle ~ recipe * temperature + (1 | recipe:replicate), lme4::cake),
    list(distance ~ age + (age | Subject), nlme::Orthodont),
    list(score ~ Machine + (1 | Worker/Machine), nlme::Machines),
    list(yield ~ nitro + (1 | Block/Variety), nlme::Oats))
  for (cs in cases) expect_pieces_match_lme4(pc(cs[[1]], cs[[2]]), lf(cs[[1]], cs[[2]]))
})

test_that("Pastes and cake names and levels as lme4 (hard-coded)", {
  skip_if_not_installed("lme4")
  p <- lmm_pieces(strength ~ (1 | batch/cask), lme4::Pastes)
  expect_identical(re_names(p), c("cask:batch", "batch"))
  expect_identical(re_nl(p), c(30L, 10L))
  expect_identical(head(levels(p$reterms[[1]]$group), 4), c("a:A", "a:B", "a:C", "a:D"))
  expect_identical(as.integer(head(p$reterms[[1]]$group, 5)), c(1L, 1L, 11L, 11L, 21L))
  p <- lmm_pieces(angle ~ recipe * temperature + (1 | recipe:replicate), lme4::cake)
  expect_identical(re_nl(p), 45L)
  expect_identical(head(levels(p$reterms[[1]]$group), 4), c("A:1", "A:2", "A:3", "A:4"))
  expect_identical(ncol(p$X), 18L)
  expect_identical(colnames(p$X)[c(4, 9, 18)],
                   c("temperature.L", "recipeB:temperature.L", "recipeC:temperature^5"))
})

test_that("InstEval pieces: names, levels and order as lme4", {
  skip_if_not_installed("lme4")
  f <- y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)
  p <- lmm_pieces(f, lme4::InstEval)
  expect_identical(re_names(p), c("s", "d", "dept:service"))
  expect_identical(re_nl(p), c(2972L, 1128L, 28L))
  expect_identical(head(levels(p$reterms[[3]]$group), 4), c("15:0", "15:1", "5:0", "5:1"))
  expect_identical(as.integer(head(p$reterms[[3]]$group, 5)), c(27L, 10L, 27L, 24L, 3L))
  expect_identical(as.integer(head(p$reterms[[2]]$group, 5)), c(525L, 560L, 832L, 1068L, 62L))
  expect_identical(colnames(p$X), c("(Intercept)", "service1"))
  lf <- lme4::lFormula(f, lme4::InstEval)
  for (i in 1:3) {
    expect_identical(levels(p$reterms[[i]]$group), levels(lf$reTrms$flist[[i]]))
    expect_identical(as.integer(p$reterms[[i]]$group), as.integer(lf$reTrms$flist[[i]]))
  }
})

test_that("weights and offset equal lme4's frame", {
  skip_if_not_installed("lme4")
  d <- small_data()
  p <- lmm_pieces(y ~ x + offset(x) + (1 | g), d, weights = w, offset = h)
  lf <- lme4::lFormula(y ~ x + offset(x) + (1 | g), d, weights = w, offset = h)
  expect_equal(p$weights, unname(model.weights(lf$fr)))
  expect_equal(p$offset, unname(model.offset(lf$fr)))
  expect_identical(names(p$frame), names(lf$fr))
})

test_that("the plain frame path gives model.frame()'s frame, identical", {
  ss <- readRDS(test_path("data", "sleepstudy.rds"))
  ss$ch <- as.character(ss$Subject)
  ss$lg <- ss$Days > 4
  ss$f <- factor(ss$Days %% 3, levels = 0:5)             # unused levels 3:5 are dropped
  ss$ord <- factor(ss$Days %% 2, ordered = TRUE)
  ss$i <- as.integer(ss$Days)
  forms <- list(Reaction ~ Days + (Days | Subject),
                Reaction ~ log(Days + 1) + I(Days^2) + (1 | ch),
                Reaction ~ poly(Days, 2) + lg + f + ord + (1 | Subject),
                Reaction ~ scale(Days) * i + (1 | Subject:f),
                log(Reaction) ~ 0 + Days + (0 + i || Subject))
  for (f in forms) {
    ff <- frame_formula(f)
    for (d in list(ss, ss[ss$Days < 5, ], ss[rev(seq_len(nrow(ss))), ])) {
      fast <- plain_frame(ff, d)
      expect_false(is.null(fast))
      expect_identical(fast, stats::model.frame(ff, d, drop.unused.levels = TRUE),
                       label = deparse1(f))
    }
  }
  # cases it leaves to model.frame(): missing values, '.', a non-data-frame
  na <- ss
  na$Days[3] <- NA
  expect_null(plain_frame(frame_formula(forms[[1]]), na))
  expect_null(plain_frame(frame_formula(Reaction ~ . + (1 | Subject)), ss))
  expect_null(plain_frame(frame_formula(forms[[1]]), as.list(ss)))
  p <- lmm_pieces(forms[[1]], na)
  expect_identical(nobs(lmm(forms[[1]], na)), 179L)
  expect_s3_class(attr(p$frame, "na.action"), "omit")
  # a custom na.action is always model.frame()'s business
  expect_true(standard_na_action("na.omit"))
  expect_true(standard_na_action(stats::na.exclude))
  expect_false(standard_na_action(function(x) x))
})

test_that("numeric_design gives model.matrix() for plain numeric terms, else NULL", {
  ss <- readRDS(test_path("data", "sleepstudy.rds"))
  ss$i <- as.integer(2 * ss$Days)
  for (f in list(Reaction ~ Days, Reaction ~ 0 + Days, Reaction ~ 1, Reaction ~ 0,
                 Reaction ~ i + Days, Reaction ~ log(Days + 1), ~ Days, ~ 1, ~ 0 + i)) {
    tt <- stats::terms(f)
    fr <- stats::model.frame(tt, ss)
    X <- stats::model.matrix(tt, fr)
    rownames(X) <- NULL
    expect_identical(numeric_design(tt, fr), X, label = deparse1(f))
  }
  for (f in list(Reaction ~ Subject, Reaction ~ Days:i, Reaction ~ poly(Days, 2),
                 Reaction ~ I(Days^2))) {
    tt <- stats::terms(f)
    expect_null(numeric_design(tt, stats::model.frame(tt, ss)), label = deparse1(f))
  }
})

test_that("zero weights are refused by lmm() as by lmm_fit()", {
  sleep <- ref_data("sleepstudy")
  w <- rep(1, nrow(sleep))
  w[3] <- 0
  expect_error(lmm_pieces(Reaction ~ Days + (Days | Subject), sleep, weights = w),
               "zero weights are not supported (1 rows): drop those rows", fixed = TRUE)
})

test_that("a random-effects column that is zero in every row is named (the criterion is flat)", {
  sleep <- ref_data("sleepstudy")
  sleep$z <- 0
  expect_error(lmm_pieces(Reaction ~ Days + (z | Subject), sleep),
               "random-effects term (z | Subject): column 'z' is zero in every row", fixed = TRUE)
  expect_error(lmm_fit(sleep$Reaction, cbind(1, sleep$Days),
                       list(list(group = sleep$Subject, Xt = cbind(a = rep(1, 180), b = 0)))),
               "column 'b' is zero in every row", fixed = TRUE)
})

test_that("NA as an explicit level of a grouping factor (addNA) is a level", {
  sleep <- ref_data("sleepstudy")
  g <- sleep$Subject
  g[g == "308"] <- NA
  sleep$g <- addNA(g)
  p <- lmm_pieces(Reaction ~ Days + (1 | g), sleep)
  expect_identical(nlevels(p$reterms[[1]]$group), 18L)
  expect_false(anyNA(unclass(p$reterms[[1]]$group)))
  fit <- lmm(Reaction ~ Days + (1 | g), sleep)
  sleep$h <- factor(ifelse(is.na(g), "none", as.character(g)))
  ref <- lmm(Reaction ~ Days + (1 | h), sleep)        # the same level under a name
  expect_equal(fit$crit, ref$crit, tolerance = 1e-12)
  expect_equal(fit$crit, 1786.46508539577, tolerance = 1e-8)   # lmmc, level renamed
  # lme4 1.1-31 keeps the 180 rows but counts 17 groups (the NA rows get no random effect):
  # REML criterion 1793.80885387698, so it is not compared here.
  g2 <- sleep$Subject
  g2[1] <- NA                                          # a real NA (not a level) is still refused
  sleep$g2 <- g2
  expect_error(lmm_fit(sleep$Reaction, cbind(1, sleep$Days), list(list(group = g2))),
               "'group' has missing values", fixed = TRUE)
})
