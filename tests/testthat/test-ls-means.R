# Least-squares means (R/ls-means.R) against lmerTest 3.1-3: tables recorded below from
# as.data.frame(lmerTest::ls_means(m)) / difflsmeans(m) on lmerTest::lmer fits of the same
# models (Satterthwaite and Kenward-Roger df), live comparisons when lmerTest is installed.

hsb_data_lsm <- function() {
  ma <- as.data.frame(nlme::MathAchieve)
  school <- as.data.frame(nlme::MathAchSchool)
  ma$Sector <- school$Sector[match(as.character(ma$School), as.character(school$School))]
  ma$School <- factor(as.character(ma$School))
  ma
}

test_that("recorded: ls_means() and difflsmeans() (Orthodont, ham, cake)", {
  lsm_ortho <- structure(list(term = c("Sex", "Sex"), levels = c("Male", "Female"
  ), Estimate = c(24.96875, 22.64772727), `Std. Error` = c(0.4860007588, 
  0.586138969), df = c(24.99999929, 24.99999931), `t value` = c(51.37594859, 
  38.63883562), lower = c(23.9678127, 21.44055147), upper = c(25.9696873, 
  23.85490308), `Pr(>|t|)` = c(7.154865324e-27, 8.136979791e-24
  )), row.names = c("SexMale", "SexFemale"), class = "data.frame")
  dlsm_ortho <- structure(list(term = "Sex", levels = "Male - Female", Estimate = 2.321022727, 
      `Std. Error` = 0.761416856, df = 24.9999993, `t value` = 3.048294386, 
      lower = 0.7528553554, upper = 3.889190099, `Pr(>|t|)` = 0.005375056414), row.names = "SexMale - SexFemale", class = "data.frame")
  lsm_ham <- structure(list(term = c("Product", "Product", "Product", "Product", 
  "Information", "Information", "Product:Information", "Product:Information", 
  "Product:Information", "Product:Information", "Product:Information", 
  "Product:Information", "Product:Information", "Product:Information"
  ), levels = c("1", "2", "3", "4", "1", "2", "1:1", "2:1", "3:1", 
  "4:1", "1:2", "2:2", "3:2", "4:2"), Estimate = c(5.808641975, 
  5.104938272, 6.092592593, 5.925925926, 5.632716049, 5.833333333, 
  5.728395062, 4.901234568, 5.87654321, 6.024691358, 5.888888889, 
  5.308641975, 6.308641975, 5.827160494), `Std. Error` = c(0.1929081133, 
  0.1929081133, 0.1929081133, 0.1929081133, 0.1539522719, 0.1539522719, 
  0.2534521976, 0.2534521976, 0.2534521976, 0.2534521976, 0.2534521976, 
  0.2534521976, 0.2534521976, 0.2534521976), df = c(320.357219, 
  320.357219, 320.357219, 320.357219, 153.0346074, 153.0346074, 
  544.1670939, 544.1670939, 544.1670939, 544.1670939, 544.1670939, 
  544.1670939, 544.167094, 544.1670939), `t value` = c(30.11092627, 
  26.46305635, 31.58287378, 30.71890459, 36.58741752, 37.89053102, 
  22.60148113, 19.33790519, 23.1860022, 23.77052326, 23.23471229, 
  20.94533812, 24.8908553, 22.99116184), lower = c(5.4291152, 4.725411497, 
  5.713065818, 5.546399151, 5.32856998, 5.529187264, 5.23053055, 
  4.403370056, 5.378678698, 5.526826846, 5.391024377, 4.810777463, 
  5.810777463, 5.329295982), upper = c(6.18816875, 5.484465047, 
  6.472119368, 6.305452701, 5.936862118, 6.137479402, 6.226259574, 
  5.39909908, 6.374407722, 6.52255587, 6.386753401, 5.806506487, 
  6.806506487, 6.325025006), `Pr(>|t|)` = c(1.97157922e-95, 1.322128113e-82, 
  2.10316663e-100, 1.686003003e-97, 1.463085116e-77, 1.172428882e-79, 
  2.895178545e-80, 8.300430486e-64, 3.13178909e-83, 3.386242284e-86, 
  1.772560692e-83, 7.019949936e-72, 7.09073131e-92, 3.051649482e-82
  )), row.names = c("Product1", "Product2", "Product3", "Product4", 
  "Information1", "Information2", "Product1:Information1", "Product2:Information1", 
  "Product3:Information1", "Product4:Information1", "Product1:Information2", 
  "Product2:Information2", "Product3:Information2", "Product4:Information2"
  ), class = "data.frame")
  dlsm_ham_kr <- structure(list(term = c("Product", "Product", "Product", "Product", 
  "Product", "Product"), levels = c("1 - 2", "1 - 3", "1 - 4", 
  "2 - 3", "2 - 4", "3 - 4"), Estimate = c(0.7037037037, -0.2839506173, 
  -0.1172839506, -0.987654321, -0.8209876543, 0.1666666667), `Std. Error` = c(0.2324843061, 
  0.2324843061, 0.2324843061, 0.2324843061, 0.2324843061, 0.2324843061
  ), df = c(560, 560, 560, 560, 560, 560), `t value` = c(3.026886914, 
  -1.221375421, -0.5044811523, -4.248262335, -3.531368066, 0.716894269
  ), lower = c(0.2470558913, -0.7405984297, -0.573931763, -1.444302133, 
  -1.277635467, -0.2899811458), upper = c(1.160351516, 0.1726971951, 
  0.3393638618, -0.5310065086, -0.3643398419, 0.6233144791), `Pr(>|t|)` = c(0.002584478585, 
  0.2224578429, 0.6141217408, 2.522883782e-05, 0.0004474713916, 
  0.4737382242)), row.names = c("Product1 - Product2", "Product1 - Product3", 
  "Product1 - Product4", "Product2 - Product3", "Product2 - Product4", 
  "Product3 - Product4"), class = "data.frame")
  lsm_cake_kr <- structure(list(term = c("recipe", "recipe", "recipe"), levels = c("A", 
  "B", "C"), Estimate = c(33.12222222, 31.64444444, 31.6), `Std. Error` = c(1.736833397, 
  1.736833397, 1.736833397), df = c(42, 42, 42), `t value` = c(19.07046598, 
  18.21961997, 18.19403061), lower = c(30.20095119, 28.72317342, 
  28.67872897), upper = c(36.04349325, 34.56571547, 34.52127103
  ), `Pr(>|t|)` = c(2.670847497e-22, 1.483884323e-21, 1.563935403e-21
  )), row.names = c("recipeA", "recipeB", "recipeC"), class = "data.frame")
  fit <- lmm(distance ~ age * Sex + (1 | Subject), as.data.frame(ref_data("Orthodont")))
  lsm <- ls_means(fit)
  expect_s3_class(lsm, "ls_means_lmm")
  expect_table_close(as.data.frame(lsm), lsm_ortho)
  expect_identical(attr(lsm, "ddf"), "Satterthwaite")
  expect_table_close(as.data.frame(difflsmeans(fit)), dlsm_ortho)
  fit <- lmm(Informed.liking ~ Product * Information + (1 | Consumer), ref_data("ham"))
  expect_table_close(as.data.frame(ls_means(fit)), lsm_ham)
  expect_table_close(as.data.frame(difflsmeans(fit, which = "Product", ddf = "Kenward-Roger")),
                     dlsm_ham_kr)
  fit <- lmm(angle ~ recipe * temperature + (1 | recipe:replicate), ref_data("cake"))
  lsm <- ls_means(fit, which = "recipe", ddf = "Kenward-Roger", level = 0.9)
  expect_table_close(as.data.frame(lsm), lsm_cake_kr)
  expect_identical(attr(lsm, "confidence_level"), 0.9)
  out <- capture.output(print(lsm))
  expect_match(out[1], "Least Squares Means table:")
  expect_true(any(grepl("Confidence level: 90%", out)))
  expect_true(any(grepl("Degrees of freedom method: Kenward-Roger", out)))
})

