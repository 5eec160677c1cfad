#!/usr/bin/env bash
# Runs every test: formatting, the native unit/integration tests (CPU backend), and a tiny
# training smoke run. Tests that need ../shared/data skip loudly outside CI and fail under CI=true
# when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# One target dir outside the clone, reused between runs and clones (CI runs in a fresh clone).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target}"
if ! mkdir -p "$CARGO_TARGET_DIR" 2>/dev/null; then export CARGO_TARGET_DIR="$HOME/.cache/ctscreen-target"; fi
FEATURES="wgpu,train"
echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo test (profile fast, features $FEATURES)"
cargo test --profile fast --features "$FEATURES" 2>&1
