#!/bin/sh
# Build lmmc with AddressSanitizer + UndefinedBehaviorSanitizer into a temporary library and run
# the test suite (or the test files named as arguments) against it; report what the sanitizers
# found.  Usage, from the package root:
#     tools/sanitize.sh                      # every test file (slow: about 3x the plain suite)
#     tools/sanitize.sh objective fit dense  # tests/testthat/test-objective.R, ...
# Exit status: 0 when the build succeeded and no sanitizer report appeared, 1 otherwise.
# (tools/ is in .Rbuildignore.)
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/lmmc-sanitize.XXXXXX")
lib="$work/lib"; mkdir -p "$lib"
log="$work/sanitizer"
cp -R "$root" "$work/src-copy" && rm -f "$work/src-copy"/src/*.o "$work/src-copy"/src/*.so
flags="-fsanitize=address,undefined -fno-omit-frame-pointer -g -O1"
echo "building with $flags into $lib"
mv="$work/Makevars"                   # user Makevars: R CMD INSTALL adds these to its flags
printf 'CFLAGS = %s\nLDFLAGS = -fsanitize=address,undefined\n' "$flags" >"$mv"
if ! R_MAKEVARS_USER="$mv" R CMD INSTALL --preclean --no-test-load -l "$lib" "$work/src-copy" \
     >"$work/install.log" 2>&1; then
  tail -20 "$work/install.log"; echo "build failed (log: $work/install.log)"; exit 1
fi
asan=$(gcc -print-file-name=libasan.so)
ubsan=$(gcc -print-file-name=libubsan.so)
# R itself leaks by design (and is not built with ASan): no leak checks; log to files per process
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:halt_on_error=0:log_path=$log"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=0:log_path=$log"
files=""
if [ $# -eq 0 ]; then
  files="NULL"
else
  for f in "$@"; do files="$files,'testthat/test-$f.R'"; done
  files="c(${files#,})"
fi
grep -q -- "-fsanitize=address" "$work/install.log" || { echo "flags not applied"; exit 1; }
export NOT_CRAN=true                  # run the skip_on_cran() tests too
cd "$root/tests" || exit 1
LD_PRELOAD="$asan $ubsan" R_LIBS="$lib" Rscript -e "
  suppressMessages({library(testthat); library(lmmc)})
  files <- $files
  if (is.null(files)) files <- list.files('testthat', '^test-.*[.]R\$', full.names = TRUE)
  res <- do.call(rbind, lapply(files, function(f) as.data.frame(
    test_file(f, package = 'lmmc', load_package = 'installed', reporter = 'summary'))))
  cat(sprintf('\ntests: %d expectations, %d failed\n', sum(res\$nb),
              sum(res\$failed) + sum(res\$error)))" 2>&1 | tail -5
reports=$(ls "$log".* 2>/dev/null | wc -l)
if [ "$reports" -gt 0 ]; then
  echo "SANITIZER REPORTS ($reports files):"
  cat "$log".* | grep -E "ERROR|runtime error|SUMMARY|#[0-9] .*lmmc" | head -60
  exit 1
fi
echo "sanitizers: clean (work files in $work)"