test_that("LS means are cell-mean averages; non-estimable rows are NA", {
  # balanced two-way layout with a full interaction: the LS mean of a level is its raw mean
  fit <- lmm(Informed.liking ~ Product * Information + (1 | Consumer), ref_data("ham"))
  ham <- ref_data("ham")
  lsm <- ls_means(fit, which = "Product")
  expect_equal(lsm$Estimate, as.vector(tapply(ham$Informed.liking, ham$Product, mean)),
               tolerance = 1e-8)
  # a missing cell: the interaction's LS mean there, and the main effects, are not estimable
  sleep <- ref_data("sleepstudy")
  sleep$g <- factor(rep(c("a", "b", "c"), each = 60))
  sleep$h <- factor(rep(1:4, 45))
  sub <- sleep[!(sleep$g == "a" & sleep$h == "1"), ]
  fit <- suppressMessages(lmm(Reaction ~ g * h + (1 | Subject), sub))
  lsm <- ls_means(fit)
  expect_identical(is.na(lsm[c("ga", "gb", "h1", "h2"), "Estimate"]), c(TRUE, FALSE, TRUE, FALSE))
  expect_true(is.na(lsm["ga:h1", "Estimate"]))
  expect_false(is.na(lsm["gb:h1", "Estimate"]))
  # no factor terms: an empty table
  lsm <- ls_means(lmm(Reaction ~ Days + (1 | Subject), sleep))
  expect_identical(nrow(lsm), 0L)
  expect_error(ls_means(fit, which = "Days"), "factor terms")
})

