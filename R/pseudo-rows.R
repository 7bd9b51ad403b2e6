# Pseudo-rows: a few weighted rows per cell with exactly the cell's moment matrix (the
# construction is stated at the top of R/aggregate.R).

# cm: list(keys (data frame, a row per cell), n (counts), W (sum w), S1 (cells x D, sum w (v - a)),
# S2 (cells x D(D+1)/2, sum w (v - a)_i (v - a)_j, i <= j by columns), shift a, sumlogw).
# Result: list(cell (index of each pseudo-row's cell), V (pseudo-rows x D), w (weights)).
# All cells at once: S = L L' by a Cholesky factorisation run on every cell together (entry
# (i, j) of every cell's matrix is one vector), a pivot at rounding level (below 64 eps of the
# column's second moment S_kk + m_k^2, the size of the cancellation in S) ending its column: the
# r kept columns l_j give S = sum_j l_j l_j' and the points m +- sqrt(r) l_j (any such sum does).
pseudo_rows <- function(cm) {
  D <- length(cm$shift)
  W <- cm$W
  m <- cm$S1 / W
  iu <- which(upper.tri(diag(D), diag = TRUE), arr.ind = TRUE)
  iu <- iu[order(iu[, "col"], iu[, "row"]), , drop = FALSE]
  A <- matrix(list(), D, D)                        # A[[i, j]], i >= j: the cells' S_ij
  for (k in seq_len(nrow(iu))) {
    i <- iu[k, "col"]
    j <- iu[k, "row"]
    A[[i, j]] <- cm$S2[, k] / W - m[, i] * m[, j]
  }
  L <- cell_cholesky(A, m, D)
  if (!is.null(cm$n))                              # a cell of one row: the row itself
    for (j in seq_len(D)) L[[j, j]][cm$n == 1] <- 0
  kept <- vapply(seq_len(D), function(j) any(L[[j, j]] > 0), NA)
  r <- Reduce(`+`, lapply(seq_len(D), function(j) L[[j, j]] > 0), 0L)
  cells <- seq_along(W)
  lone <- cells[r == 0L]                           # no spread: one point, the mean
  parts <- list(list(cell = lone, V = m[lone, , drop = FALSE], w = W[lone]))
  for (j in which(kept)) {
    c_j <- cells[L[[j, j]] > 0]
    l <- vapply(seq_len(D), function(i) if (i >= j) L[[i, j]][c_j] else numeric(length(c_j)),
                numeric(length(c_j)))
    l <- matrix(l, length(c_j)) * sqrt(r[c_j])
    wj <- W[c_j] / (2 * r[c_j])
    parts[[length(parts) + 1L]] <- list(cell = c(c_j, c_j),
                                        V = rbind(m[c_j, , drop = FALSE] + l, m[c_j, , drop = FALSE] - l),
                                        w = c(wj, wj))
  }
  cell <- unlist(lapply(parts, `[[`, "cell"), use.names = FALSE)
  V <- do.call(rbind, lapply(parts, `[[`, "V"))
  w <- unlist(lapply(parts, `[[`, "w"), use.names = FALSE)
  o <- order(cell)
  list(cell = cell[o], V = sweep(V[o, , drop = FALSE], 2L, cm$shift, `+`), w = w[o])
}

# The lower Cholesky factors of every cell's S (A[[i, j]], i >= j, vectors over cells), columns
# with a pivot at rounding level set to 0.
cell_cholesky <- function(A, m, D) {
  L <- matrix(list(), D, D)
  tol <- lapply(seq_len(D), function(k) 64 * .Machine$double.eps * (A[[k, k]] + m[, k]^2))
  for (k in seq_len(D)) {
    ok <- A[[k, k]] > tol[[k]]
    d <- ifelse(ok, sqrt(pmax(A[[k, k]], 0)), 0)
    L[[k, k]] <- d
    for (i in seq_len(D)[-seq_len(k)]) L[[i, k]] <- ifelse(ok, A[[i, k]] / ifelse(ok, d, 1), 0)
    for (j in seq_len(D)[-seq_len(k)])
      for (i in j:D) A[[i, j]] <- A[[i, j]] - L[[i, k]] * L[[j, k]]
  }
  L
}

# One cell's points (the test of the construction): pseudo_rows() on a single cell.
cell_points <- function(S, m, W) {
  D <- length(m)
  iu <- which(upper.tri(diag(D), diag = TRUE), arr.ind = TRUE)
  iu <- iu[order(iu[, "col"], iu[, "row"]), , drop = FALSE]
  S2 <- (S + tcrossprod(m))[iu] * W
  pr <- pseudo_rows(list(W = W, S1 = matrix(m * W, 1L), S2 = matrix(S2, 1L), shift = numeric(D)))
  list(V = pr$V, w = pr$w)
}
