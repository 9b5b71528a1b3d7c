#!/usr/bin/env bash
# Build the whole extension with AddressSanitizer and UndefinedBehaviorSanitizer, in a copy of this
# checkout under build/asan/src (the in-place build is left alone), and run under it: the fuzz corpus
# (tests/fuzz: the seeds from tests/fixtures and tests/fuzz/regressions, plus $FUZZ_CORPUS if set), the
# root-free decoding tests, and the dump, event and write tests (they need root: namespaces).
#
#   bash scripts/build-asan.sh                # build and run all (a few minutes on 2 cores)
#   bash scripts/build-asan.sh build          # only build
#   FUZZ_CORPUS=/tmp/corpus bash scripts/build-asan.sh
#
# Python itself is not instrumented: libasan is preloaded into the interpreter (and every process the
# tests start). PYTHONMALLOC=malloc makes Python's own objects come from ASan's malloc, so an access past
# a bytes object is seen too. detect_leaks=0: the interpreter keeps interned objects and module state
# until exit on purpose, which LeakSanitizer would list by the thousand; leaks are measured otherwise.
# Any report ends the process (halt_on_error, -fno-sanitize-recover=undefined), so a report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
py=${PYTHON:-$repo/.venv/bin/python}
out=$repo/build/asan
src=$out/src
flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g"

libasan=$(gcc -print-file-name=libasan.so)
libubsan=$(gcc -print-file-name=libubsan.so)
[ -e "$libasan" ] && [ -e "$libubsan" ] || { echo "gcc's libasan/libubsan are missing" >&2; exit 1; }

step() { printf '\n=== asan [%4ds] %s\n' "$SECONDS" "$*"; }

step "a copy of the checkout in $src, built with gcc $flags"
PYTHON=$py bash scripts/sanitized-build.sh "$src" gcc "$flags"
for so in "$src"/_nfct/*.so; do
    nm -D "$so" | grep -c __asan_report >/dev/null || { echo "$so is not instrumented" >&2; exit 1; }
done
echo "    each module instrumented (imports __asan_report_*)"
[ "${1:-}" = build ] && exit 0

# The reference conntrack is not ours to instrument: a wrapper first on PATH runs it without the
# preloaded sanitizers (1.4.7's own documented crashes, such as -R with labels, would be reported as
# pynfct's, and would end in ASan's abort instead of the SIGSEGV the tests expect of it).
mkdir -p "$out/bin"
cat > "$out/bin/conntrack" <<EOF
#!/bin/bash
# the sanitizers out of LD_PRELOAD, anything else a test preloads (tests/ctclock.py's clock) kept
keep=
for lib in \$LD_PRELOAD; do
    case "\$lib" in "$libasan"|"$libubsan") ;; *) keep="\$keep \$lib" ;; esac
done
if [ -n "\$keep" ]; then export LD_PRELOAD="\${keep# }"; else unset LD_PRELOAD; fi
exec -a conntrack $(command -v conntrack) "\$@"
EOF
chmod +x "$out/bin/conntrack"
export PATH="$out/bin:$PATH"
export LD_PRELOAD="$libasan $libubsan"
# Reports also go to files: a report in a process a test starts (pynfct's CLI) is seen even where the
# test only looks at that process's exit status.
reports=$out/reports
rm -rf "$reports"
mkdir -p "$reports"
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=1:log_path=$reports/asan
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan
export PYTHONMALLOC=malloc PYTHONDONTWRITEBYTECODE=1
export PYNFCT="$py $src/bin/pynfct"
cd "$src"

step "the instrumented modules are the ones imported"
"$py" -c "import _nfct.flow as m, sys; assert m.__file__.startswith('$src/'), m.__file__; print('   ', m.__file__)"

step "the fuzz corpus: every input once through the target"
corpus=$out/corpus
rm -rf "$corpus"
"$py" tests/fuzz/fuzz_parse.py --seeds "$corpus"
"$py" tests/fuzz/fuzz_parse.py --run "$corpus" tests/fuzz/regressions ${FUZZ_CORPUS:+"$FUZZ_CORPUS"}

step "root-free decoding and formatting tests, crafted bytes"
"$py" -m pytest -q -p no:cacheprovider tests/unit/test_recorded.py tests/unit/test_bytes_entry_points.py \
    tests/unit/test_no_crash.py

step "dump, event and write tests (namespaces, as root)"
# The instrumented pynfct starts and runs slower: on a loaded machine a differential test can see the
# entries' timeouts tick more than its 2 s slack between conntrack's read and pynfct's. Such a failure
# is reported as a test failure; the sanitizers' verdict is the report files below.
tests=0
"$py" -m pytest -q -p no:cacheprovider tests/integration/test_list_differential.py tests/integration/test_dying.py \
    tests/integration/test_fast_format.py tests/integration/test_events.py tests/integration/test_fuzz.py \
    tests/integration/test_write.py tests/integration/test_write_api.py tests/integration/test_load_differential.py \
    tests/integration/test_create_many.py \
    tests/integration/test_interrupt.py::test_stopped_while_formatting_does_not_wait_for_a_reader_that_stopped_reading \
    tests/integration/test_signals.py::test_writes_with_a_reader_that_stopped_reading_stop_at_once \
    --deselect tests/integration/test_events.py::test_reader_falling_behind_counts_loss_exactly_and_recovers \
    || tests=$?     # (deselected: a memory bound, and ASan's quarantine keeps freed memory on purpose)

step "sanitizer reports"
if [ -n "$(ls -A "$reports")" ]; then
    head -50 "$reports"/* >&2
    echo "sanitizer reports in $reports (above)" >&2
    exit 1
fi
echo "    none"
[ "$tests" = 0 ] || { echo "but the tests failed (exit status $tests)" >&2; exit "$tests"; }