test_that("ls_means() and difflsmeans() match lmerTest live", {
  skip_if_not_installed("lmerTest")
  sleep <- ref_data("sleepstudy")
  sleep$g <- factor(rep(c("a", "b", "c"), each = 60))
  sleep$h <- factor(rep(1:4, 45))
  cases <- list(
    list(Reaction ~ g * h + (1 | Subject), sleep[!(sleep$g == "a" & sleep$h == "1"), ]),
    list(Reaction ~ Days * g + (1 | Subject), sleep),
    list(MathAch ~ SES * Sector + (1 | School), hsb_data_lsm()))
  for (cs in cases) {
    m <- suppressMessages(lmerTest::lmer(cs[[1]], data = cs[[2]]))
    fit <- suppressMessages(lmm(cs[[1]], data = cs[[2]]))
    for (pairwise in c(FALSE, TRUE)) {
      ref <- as.data.frame(suppressMessages(lmerTest::ls_means(m, pairwise = pairwise)))
      expect_table_close(as.data.frame(ls_means(fit, pairwise = pairwise)), ref)
    }
  }
})

test_that("ls_means() and difflsmeans() of a residual fit: Satterthwaite df of contest()", {
  od <- as.data.frame(ref_data("Orthodont"))
  fit <- lmm(distance ~ age + Sex + (1 | Subject), od,
             correlation = nlme::corAR1(form = ~ 1 | Subject),
             variance = nlme::varIdent(form = ~ 1 | Sex))
  lsm <- as.data.frame(ls_means(fit))
  L <- attr(ls_means(fit), "hypotheses")[["Sex"]]
  ref <- contest(fit, L, joint = FALSE)
  expect_equal(lsm$df, ref$df, tolerance = 1e-10)
  expect_equal(lsm$Estimate, ref$Estimate, tolerance = 1e-10)
  dl <- as.data.frame(difflsmeans(fit))
  dref <- contest(fit, L[1, ] - L[2, ], joint = FALSE)
  expect_equal(dl$df, dref$df, tolerance = 1e-10)
  expect_equal(dl$df, 25.13687, tolerance = 1e-5)   # the SexFemale coefficient's df (recorded)
  # a structure fixed at the identity: the plain fit's table
  fits <- identity_fits()
  expect_equal(as.data.frame(ls_means(at_estimates_of(fits$vi, fits$plain))),
               as.data.frame(ls_means(fits$plain)), tolerance = 1e-8)
})
