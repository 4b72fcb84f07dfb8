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
#   seg8  the same from seg7 at lr 5e-5 with soft targets (class fractions per voxel), 14 epochs
#   seg9  the same from seg8 with generator 1.2 (60 % temporal-bone resolutions), 17 epochs
#   seg10 the same from seg9 with generator 1.3 (30 % rendered on a scan grid), 17 epochs
#   seg14 the same from seg10 with generator 1.4 (otic-capsule wall), 9 epochs
#   seg16 the same from seg14 with generator 1.5 (15 % plain surroundings), 16 epochs (best: 7)
#   seg18 the same from seg16 with 60 % CT and CBCT samples (--contrast-weights 0.2 0.35 0.25 0.2),
#         12 epochs (best: 11; its epoch-5 checkpoint, runs/seg18_e5, was the bundled segmenter before)
#   seg20 the same from seg18 with generator 1.6 (facial-nerve canal, cochlear aqueduct, subarcuate
#         canal), 18 epochs (best: 10; its first 3 epochs, seg20_e3, kept apart: its best then)
#   seg21 the same from seg20 with more CT/CBCT/random samples, 12 epochs (best: 3)
#   avg5  the mean of the weights of seg20_e3, seg20 (best), seg20's last epoch, seg21 (best)
#         and seg21's last epoch (make_default_model.py with several --segmenter)
#   seg22 the same from avg5 with the learning rate annealed to 0 (cosine) over 15 epochs and 16
#         validation samples (best: 6); the card gives the canals class weight 2 (chosen on validation)
#   seg26 the bundled seg22 model (seg22 + loc3, canal weight 2) tuned at 0.36 mm instead of 0.45 mm
#         (--spacing 0.36, 80^3 patches: the same 28.8 mm), cosine over 12 epochs (best: 11)
#   seg27 the bundled seg26 model at 0.30 mm (96^3 patches: 28.8 mm), cosine over 3 epochs
#   seg28 the same from seg27, cosine over 10 epochs (best: 10)
#   seg30 the same from seg28 with generator 1.7 (drilled labyrinthectomy cavity) at lr 4e-5,
#         cosine over 6 epochs (best: 5)
#   seg32 the same from seg30 with generator 1.9 (the drilled cavity open through the mastoid;
#         labyrinthectomies 6x as often in training since 1.8), cosine over 6 epochs (best: 6)
#   loc   the 2 mm localiser, Dice + cross-entropy, 9 epochs of 100 steps
#   loc2  the same from loc at lr 3e-4 (generator 1.4), 24 epochs
#   loc3  the same from loc2 (generator 1.5), 20 epochs
# then the synthetic test-set evaluation and the card. About 17 hours on 2 cores (segmenter 14.3,
# localiser 2.6: python release/readme_tables.py).
# The shipped runs used the generator version of their day (1.0 to 1.9, per run in the card's
# training_runs); a rerun uses the current generator for every stage.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
train() { .venv/bin/innerear-seg train --patience 0 --val-samples 8 --workers 1 --no-augment \
            --channels 8 16 32 64 --batch 2 "$@"; }
seg() {  # run, --init run ("-": none), loss, lr, epochs, threads, seed, soft targets (soft|hard), extra options
  local init=(); [ "$2" = - ] || init=(--init "runs/$2/model.json")
  train --stage segmenter --patch-size 64 64 64 --steps-per-epoch 150 --out "runs/$1/model.json" \
    "${init[@]}" --loss "$3" --lr "$4" --epochs "$5" --threads "$6" --seed "$7" \
    "$([ "$8" = soft ] && echo --soft-labels || echo --no-soft-labels)" "${@:9}"; }
fine() {  # run, --init card, spacing mm, patch edge (voxels), lr, epochs, seed, extra options: cosine, 28.8 mm regions
  train --stage segmenter --init "$2" --spacing "$3" --patch-size "$4" "$4" "$4" --steps-per-epoch 150 \
    --out "runs/$1/model.json" --loss dicece --lr "$5" --lr-schedule cosine --epochs "$6" --threads 1 --seed "$7" \
    --soft-labels --contrast-weights 0.2 0.35 0.25 0.2 --val-samples 16 "${@:8}"; }
bundle() {  # the bundled card from segmenter run $1 and loc3, canal weight 2; extra options
  .venv/bin/python release/make_default_model.py --segmenter "runs/$1/model.json" --localizer runs/loc3/model.json \
    --class-weights 1 1 1 2 --out Resources/Models/InnerEarSeg.json "${@:2}"; }
