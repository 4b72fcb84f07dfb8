"""Overlap, volume and surface-distance metrics of a predicted label map against a reference.

One row per structure (cochlea, vestibule, semicircular canals, and the whole labyrinth,
labels > 0) and side (right, left, and both = the whole image). Sides are physical: the
union of prediction and reference is split into connected regions and each region goes to
the side of its centroid's LPS x relative to a midline, the midpoint between the reference's
two labyrinths (0 when the reference does not have two), so a false positive on the wrong
ear counts on that ear.

Conventions for empty masks (prediction P, reference R):
- DSC is 1.0 when both are empty and 0.0 when only one is (``compute_dice(ignore_empty=False)``).
- TPR and FNR are NaN when R is empty, FDR is NaN when P is empty.
- HD95 and ASSD are NaN when either is empty (no surface to measure from).
FPR is FP divided by all reference negatives in the image, so it is tiny by construction.
Distances are in mm with the image spacing (``monai.metrics``); direction cosines do not
change distances, so they need no handling.
"""
import warnings
from typing import Dict, List, Optional

import numpy as np
import SimpleITK as sitk
import torch
from monai.metrics import compute_average_surface_distance, compute_dice, compute_hausdorff_distance

from ..core.errors import InputError
from ..core.grid import resample
from ..core.labels import NUM_CLASSES, STRUCTURES, side_of_x

LABYRINTH = "labyrinth"
SIDES = ("right", "left", "both")
METRICS = ("dsc", "tpr", "fnr", "fdr", "fpr", "tp_mm3", "fp_mm3", "fn_mm3", "pred_mm3", "ref_mm3",
           "hd95_mm", "assd_mm")
MIN_EAR_SEPARATION_MM = 20.0  # a labyrinth is under 20 mm across; the two are about 90 mm apart


def compute_metrics(pred: sitk.Image, ref: sitk.Image, resample_to_reference: bool = False,
                    pred_name: Optional[str] = None, ref_name: Optional[str] = None,
                    distances: bool = True) -> List[dict]:
    """Rows of ``structure``, ``side`` and every name in ``METRICS`` for ``pred`` against ``ref``.

    Both images must share the grid; ``resample_to_reference`` resamples ``pred`` onto
    ``ref`` by nearest neighbour instead of failing. ``*_name`` are used in error messages.
    ``distances=False`` leaves HD95 and ASSD NaN: they cost seconds to minutes on large or
    noisy masks, and validation during training or a benchmark needs only the overlap.
    """
    pred_name, ref_name = pred_name or "<prediction>", ref_name or "<reference>"
    ref_arr, pred_arr = _check_labels(ref, ref_name), _check_labels(pred, pred_name)
    if not same_grid(pred, ref):
        if not resample_to_reference:
            raise InputError(pred_name, f"not on the grid of the reference {ref_name} ({_grid_text(pred)} vs "
                                        f"{_grid_text(ref)}); resample it to the reference to compare")
        pred_arr = sitk.GetArrayFromImage(resample(pred, ref, "nearest", pixel_type=sitk.sitkUInt8))
    n_voxels = ref_arr.size
    voxel_mm3 = float(np.prod(ref.GetSpacing()))
    pred_img, ref_img = _crop_to_union(ref, pred_arr, ref_arr)
    pred_arr, ref_arr = sitk.GetArrayFromImage(pred_img), sitk.GetArrayFromImage(ref_img)
    side_masks = _side_masks(pred_arr, ref_arr, ref_img)
    spacing_zyx = list(ref.GetSpacing())[::-1]
    rows = []
    for key, value in [(s.key, s.value) for s in STRUCTURES] + [(LABYRINTH, None)]:
        p_all = pred_arr > 0 if value is None else pred_arr == value
        r_all = ref_arr > 0 if value is None else ref_arr == value
        for side in SIDES:
            p, r = p_all & side_masks[side], r_all & side_masks[side]
            row = {"structure": key, "side": side}
            row.update(pair_metrics(p, r, n_voxels, voxel_mm3, spacing_zyx if distances else None))
            rows.append(row)
    return rows


def same_grid(a: sitk.Image, b: sitk.Image, tol_mm: float = 1e-3) -> bool:
    """Same size, and spacing, origin and direction equal within ``tol_mm`` (NIfTI stores float32)."""
    return (a.GetSize() == b.GetSize()
            and np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=0, atol=tol_mm)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), rtol=0, atol=tol_mm)
            and np.allclose(a.GetDirection(), b.GetDirection(), rtol=0, atol=1e-4))


def _grid_text(img: sitk.Image) -> str:
    r = lambda v: tuple(round(float(x), 4) for x in v)  # noqa: E731
    return f"size {img.GetSize()}, spacing {r(img.GetSpacing())}, origin {r(img.GetOrigin())}, " \
           f"direction {r(img.GetDirection())}"


