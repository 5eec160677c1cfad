#!/usr/bin/env bash
# Fuzz every reader as the anchors do: a memory limit low enough that an input which makes a
# reader *ask* for gigabytes is reported (not only one that panics), and a seed corpus of real
# files. Findings land in fuzz/artifacts/<target>/; each belongs in tests/fuzz-regressions/.
#
#   bash scripts/fuzz.sh [RUNS] [TARGETS...]     (default: 1000000 runs, every target)
#   FORK=2 bash scripts/fuzz.sh ...               (libFuzzer jobs at once; default 1)
#
# Seeds: the first 64 KB of every file under ../shared/data/ct-files (DICOM series, NIfTI,
# TotalSegmentator slices without a .dcm suffix), the regression inputs, and the synthetic seeds
# of `cargo run --example fuzz_seeds`. Needs the nightly toolchain and cargo-fuzz (installed here
# if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-1000000}"
shift || true
TARGETS=("${@:-dicom nifti image jpegls}")
DATA="${DATA:-../shared/data}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
SEEDS=fuzz/seeds
rm -rf "$SEEDS" "$SEEDS-nifti" "$SEEDS-image" && mkdir -p "$SEEDS"
# Real files, cut to 64 KB (the header and the first pixels: where the parsers decide).
find "$DATA/ct-files" -type f ! -name '*.txt' ! -name '*.tsv' -print0 |
  while IFS= read -r -d '' f; do
    head -c 65536 "$f" >"$SEEDS/$(echo "$f" | sha1sum | cut -c1-16)"
  done
cp tests/fuzz-regressions/* "$SEEDS/" 2>/dev/null || true
# The NIfTI target gets the NIfTI files alone, up to 16 KB (DICOM seeds only slow it down: every
# one is a non-NIfTI refused at the first bytes).
mkdir -p "$SEEDS-nifti"
find "$DATA/ct-files" -name '*.nii*' -print0 |
  while IFS= read -r -d '' f; do head -c 65536 "$f" >"$SEEDS-nifti/$(echo "$f" | sha1sum | cut -c1-16)"; done
cp tests/fuzz-regressions/nifti-* "$SEEDS-nifti/" 2>/dev/null || true
# The image target also gets 40 of the shared PNG/JPEG slices (UCSD, MedSeg).
mkdir -p "$SEEDS-image"
for f in $(ls "$DATA"/ucsd-covid-ct/covid/* | head -30) $(ls "$DATA"/medseg-covid/train/images/* | head -10); do
  head -c 65536 "$f" >"$SEEDS-image/$(echo "$f" | sha1sum | cut -c1-16)"
done
[ -d ../shared/fuzz-findings ] && cp ../shared/fuzz-findings/*.dcm "$SEEDS/" 2>/dev/null || true
cargo run --quiet --profile fast --features wgpu,train --example fuzz_seeds -- "$SEEDS" >/dev/null
# The synthetic DICOM seeds as JPEG-LS (lossless and near-lossless), when dcmtk is installed:
# the whole reader path of that transfer syntax, CharLS's stream layout included.
if command -v dcmcjpls >/dev/null; then
  for f in "$SEEDS"/dicom/*; do
    dcmcjpls "$f" "$SEEDS/dicom/jls-$(basename "$f")" 2>/dev/null || true
    dcmcjpls +en "$f" "$SEEDS/dicom/jls-near-$(basename "$f")" 2>/dev/null || true
  done
fi
echo "seeds: $(ls "$SEEDS" | wc -l) files"
for t in ${TARGETS[@]}; do
  mkdir -p "fuzz/corpus/$t"
  seeds="../$SEEDS" max_len=65536
  [ "$t" = nifti ] && seeds="../$SEEDS-nifti ../$SEEDS/nifti" && max_len=16384
  [ "$t" = image ] && seeds="../$SEEDS-image ../$SEEDS"
  # JPEG-LS streams (synthetic, from fuzz_seeds) behind two size bytes, and every other seed.
  [ "$t" = jpegls ] && seeds="../$SEEDS/jpegls ../$SEEDS"
  echo "== $t: $RUNS runs"
  # The sanitizer build keeps to fuzz/target, whatever CARGO_TARGET_DIR says (it shares nothing
  # with the normal builds and would only evict them).
  # Fork mode with timeouts kept, not fatal: under ASan and coverage a 512² JPEG Lossless
  # decode takes about 0.6 s (10 ms natively), so on a busy 2-core machine a 1 s timeout fires
  # on inputs that are not slow. Each timeout input is timed below with the native binary,
  # which is what a user runs; OOMs and crashes still stop the run.
  (cd fuzz && env -u CARGO_TARGET_DIR cargo +nightly fuzz run -O "$t" "corpus/$t" $seeds -- \
      -runs="$RUNS" -malloc_limit_mb=256 -rss_limit_mb=1024 -timeout=1 -max_len=$max_len \
      -fork="${FORK:-1}" -ignore_timeouts=1 -print_final_stats=1 >"$t.log" 2>&1 || true)
  # The cumulative "#runs" lines of the fork parent, then its end (the full log stays in fuzz/).
  grep -E '^#[0-9]+:' "fuzz/$t.log" | tail -n 3 || true
  tail -n 5 "fuzz/$t.log"
done
BIN="${CARGO_TARGET_DIR:-target}/fast/ctscreen"
for f in fuzz/artifacts/*/timeout-*; do
  [ -e "$f" ] || continue
  [ -x "$BIN" ] || cargo build --quiet --profile fast --features wgpu,train --bin ctscreen
  /usr/bin/time -f "%e %M" -o "$f.time" "$BIN" info "$f" >/dev/null 2>&1 || true
  read -r s kb <"$f.time" && rm -f "$f.time"
  echo "timeout input $f: ${s} s, ${kb} KB natively" $(awk -v s="$s" 'BEGIN { print (s >= 1.0) ? "SLOW (a finding)" : "(not slow)" }')
done
