#!/usr/bin/env bash
# Reproduce the bundled model. The shipped run was this chain on 2 CPU cores (no GPU), each
# stage keeping its best validation checkpoint; --epochs gives the number of epochs each stage
# had when it stopped (the shipped run used time limits; see the card's training_runs):
#   seg   Tversky only, 6 epochs of 150 steps
#   seg2  Tversky + cross-entropy from seg, 19 epochs
#   seg3  Tversky + cross-entropy from seg2 at lr 2e-4, 8 epochs
#   seg4  the same from seg3, 7 epochs
#   seg5  Dice + cross-entropy from seg4 at lr 1e-4, 2 epochs (generator 1.0)
#   seg6  the same from seg5 with generator 1.1 (more fluid loss and CBCT), 24 epochs
#   seg7  the same from seg6 at lr 3e-5, 11 epochs
#   loc   the 2 mm localiser, Dice + cross-entropy, 9 epochs of 100 steps
# then the synthetic test-set evaluation and the card. About 4.5-5 hours on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
train() { .venv/bin/innerear-seg train --patience 0 --val-samples 8 --workers 1 --no-augment \
            --channels 8 16 32 64 --batch 2 "$@"; }
seg=(--stage segmenter --patch-size 64 64 64 --steps-per-epoch 150)
train "${seg[@]}" --out runs/seg/model.json --loss tversky --lr 3e-4 --epochs 6 --threads 1 --seed 1
train "${seg[@]}" --out runs/seg2/model.json --init runs/seg/model.json --loss tverskyce --lr 3e-4 \
  --epochs 19 --threads 1 --seed 3
train "${seg[@]}" --out runs/seg3/model.json --init runs/seg2/model.json --loss tverskyce --lr 2e-4 \
  --epochs 8 --threads 2 --seed 4
train "${seg[@]}" --out runs/seg4/model.json --init runs/seg3/model.json --loss tverskyce --lr 2e-4 \
  --epochs 7 --threads 2 --seed 5
train "${seg[@]}" --out runs/seg5/model.json --init runs/seg4/model.json --loss dicece --lr 1e-4 \
  --epochs 2 --threads 1 --seed 6
train "${seg[@]}" --out runs/seg6/model.json --init runs/seg5/model.json --loss dicece --lr 1e-4 \
  --epochs 24 --threads 1 --seed 7
train "${seg[@]}" --out runs/seg7/model.json --init runs/seg6/model.json --loss dicece --lr 3e-5 \
  --epochs 11 --threads 1 --seed 8
train --stage localizer --out runs/loc/model.json --init runs/seg4/model.json --patch-size 48 80 80 \
  --steps-per-epoch 100 --loss dicece --lr 1e-3 --epochs 9 --threads 1 --seed 2
.venv/bin/python scripts/make_default_model.py --segmenter runs/seg7/model.json \
  --localizer runs/loc/model.json --out Resources/Models/InnerEarSeg-synthetic.json
bash scripts/evaluate_default_model.sh
.venv/bin/python scripts/make_default_model.py --segmenter runs/seg7/model.json \
  --localizer runs/loc/model.json --test-summary runs/testeval/summary.csv \
  --out Resources/Models/InnerEarSeg-synthetic.json
