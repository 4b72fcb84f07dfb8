"""The same anatomy on the same scan grid in several contrasts, segmented and scored: what the
contrast alone costs, with anatomy, field of view and resolution held fixed.

Why: on the test set the canals score 0.84 in MR and 0.57-0.64 in CT and CBCT, but those are
different ears on different grids. Here each seed's head and grid (``generate_volume`` with a
given family draws the same anatomy, field of view, spacing and direction) is rendered once per
family. ``--spacing`` fixes the voxel size (x y z mm), e.g. a temporal-bone CT protocol's.
Prints one row per scan and family (per-ear means over both ears), then the means per family;
the last column: the share of missed canal voxels that lie next to air (within one voxel of
mastoid air cells, middle-ear or outside air in the generator's tissue map).

  python experiments/contrast_pairs.py --seeds 900001 900007 900050 [--families mr ct cbct]
                                   [--spacing 0.3 0.3 0.6] [--model CARD.json]
"""
import argparse
import sys
from collections import defaultdict

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from InnerEarSegLib import pipeline
from InnerEarSegLib.evaluation.metrics import compute_metrics
from InnerEarSegLib.model.model_card import load_model
from InnerEarSegLib.synth.appearance import FAMILIES
from InnerEarSegLib.synth.anatomy import grid_points
from InnerEarSegLib.synth.generate import generate_volume, volume_head

COLUMNS = ("cochlea", "vestibule", "semicircular_canals", "labyrinth")
AIR = (0, 11, 12)   # outside air, mastoid air cells, middle ear and other air (anatomy.TISSUES)
CANALS = 3


def ear_dsc(rows):
    """Mean DSC per structure over the ears that have it in the reference."""
    out = {}
    for structure in COLUMNS:
        values = [r["dsc"] for r in rows if r["structure"] == structure and r["side"] != "both"
                  and r["ref_mm3"] > 0]
        out[structure] = float(np.mean(values)) if values else float("nan")
    return out


def near_air(seed, labels):
    """Voxels of the scan grid within one voxel (26-neighbours) of air in the seed's tissue map."""
    tissue = volume_head(seed).labels_at(grid_points(labels)).reshape(labels.GetSize()[::-1])
    return ndimage.binary_dilation(np.isin(tissue, AIR), np.ones((3, 3, 3), bool))


def missed_canals_next_to_air(air, labels, predicted):
    """Share of the reference canal voxels not predicted as canal that lie in ``air`` (near_air)."""
    truth, pred = sitk.GetArrayViewFromImage(labels), sitk.GetArrayViewFromImage(predicted)
    missed = (truth == CANALS) & (pred != CANALS)
    return float(air[missed].mean()) if missed.any() else float("nan")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--families", nargs="+", choices=FAMILIES, default=["mr", "ct", "cbct"])
    ap.add_argument("--spacing", type=float, nargs=3, metavar=("X", "Y", "Z"), help="voxel size in mm")
    ap.add_argument("--fov", choices=["ear", "slab", "head"], default="slab")
    ap.add_argument("--model", help="model card (default: the bundled model)")
    args = ap.parse_args(argv)
    model = load_model(args.model)
    params = pipeline.SegmentParameters(surfaces=False)
    means = defaultdict(list)
    print("seed    family  spacing (mm)        " + "  ".join(f"{c[:9]:>9s}" for c in COLUMNS) + "  missed@air")
    for seed in args.seeds:
        air = None   # one tissue map per seed: every family shares its grid
        for family in args.families:
            image, labels, info = generate_volume(seed, family=family, spacing_xyz=args.spacing, fov=args.fov)
            result = pipeline.segment(image, model, params, source=f"seed {seed} {family}")
            dsc = ear_dsc(compute_metrics(result.labels, labels, distances=False))
            air = near_air(seed, labels) if air is None else air
            row = [dsc[c] for c in COLUMNS] + [missed_canals_next_to_air(air, labels, result.labels)]
            means[family].append(row)
            spacing = " ".join(f"{s:.2f}" for s in info["spacing"])
            print(f"{seed:<7d} {family:7s} {spacing:18s}  " + "  ".join(f"{v:9.3f}" for v in row), flush=True)
    print("mean over seeds")
    for family, rows in means.items():
        print(f"{'':7s} {family:7s} {'':18s}  " + "  ".join(f"{v:9.3f}" for v in np.nanmean(rows, 0)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
