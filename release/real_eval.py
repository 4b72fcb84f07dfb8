"""The real-data table: segment the real CT validation ears through the product and score them.

    python release/real_eval.py --model MODEL.json [--split val] [--variants native clinical ...]

Data: Wimmer et al. 2019 temporal-bone CT (Zenodo doi:10.5281/zenodo.3355272, CC BY 4.0), the
fixed split of ``release/real_ct.py`` (prepared into ``runs/real`` when missing). Each ear is
segmented with ``pipeline.segment`` and the product's defaults (or the options given), and the
whole labyrinth (labels > 0) is compared with the micro-CT reference: DSC, predicted and
reference mm3, HD95. The reference is a whole labyrinth; ``cochlea_split`` cuts it into the
cochlea and the rest (vestibule with canals), which are compared with the predicted cochlea and
vestibule + canals (``coch`` and ``rest`` DSC, cochlea mm3).

Variants (the reference goes with the image, so nothing is resampled that need not be):
- ``native``: the CT as it is (0.16 x 0.16 x 0.2 mm).
- ``clinical``: blurred and resampled to 0.4 x 0.4 x 0.6 mm (``real_ct.clinical_like``); the
  reference is resampled onto that grid (linear, > 0.5).
- ``rotX30``, ``rotY30``, ``rotZ30`` (and any ``rot{X,Y,Z}{deg}``): the head turned by that many
  degrees about the scan centre, by rotating the direction cosines (no resampling).
- ``scale0.8``, ``scale1.25`` (any ``scale{f}``): the anatomy scaled by ``f`` (the spacing).
"""
import argparse
import dataclasses
import csv
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

import real_ct  # the split and the clinical-like copies

from InnerEarSegLib.core import grid
from InnerEarSegLib.training.cochlea_split import split_labels
from InnerEarSegLib.evaluation.metrics import pair_metrics
from InnerEarSegLib.model.model_card import load_model
from InnerEarSegLib.pipeline import SegmentParameters, segment
from InnerEarSegLib.synth.shapes import rotation

COLUMNS = ("dsc", "pred_mm3", "ref_mm3", "hd95_mm", "coch_dsc", "rest_dsc", "pred_coch_mm3", "ref_coch_mm3")
DEFAULT_VARIANTS = ("native", "clinical", "rotX30", "rotY30", "rotZ30", "scale0.8", "scale1.25")


def turned(image: sitk.Image, axis: str, degrees: float) -> sitk.Image:
    """The same voxels with the head turned about the scan centre (direction cosines rotated)."""
    angles = [0.0, 0.0, 0.0]
    angles["XYZ".index(axis)] = math.radians(degrees)
    R = rotation(*angles)
    c = np.asarray(grid.center_of(image))
    out = sitk.Image(image)
    out.SetDirection((R @ np.asarray(image.GetDirection()).reshape(3, 3)).ravel().tolist())
    out.SetOrigin((c + R @ (np.asarray(image.GetOrigin()) - c)).tolist())
    return out


def scaled(image: sitk.Image, factor: float) -> sitk.Image:
    """The same voxels with the anatomy ``factor`` times larger about the scan centre."""
    c = np.asarray(grid.center_of(image))
    out = sitk.Image(image)
    out.SetSpacing([s * factor for s in image.GetSpacing()])
    out.SetOrigin((c + factor * (np.asarray(image.GetOrigin()) - c)).tolist())
    return out


def variant(name: str, image: sitk.Image, label: sitk.Image, case: str, folder: Path):
    """(image, reference label on the image's grid) for one variant of a case."""
    if name == "native":
        return image, label
    if name == "clinical":
        clinical = folder.parent / "val_clinical" / f"{case}_image.nii.gz"
        coarse = sitk.ReadImage(str(clinical)) if clinical.is_file() else real_ct.clinical_like(image)
        ref = sitk.Image(coarse.GetSize(), sitk.sitkUInt8)
        ref.CopyInformation(coarse)
        for value in (1, 2):   # each label value kept where its interpolated mask is over one half
            inside = grid.resample(sitk.Cast(label == value, sitk.sitkFloat32), coarse, "linear") > 0.5
            ref = ref + sitk.Cast(inside, sitk.sitkUInt8) * value
        return coarse, ref
    rot = re.fullmatch(r"rot([XYZ])(-?[\d.]+)", name)
    if rot:
        axis, deg = rot.group(1), float(rot.group(2))
        return turned(image, axis, deg), turned(label, axis, deg)
    scale = re.fullmatch(r"scale([\d.]+)", name)
    if scale:
        return scaled(image, float(scale.group(1))), scaled(label, float(scale.group(1)))
    raise ValueError(f"unknown variant {name!r}")


