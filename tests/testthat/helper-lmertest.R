# Shared by test-ranova.R, test-ls-means.R, test-step.R and test-anova.R: compare a table (data
# frame) with one recorded from lmerTest.  Names, row names and character columns must be
# identical, NA cells must coincide; numeric columns agree to tol relative (df and p-value
# columns, which depend on theta through derivatives, to df_tol; p-values below 1e-12 on an
# absolute floor).
expect_table_close <- function(actual, ref, tol = 1e-4, df_tol = 2e-3,
                               loose = c("df", "DenDF", "Pr(>|t|)", "Pr(>F)", "Pr(>Chisq)")) {
  actual <- as.data.frame(actual)
  attributes(actual) <- attributes(actual)[c("names", "row.names", "class")]
  testthat::expect_identical(names(actual), names(ref))
  testthat::expect_identical(rownames(actual), rownames(ref))
  for (col in names(ref)) {
    a <- actual[[col]]
    e <- ref[[col]]
    if (!is.numeric(e)) {
      testthat::expect_identical(a, e, label = col)
      next
    }
    testthat::expect_identical(is.na(a), is.na(e), label = paste("NA cells of", col))
    ok <- !is.na(e)
    if (!any(ok)) next
    loose_col <- col %in% loose
    expect_close(a[ok], e[ok], tol = if (loose_col) df_tol else tol,
                 scale = if (grepl("^Pr", col)) 1e-12 else 1e-8, what = col)
  }
}
