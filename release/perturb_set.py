"""A copy of a case set with one thing real scans do that the generator does not, to measure its effect.

  python release/perturb_set.py runs/testset runs/testset_pad --perturb pad
  innerear-seg segment runs/testset_pad/images -o runs/testpred_pad --no-surfaces
  innerear-seg evaluate --pred runs/testpred_pad --ref runs/testset_pad/labels -o runs/testeval_pad

The same cases unperturbed: ``--compare runs/testpred`` links their predictions and labels into
``OUTPUT/baseline_pred`` and ``OUTPUT/baseline_ref``, then
``innerear-seg evaluate --pred runs/testset_pad/baseline_pred --ref runs/testset_pad/baseline_ref -o ...``.
Perturbations:

- ``pad``: CT and MR stored with a wide empty border, as scanners write outside the
  reconstructed field of view: -3024 HU on CT (DICOM padding), 0 on MR; a quarter of the
  size on each side of the first two axes. Moves every percentile the networks normalise by.
- ``ghost``: MR motion ghosts, two copies of the image at 15 % shifted a quarter of the field
  of view either way along the second axis (periodic motion during phase encoding).
Labels are padded with background and otherwise unchanged; a case of another family is left out.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from InnerEarSegLib.synth import write_cases, write_pair

FAMILIES = {"pad": ("mr", "ct"), "ghost": ("mr",)}
PAD_VALUE = {"mr": 0, "ct": -3024}


def pad(image, labels, family):
    size = image.GetSize()
    border = [size[0] // 4, size[1] // 4, 0]
    return (sitk.ConstantPad(image, border, border, PAD_VALUE[family]),
            sitk.ConstantPad(labels, border, border, 0))


def ghost(image, labels, family, strength=0.15):
    a = sitk.GetArrayFromImage(image).astype(np.float32)  # (z, y, x): the second index axis is y
    shift = a.shape[1] // 4
    out = a + strength * (np.roll(a, shift, axis=1) + np.roll(a, -shift, axis=1))
    ghosted = sitk.GetImageFromArray(out.astype(np.float32))
    ghosted.CopyInformation(image)
    return ghosted, labels


PERTURBATIONS = {"pad": pad, "ghost": ghost}


def link(path: Path, target: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_symlink():
        path.symlink_to(target.resolve())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="a set folder: images/, labels/, cases.json")
    ap.add_argument("output", type=Path)
    ap.add_argument("--perturb", choices=sorted(PERTURBATIONS), required=True)
    ap.add_argument("--compare", type=Path, help="predictions of the source set: links them and the source "
                    "labels of the chosen cases into OUTPUT/baseline_pred and OUTPUT/baseline_ref")
    args = ap.parse_args(argv)
    source = json.loads((args.source / "cases.json").read_text())
    cases = []
    for case in source["cases"]:
        if case["family"] not in FAMILIES[args.perturb]:
            continue
        name = case["name"]
        image = sitk.ReadImage(str(args.source / "images" / f"{name}.nrrd"))
        labels = sitk.ReadImage(str(args.source / "labels" / f"{name}.nrrd"))
        write_pair(args.output, name, *PERTURBATIONS[args.perturb](image, labels, case["family"]))
        if args.compare:
            link(args.output / "baseline_pred" / name, args.compare / name)
            link(args.output / "baseline_ref" / f"{name}.nrrd", args.source / "labels" / f"{name}.nrrd")
        cases.append({**case, "perturbation": args.perturb})
        print(f"{name}: {case['family']} {args.perturb}", flush=True)
    write_cases(args.output, cases, source=str(args.source), perturbation=args.perturb,
                generator_version=source.get("generator_version"))  # the images' generator, not today's
    return 0


if __name__ == "__main__":
    sys.exit(main())
