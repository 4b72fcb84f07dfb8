"""Crude phantoms: the labyrinth alone in a uniform block, in the layout of ``innerear-seg synth``.

The label maps and scan geometry (spacing, orientation, field of view) come from
``generate_volume``; the images do not use the generator's appearance model at all: every
voxel outside the labyrinth has one intensity, as in a 3D-printed or cast phantom. Kinds, in
turn: ``mr`` (bright fluid in a dark block), ``ct-bone`` (fluid 10 HU in 1800 HU bone),
``ct-cast`` (a solid 150 HU labyrinth cast in air), ``mr-dark`` (dark fluid in a bright block,
as a T1 or an inverted image). Smoothed by 0.7 voxel, then noise.
A model that finds the labyrinth only by its surroundings (the internal auditory canal,
the capsule, air cells) finds nothing here.

  python scripts/make_phantoms.py -o runs/phantomset -n 12 --seed 800000
"""
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from InnerEarSegLib.synth import set_arguments, write_cases, write_pair  # noqa: E402
from InnerEarSegLib.synth.generate import generate_volume  # noqa: E402

KINDS = {   # fluid, block, noise sd, pixel type
    "mr": (1000.0, 60.0, 30.0, np.float32),
    "ct-bone": (10.0, 1800.0, 20.0, np.int16),
    "ct-cast": (150.0, -1000.0, 20.0, np.int16),
    "mr-dark": (80.0, 900.0, 30.0, np.float32),
}


def phantom(seed, kind, fov):
    """(image, labels, info) of one phantom."""
    _, labels, info = generate_volume(seed, family="mr", fov=fov, max_voxels=6_000_000)
    fluid, block, noise, dtype = KINDS[kind]
    rng = np.random.default_rng(seed)
    lab = sitk.GetArrayViewFromImage(labels)
    arr = ndimage.gaussian_filter(np.where(lab > 0, fluid, block).astype(np.float32), 0.7)
    arr = arr + noise * rng.normal(size=arr.shape).astype(np.float32)
    if kind.startswith("mr"):
        arr = np.abs(arr)
    image = sitk.GetImageFromArray(arr.astype(dtype))
    image.CopyInformation(labels)
    return image, labels, {**info, "family": kind}


def main(argv=None):
    args = set_arguments(argv, __doc__.splitlines()[0], seed=800000)
    cases = []
    for i in range(args.count):
        kind, fov = list(KINDS)[i % len(KINDS)], ("ear", "slab", "slab", "ear", "ear", "slab")[i % 6]
        image, labels, info = phantom(args.seed + i, kind, fov)
        name = f"phantom_{args.seed + i:05d}"
        write_pair(args.output, name, image, labels)
        cases.append({"name": name, **info})
        print(f"{name}: {kind:8s} {info['fov']:5s} {info['orientation']:8s} "
              f"spacing {', '.join(f'{s:.2f}' for s in info['spacing'])}", flush=True)
    write_cases(args.output, cases, phantoms=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
