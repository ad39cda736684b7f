#!/usr/bin/env bash
# Builds imgpar four ways and runs the test suites:
#   build/       release build: every suite except 'slow' (cluster included: needs root)
#   build-asan/  ASan+UBSan: unit, conformance, cli, pipeline, fault, hostile, batch, bench
#   build-tsan/  ThreadSanitizer: the threads-executor determinism, JPEG and PNG
#                strip-decode, --mem wait and whole-on-loader tests, and the
#                executors unit test (threads and procs)
#   build-fuzz/  clang, -Dfuzz=true: the libFuzzer targets (ASan+UBSan, and the
#                stb one under MemorySanitizer too), replaying their
#                regressions and seeds, then fuzzing 30 s each (suite 'fuzz')
# Ends with one line "N passed, M failed, K skipped" summed from meson's
# summaries, and exits non-zero if any test failed or a build broke.
set -u
cd "$(dirname "$0")/.."

pass=0 fail=0 skip=0 broken=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

setup() { # DIR [meson options...]
    local dir=$1
    shift
    if [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" "$@" >/dev/null
    else
        meson setup "$dir" "$@" >/dev/null
    fi && ninja -C "$dir" >/dev/null || { echo "BUILD FAILED: $dir"; broken=1; return 1; }
}

count() { # LABEL: add meson's summary numbers from $log
    local ok f t u s
    ok=$(awk '/^Ok:/ {print $2}' "$log")
    f=$(awk '/^Fail:/ {print $2}' "$log")
    t=$(awk '/^Timeout:/ {print $2}' "$log")
    u=$(awk '/^Unexpected Pass:/ {print $3}' "$log")
    s=$(awk '/^Skipped:/ {print $2}' "$log")
    if [ -z "$ok" ]; then
        echo "no meson summary for $1"
        broken=1
        return
    fi
    pass=$((pass + ok))
    fail=$((fail + ${f:-0} + ${t:-0} + ${u:-0}))
    skip=$((skip + ${s:-0}))
    echo "== $1: ${ok} ok, $((${f:-0} + ${t:-0} + ${u:-0})) failed, ${s:-0} skipped"
}

suite() { # LABEL DIR [meson test args...]
    local label=$1 dir=$2
    shift 2
    meson test -C "$dir" --print-errorlogs "$@" 2>&1 | tee "$log" | grep -E '^ *[0-9]+/[0-9]+ |^(Ok|Fail|Skipped|Timeout):'
    # What a failed test printed (meson's error-log blocks: the command line,
    # then its stdout and stderr up to a closing rule), so a CI log says why.
    awk '/^>>> / {f = 1} f {print} f && /^(―|-)+$/ {f = 0}' "$log" | tail -n 400
    count "$label"
}

if setup build; then
    suite release build --no-suite slow --no-suite tsan
fi
if setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized; then
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        suite asan-ubsan build-asan --suite unit --suite conformance --suite cli --suite pipeline --suite fault \
        --suite hostile --suite batch --suite bench \
        --no-suite memory --timeout-multiplier 3
fi
if setup build-tsan -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debugoptimized; then
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 suite tsan build-tsan --suite tsan --timeout-multiplier 3
fi

if CC=clang setup build-fuzz -Dfuzz=true -Dbuildtype=debugoptimized; then
    suite fuzz build-fuzz --suite fuzz
fi

[ "$broken" -ne 0 ] && fail=$((fail + 1)) && echo "a build or a test run broke (counted as one failure)"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
