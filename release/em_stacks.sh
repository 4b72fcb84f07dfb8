#!/usr/bin/env bash
# Acceptance run of the stack tools (docs/stacks.md) on the ssTEM mitochondria data set:
# train on sections 00-14, segment and score the held-back 15-19, with the classical baselines
# beside it. 15-19 are scored during training for the log only (--keep last: the weights kept
# are the last ones, chosen by no score). Data: Gerhard S, Funke J, Martel J, Cardona A, Fetter R. Segmented anisotropic ssTEM
# dataset of neural tissue. figshare 2013, doi:10.6084/m9.figshare.856713 (CC BY-NC-SA 3.0: test
# data only; never copy it or a model trained on it into the repository).
# Usage: bash release/em_stacks.sh [train|net|baseline|table|all]   (outputs under runs/em/, git-ignored)
set -euo pipefail
cd "$(dirname "$0")/.."
D=${D:-../shared/realdata/em-drosophila-vnc}
OUT=${OUT:-runs/em}
MINUTES=${MINUTES:-30}
THREADS=${THREADS:-2}
SEG=.venv/bin/innerear-seg
PX="--pixel-size 0.0046 0.0046 0.05"   # x y z micrometres: 4.6 nm pixels, ~50 nm sections
TEST="$D/raw/15.tif $D/raw/16.tif $D/raw/17.tif $D/raw/18.tif $D/raw/19.tif"
STAGE=${1:-all}

if [[ $STAGE == train || $STAGE == all ]]; then
  /usr/bin/time -v $SEG train-stack --images "$D/raw" --labels "$D/mitochondria" --mask-threshold 128 \
      --label-names mitochondria --val 15 16 17 18 19 --keep last $PX --zoom 0.5 \
      --patch-size 256 256 --batch 8 --channels 16 32 64 128 --lr 1e-3 --steps 6000 --val-every 500 \
      --time-limit-min "$MINUTES" --threads "$THREADS" --seed 0 -o "$OUT/model/em_mitochondria.json" \
      2>&1 | tee "$OUT/train.log"
fi
if [[ $STAGE == net || $STAGE == all ]]; then
  for tta in "" "--tta"; do
    name=net${tta:+_tta}
    $SEG segment-stack $TEST --model "$OUT/model/em_mitochondria.json" $PX $tta --threads "$THREADS" -o "$OUT/$name"
    $SEG evaluate-stack --pred "$OUT/$name" --ref "$D/mitochondria" --ref-threshold 128 -o "$OUT/eval_$name"
  done
fi
if [[ $STAGE == baseline || $STAGE == all ]]; then
  # defaults (Otsu), then the level, smoothing and size chosen on the training sections 00-14
  TUNED="--threshold 105 --sigma 8 --min-size 1000 --fill-holes"
  declare -A RUNS=(
    [otsu]="--method otsu"
    [threshold]="--method threshold $TUNED"
    [region_growing]="--method region-growing $TUNED"
    [watershed]="--method watershed $TUNED"
  )
  for name in otsu threshold region_growing watershed; do
    $SEG baseline $TEST --polarity dark ${RUNS[$name]} --label-name mitochondria $PX -o "$OUT/bl_$name"
    $SEG evaluate-stack --pred "$OUT/bl_$name" --ref "$D/mitochondria" --ref-threshold 128 -o "$OUT/eval_bl_$name"
  done
fi
if [[ $STAGE == table || $STAGE == all ]]; then
  .venv/bin/python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
card = json.loads((out / "model/em_mitochondria.json").read_text())
t = card["training"]
print(f"network: {t['steps']} steps of batch {t['batch']} in {t['seconds'] / 60:.1f} min on {t['threads']} CPU threads")
print("| method | Dice (pooled) | IoU (pooled) | Dice (mean of 5) | IoU (mean of 5) |")
print("|---|---|---|---|---|")
rows = [("network (U-Net)", "net"), ("network + mirror TTA", "net_tta"), ("Otsu (defaults)", "bl_otsu"),
        ("threshold 105, sigma 8, min size 1000, holes filled", "bl_threshold"),
        ("region growing (same levels)", "bl_region_growing"), ("marker watershed (same levels)", "bl_watershed")]
for title, name in rows:
    f = out / f"eval_{name}" / "summary.json"
    if f.is_file():
        s = json.loads(f.read_text())
        p, m = s["pooled"]["mitochondria"], s["mean_over_cases"]["mitochondria"]
        print(f"| {title} | {p['dice']:.3f} | {p['iou']:.3f} | {m['dice']:.3f} | {m['iou']:.3f} |")
PY
fi
