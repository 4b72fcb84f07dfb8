"""The fluid check's ratio per ear against the truth: does the reference have a vestibule there?

Reads the ``ears`` of each case's ``<name>_stats.json`` (written by ``innerear-seg segment``;
``fluid_ratio`` is the vestibule's contrast to the otic capsule over the cochlea's) and the
reference labels of the set. Prints every ear and the range of ratios over ears with and
without a vestibule; the check removes ratios outside 0.5-2.

  python scripts/fluid_ratios.py runs/lxset runs/lxpred
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from InnerEarSegLib.fluid_check import RATIO_LIMIT  # noqa: E402

NEAR_MM = 15.0


def reference_vestibule_mm3(labels: sitk.Image, center_lps) -> float:
    """Vestibule volume of the reference within NEAR_MM of an ear centre."""
    array = sitk.GetArrayViewFromImage(labels)
    zyx = np.argwhere(array == 2)
    if not len(zyx):
        return 0.0
    D = np.array(labels.GetDirection()).reshape(3, 3) * np.array(labels.GetSpacing())
    pts = np.asarray(labels.GetOrigin()) + zyx[:, ::-1] @ D.T
    near = np.linalg.norm(pts - np.asarray(center_lps), axis=1) < NEAR_MM
    return float(near.sum() * np.prod(labels.GetSpacing()))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("set", type=Path, help="folder with cases.json and labels/")
    ap.add_argument("pred", type=Path, help="innerear-seg segment output folder")
    args = ap.parse_args(argv)
    groups = {"with vestibule": [], "without vestibule": []}
    for case in json.loads((args.set / "cases.json").read_text())["cases"]:
        name = case["name"]
        stats = args.pred / name / f"{name}_stats.json"
        if not stats.exists():
            print(f"{name}: no prediction")
            continue
        labels = sitk.ReadImage(str(args.set / "labels" / f"{name}.nrrd"))
        for ear in json.loads(stats.read_text())["ears"]:
            truth = reference_vestibule_mm3(labels, ear["center_lps"])
            ratio = ear.get("fluid_ratio")
            print(f"{name} {case['family']:7s} {ear['side']:5s} reference vestibule {truth:5.1f} mm3  ratio "
                  + ("undecided" if ratio is None else f"{ratio:.2f}"))
            groups["with vestibule" if truth > 0 else "without vestibule"].append(ratio)
    for group, ratios in groups.items():
        decided = [r for r in ratios if r is not None]
        removed = sum(not 1 / RATIO_LIMIT <= r <= RATIO_LIMIT for r in decided)
        span = f"{min(decided):.2f} to {max(decided):.2f}" if decided else "-"
        print(f"{group}: {len(ratios)} ears, {len(ratios) - len(decided)} undecided, ratio {span}, "
              f"{removed} removed by the check")
    return 0


if __name__ == "__main__":
    sys.exit(main())
