#!/usr/bin/env bash
# Runs every test: formatting, the native unit/integration tests (CPU backend, including a tiny
# training smoke run), then the page in headless Chromium on both the WebGPU (SwiftShader) and
# the CPU-fallback paths. Tests that need ../shared/data skip loudly outside CI and fail under
# CI=true when it is missing. Installs what it needs (Debian chromium, the wasm toolchain, npm
# packages) on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
# One target dir outside the clone, reused between runs and clones.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target}"
mkdir -p "$CARGO_TARGET_DIR" 2>/dev/null || export CARGO_TARGET_DIR="$HOME/.cache/ctscreen-target"
FEATURES="wgpu,train"

echo "== cargo fmt --check"
cargo fmt --check

echo "== cargo test (profile fast, features $FEATURES)"
cargo test --profile fast --features "$FEATURES" 2>&1

echo "== browser tests"
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing and this user cannot install it" >&2; exit 1
  fi
fi
bash scripts/build-web.sh
node tests/e2e/run.mjs