def score(pred: sitk.Image, ref: sitk.Image) -> dict:
    """Labyrinth metrics, and the DSC of the cochlea (1) and of the rest (2 and 3 predicted, 2 in the
    split reference), with the cochlea volumes."""
    p, r = sitk.GetArrayViewFromImage(pred), sitk.GetArrayViewFromImage(ref)
    voxel_mm3 = float(np.prod(ref.GetSpacing()))
    m = pair_metrics(p > 0, r > 0, r.size, voxel_mm3, list(ref.GetSpacing())[::-1])
    m["coch_dsc"] = pair_metrics(p == 1, r == 1, r.size, voxel_mm3, None)["dsc"]
    m["rest_dsc"] = pair_metrics(p >= 2, r == 2, r.size, voxel_mm3, None)["dsc"]
    m["pred_coch_mm3"], m["ref_coch_mm3"] = float((p == 1).sum()) * voxel_mm3, float((r == 1).sum()) * voxel_mm3
    return m


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model card (default: the bundled model)")
    parser.add_argument("--data", type=Path, default=Path("runs/real"), help="prepared split (real_ct.py prepare)")
    parser.add_argument("--split", default="val", choices=sorted(real_ct.SPLIT))
    parser.add_argument("--cases", nargs="+", help="only these ears")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS))
    SegmentParameters.add_arguments(parser)   # the product's options (--no-tta, --no-tta-turns, ...)
    parser.add_argument("--csv", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if not (args.data / args.split).is_dir():
        real_ct.prepare(args.data)
    model = load_model(args.model) if args.model else load_model(None)
    params = dataclasses.replace(SegmentParameters.fromArgs(args), surfaces=False)
    rows = []
    print(f"{'case':5} {'variant':10} {'dsc':>6} {'pred_mm3':>9} {'ref_mm3':>8} {'hd95_mm':>8} "
          f"{'coch':>6} {'rest':>6} {'coch_mm3':>8} {'ref_coch':>8} {'s':>5}")
    for case in args.cases or real_ct.SPLIT[args.split]:
        folder = args.data / args.split
        image = sitk.ReadImage(str(folder / f"{case}_image.nii.gz"))
        label = split_labels(sitk.ReadImage(str(folder / f"{case}_label.nii.gz")))
        for name in args.variants:
            img, ref = variant(name, image, label, case, folder)
            start = time.perf_counter()
            result = segment(img, model, params, source=f"{case} {name}")
            m = score(result.labels, ref)
            row = {"case": case, "variant": name, **{k: m[k] for k in COLUMNS},
                   "seconds": time.perf_counter() - start, "warnings": " | ".join(result.warnings)}
            rows.append(row)
            print(f"{case:5} {name:10} {row['dsc']:6.3f} {row['pred_mm3']:9.1f} {row['ref_mm3']:8.1f} "
                  f"{row['hd95_mm']:8.2f} {row['coch_dsc']:6.3f} {row['rest_dsc']:6.3f} {row['pred_coch_mm3']:8.1f} "
                  f"{row['ref_coch_mm3']:8.1f} {row['seconds']:5.1f}", flush=True)
    print("\nmean DSC per variant: labyrinth, cochlea, rest (vestibule + canals)")
    for name in args.variants:
        chosen = [r for r in rows if r["variant"] == name]
        print(f"  {name:10} {np.mean([r['dsc'] for r in chosen]):.3f}  {np.mean([r['coch_dsc'] for r in chosen]):.3f}"
              f"  {np.mean([r['rest_dsc'] for r in chosen]):.3f}  (n={len(chosen)})")
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
