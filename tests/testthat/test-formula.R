# Random-term syntax: bars, ||, nested and interaction grouping, fixed part.

bars_of <- function(f) vapply(find_bars(f), deparse1, "")

test_that("find_bars returns the bar terms in formula order", {
  expect_identical(bars_of(Reaction ~ Days + (Days | Subject)), "Days | Subject")
  expect_identical(bars_of(y ~ x + (1 | a) + (1 | b)), c("1 | a", "1 | b"))
  expect_identical(bars_of(y ~ (1 | g)), "1 | g")
  expect_identical(bars_of(y ~ log(x) + (log(x) | g:h)), "log(x) | g:h")
  expect_identical(bars_of(y ~ x + (0 + f | g) + offset(z)), "0 + f | g")
  expect_length(find_bars(y ~ x + z), 0L)
  # several terms on one grouping factor
  expect_identical(bars_of(y ~ (1 | g) + (0 + x | g)), c("1 | g", "0 + x | g"))
})

test_that("|| expands into uncorrelated terms as lme4", {
  expect_identical(bars_of(Reaction ~ Days + (Days || Subject)),
                   c("1 | Subject", "0 + Days | Subject"))
  expect_identical(bars_of(y ~ (f * x || g)),
                   c("1 | g", "0 + f | g", "0 + x | g", "0 + f:x | g"))
  expect_identical(bars_of(y ~ (0 + x || g)), "0 + x | g")
  expect_identical(bars_of(y ~ (1 || g)), "1 | g")
  expect_identical(bars_of(y ~ (x + I(x^2) || g)),
                   c("1 | g", "0 + x | g", "0 + I(x^2) | g"))
  expect_error(find_bars(y ~ (0 || g)), "has no columns")
})

test_that("nested grouping a/b/c expands innermost first with lme4's names", {
  expect_identical(bars_of(strength ~ (1 | batch/cask)), c("1 | cask:batch", "1 | batch"))
  expect_identical(bars_of(y ~ x + (1 | a/b/c)), c("1 | c:(b:a)", "1 | b:a", "1 | a"))
  expect_identical(bars_of(y ~ (x | a/(b:c))), c("x | (b:c):a", "x | a"))
  expect_identical(bars_of(y ~ x + (x || a/b)),
                   c("1 | b:a", "1 | a", "0 + x | b:a", "0 + x | a"))
  expect_error(find_bars(y ~ (1 | a:(b/c))), "unparseable formula for grouping factor")
  expect_identical(vapply(find_bars(y ~ (1 | a/b)), bar_group_name, ""), c("b:a", "a"))
})

test_that("fixed_formula removes the bars as lme4's nobars", {
  ff <- function(f) deparse1(fixed_formula(f))
  expect_identical(ff(y ~ x + (1 | g)), "y ~ x")
  expect_identical(ff(y ~ (1 | g)), "y ~ 1")
  expect_identical(ff(y ~ 0 + (1 | g)), "y ~ 0")
  expect_identical(ff(y ~ x + offset(z) + (x || g)), "y ~ x + offset(z)")
  expect_identical(ff(log(y) ~ I(x^2) + (log(x) | g)), "log(y) ~ I(x^2)")
  expect_identical(ff(y ~ x * z + (1 | a) + (0 + x | b)), "y ~ x * z")
  e <- new.env()
  f <- y ~ x + (1 | g)
  environment(f) <- e
  expect_identical(environment(fixed_formula(f)), e)
})

test_that("frame_formula keeps every variable of both parts", {
  f <- y ~ x + (z || g) + (1 | a/b) + offset(o)
  expect_identical(deparse1(frame_formula(f)),
                   "y ~ x + ((1 + g) + (0 + z + g)) + (1 + a/b) + offset(o)")
  expect_setequal(all.vars(frame_formula(f)), c("y", "x", "z", "g", "a", "b", "o"))
})

test_that("interact_factors orders levels first factor slowest, drops unseen pairs", {
  f1 <- factor(c("b", "a", "b", "c"), levels = c("c", "b", "a"))
  f2 <- factor(c("x", "y", "x", "x"))
  fi <- interact_factors(f1, f2)
  expect_identical(levels(fi), c("c:x", "b:x", "a:y"))
  expect_identical(as.character(fi), c("b:x", "a:y", "b:x", "c:x"))
})

test_that("eval_group makes factors from numeric and character variables", {
  fr <- data.frame(g = c(3, 1, 2, 1, 3, 10), h = c("b", "a", "b", "a", "c", "c"),
                   stringsAsFactors = FALSE)
  g <- eval_group(quote(g), fr, globalenv())
  expect_identical(levels(g), c("1", "2", "3", "10"))
  gh <- eval_group(quote(g:h), fr, globalenv())
  expect_identical(levels(gh), c("1:a", "2:b", "3:b", "3:c", "10:c"))
  expect_identical(as.integer(gh), c(3L, 1L, 2L, 1L, 4L, 5L))
  # three-way nesting c:(b:a)
  fr3 <- data.frame(a = c("p", "q", "p", "q"), b = c(1, 1, 2, 2), c = c("u", "v", "u", "v"))
  g3 <- eval_group(quote(c:(b:a)), fr3, globalenv())
  expect_identical(levels(g3), c("u:1:p", "u:2:p", "v:1:q", "v:2:q"))
  fr$g[2] <- NA
  expect_error(eval_group(quote(g), fr, globalenv()), "grouping factor 'g' has missing values")
})