#   run  init loss      lr   epochs threads seed targets
seg seg  -    tversky   3e-4 6      1       1    hard
seg seg2 seg  tverskyce 3e-4 19     1       3    hard
seg seg3 seg2 tverskyce 2e-4 8      2       4    hard
seg seg4 seg3 tverskyce 2e-4 7      2       5    hard
seg seg5 seg4 dicece    1e-4 2      1       6    hard
seg seg6 seg5 dicece    1e-4 24     1       7    hard
seg seg7 seg6 dicece    3e-5 11     1       8    hard
seg seg8 seg7 dicece    5e-5 14     1       9    soft
seg seg9 seg8 dicece    5e-5 17     1       10   soft
seg seg10 seg9 dicece   5e-5 17     1       11   soft
seg seg14 seg10 dicece  5e-5 9      1       14   soft
seg seg16 seg14 dicece  5e-5 16     1       16   soft
seg seg18 seg16 dicece  5e-5 12     1       18   soft --contrast-weights 0.2 0.35 0.25 0.2
seg seg20 seg18 dicece  5e-5 18     1       20   soft --contrast-weights 0.2 0.35 0.25 0.2
seg seg20_e3 seg18 dicece 5e-5 3    1       20   soft --contrast-weights 0.2 0.35 0.25 0.2
seg seg21 seg20 dicece  5e-5 12     1       21   soft --contrast-weights 0.15 0.3 0.3 0.25
.venv/bin/python release/make_default_model.py --segmenter runs/seg20_e3/model.json runs/seg20/model.json \
  runs/seg20/model.ckpt.pt runs/seg21/model.json runs/seg21/model.ckpt.pt --localizer runs/loc3/model.json \
  --out runs/avg5/model.json
# seg22 ran with 2 threads; 1 is faster on 2 cores (the data worker keeps a core: 1.1-1.4 against 1.9-2.4 s a step)
seg seg22 avg5  dicece  5e-5 15     1       22   soft --contrast-weights 0.2 0.35 0.25 0.2 \
  --lr-schedule cosine --val-samples 16
train --stage localizer --out runs/loc/model.json --init runs/seg4/model.json --patch-size 48 80 80 \
  --steps-per-epoch 100 --loss dicece --lr 1e-3 --epochs 9 --threads 1 --seed 2
train --stage localizer --out runs/loc2/model.json --init runs/loc/model.json --patch-size 48 80 80 \
  --steps-per-epoch 100 --loss dicece --lr 3e-4 --epochs 24 --threads 1 --seed 3
train --stage localizer --out runs/loc3/model.json --init runs/loc2/model.json --patch-size 48 80 80 \
  --steps-per-epoch 100 --loss dicece --lr 3e-4 --epochs 20 --threads 1 --seed 4
bundle seg22
fine seg26 Resources/Models/InnerEarSeg.json 0.36 80 5e-5 12 26
bundle seg26
# 0.30 mm: a short run from the 0.36 mm bundle (seg27), then a full one from it (seg28), then
# generator 1.7 (seg30) and 1.9 (seg32)
fine seg27 Resources/Models/InnerEarSeg.json 0.30 96 5e-5 3 27
fine seg28 runs/seg27/model.json 0.30 96 5e-5 10 28
fine seg30 runs/seg28/model.json 0.30 96 4e-5 6 30
fine seg32 runs/seg30/model.json 0.30 96 4e-5 6 32
bundle seg32
# real CT (docs/real_data.md): the fixed split of release/real_ct.py, whole-labyrinth labels with the
# marginal loss, real shapes with random contrasts, augmentation on; two runs from the seg32 bundle
# (real40 was stopped at step 741 to add blur/resolution-loss augmentation; its best epoch, 5, is
# real41's start). A rerun of real40 today has that augmentation already.
.venv/bin/python release/real_ct.py prepare runs/real
real() {  # run, --init card, synthetic share, shape share, epochs, val samples, seed, minutes
  .venv/bin/innerear-seg train --stage segmenter --init "$2" --data runs/real/train --val-data runs/real/val \
    --label-kind labyrinth --synthetic-fraction "$3" --shape-fraction "$4" --patch-size 80 80 80 --loss dicece \
    --lr 1e-4 --lr-schedule cosine --epochs "$5" --steps-per-epoch 100 --val-samples "$6" --patience 0 \
    --workers 1 --threads 1 --batch 2 --seed "$7" --time-limit-min "$8" --out "runs/$1/model.json"; }
