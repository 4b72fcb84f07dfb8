"""How close air (outside air, mastoid cells, middle ear) comes to the labyrinth's fluid.

For every test-set head (``cases.json`` seeds) and ear, the share of cochlea, vestibule and
canal voxels (0.25 mm grid) with air within 0.5 mm. ``--wall 0`` paints no otic-capsule
wall, which is the anatomy of generator 1.0-1.3 (the wall layers are then the fluid's own
shapes, painted under it).

  python experiments/capsule_check.py runs/testset [--wall 0]
"""
import argparse
import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from InnerEarSegLib.core.grid import canonical_reference
from InnerEarSegLib.synth import anatomy
from InnerEarSegLib.synth.generate import volume_head

AIR = (0, 11, 12)
NAMES = ("cochlea", "vestibule", "canals")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("testset", type=Path)
    ap.add_argument("--wall", type=float, default=anatomy.CAPSULE_WALL_MM, help="capsule wall in mm (x ear scale)")
    args = ap.parse_args(argv)
    anatomy.CAPSULE_WALL_MM = args.wall
    shares = []
    for case in json.loads((args.testset / "cases.json").read_text())["cases"]:
        head = volume_head(case["seed"])
        for side in ("right", "left"):
            ref = canonical_reference(head.ear_center(side), [96] * 3, 0.25)
            tissue = head.labels_at(anatomy.grid_points(ref)).reshape(96, 96, 96)
            near_air = ndimage.binary_dilation(np.isin(tissue, AIR), iterations=2)
            shares.append([(near_air & (tissue == v)).sum() / max((tissue == v).sum(), 1) for v in (1, 2, 3)])
            print(case["name"], side, " ".join(f"{n} {s:.3f}" for n, s in zip(NAMES, shares[-1])), flush=True)
    shares = np.array(shares)
    print(f"\nwall {args.wall} mm, {len(shares)} ears: mean share near air "
          + " ".join(f"{n} {s:.3f}" for n, s in zip(NAMES, shares.mean(0)))
          + f"; ears with > 2 % of canal voxels near air: {int((shares[:, 2] > 0.02).sum())}")


if __name__ == "__main__":
    main()
