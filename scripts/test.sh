#!/usr/bin/env bash
# The project's test run: the one command the README gives and CI runs.
# Everything it needs beyond the Rust toolchain is installed by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== unit, property and end-to-end tests"
cargo test --workspace --all-targets
