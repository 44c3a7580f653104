#!/usr/bin/env bash
# The project's test run: the one command the README gives and CI runs.
# Everything it needs beyond the Rust toolchain is installed by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

SIM_SEEDS="${TALLY_SIM_SEEDS:-200}"
FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
# kill -9 cycles of the agent crash test (agent/tests/crash.rs).
export TALLY_CRASH_CYCLES="${TALLY_CRASH_CYCLES:-200}"

echo "== unit, property and end-to-end tests"
# The root package's end-to-end tests run the real tally-hub and
# tally-agent binaries, found next to the test executables.
cargo build --workspace --bins
cargo test --workspace

echo "== the hub's HTTP-level suite again, on PostgreSQL (a throwaway server)"
TALLY_HUB_BACKEND=postgres cargo test -p tally-hub

echo "== deterministic simulation: ${SIM_SEEDS} fixed seeds x 5 stores x 10,000 steps"
cargo run --release --example simulate -- \
    --seed 1 --seeds "${SIM_SEEDS}" --stores 5 --steps 10000 --quiet

echo "== fuzzing: line framer, GS1 parser, RFID frame codec, EPC decoder, LLRP codec (${FUZZ_SECONDS}s each)"
FUZZ_SECONDS="${FUZZ_SECONDS}" bash scripts/fuzz.sh
