"""Does each post-processing rule earn its place on real scans? Each rule off (or changed), one at a time.

    PYTHONPATH=release python release/real_heuristics.py [--model MODEL.json] [--rules ...]

Scores the whole labyrinth on the real CT validation ears (native and clinical-like;
``real_eval.py``) and on the real T2 MRI crop (``real_mri.py``'s threshold reference), with
the product's defaults ("defaults") and with one rule changed per row. A rule stays only where
it does not lose Dice on these real scans (docs/real_data.md has the table).
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

import real_ct
import real_eval
import real_mri

from InnerEarSegLib.inference import postprocess
from InnerEarSegLib.model.model_card import load_model
from InnerEarSegLib.pipeline import SegmentParameters, segment

# name -> (SegmentParameters overrides, postprocess constants to set, card postprocessing entries to set)
RULES = {
    "defaults": ({}, {}, {}),
    "no_tta": ({"tta": False}, {}, {}),
    "no_tta_turns": ({"tta_turns": False}, {}, {}),
    "no_keep_labyrinth": ({"keep_largest": False}, {}, {}),
    "largest_piece_only": ({}, {"NEAR_MM": 0.0}, {}),
    "near_5mm": ({}, {"NEAR_MM": 5.0}, {}),
    "near_any_size": ({}, {"NEAR_PIECE_MM3": 0.0}, {}),
    "no_fill_holes": ({"fill_holes": False}, {}, {}),
    "no_small_piece_merge": ({}, {"MIN_PIECE_MM3": {1: 0.0, 2: 0.0, 3: 0.0}}, {}),
    "no_class_weights": ({}, {}, {"class_weights": [1.0, 1.0, 1.0, 1.0], "class_weights_by_modality": {}}),
    "no_ct_weights": ({}, {}, {"class_weights_by_modality": {}}),
    "ct_weight_2": ({}, {}, {"class_weights_by_modality": {"ct": [2.0, 1.0, 1.0, 2.0]}}),
    "no_edge_refinement": ({"refine_edges": False}, {}, {}),
}


def run_rule(name, model, cases):
    overrides, constants, post = RULES[name]
    saved = {k: getattr(postprocess, k) for k in constants}
    for k, v in constants.items():
        setattr(postprocess, k, v)
    model.card["postprocessing"] = dict(model.card.get("postprocessing", {}), **post)
    try:
        params = SegmentParameters(surfaces=False, **overrides)
        ct = {"native": [], "clinical": []}
        for case, image, label in cases:
            for v in ct:
                img, ref = real_eval.variant(v, image, label, case, Path("runs/real/val"))
                ct[v].append(real_eval.score(segment(img, model, params).labels, ref)["dsc"])
        mri_image = sitk.ReadImage(str(real_mri.SCAN))
        labels = sitk.GetArrayFromImage(segment(mri_image, model, params).labels)
        mri = real_mri.dice(labels > 0, sitk.GetArrayFromImage(real_mri.reference(mri_image)) > 0)
        volumes = [np.count_nonzero(labels == v) * float(np.prod(mri_image.GetSpacing())) for v in (1, 2, 3)]
        return np.mean(ct["native"]), np.mean(ct["clinical"]), mri, volumes
    finally:
        for k, v in saved.items():
            setattr(postprocess, k, v)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    args = parser.parse_args(argv)
    if not Path("runs/real/val").is_dir():
        real_ct.prepare(Path("runs/real"))
    cases = [(c, sitk.ReadImage(f"runs/real/val/{c}_image.nii.gz"), sitk.ReadImage(f"runs/real/val/{c}_label.nii.gz"))
             for c in real_ct.SPLIT["val"]]
    print(f"{'rule':22} {'CT native':>9} {'CT clin.':>9} {'MRI':>6}  MRI structures (mm3)")
    for name in args.rules:
        model = load_model(args.model)   # fresh: a rule may change the card
        native, clinical, mri, volumes = run_rule(name, model, cases)
        print(f"{name:22} {native:9.3f} {clinical:9.3f} {mri:6.3f}  {' '.join(f'{v:.0f}' for v in volumes)}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
