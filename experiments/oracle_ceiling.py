"""What DSC a perfect segmenter on the model grid could reach on the synthetic test set.

For each test scan the true tissue map is evaluated on the segmenter's 0.45 mm grid around
each ear, then taken through the pipeline's own output path (``postprocess.assemble``:
linear resampling of class probabilities onto the scan grid, argmax) and scored against the
scan's labels. ``hard``: one-hot labels sampled at voxel centres (what a network trained on
point-sampled labels can at best output). ``soft``: partial-volume fractions (each voxel
supersampled ``--supersample``^3 times), what a network trained on fraction targets can output.
The gap between the two and 1.0 is the error the model grid itself costs, before any network.

  python experiments/oracle_ceiling.py runs/testset [--cases 6] [--supersample 3]
"""
import argparse
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from InnerEarSegLib.inference import postprocess, preprocess
from InnerEarSegLib.model.model_card import DEFAULT_MODEL, read_card
from InnerEarSegLib.synth.anatomy import grid_points, ground_truth
from InnerEarSegLib.synth.generate import soft_labels, volume_head

STRUCTURES = {1: "cochlea", 2: "vestibule", 3: "canals"}


def dice(a, b):
    s = a.sum() + b.sum()
    return 2.0 * np.logical_and(a, b).sum() / s if s else np.nan


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("testset", type=Path)
    ap.add_argument("--cases", type=int, default=0, help="first N cases only (0: all)")
    ap.add_argument("--supersample", type=int, default=3)
    ap.add_argument("--spacing", type=float, default=0.0, help="model grid spacing in mm (default: the model card's)")
    args = ap.parse_args(argv)
    pre = dict(read_card(DEFAULT_MODEL)["preprocessing"])
    pre["spacing_mm"] = args.spacing or pre["spacing_mm"]
    pre["ear_region_mm"] = [24.0] * 3   # the labyrinth with margin: enough for an oracle
    cases = json.loads((args.testset / "cases.json").read_text())["cases"]
    cases = cases[:args.cases] if args.cases else cases
    scores = {"hard": [], "soft": []}
    for case in cases:
        truth = sitk.ReadImage(str(args.testset / "labels" / f"{case['name']}.nrrd"))
        ref_labels = sitk.GetArrayFromImage(truth)
        head = volume_head(case["seed"])
        for mode in scores:
            regions = []
            for side in ("right", "left"):
                region = preprocess.ear_reference(head.ear_center(side), pre, 16)
                lab = ground_truth(head.labels_at(grid_points(region)).reshape(region.GetSize()[::-1]))
                regions.append((side, region, soft_labels(head, region, lab, args.supersample if mode == "soft" else 1)))
            labels, _ = postprocess.assemble(truth, regions, keep_largest=False, fill_holes=False, refine_edges=False)
            out = sitk.GetArrayFromImage(labels)
            row = {name: dice(out == v, ref_labels == v) for v, name in STRUCTURES.items()}
            row["labyrinth"] = dice(out > 0, ref_labels > 0)
            scores[mode].append(row)
            print(case["name"], case["family"], mode, " ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
    print("\nmean over scans (both ears together):")
    for mode, rows in scores.items():
        print(mode, " ".join(f"{k} {np.nanmean([r[k] for r in rows]):.3f}" for k in rows[0]))


if __name__ == "__main__":
    main()
