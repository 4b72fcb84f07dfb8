#!/usr/bin/env bash
# The README's test-set figures: 24 held-out synthetic volumes (MR, CT, CBCT and random
# contrasts; one ear to whole head; axial, coronal, sagittal, oblique, flipped), segmented
# with the given model (default: the bundled one) and evaluated against their labels.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
model="${1:-Resources/Models/InnerEarSeg-synthetic.json}"
bin=.venv/bin
[ -f runs/testset/cases.json ] || $bin/innerear-seg synth -o runs/testset -n 24 --seed 900000
$bin/innerear-seg segment runs/testset/images -o runs/testpred --model "$model" --no-surfaces || true
$bin/innerear-seg evaluate --pred runs/testpred --ref runs/testset/labels -o runs/testeval
