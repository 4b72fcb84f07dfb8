#!/usr/bin/env bash
# Reproduce the bundled model: segmenter, then localiser (kept in one file through --init),
# then the card's final fields. Settings are those of the shipped run (see its model card:
# training.*); on 2 CPU cores the shipped run was stopped by the time limits below.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bin=.venv/bin
$bin/innerear-seg train --stage segmenter --out runs/seg/model.json --patch-size 64 64 64 \
  --channels 8 16 32 64 --lr 3e-4 --batch 2 --steps-per-epoch 150 --epochs 1000 --patience 0 \
  --val-samples 8 --time-limit-min "${SEG_MINUTES:-85}" --workers 1 --threads 1 --no-augment --seed 1
$bin/innerear-seg train --stage localizer --out runs/loc/model.json --patch-size 48 80 80 \
  --channels 8 16 32 64 --loss dicece --lr 1e-3 --batch 2 --steps-per-epoch 100 --epochs 1000 \
  --patience 0 --val-samples 8 --time-limit-min "${LOC_MINUTES:-45}" --workers 1 --threads 1 \
  --no-augment --seed 2 --init runs/seg/model.json
bash scripts/evaluate_default_model.sh runs/loc/model.json
$bin/python scripts/make_default_model.py --segmenter runs/seg/model.json --localizer runs/loc/model.json \
  --test-summary runs/testeval/summary.csv --out Resources/Models/InnerEarSeg-synthetic.json