test_that("reterms_order follows lme4's rev(order(nl)) rule", {
  expect_identical(reterms_order(c(30L, 10L)), 1:2)
  expect_identical(reterms_order(c(10L, 30L)), 2:1)
  expect_identical(reterms_order(c(18L, 18L)), 1:2)
  # ties end up reversed once a reorder happens
  expect_identical(reterms_order(c(5L, 5L, 10L)), c(3L, 2L, 1L))
  expect_identical(reterms_order(c(6L, 24L, 6L)), c(2L, 3L, 1L))
})

test_that("formula helpers agree with lme4", {
  skip_if_not_installed("lme4")
  fs <- list(y ~ x + (x || g), y ~ x + (1 | a/b/c), y ~ (f * x || g) + (1 | h),
             y ~ x + (x || a/b) + offset(z), log(y) ~ I(x^2) + (log(x) | g:h),
             y ~ 0 + (1 | g), y ~ (1 | g) - 1, y ~ x + (1 | a/(b:c)),
             y ~ x + (1 | g) + (0 + x | g) + (1 | h))
  for (f in fs) {
    expect_identical(bars_of(f), vapply(lme4::findbars(f), deparse1, ""))
    expect_identical(deparse1(fixed_formula(f)), deparse1(lme4::nobars(f)))
    expect_identical(deparse1(frame_formula(f)),
                     deparse1(lme4::subbars(lme4::expandDoubleVerts(f))))
  }
})

## ---- the formula a fit keeps: `||` expanded, `.` expanded ------------------------------------
## Reference numbers from lme4 1.1-31 (R 4.2.2).

test_that("a fit keeps the formula with || expanded, so update() can remove one piece", {
  sleep <- ref_data("sleepstudy")
  fit <- lmm(Reaction ~ Days + (Days || Subject), sleep)
  # lme4: formula(fit) is Reaction ~ Days + ((1 | Subject) + (0 + Days | Subject))
  expect_identical(deparse1(formula(fit)),
                   "Reaction ~ Days + ((1 | Subject) + (0 + Days | Subject))")
  expect_identical(deparse1(getCall(fit)$formula), deparse1(formula(fit)))
  up <- update(fit, . ~ . - (0 + Days | Subject))
  expect_identical(deparse1(formula(up)), "Reaction ~ Days + (1 | Subject)")
  expect_length(up$reterms, 1L)
  # lme4: REMLcrit 1786.46508539 after the update, 1743.66929358 before
  expect_crit(REMLcrit(up), 1786.46508539)
  expect_crit(REMLcrit(fit), 1743.66929358)
  skip_if_not_installed("lme4")
  f7 <- lme4::lmer(Reaction ~ Days + (Days || Subject), sleep)
  expect_identical(formula(fit), formula(f7))
  expect_identical(formula(up), formula(update(f7, . ~ . - (0 + Days | Subject))))
})

test_that("'.' in the fixed part stands for the data's columns other than the response", {
  sleep <- ref_data("sleepstudy")
  d <- sleep[, c("Reaction", "Days", "Subject")]
  d$z <- round(sin(seq_len(nrow(d))), 3)
  fit <- lmm(Reaction ~ . + (1 | Subject), d)
  # lme4 fits Days, Subject and z as fixed effects: REMLcrit 1606.32710471,
  # (Intercept) 295.46360694731, Days 10.46029309705, z -2.84465165969
  expect_identical(deparse1(formula(fit)), "Reaction ~ Days + Subject + z + (1 | Subject)")
  expect_length(fixef(fit), 20L)
  expect_close(fixef(fit)[c("(Intercept)", "Days", "z")],
               c(295.46360694731, 10.46029309705, -2.84465165969), tol = 1e-5)
  expect_crit(REMLcrit(fit), 1606.32710471)
  # . - School (MathAchieve): lme4 REMLcrit 46568.5797835, fixef 12.66126178548,
  # 2.19116533567, 3.67503735711
  data(MathAchieve, package = "nlme", envir = environment())
  dm <- as.data.frame(MathAchieve[, c("MathAch", "SES", "MEANSES", "School")])
  fm <- lmm(MathAch ~ . - School + (1 | School), dm)
  expect_identical(names(fixef(fm)), c("(Intercept)", "SES", "MEANSES"))
  expect_close(fixef(fm), c(12.66126178548, 2.19116533567, 3.67503735711), tol = 1e-5)
  expect_crit(REMLcrit(fm), 46568.5797835)
  # a response transformation: its variable is left out of '.'; '.' inside products
  f2 <- lmm(log(Reaction) ~ Days * . + (1 | Subject), d[, c("Reaction", "Days", "Subject")])
  expect_identical(deparse1(formula(f2)), "log(Reaction) ~ Days * (Days + Subject) + (1 | Subject)")
  expect_error(lmm(Reaction ~ . + (1 | Subject)), "'.' in the formula needs a 'data' argument")
  skip_if_not_installed("lme4")
  fl <- suppressWarnings(lme4::lmer(Reaction ~ . + (1 | Subject), d))
  expect_close(fixef(fit), lme4::fixef(fl), tol = 1e-5)
  expect_identical(names(fixef(fit)), names(lme4::fixef(fl)))
})
