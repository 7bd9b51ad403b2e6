# Pseudo-rows (R/pseudo-rows.R): weighted points with exactly each cell's moment matrix
# M_c = sum_i w_i [1 v_i][1 v_i]'.

moment_matrix <- function(V, w) crossprod(sqrt(w) * cbind(1, V))

# the cell moments pseudo_rows() takes, from rows V (n x D) with weights w in cells `cell`
cell_moments_of <- function(V, w, cell, shift = numeric(ncol(V))) {
  D <- ncol(V)
  Vc <- sweep(V, 2L, shift)
  iu <- which(upper.tri(diag(D), diag = TRUE), arr.ind = TRUE)
  iu <- iu[order(iu[, "col"], iu[, "row"]), , drop = FALSE]
  list(n = as.vector(rowsum(rep(1, nrow(V)), cell)), W = as.vector(rowsum(w, cell)),
       S1 = rowsum(w * Vc, cell, reorder = TRUE),
       S2 = rowsum(w * Vc[, iu[, 1L], drop = FALSE] * Vc[, iu[, 2L], drop = FALSE], cell),
       shift = shift)
}

test_that("a rank-deficient cell gives 2r points with its moment matrix", {
  set.seed(3)
  V <- cbind(rnorm(9, 100), rnorm(9), 1)
  V[, 3] <- V[, 1] - 2 * V[, 2]                        # rank 2 in 3 columns
  w <- runif(9)
  m <- colSums(w * V) / sum(w)
  S <- crossprod(sqrt(w) * sweep(V, 2L, m)) / sum(w)
  pts <- lmmc:::cell_points(S, m, sum(w))
  expect_identical(nrow(pts$V), 4L)
  expect_equal(moment_matrix(pts$V, pts$w), moment_matrix(V, w), tolerance = 1e-13)
  one <- lmmc:::cell_points(matrix(0, 3, 3), m, 2)      # identical rows: one point, the mean
  expect_equal(one$V, matrix(m, 1L))
  expect_identical(one$w, 2)
})

test_that("all cells at once: every cell's moments, one-row cells passed as their row", {
  set.seed(4)
  n <- 400
  cell <- sort(sample(60, n, TRUE))
  V <- cbind(rnorm(n, 50, 3), rnorm(n), rnorm(n, 1e3))
  V[cell == 7, 2] <- 0.5                               # a column constant within a cell
  w <- runif(n, 0.5, 2)
  keep <- !duplicated(cell) | cell != 11               # cell 11: one row
  V <- V[keep, ]; w <- w[keep]; cell <- cell[keep]
  cm <- cell_moments_of(V, w, cell, shift = c(50, 0, 1e3))
  pr <- lmmc:::pseudo_rows(cm)
  ids <- sort(unique(cell))
  for (c in seq_along(ids)) {
    here <- pr$cell == c
    expect_equal(moment_matrix(pr$V[here, , drop = FALSE], pr$w[here]),
                 moment_matrix(V[cell == ids[c], , drop = FALSE], w[cell == ids[c]]),
                 tolerance = 1e-12, label = paste("cell", ids[c]))
  }
  expect_identical(sum(pr$cell == match(11, ids)), 1L)
  expect_equal(pr$V[pr$cell == match(11, ids), ], V[cell == 11, ], tolerance = 1e-12)
  expect_identical(sum(pr$cell == match(7, ids)), 4L)  # rank 2: four points
  expect_true(all(diff(pr$cell) >= 0))                 # in cell order
})
