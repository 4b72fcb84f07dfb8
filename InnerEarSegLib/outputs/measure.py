"""Volumes, surface areas, centroids and bounding boxes of each structure per side, in mm.

All values come from ITK's ``LabelShapeStatisticsImageFilter`` on the label image, so
they honour spacing, origin and direction. Surface area is ITK's Crofton-formula
estimate from the voxels (no mesh): within about 1% for smooth shapes several voxels
across, 10-30% low for boxes and for tubes only 2-3 voxels wide. The smoothed surfaces
written as STL (``surface.py``) give a slightly different area. A labyrinth far outside the
sizes of real ones gets a warning (``warn_if_implausible``).
"""
import warnings
from typing import List, Optional

import numpy as np
import SimpleITK as sitk

from ..core.labels import STRUCTURES

SIDE_VALUES = {"right": 1, "left": 2}
# A whole labyrinth is about 150-300 mm3 (the real CT ears of Wimmer et al. 2019: 188-282); a
# cochlea alone after a labyrinthectomy is 50-100 mm3. Outside this range, a warning.
PLAUSIBLE_LABYRINTH_MM3 = (40.0, 450.0)


def _shape_stats(codes: np.ndarray, like: sitk.Image) -> dict:
    """code -> (voxels, area, centroid, bbox_min, bbox_max) for every non-zero code in ``codes``."""
    image = sitk.GetImageFromArray(codes)
    image.CopyInformation(like)
    image = sitk.ConstantPad(image, [1, 1, 1], [1, 1, 1], 0)  # room around objects at the edge, for the area
    f = sitk.LabelShapeStatisticsImageFilter()
    f.SetComputePerimeter(True)
    f.Execute(image)
    out = {}
    for code in f.GetLabels():
        box = f.GetBoundingBox(code)
        start, size = np.array(box[:3]), np.array(box[3:])
        corners = np.array([image.TransformIndexToPhysicalPoint([int(v) for v in start + (size - 1) * np.array(c)])
                            for c in np.ndindex(2, 2, 2)])
        out[code] = (int(f.GetNumberOfPixels(code)), float(f.GetPerimeter(code)), list(f.GetCentroid(code)),
                     corners.min(0).tolist(), corners.max(0).tolist())
    return out


def _crop_to_labels(labels: sitk.Image, sides: Optional[sitk.Image]):
    """Both images cropped to the labelled voxels' box (physical space kept), so a big scan
    measures fast; None when nothing is labelled."""
    found = sitk.GetArrayViewFromImage(labels) > 0
    if not found.any():
        return None
    axes = ((0, 1), (0, 2), (1, 2))  # projections onto x, y, z
    lo = [int(np.flatnonzero(found.any(axis=a))[0]) for a in axes]
    hi = [int(np.flatnonzero(found.any(axis=a))[-1]) for a in axes]
    size = [h - l + 1 for l, h in zip(lo, hi)]
    return [sitk.RegionOfInterest(im, size, lo) if im is not None else None for im in (labels, sides)]


def _row(structure: str, side: str, label: Optional[int], stats, voxel_mm3: float) -> dict:
    voxels, area, centroid, lo, hi = stats if stats else (0, 0.0, None, None, None)
    return {"structure": structure, "side": side, "label": label, "voxels": voxels,
            "volume_mm3": voxels * voxel_mm3, "surface_area_mm2": area,
            "centroid_lps": centroid,
            "centroid_ras": [-centroid[0], -centroid[1], centroid[2]] if centroid else None,
            "bbox_min_lps": lo, "bbox_max_lps": hi}


def measure(labels: sitk.Image, sides: Optional[sitk.Image] = None) -> List[dict]:
    """One row per structure and side, then each side's ``labyrinth`` total, then the overall one.

    Rows: structure (a ``labels`` key or ``labyrinth``), side (``right``/``left``, or ``both``
    for totals and when ``sides`` is None), label (None for labyrinth totals), voxels,
    volume_mm3, surface_area_mm2, centroid_lps, centroid_ras (RAS = (-x, -y, z)),
    bbox_min_lps / bbox_max_lps (the extreme voxel centres). Absent structures give rows
    with zeros and None, so every table has the same rows.
    """
    voxel_mm3 = float(np.prod(labels.GetSpacing()))
    per_structure, per_side, total = {}, {}, {}
    cropped = _crop_to_labels(labels, sides)
    if cropped is not None:
        labels_c, sides_c = cropped
        lab = sitk.GetArrayFromImage(labels_c).astype(np.int16)
        found = lab > 0
        side_codes = (found.astype(np.int16) if sides_c is None
                      else np.where(found, sitk.GetArrayViewFromImage(sides_c), 0).astype(np.int16))
        # code = 4 * side + label, so one pass measures every structure on every side
        per_structure = _shape_stats(4 * side_codes + lab, labels_c)
        per_side = _shape_stats(side_codes.astype(np.uint8), labels_c)
        total = _shape_stats(found.astype(np.uint8), labels_c)
    side_names = list(SIDE_VALUES) if sides is not None else ["both"]
    rows = []
    for i, side in enumerate(side_names, start=1):
        for s in STRUCTURES:
            rows.append(_row(s.key, side, s.value, per_structure.get(4 * i + s.value), voxel_mm3))
        if sides is not None:
            rows.append(_row("labyrinth", side, None, per_side.get(i), voxel_mm3))
    rows.append(_row("labyrinth", "both", None, total.get(1), voxel_mm3))
    return rows


def warn_if_implausible(stats: List[dict]) -> None:
    """A warning for each ear whose labyrinth is far outside the sizes of real ones: noise, a
    look-alike, or a fragment was labelled. A warning, not a removal: a labyrinthectomy leaves
    a cochlea alone (about 50-100 mm3) and a malformed ear may be larger."""
    low, high = PLAUSIBLE_LABYRINTH_MM3
    for row in stats:
        per_ear = row["structure"] == "labyrinth" and row["side"] != "both" and row["voxels"]
        if per_ear and not low <= row["volume_mm3"] <= high:
            warnings.warn(f"{row['side']} ear: a labyrinth of {row['volume_mm3']:.0f} mm3 is outside "
                          f"{low:g}-{high:g} mm3; check that it is an inner ear")
