#!/usr/bin/env bash
# The long fuzzing run (docs/reliability.md): tests/fuzz/fuzz_parse.py under atheris for $FUZZ_SECONDS
# (default 600) over the seeds from tests/fixtures and tests/fuzz/regressions, keeping what it learns in
# build/fuzz/corpus (kept between runs) and any finding in build/fuzz/ (crash-*, timeout-*, ...).
#
#   bash scripts/fuzz.sh                  # 10 minutes
#   FUZZ_SECONDS=3600 bash scripts/fuzz.sh
#
# With clang-14 (apt-get install clang-14) the extension is first built in a copy of the checkout with
# -fsanitize=fuzzer-no-link,undefined, and atheris's libFuzzer (with UBSan, ubsan_with_fuzzer.so) is
# preloaded: libFuzzer then sees the branches of the C code too, not only those of the Python it runs.
# Cython's generated argument handling computes NULL+0 (UB that clang reports and gcc does not), so
# pointer-overflow is left out. Without clang, the checkout's own build is fuzzed with Python coverage.
# Exit status: 0 when the run found nothing; a finding is libFuzzer's non-zero status.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
py=${PYTHON:-$repo/.venv/bin/python}
out=$repo/build/fuzz
seconds=${FUZZ_SECONDS:-600}
mkdir -p "$out/corpus"
"$py" tests/fuzz/fuzz_parse.py --seeds "$out/corpus"
root=$repo
preload=
if command -v clang-14 >/dev/null; then
    echo "native coverage: building with clang-14"
    PYTHON=$py bash scripts/sanitized-build.sh "$out/src" clang-14 \
        "-fsanitize=fuzzer-no-link,undefined -fno-sanitize=pointer-overflow -fno-sanitize-recover=undefined -g"
    root=$out/src
    preload=$("$py" -c 'import atheris, os; print(os.path.join(atheris.path(), "ubsan_with_fuzzer.so"))')
else
    echo "no clang-14: Python coverage only (the C code is fuzzed, its branches are not seen)"
fi
cd "$root"
set +e
LD_PRELOAD=$preload PYTHONPATH=$root "$py" tests/fuzz/fuzz_parse.py -max_total_time="$seconds" \
    -max_len=65537 -print_final_stats=1 -artifact_prefix="$out/" "$out/corpus" "$repo/tests/fuzz/regressions" \
    2>&1 | grep -v '^INFO: Instrumenting' | tee "$out/last-run.log" | grep -v -E '	(NEW|REDUCE|pulse) '
status=${PIPESTATUS[0]}
echo "the corpus: $(ls "$out/corpus" | wc -l) inputs; the log: $out/last-run.log; exit status $status"
exit "$status"
