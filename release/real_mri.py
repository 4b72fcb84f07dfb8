"""The real T2 MRI check: segment the IE-Vnet sample crop and score it against a threshold reference.

    python release/real_mri.py [--model MODEL.json] [--preview-png docs/real_mri_preview.png]

Data: ``vol_ie_L.nii.gz`` from the IE-Vnet repository (pydsgz/IEVNet, sample_data; Apache-2.0),
one left ear, 0.2 mm, no label (``../shared/realdata/mri-ievnet``).

The reference (``reference``) is built without any model: inside the region ``REGION`` the
voxels brighter than half-way between the region's median (bone and soft tissue) and its
99.5th percentile (fluid) are fluid (the half-maximum edge of a structure larger than the
blur), and the pieces of at least ``MIN_PIECE_MM3`` are kept. ``REGION`` is a box around the
labyrinth without the internal auditory canal: a cylinder along the canal from its fundus and all beyond a
plane across it 2.4 mm further medial (the canal runs medially from the fundus into the cistern;
its fluid is as bright as the labyrinth's). The cylinder and box were placed by eye on axial slices of this crop, once, before any model was
scored against the reference. It is a threshold reference: it follows the image's own edge
and so favours a little over-segmentation of thin canals less than a manual one would.
"""
import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from InnerEarSegLib.core.labels import STRUCTURES
from InnerEarSegLib.model.model_card import load_model
from InnerEarSegLib.pipeline import SegmentParameters, segment

ROOT = Path(__file__).resolve().parents[1]
SCAN = ROOT.parent / "shared" / "realdata" / "mri-ievnet" / "vol_ie_L.nii.gz"
# in voxel indices (x, y, z) of the crop: the box, and the IAC cut: a cylinder of ``iac_radius``
# voxels from the fundus along the canal, and everything beyond a plane across the canal
# ``iac_plane`` voxels (2.4 mm) medial of the fundus (the canal and the cistern it opens into)
REGION = {"box_min": (35, 25, 15), "box_max": (140, 120, 90), "fundus": (106, 73, 58),
          "iac_direction": (70, -37, 5), "iac_radius": 12, "iac_plane": 12}
MIN_PIECE_MM3 = 0.5


def region_mask(shape_zyx) -> np.ndarray:
    z, y, x = np.indices(shape_zyx)
    lo, hi = REGION["box_min"], REGION["box_max"]
    box = (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]) & (z >= lo[2]) & (z <= hi[2])
    d = np.asarray(REGION["iac_direction"], float)
    d /= np.linalg.norm(d)
    rel = np.stack([x, y, z], -1) - np.asarray(REGION["fundus"], float)
    along = rel @ d
    radial = np.linalg.norm(rel - along[..., None] * d, axis=-1)
    canal = (along > 0) & ((radial < REGION["iac_radius"]) | (along > REGION["iac_plane"]))
    return box & ~canal


def reference(image: sitk.Image) -> sitk.Image:
    a = sitk.GetArrayFromImage(image).astype(np.float32)
    inside = region_mask(a.shape)
    low, high = np.percentile(a[inside], [50, 99.5])
    fluid = inside & (a > (low + high) / 2)
    pieces, n = ndimage.label(fluid, np.ones((3, 3, 3)))
    sizes = np.bincount(pieces.ravel())[1:] * float(np.prod(image.GetSpacing()))
    keep = np.isin(pieces, 1 + np.flatnonzero(sizes >= MIN_PIECE_MM3))
    out = sitk.GetImageFromArray(keep.astype(np.uint8))
    out.CopyInformation(image)
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / max(1, np.count_nonzero(a) + np.count_nonzero(b))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model card (default: the bundled model)")
    parser.add_argument("--preview-png", type=Path, help="write a preview PNG of the result here")
    SegmentParameters.add_arguments(parser)   # the product's options (--no-tta, --no-tta-turns, ...)
    args = parser.parse_args(argv)
    image = sitk.ReadImage(str(SCAN))
    ref = reference(image)
    params = dataclasses.replace(SegmentParameters.fromArgs(args), surfaces=False)
    result = segment(image, load_model(args.model), params, source=SCAN.name)
    labels = sitk.GetArrayFromImage(result.labels)
    r = sitk.GetArrayFromImage(ref) > 0
    voxel = float(np.prod(image.GetSpacing()))
    print(f"reference labyrinth {r.sum() * voxel:.1f} mm3; predicted {np.count_nonzero(labels) * voxel:.1f} mm3")
    for s in STRUCTURES:
        mask = labels == s.value
        n = ndimage.label(mask, np.ones((3, 3, 3)))[1]
        print(f"  {s.key:20} {mask.sum() * voxel:7.1f} mm3 in {n} piece(s)")
    print(f"labyrinth DSC {dice(labels > 0, r):.3f}")
    for w in result.warnings:
        print("warning:", w)
    if args.preview_png:
        from InnerEarSegLib.outputs.preview import render_preview
        args.preview_png.parent.mkdir(parents=True, exist_ok=True)
        render_preview(image, result, args.preview_png)
        print("preview:", args.preview_png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
