"""The fluid check's ratio per ear against the truth: does the reference have a vestibule there?

Reads the ``ears`` of each case's ``<name>_stats.json`` (written by ``innerear-seg segment``;
``fluid_ratio`` is the vestibule's contrast to the otic capsule over the cochlea's,
``wall_ratio`` its contrast to its own wall over that to the capsule) and the reference labels
of the set. Prints every ear and the range of both ratios over ears with and without a
vestibule; the check removes fluid ratios outside 0.5-2 and wall ratios under 0.75.

  python experiments/fluid_ratios.py runs/lxset runs/lxpred
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from InnerEarSegLib.inference.fluid_check import keeps

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
            ratios = ear.get("fluid_ratio"), ear.get("wall_ratio")
            print(f"{name} {case['family']:7s} {ear['side']:5s} reference vestibule {truth:5.1f} mm3  ratio "
                  + "  wall ".join("undecided" if r is None else f"{r:.2f}" for r in ratios))
            groups["with vestibule" if truth > 0 else "without vestibule"].append(ratios)
    for group, ratios in groups.items():
        removed = sum(not keeps(r, w) for r, w in ratios)
        spans = []
        for kind, values in (("ratio", [r for r, _ in ratios]), ("wall", [w for _, w in ratios])):
            decided = [v for v in values if v is not None]
            spans.append(f"{kind} {min(decided):.2f} to {max(decided):.2f}" if decided else f"{kind} -")
            spans[-1] += f" ({len(values) - len(decided)} undecided)"
        print(f"{group}: {len(ratios)} ears, {', '.join(spans)}, {removed} removed by the check")
    return 0


if __name__ == "__main__":
    sys.exit(main())
