"""Crude phantoms: the labyrinth alone in a uniform block, in the layout of ``innerear-seg synth``.

The label maps and scan geometry (spacing, orientation, field of view) come from
``generate_volume``; the images do not use the generator's appearance model at all: every
voxel outside the labyrinth has one intensity, as in a 3D-printed or cast phantom. Kinds, in
turn: ``mr`` (bright fluid in a dark block), ``ct-bone`` (fluid 10 HU in 1800 HU bone),
``ct-cast`` (a solid 150 HU labyrinth cast in air), ``mr-dark`` (dark fluid in a bright block,
as a T1 or an inverted image). Smoothed by 0.7 voxel, then noise.
A model that finds the labyrinth only by its surroundings (the internal auditory canal,
the capsule, air cells) finds nothing here.

``--lookalikes``: the same phantoms plus what a real scan shows at the fluid's intensity: the
internal auditory canal (its nerves at the block's), the cerebellopontine cistern, the other CSF
spaces and the vestibular aqueduct from the generator's anatomy, and 2-8 mm balls of fluid at
least 8 mm from the labyrinth, the look-alikes and islands that held back a synthetic-only model
on real T2 MRI.

  python release/make_phantoms.py -o runs/phantomset -n 12 --seed 800000
  python release/make_phantoms.py -o runs/lookalikeset -n 12 --seed 800000 --lookalikes
"""
import sys

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from InnerEarSegLib.synth import set_arguments, write_cases, write_pair
from InnerEarSegLib.synth.anatomy import grid_points
from InnerEarSegLib.synth.generate import generate_volume, volume_head

LOOKALIKE_TISSUES = (4, 6, 17, 20)   # IAC CSF, cistern, CSF, vestibular aqueduct (anatomy.TISSUES)
ISLAND_GAP_MM = 8.0

KINDS = {   # fluid, block, noise sd, pixel type
    "mr": (1000.0, 60.0, 30.0, np.float32),
    "ct-bone": (10.0, 1800.0, 20.0, np.int16),
    "ct-cast": (150.0, -1000.0, 20.0, np.int16),
    "mr-dark": (80.0, 900.0, 30.0, np.float32),
}


def lookalikes(seed, labels, rng):
    """Mask of the fluid look-alikes: the anatomy's CSF spaces and balls away from the labyrinth."""
    size = labels.GetSize()
    tissue = volume_head(seed).labels_at(grid_points(labels)).reshape(size[::-1])
    mask = np.isin(tissue, LOOKALIKE_TISSUES)
    spacing = np.array(labels.GetSpacing()[::-1])
    gap = ndimage.distance_transform_edt(sitk.GetArrayViewFromImage(labels) == 0, sampling=spacing)
    zyx = np.indices(mask.shape, sparse=True)
    for _ in range(int(rng.integers(3, 7))):
        radius = rng.uniform(1.0, 4.0)
        free = np.argwhere(gap > ISLAND_GAP_MM + radius)
        if not len(free):
            break
        centre = free[rng.integers(len(free))]
        mask |= sum(((i - c) * s) ** 2 for i, c, s in zip(zyx, centre, spacing)) <= radius ** 2
    return mask


def phantom(seed, kind, fov, with_lookalikes=False):
    """(image, labels, info) of one phantom."""
    _, labels, info = generate_volume(seed, family="mr", fov=fov, max_voxels=6_000_000)
    fluid, block, noise, dtype = KINDS[kind]
    rng = np.random.default_rng(seed)
    lab = sitk.GetArrayViewFromImage(labels)
    inside = lab > 0
    if with_lookalikes:
        inside = inside | lookalikes(seed, labels, np.random.default_rng([seed, 1]))
    arr = ndimage.gaussian_filter(np.where(inside, fluid, block).astype(np.float32), 0.7)
    arr = arr + noise * rng.normal(size=arr.shape).astype(np.float32)
    if kind.startswith("mr"):
        arr = np.abs(arr)
    image = sitk.GetImageFromArray(arr.astype(dtype))
    image.CopyInformation(labels)
    return image, labels, {**info, "family": kind}


def main(argv=None):
    args = set_arguments(argv, __doc__.splitlines()[0], seed=800000,
                         flags={"--lookalikes": "add fluid look-alikes and islands around the labyrinth"})
    cases = []
    for i in range(args.count):
        kind, fov = list(KINDS)[i % len(KINDS)], ("ear", "slab", "slab", "ear", "ear", "slab")[i % 6]
        image, labels, info = phantom(args.seed + i, kind, fov, args.lookalikes)
        name = f"phantom_{args.seed + i:05d}"
        write_pair(args.output, name, image, labels)
        cases.append({"name": name, **info})
        print(f"{name}: {kind:8s} {info['fov']:5s} {info['orientation']:8s} "
              f"spacing {', '.join(f'{s:.2f}' for s in info['spacing'])}", flush=True)
    write_cases(args.output, cases, phantoms=True, lookalikes=args.lookalikes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
