#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ with the nightly toolchain and runs
# each for FUZZ_SECONDS seconds (default 30). Exits non-zero on the first
# crash, panic, timeout or out-of-memory; the crashing input is kept under
# fuzz/artifacts/<target>/ and can be replayed (from fuzz/) with
#   cargo +nightly fuzz run <target> artifacts/<target>/<file>
# Needs: the nightly toolchain (without it, stable with RUSTC_BOOTSTRAP=1 is
# used, which accepts the same -Z flags) and cargo-fuzz (installed here if
# missing).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${FUZZ_SECONDS:-30}"
export CARGO_TERM_COLOR=never

if cargo +nightly --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
else
    echo "fuzz.sh: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1" >&2
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=$("${fuzz[@]}" list)
echo "== building fuzz targets: $(echo $targets)"
"${fuzz[@]}" build
for t in $targets; do
    echo "== fuzzing $t for ${secs}s"
    mkdir -p "corpus/$t"
    mkdir -p "artifacts/$t"
    log="artifacts/$t.log"
    # corpus/<t> collects new inputs (not committed); seeds/<t> are committed.
    if ! "${fuzz[@]}" run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz.sh: $t failed; the input is under fuzz/artifacts/$t/" >&2
        exit 1
    fi
    grep -E '^(stat::number_of_executed_units|Done )' "$log" || true
done
echo "== all fuzz targets ran ${secs}s each without a crash"
