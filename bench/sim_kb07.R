## kb07-shaped design (issue 9), shared by bench/bench.R and bench/kb07.R: 56 subjects x 32 items,
## each subject sees each item once (1792 rows); three +-0.5 factors spkr, prec, load, their 8
## combinations rotated over items in a Latin square (all within subject and within item).
## y: fixed effects 2000 + 100 spkr + ..., random effects with SDs `sd` and correlation 0.3
## (equicorrelated) for subjects and items, residual SD 700.
sim_kb07 <- function(seed = 7) {
  set.seed(seed)
  d <- expand.grid(item = 1:32, subj = 1:56)
  cond <- (d$subj + d$item) %% 8
  d$spkr <- ifelse(cond %% 2 == 1, 0.5, -0.5)
  d$prec <- ifelse((cond %/% 2) %% 2 == 1, 0.5, -0.5)
  d$load <- ifelse(cond %/% 4 == 1, 0.5, -0.5)
  X <- model.matrix(~ spkr * prec * load, d)
  ranef_draw <- function(nl, sd) {
    C <- matrix(0.3, 8, 8); diag(C) <- 1
    matrix(rnorm(nl * 8), nl) %*% chol(outer(sd, sd) * C)
  }
  bs <- ranef_draw(56, c(300, 100, 80, 60, 40, 30, 30, 20))
  bi <- ranef_draw(32, c(400, 80, 120, 50, 40, 30, 20, 20))
  beta <- c(2000, 100, -300, 150, 50, -30, 20, 10)
  d$y <- drop(X %*% beta) + rowSums(X * bs[d$subj, ]) + rowSums(X * bi[d$item, ]) +
    rnorm(nrow(d), sd = 700)
  d$subj <- factor(d$subj); d$item <- factor(d$item)
  d
}

kb07_models <- list(
  theta20 = y ~ 1 + spkr + prec + load + (1 + spkr + prec + load | subj) +
    (1 + spkr + prec + load | item),
  theta72 = y ~ 1 + spkr * prec * load + (1 + spkr * prec * load | subj) +
    (1 + spkr * prec * load | item))

