# lmm() on a PostgreSQL table of 10^7 rows (issue 11, section 4): (1 | school) + (1 | district) + x.
# The rows are generated inside the database (generate_series, setseed: fixed), so R never holds
# them; the fit pulls one GROUP BY's cell moments.  Reports the time of the database's
# aggregation, of the pseudo-rows and of the fit; run under /usr/bin/time -v for R's peak RSS:
#
#   /usr/bin/time -v Rscript bench/database.R [rows] [schools] [districts] [nested|crossed]
#
# crossed: district = floor(i / schools) mod districts, so every school meets every district and
# the cells are the (school, district) pairs rather than the schools.
#
# Connection: LMMC_PG_HOST/PORT/DBNAME/USER/PASSWORD (defaults localhost/5432/lmmc/lmmc/lmmc).
suppressMessages({library(lmmc); library(DBI)})
args <- commandArgs(TRUE)
rows <- if (length(args) >= 1L) as.numeric(args[1L]) else 1e7
schools <- if (length(args) >= 2L) as.integer(args[2L]) else 10000L
districts <- if (length(args) >= 3L) as.integer(args[3L]) else 200L
crossed <- length(args) >= 4L && args[4L] == "crossed"
env <- function(v, default) { x <- Sys.getenv(v); if (nzchar(x)) x else default }
con <- dbConnect(RPostgreSQL::PostgreSQL(), host = env("LMMC_PG_HOST", "localhost"),
                 port = as.integer(env("LMMC_PG_PORT", "5432")), dbname = env("LMMC_PG_DBNAME", "lmmc"),
                 user = env("LMMC_PG_USER", "lmmc"), password = env("LMMC_PG_PASSWORD", "lmmc"))
table <- sprintf("bench_%s_%.0f_%d_%d", if (crossed) "crossed" else "school", rows, schools,
                 districts)

# schools nested in districts (school s in district s %% districts); effects sd 0.5 (school) and
# 1 (district), x ~ N(0, 1), y = 1 + 0.5 x + effects + N(0, 1) by Box-Muller from random()
make_table <- function() {
  suppressMessages(dbExecute(con, sprintf("DROP TABLE IF EXISTS %s", table)))
  dbExecute(con, "DROP TABLE IF EXISTS bench_effects")
  dbExecute(con, "SET max_parallel_workers_per_gather = 0")      # one process: setseed holds
  dbGetQuery(con, "SELECT setseed(0.11)::text AS s")
  normal <- "sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())"
  dbExecute(con, sprintf(paste("CREATE TABLE bench_effects AS SELECT s AS school, s %% %d AS district,",
                               "0.5 * %s AS u FROM generate_series(0, %d) s"), districts, normal, schools - 1L))
  dbExecute(con, sprintf(paste("CREATE TEMP TABLE bench_district AS SELECT d AS district, %s AS v",
                               "FROM generate_series(0, %d) d"), normal, districts - 1L))
  district <- if (crossed) sprintf("((i / %d) %% %d)", schools, districts) else "NULL::integer"
  dbExecute(con, sprintf(paste(
    "CREATE TABLE %s AS SELECT e.school, d.district, r.x,",
    "1 + 0.5 * r.x + e.u + d.v + %s AS y",
    "FROM (SELECT i, (i %% %d) AS school, %s AS district, %s AS x FROM generate_series(1, %.0f) i) r",
    "JOIN bench_effects e ON e.school = r.school",
    "JOIN bench_district d ON d.district = COALESCE(r.district, e.district)"),
    table, normal, schools, district, normal, rows))
  dbExecute(con, sprintf("ANALYZE %s", table))
}
t_make <- system.time(if (!dbExistsTable(con, table)) make_table())[["elapsed"]]
cat(sprintf("table %s: %.0f rows, %d schools %s %d districts (made in %.1f s)\n", table,
            dbGetQuery(con, sprintf("SELECT count(*) AS n FROM %s", table))$n, schools,
            if (crossed) "crossed with" else "in", districts, t_make))

# the stages of lmm(y ~ x + (1 | school) + (1 | district), dbi_table(con, table)), timed one by
# one as lmm() runs them (R/aggregate.R lmm_aggregated), then the whole call
src <- dbi_table(con, table)
f <- y ~ x + (1 | school) + (1 | district)
ns <- asNamespace("lmmc")
t_spec <- system.time({
  proto <- ns$source_sample(src, complete = all.vars(f))
  spec <- ns$aggregate_spec(f, proto, NULL, NULL, globalenv())
  spec$shift <- ns$moment_shift(spec, proto)
})[["elapsed"]]
t_db <- system.time(cm <- ns$cell_moments(src, spec))[["elapsed"]]
t_pseudo <- system.time(pr <- ns$pseudo_rows(cm))[["elapsed"]]
t_fit <- system.time({
  pieces <- ns$aggregated_pieces(spec, cm, pr, TRUE, NULL, lmm_control())
  staged <- ns$fit_checked(pieces$y, pieces$X, pieces$reterms, pr$w, numeric(length(pr$w)), TRUE,
                           lmm_control(), NULL, NULL, counts = pieces$counts)
})[["elapsed"]]
t_all <- system.time(fit <- lmm(f, src))[["elapsed"]]
cat(sprintf("cells %d, pseudo-rows %d\n", length(cm$W), length(pr$w)))
cat(sprintf(paste("sample and spec %.2f s, database aggregation %.1f s, pseudo-rows %.2f s,",
                  "pieces and fit %.2f s; lmm() in one call %.1f s\n"),
            t_spec, t_db, t_pseudo, t_fit, t_all))
stopifnot(abs(staged$crit - fit$crit) < 1e-8 * abs(fit$crit))
print(fixef(fit))
print(VarCorr(fit))
# ranova(): two refits (without each term) from the fit's own sums, no query (R/refit-aggregated.R)
t_ranova <- system.time(rt <- ranova(fit))[["elapsed"]]
cat(sprintf("ranova(fit) from the fit's sums (2 refits, no query): %.2f s\n", t_ranova))
print(rt)
cat("R peak RSS (VmHWM):", grep("VmHWM", readLines("/proc/self/status"), value = TRUE), "\n")
