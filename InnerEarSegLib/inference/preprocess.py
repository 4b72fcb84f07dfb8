"""From a scan to network inputs: value checks, modality, and resampling into model space.

Every network input is an identity-direction isotropic grid (``grid.py``), built by
resampling the scan, so the networks see every scan the same way up whatever its
orientation. Each input is normalised on its own (percentiles, ``grid.normalise``):
the whole coarse volume for the localizer, each ear region for the segmenter.
Arrays are (z, y, x).
"""
import math
import warnings
from typing import Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from ..core import grid
from ..core.errors import InputError
from ..core.progress import no_progress
from ..core.read import check_grid, check_voxels

# A field of view thinner than this on some axis cannot hold a whole labyrinth. A labyrinth is
# about 15-20 mm long but only about 10 mm in its thinnest direction: the real temporal-bone CT
# crops (Wimmer et al. 2019), each holding a whole labyrinth, are 13.2-24 mm a side.
SMALLEST_EAR_MM = 10.0
CENTER_SIZE_MM = (115.2, 115.2, 28.8)  # the reference method's centre crop: 256 x 256 x 64 voxels at 0.45 mm
THICK_SLICE_MM = 1.5  # coarser voxels still run, with a warning: canals (about 1 mm) blur away


def check_values(image: sitk.Image, path=None) -> None:
    """Refuse what ``read.read_image`` refuses in a file, for in-memory images too (Slicer
    volumes, arrays): a grid that cannot be resampled faithfully, NaN/Inf voxels, and
    volumes without any contrast, where nothing sensible can come out. Warn when the field of
    view is smaller than one inner ear: whatever is found there is at best a part of one."""
    check_grid(path, image.GetSize(), image.GetSpacing(), image.GetDirection())
    check_voxels(image, path)
    a = sitk.GetArrayViewFromImage(image)
    lo, hi = a.min(), a.max()
    if lo == hi:
        raise InputError(path, f"constant volume (every voxel is {lo}), nothing to segment")
    extent = [n * s for n, s in zip(image.GetSize(), image.GetSpacing())]
    if min(extent) < SMALLEST_EAR_MM:
        warnings.warn(f"{path or 'input'}: the field of view ({' x '.join(f'{e:.1f}' for e in extent)} mm) is "
                      f"smaller than one inner ear (a labyrinth is at least {SMALLEST_EAR_MM:g} mm thick); "
                      "anything found is at best a part of one, and may not be an ear at all")


def _sample(image: sitk.Image, max_voxels: int = 2_000_000) -> np.ndarray:
    """A regular subsample of the voxels, enough for percentiles and histograms of big scans."""
    a = sitk.GetArrayViewFromImage(image)
    step = max(1, math.ceil((a.size / max_voxels) ** (1 / 3)))
    return np.asarray(a[::step, ::step, ::step], dtype=np.float32)


def detect_modality(image: sitk.Image) -> str:
    """``"ct"`` when intensities look like Hounsfield units, else ``"mr"``.

    Rule: MR magnitudes are never below -500, so a minimum above -500 means MR. Otherwise
    the scan is CT when at least 5% of voxels are air (-1100..-900 HU) or its brightest 0.1%
    is above 1000 HU (dense bone such as the otic capsule). CBCT not calibrated to HU
    and CT stored without its rescale intercept (air near 0) are therefore called MR;
    pass the modality explicitly for those.
    """
    a = _sample(image)
    if a.min() >= -500:
        return "mr"
    air = np.mean((a >= -1100) & (a <= -900))
    return "ct" if air >= 0.05 or np.percentile(a, 99.9) > 1000 else "mr"


def checked_modality(image: sitk.Image, model, modality: str, source=None, report=no_progress) -> str:
    """The scan's ``modality`` as set, or detected when ``"auto"``, after the value checks
    (``check_values``); reported as the preprocess stage's middle; warnings for unsuited inputs."""
    check_values(image, source)
    modality = detect_modality(image) if modality == "auto" else modality
    report("preprocess", 0.5, f"modality {modality.upper()}")
    warn_if_unsuited(image, model, modality, source)
    return modality


def warn_if_unsuited(image: sitk.Image, model, modality: str, source=None) -> None:
    """Warnings for inputs that run but may disappoint: thick slices, a modality the ``model``
    (a ``model_card.LoadedModel``) never saw."""
    coarsest = max(image.GetSpacing())
    if coarsest > THICK_SLICE_MM:
        warnings.warn(f"{source or 'input'}: voxels up to {coarsest:g} mm are much coarser than the model's "
                      f"{model.card['preprocessing']['spacing_mm']} mm; thin structures such as the "
                      "semicircular canals will be unreliable")
    trained = model.card.get("modalities")  # e.g. ["mr", "ct"]; no entry: no check
    if trained and modality not in trained:
        warnings.warn(f"{source or 'input'} looks like {modality.upper()} but the model was trained on "
                      f"{', '.join(m.upper() for m in trained)} only; set the modality if this is wrong")


