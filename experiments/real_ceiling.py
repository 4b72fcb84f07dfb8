"""How high can labyrinth DSC go on the real CT ears, and where does the model lose it?

    PYTHONPATH=release python experiments/real_ceiling.py [--spacing 0.3] [--pred-dir runs/planning_seg]

Data: Wimmer et al. 2019 temporal-bone CT with micro-CT labels (Zenodo doi:10.5281/zenodo.3355272,
CC BY 4.0), all eleven labelled ears of ``release/real_ct.py``. Per ear:

- ``grid``: the reference taken to the segmenter's grid and back, as a perfect soft network would
  output it (the label blurred by one new voxel FWHM, resampled linearly to ``--spacing`` mm,
  resampled linearly back, > 0.5). What the model grid alone costs.
- ``thr``: the best single intensity threshold (lumen darker than bone: air in F-ears, fluid in
  T-ears) inside 1 mm of the reference. How well the micro-CT label agrees with the CT's own
  edges; not reachable by a threshold without the label, but a network can use shape.
- with ``--pred-dir`` (``innerear-seg segment`` output folders, ``NAME/NAME_labels.nii.gz``): the
  model's DSC and its false-positive / false-negative mm3 by distance from the reference surface
  (0-0.25, 0.25-0.5, 0.5-1, 1-2, > 2 mm): boundary jitter against whole wrong pieces.
"""
import argparse
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

import real_ct  # release/ on PYTHONPATH
from real_mri import dice

SHELLS = [0, 0.25, 0.5, 1, 2, np.inf]


def grid_ceiling(label: sitk.Image, spacing: float) -> float:
    mask = sitk.Cast(label > 0, sitk.sitkFloat32)
    blurred = sitk.SmoothingRecursiveGaussian(mask, spacing / 2.355)
    size = [int(round(n * s / spacing)) for n, s in zip(mask.GetSize(), mask.GetSpacing())]
    coarse = sitk.Resample(blurred, size, sitk.Transform(), sitk.sitkLinear, mask.GetOrigin(), [spacing] * 3,
                           mask.GetDirection(), 0.0, sitk.sitkFloat32)
    back = sitk.Resample(coarse, mask, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return dice(sitk.GetArrayFromImage(mask) > 0.5, sitk.GetArrayFromImage(back) > 0.5)


def threshold_agreement(image: np.ndarray, ref: np.ndarray, near: np.ndarray) -> float:
    values, inside = image[near], ref[near]
    return max(dice(values < t, inside) for t in np.percentile(values, np.arange(2, 98)))


def shell_errors(pred: np.ndarray, ref: np.ndarray, spacing) -> tuple:
    voxel = float(np.prod(spacing))
    outside = ndimage.distance_transform_edt(~ref, sampling=spacing)
    inside = ndimage.distance_transform_edt(ref, sampling=spacing)
    fp = np.histogram(outside[pred & ~ref], SHELLS)[0] * voxel
    fn = np.histogram(inside[ref & ~pred], SHELLS)[0] * voxel
    return fp, fn


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spacing", type=float, default=0.3, help="the segmenter's grid, mm")
    ap.add_argument("--pred-dir", type=Path, help="innerear-seg segment output of the CT_RAW scans")
    args = ap.parse_args(argv)
    split = {case: name for name, cases in real_ct.SPLIT.items() for case in cases}
    print("case  split   grid   thr" + ("   model   FP mm3 by mm from the surface      FN mm3" if args.pred_dir else ""))
    for case in sorted(split):
        label = sitk.ReadImage(str(real_ct.SOURCE / f"{case}_CT_LABELS.nii.gz"))
        ref = sitk.GetArrayFromImage(label) > 0
        spacing = np.array(label.GetSpacing())[::-1]
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(real_ct.SOURCE / f"{case}_CT_RAW.nii.gz")))
        near = ndimage.distance_transform_edt(~ref, sampling=spacing) < 1.0
        line = f"{case}   {split[case]:5s}  {grid_ceiling(label, args.spacing):.3f}  " \
               f"{threshold_agreement(image.astype(np.float32), ref, near):.3f}"
        if args.pred_dir:
            name = f"{case}_CT_RAW"
            pred = sitk.GetArrayFromImage(sitk.ReadImage(str(args.pred_dir / name / f"{name}_labels.nii.gz"))) > 0
            fp, fn = shell_errors(pred, ref, spacing)
            line += f"  {dice(pred, ref):.3f}  " + " ".join(f"{v:5.1f}" for v in fp) + "   " + \
                    " ".join(f"{v:5.1f}" for v in fn[:3])
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