def _check_labels(img: sitk.Image, name: str) -> np.ndarray:
    """The label array, after checking it is a 3D scalar map of integers 0..3."""
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(name, f"expected a 3D scalar label map, got {img.GetDimension()}D with "
                               f"{img.GetNumberOfComponentsPerPixel()} components per voxel")
    arr = sitk.GetArrayViewFromImage(img)
    values = np.unique(arr)
    bad = values[(values < 0) | (values >= NUM_CLASSES) | (values != np.round(values))]
    if bad.size:
        raise InputError(name, f"label values must be integers 0..{NUM_CLASSES - 1}, found {bad[:5].tolist()}")
    return arr.astype(np.uint8)


def _image_like(arr: np.ndarray, grid: sitk.Image) -> sitk.Image:
    img = sitk.GetImageFromArray(arr.astype(np.uint8))
    img.CopyInformation(grid)
    return img


def _crop_to_union(ref: sitk.Image, pred_arr: np.ndarray, ref_arr: np.ndarray):
    """Both images cut to the box around any label plus one voxel; outside it all is true negative.

    SimpleITK slicing keeps the physical position, so centroids and sides are unchanged.
    """
    pred, ref = _image_like(pred_arr, ref), _image_like(ref_arr, ref)
    zyx = np.nonzero((pred_arr > 0) | (ref_arr > 0))
    if not zyx[0].size:
        return pred[:1, :1, :1], ref[:1, :1, :1]
    lo = [max(int(c.min()) - 1, 0) for c in zyx][::-1]
    hi = [min(int(c.max()) + 2, n) for c, n in zip(zyx, ref_arr.shape)][::-1]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    return pred[box], ref[box]


def midline_x(ref: sitk.Image) -> float:
    """LPS x halfway between the reference's two labyrinths, or 0 unless it has two.

    Connected regions of the labyrinth are sorted by centroid x; a gap wider than
    ``MIN_EAR_SEPARATION_MM`` separates the ears, each ear's centroid is its regions'
    size-weighted mean.
    """
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.ConnectedComponent(sitk.Cast(ref > 0, sitk.sitkUInt8), True))
    regions = sorted((stats.GetCentroid(k)[0], stats.GetNumberOfPixels(k)) for k in stats.GetLabels())
    if len(regions) < 2:
        return 0.0
    x, n = np.array(regions).T
    gaps = np.diff(x)
    cut = int(np.argmax(gaps)) + 1
    if gaps[cut - 1] <= MIN_EAR_SEPARATION_MM:
        return 0.0
    return float((np.average(x[:cut], weights=n[:cut]) + np.average(x[cut:], weights=n[cut:])) / 2)


def _side_masks(pred_arr: np.ndarray, ref_arr: np.ndarray, ref_img: sitk.Image) -> Dict[str, np.ndarray]:
    """Boolean arrays per side: connected regions of the union, by centroid x against the midline."""
    union = (pred_arr > 0) | (ref_arr > 0)
    regions = sitk.ConnectedComponent(_image_like(union, ref_img), True)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(regions)
    middle = midline_x(ref_img)
    left_ids = [k for k in stats.GetLabels() if side_of_x(stats.GetCentroid(k)[0], middle) == "left"]
    left = np.isin(sitk.GetArrayViewFromImage(regions), left_ids)
    return {"left": left, "right": union & ~left, "both": np.ones_like(union)}


def pair_metrics(p: np.ndarray, r: np.ndarray, n_voxels: int, voxel_mm3: float, spacing_zyx) -> dict:
    """Every metric of one binary prediction ``p`` against one binary reference ``r``; no distances
    when ``spacing_zyx`` is None."""
    tp, fp, fn = (int(np.count_nonzero(m)) for m in (p & r, p & ~r, ~p & r))
    n_ref, n_pred = tp + fn, tp + fp
    nan = float("nan")
    pt, rt = torch.as_tensor(p[None, None]), torch.as_tensor(r[None, None])
    out = {
        "dsc": float(compute_dice(pt, rt, include_background=True, ignore_empty=False)),
        "tpr": tp / n_ref if n_ref else nan,
        "fnr": fn / n_ref if n_ref else nan,
        "fdr": fp / n_pred if n_pred else nan,
        "fpr": fp / (n_voxels - n_ref) if n_voxels > n_ref else nan,
        "tp_mm3": tp * voxel_mm3, "fp_mm3": fp * voxel_mm3, "fn_mm3": fn * voxel_mm3,
        "pred_mm3": n_pred * voxel_mm3, "ref_mm3": n_ref * voxel_mm3,
        "hd95_mm": nan, "assd_mm": nan,
    }
    if n_ref and n_pred and spacing_zyx is not None:
        with warnings.catch_warnings():  # monai 1.5+ warns about its own internal deprecated argument
            warnings.simplefilter("ignore", FutureWarning)
            out["hd95_mm"] = float(compute_hausdorff_distance(pt, rt, include_background=True, percentile=95,
                                                              spacing=spacing_zyx))
            out["assd_mm"] = float(compute_average_surface_distance(pt, rt, include_background=True,
                                                                    symmetric=True, spacing=spacing_zyx))
    return out
