#!/usr/bin/env bash
# The README's test-set figures: 24 held-out synthetic volumes (MR, CT, CBCT and random
# contrasts; one ear to whole head; axial, coronal, sagittal, oblique, flipped), segmented
# with the given model (default: the bundled one) and evaluated against their labels.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
#   bash scripts/evaluate_default_model.sh [MODEL.json] [test|val]
# "val": 12 other volumes (seed 700000) into runs/valset, runs/valpred, runs/valeval, for
# choosing between variants without tuning on the test set.
model="${1:-Resources/Models/InnerEarSeg-synthetic.json}"
set_name="${2:-test}"
case "$set_name" in
  test) n=24; seed=900000 ;;
  val)  n=12; seed=700000 ;;
  *) echo "unknown set '$set_name' (test or val)" >&2; exit 2 ;;
esac
bin=.venv/bin
[ -f "runs/${set_name}set/cases.json" ] || $bin/innerear-seg synth -o "runs/${set_name}set" -n $n --seed $seed
$bin/innerear-seg segment "runs/${set_name}set/images" -o "runs/${set_name}pred" --model "$model" --no-surfaces || true
$bin/innerear-seg evaluate --pred "runs/${set_name}pred" --ref "runs/${set_name}set/labels" -o "runs/${set_name}eval"