def low_value(image: sitk.Image, percentile: float) -> float:
    """The image's low intensity percentile: padding with it looks like background to the networks."""
    return float(np.percentile(_sample(image), percentile))


def localizer_input(image: sitk.Image, spacing: float, multiple: int, normalisation: dict
                    ) -> Tuple[sitk.Image, np.ndarray]:
    """The whole scan, linearly resampled onto a covering model-space grid and normalised.

    Returns the grid (a float image, for its geometry) and the normalised array.
    """
    reference = grid.covering_reference(image, spacing, multiple)
    coarse = grid.resample(image, reference, "linear", low_value(image, normalisation["low"]))
    array = grid.normalise(sitk.GetArrayFromImage(coarse), normalisation["low"], normalisation["high"])
    return coarse, array


def head_midline_x(image: sitk.Image, normalisation: dict) -> float:
    """The middle (LPS x) of the head's extent, from a 4 mm copy of the scan thresholded above
    air. Used only to place the mirror-image search for the second ear; exact to a few mm is enough."""
    coarse, array = localizer_input(image, 4.0, 1, normalisation)
    columns = np.nonzero((array > 0.1).any(axis=(0, 1)))[0]
    if columns.size == 0:
        return 0.0
    xs = coarse.GetOrigin()[0] + columns * coarse.GetSpacing()[0]
    return float((xs.min() + xs.max()) / 2.0)


def region_size(size_mm: Sequence[float], spacing: float, multiple: int,
                min_size: Sequence[int] = (1, 1, 1)) -> list:
    """Voxels (x, y, z) covering ``size_mm`` at ``spacing``, at least ``min_size``, a multiple of ``multiple``."""
    size = [max(math.ceil(mm / spacing - 1e-6), int(m)) for mm, m in zip(size_mm, min_size)]
    return [int(math.ceil(s / multiple) * multiple) for s in size]


def ear_reference(center_lps, preprocessing: dict, multiple: int, region_mm: Optional[float] = None) -> sitk.Image:
    """The segmenter grid around one ear: ``ear_region_mm`` (x, y, z), or a ``region_mm`` cube
    (a wider search), at least one patch."""
    spacing = preprocessing["spacing_mm"]
    size_mm = preprocessing["ear_region_mm"] if region_mm is None else [region_mm] * 3
    size = region_size(size_mm, spacing, multiple, preprocessing["patch_size"][::-1])
    return grid.canonical_reference(center_lps, size, spacing)


def center_reference(image: sitk.Image, preprocessing: dict, multiple: int,
                     size_mm: Sequence[float] = CENTER_SIZE_MM) -> sitk.Image:
    """The reference method's region: the whole scan at the segmenter spacing, centre-cropped/padded
    to ``size_mm`` (x, y, z); it usually holds both ears (115 mm wide). Millimetres, not voxels,
    so a segmenter on a finer grid sees the same field (320 x 320 x 80 voxels at 0.36 mm)."""
    lo, hi = grid.physical_bounds(image)
    size = region_size(size_mm, preprocessing["spacing_mm"], multiple)
    return grid.canonical_reference((lo + hi) / 2.0, size, preprocessing["spacing_mm"])


def crop_to(image: sitk.Image, reference: sitk.Image, margin: int = 4) -> Optional[sitk.Image]:
    """The part of ``image`` under ``reference``'s grid plus ``margin`` voxels, or None if they do not overlap.

    Interpolating from the crop instead of the whole scan keeps B-spline set-up cheap.
    """
    size = np.array(reference.GetSize())
    corners = [[i, j, k] for i in (-0.5, size[0] - 0.5) for j in (-0.5, size[1] - 0.5) for k in (-0.5, size[2] - 0.5)]
    idx = np.array([image.TransformPhysicalPointToContinuousIndex(reference.TransformContinuousIndexToPhysicalPoint(c))
                    for c in corners])
    lo = np.maximum(np.floor(idx.min(0)).astype(int) - margin, 0)
    hi = np.minimum(np.ceil(idx.max(0)).astype(int) + margin, np.array(image.GetSize()) - 1)
    if np.any(hi < lo):
        return None
    return sitk.RegionOfInterest(image, (hi - lo + 1).tolist(), lo.tolist())


def region_resampled(image: sitk.Image, reference: sitk.Image, low: float) -> Optional[np.ndarray]:
    """B-spline resample of the scan onto ``reference`` (z, y, x), before normalisation; outside
    the scan padded with the region's ``low`` percentile (background). None when they do not meet."""
    crop = crop_to(image, reference)
    if crop is None:
        return None
    return sitk.GetArrayFromImage(grid.resample(crop, reference, "bspline", low_value(crop, low)))


def region_input(image: sitk.Image, reference: sitk.Image, normalisation: dict) -> np.ndarray:
    """``region_resampled``, normalised over the region (zeros where the scan is not)."""
    array = region_resampled(image, reference, normalisation["low"])
    if array is None:
        return np.zeros(reference.GetSize()[::-1], np.float32)
    return grid.normalise(array, normalisation["low"], normalisation["high"])
