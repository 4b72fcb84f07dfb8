#!/usr/bin/env bash
# The README's test-set figures: 24 held-out synthetic volumes (MR, CT, CBCT and random
# contrasts; one ear to whole head; axial, coronal, sagittal, oblique, flipped), segmented
# with the given model (default: the bundled one) and evaluated against their labels.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
#   bash release/evaluate_default_model.sh [MODEL.json] [test|val|phantom|lookalike|lx]
# "val": 12 other volumes (seed 700000) into runs/valset, runs/valpred, runs/valeval, for
# choosing between variants without tuning on the test set. "phantom": 12 labyrinths alone in
# a uniform block (release/make_phantoms.py, seed 800000): found by shape, not surroundings.
# "lookalike": the same phantoms plus fluid-bright internal auditory canal, cistern, CSF and
# balls away from the ear (make_phantoms.py --lookalikes).
# "lx": 12 slabs with a labyrinthectomy in one or both ears (release/make_labyrinthectomy_set.py,
# heads from seed 600000): vestibule and canals painted where they are gone.
# Extra arguments go to innerear-seg segment;
# TAG=_x puts predictions and metrics in runs/<set>pred_x and runs/<set>eval_x instead.
model="${1:-Resources/Models/InnerEarSeg.json}"
set_name="${2:-test}"
case "$set_name" in
  test) n=24; seed=900000 ;;
  val)  n=12; seed=700000 ;;
  phantom|lookalike) n=12; seed=800000 ;;
  lx) n=12; seed=600000 ;;
  *) echo "unknown set '$set_name' (test, val, phantom, lookalike or lx)" >&2; exit 2 ;;
esac
bin=.venv/bin
dir="runs/${set_name}set"
# (re)generate when missing or made by another generator version (the set moved aside, not lost)
old_version=$($bin/python -c "import json; from InnerEarSegLib.synth import GENERATOR_VERSION as v
try: g = json.load(open('$dir/cases.json'))['generator_version']
except OSError: g = v
print('' if g == v else g)")
if [ -n "$old_version" ]; then rm -rf "${dir}_g$old_version" && mv "$dir" "${dir}_g$old_version"; fi
if [ ! -f "$dir/cases.json" ] && [ "$set_name" = phantom ]; then
  $bin/python release/make_phantoms.py -o "$dir" -n $n --seed $seed
fi
if [ ! -f "$dir/cases.json" ] && [ "$set_name" = lookalike ]; then
  $bin/python release/make_phantoms.py -o "$dir" -n $n --seed $seed --lookalikes
fi
if [ ! -f "$dir/cases.json" ] && [ "$set_name" = lx ]; then
  $bin/python release/make_labyrinthectomy_set.py -o "$dir" -n $n --seed $seed
fi
[ -f "$dir/cases.json" ] || $bin/innerear-seg synth -o "$dir" -n $n --seed $seed
$bin/innerear-seg segment "$dir/images" -o "runs/${set_name}pred${TAG:-}" --model "$model" --no-surfaces "${@:3}" || true
$bin/innerear-seg evaluate --pred "runs/${set_name}pred${TAG:-}" --ref "$dir/labels" -o "runs/${set_name}eval${TAG:-}"