real real40 Resources/Models/InnerEarSeg.json 0.35 0.35 30 4 40 37.5
real real41 runs/real40/model.json 0.3 0.3 16 2 41 80
# the bundle: real41's best epoch with the localiser of the bundle it started from (copied aside,
# since the bundle is rewritten), one 96^3 window per 28.8 mm region (chosen on the validation
# ears: docs/real_data.md), canal weight 2
cp Resources/Models/InnerEarSeg.json runs/loc_bundle.json; cp Resources/Models/InnerEarSeg.pt runs/InnerEarSeg.pt
bundle_real() { .venv/bin/python release/make_default_model.py --segmenter runs/real41/model.json \
    --localizer runs/loc_bundle.json --class-weights 1 1 1 2 --window 96 96 96 --region-mm 28.8 \
    --out Resources/Models/InnerEarSeg.json "$@"; }
bundle_real
# split labels (docs/real_data.md): the same ears with the cochlea cut from the labyrinth by
# InnerEarSegLib.training.cochlea_split (runs/real/{train,val}_split), so the real CT teaches the
# cochlea/rest split too
split_run() {  # run, --init card, lr, epochs, seed, minutes, further train options
  .venv/bin/innerear-seg train "${@:7}" --stage segmenter --init "$2" \
    --data runs/real/train_split --val-data runs/real/val_split --label-kind split \
    --synthetic-fraction 0.25 --shape-fraction 0.35 --patch-size 80 80 80 --loss dicece \
    --lr "$3" --lr-schedule cosine --epochs "$4" --steps-per-epoch 100 --val-samples 2 --patience 0 \
    --workers 1 --threads 1 --batch 2 --seed "$5" --time-limit-min "$6" --out "runs/$1/model.json"; }
# a bundle: a run's best epoch, the localiser carried from the real41 bundle (copied aside), one
# 96^3 window per 28.8 mm region, canal weight 2; further make_default_model.py options after the run
bundle_split() { local run="$1"; shift; .venv/bin/python release/make_default_model.py \
    --segmenter "runs/$run/model.json" --localizer runs/locb/InnerEarSeg.json --class-weights 1 1 1 2 \
    --window 96 96 96 --region-mm 28.8 --out Resources/Models/InnerEarSeg.json "$@"; }
# real43: from the real41 bundle; stopped by hand after about 100 minutes
split_run real43 Resources/Models/InnerEarSeg.json 1e-4 60 43 150
mkdir -p runs/locb; cp Resources/Models/InnerEarSeg.json Resources/Models/InnerEarSeg.pt runs/locb/
bundle_split real43
# real45: from real43's best with real-shape samples that keep the split (Shape.parts), half the
# learning rate; stopped by hand at step 2,767 of 4,000 (in-training validation had not passed
# its epoch-12 best for 15 epochs); the bundle takes the best epoch (12)
split_run real45 runs/real43/model.json 5e-5 40 45 135
# the CT background weight, chosen on the real CT training ears (prints the table; 2 was best)
bundle_45() { bundle_split real45 --ct-class-weights 2 1 1 2 "$@"; }
bundle_45
PYTHONPATH=release python release/calibrate_background.py --weights 1 1.5 2 2.5 3
bash release/evaluate_default_model.sh
python release/real_eval.py --csv runs/final_real.csv
python release/real_mri.py --preview-png docs/real_mri_preview.png
bundle_45 --test-summary runs/testeval/summary.csv --real-table runs/final_real.csv
# real46w: real45 widened to the reference widths 16-128 (same outputs to start); stopped at step 791
split_run real46w runs/real45/model.json 5e-5 20 46 40 --channels 16 32 64 128
# real47w: from real46w's best, model selection also on MR-like renders of the validation ears'
# shapes (--val-shape-samples: CT validation alone let the MRI fade); stopped by hand at step 2,268
# of 3,000 (in-training validation +0.001 over the last 700 steps); the bundle takes its best epoch (21)
split_run real47w runs/real46w/model.json 5e-5 30 47 125 --val-shape-samples 16
bundle_47w() { bundle_split real47w --ct-class-weights 2 1 1 2 "$@"; }
bundle_47w
PYTHONPATH=release python release/calibrate_background.py --weights 1 2 3     # 2 stays (0.959 / 0.960 / 0.960)
bash release/evaluate_default_model.sh
python release/real_eval.py --csv runs/final_real.csv
python release/real_mri.py --preview-png docs/real_mri_preview.png
bundle_47w --test-summary runs/testeval/summary.csv --real-table runs/final_real.csv
