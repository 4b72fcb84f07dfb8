"""Model space: LPS-aligned (identity direction) isotropic grids, and resampling into them.

Every network input is resampled onto such a grid, whatever the scan's orientation,
so the networks always see the anatomy the same way up (axial, coronal, oblique and
flipped scans alike). Arrays follow SimpleITK's order (z, y, x) = (S, P, L) axes.
"""
from typing import Sequence

import numpy as np
import SimpleITK as sitk

INTERPOLATORS = {"nearest": sitk.sitkNearestNeighbor, "linear": sitk.sitkLinear,
                 "bspline": sitk.sitkBSpline}


def canonical_reference(center_lps: Sequence[float], size_xyz: Sequence[int], spacing: float) -> sitk.Image:
    """An empty identity-direction grid of ``size_xyz`` voxels centred on ``center_lps``."""
    size = [int(s) for s in size_xyz]
    ref = sitk.Image(size, sitk.sitkUInt8)
    ref.SetSpacing([float(spacing)] * 3)
    origin = np.asarray(center_lps, float) - (np.asarray(size) - 1) / 2.0 * spacing
    ref.SetOrigin(origin.tolist())
    return ref


def center_of(image: sitk.Image) -> tuple:
    """LPS position of the image's centre (the middle of its voxel centres)."""
    return tuple(image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in image.GetSize()]))


def physical_bounds(image: sitk.Image):
    """(min_lps, max_lps) of the image's voxel centres, for any direction cosines."""
    size = np.array(image.GetSize())
    corners = np.array([[i, j, k] for i in (0, size[0] - 1) for j in (0, size[1] - 1) for k in (0, size[2] - 1)],
                       float)
    pts = np.array([image.TransformContinuousIndexToPhysicalPoint(c.tolist()) for c in corners])
    return pts.min(0), pts.max(0)


def _in_view(image: sitk.Image, index: np.ndarray) -> np.ndarray:
    """Whether continuous indices (..., 3) of ``image`` lie within half a voxel of its voxel centres."""
    return np.all((index >= -0.5) & (index <= np.asarray(image.GetSize(), float) - 0.5), axis=-1)


def in_field_of_view(image: sitk.Image, point_lps) -> bool:
    """Whether a physical point lies in ``image``'s field of view (``_in_view``)."""
    return bool(_in_view(image, np.asarray(image.TransformPhysicalPointToContinuousIndex(
        [float(v) for v in point_lps]))))


def inside_mask(image: sitk.Image, reference: sitk.Image) -> np.ndarray:
    """Bool (z, y, x) on ``reference``: which of its voxel centres lie in ``image``'s field of view
    (``_in_view``), for any direction cosines of either grid."""
    size = np.array(reference.GetSize())
    to_lps = np.array(reference.GetDirection()).reshape(3, 3) * np.array(reference.GetSpacing())
    to_index = np.linalg.inv(np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing()))
    step = to_index @ to_lps                                            # image index per reference index
    start = to_index @ (np.asarray(reference.GetOrigin()) - np.asarray(image.GetOrigin()))
    i, j, k = (np.arange(n, dtype=float) for n in size)
    index = (start + k[:, None, None, None] * step[:, 2] + j[None, :, None, None] * step[:, 1]
             + i[None, None, :, None] * step[:, 0])
    return _in_view(image, index)


def covering_reference(image: sitk.Image, spacing: float, multiple: int = 1) -> sitk.Image:
    """An identity-direction grid at ``spacing`` covering the whole image, size a multiple of ``multiple``."""
    lo, hi = physical_bounds(image)
    size = np.ceil((hi - lo) / spacing).astype(int) + 1
    size = (np.ceil(size / multiple) * multiple).astype(int)
    return canonical_reference((lo + hi) / 2.0, size, spacing)


def resample(image: sitk.Image, reference: sitk.Image, interpolation: str = "linear",
             default: float = 0.0, pixel_type=sitk.sitkFloat32) -> sitk.Image:
    """Resample ``image`` onto ``reference``'s grid (physical space preserved)."""
    return sitk.Resample(image, reference, sitk.Transform(), INTERPOLATORS[interpolation], float(default),
                         pixel_type)


# the percentiles that stand in when low/high fall inside one uniform background (see normalise)
TAIL_PERCENTILES = (0.01, 99.99)
CLIPPED_SPAN = 0.5


def normalise(array: np.ndarray, low: float = 0.5, high: float = 99.5, mask=None) -> np.ndarray:
    """Robust min-max: map the low/high percentiles to 0/1 and clip; constant input gives zeros.

    When the low-high span is under ``CLIPPED_SPAN`` of the 0.01-99.99 span, the object that
    matters fills less than about 0.5 % of the voxels and the rest is one uniform background (a
    phantom's labyrinth, or only its cochlea, in a block): the high percentile falls in the
    background's noise or the object's blurred rim, and clipped there the object and its rim all
    became 1 (segmentations 1.4-1.7 times too large). The 0.01 and 99.99 percentiles are used
    instead. Ear regions of the synthetic heads span 0.75-0.97 (``experiments/normalisation_spans.py``)
    and never get near; metal (3071 HU) beside bone (1800) and air would give about
    (1800 + 1000) / (3071 + 1024) = 0.68.
    """
    values = array[mask] if mask is not None else array
    if values.size == 0:
        return np.zeros_like(array, dtype=np.float32)
    lo, hi, bottom, top = np.percentile(values, [low, high, *TAIL_PERCENTILES])
    if hi - lo < CLIPPED_SPAN * (top - bottom):
        lo, hi = bottom, top
    if not np.isfinite(lo) or not np.isfinite(hi) or hi - lo <= 1e-8 * max(1.0, abs(hi)):
        return np.zeros_like(array, dtype=np.float32)
    return np.clip((array.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0).astype(np.float32)
