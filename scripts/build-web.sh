#!/usr/bin/env bash
# Builds the static page into dist/: the crate for wasm32 (flex + wgpu, never train),
# wasm-bindgen glue into pkg/, then webpack. Installs what is missing: the wasm32 target, the
# wasm-bindgen CLI at exactly the crate's wasm-bindgen version, and the npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target}"
mkdir -p "$CARGO_TARGET_DIR" 2>/dev/null || export CARGO_TARGET_DIR="$HOME/.cache/ctscreen-target"

rustup target list --installed | grep -q '^wasm32-unknown-unknown$' || rustup target add wasm32-unknown-unknown
WB_VERSION=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
if ! command -v wasm-bindgen >/dev/null || [ "$(wasm-bindgen --version | awk '{print $2}')" != "$WB_VERSION" ]; then
  echo "== installing wasm-bindgen-cli $WB_VERSION (several minutes, once)"
  cargo install wasm-bindgen-cli --version "$WB_VERSION"
fi
[ -d node_modules/webpack ] || npm install --no-audit --no-fund

echo "== cargo build (wasm32, profile wasm)"
cargo build --lib --target wasm32-unknown-unknown --no-default-features --features flex,wgpu --profile wasm
wasm-bindgen --target web --out-dir pkg --out-name ctscreen "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm/ctscreen.wasm"
# npm's binaryen, not Debian's wasm-opt 108 (which emits a module that fails at start-up):
# 29 MB → 14 MB (3.6 MB gzip).
echo "== wasm-opt -Oz"
npx wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-simd pkg/ctscreen_bg.wasm -o pkg/ctscreen_bg.opt.wasm
mv pkg/ctscreen_bg.opt.wasm pkg/ctscreen_bg.wasm
echo "== webpack"
npx webpack --mode production
ls -la dist
