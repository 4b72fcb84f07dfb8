"""Where are the ears? The coarse localizer network finds at most one labyrinth per side.

Sides are physical: in LPS a larger x is the patient's left. The midline is the midpoint
between the two ears when both are found; with only one ear it is x = 0, the scanner
isocentre, which is near the middle of the head for ordinary head positioning.
"""
import warnings
from typing import Callable, List

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..core import grid
from ..core.labels import side_of_x
from ..core.result import EarRegion
from . import preprocess

MIN_EAR_MM3 = 30.0            # smaller blobs are noise: a labyrinth is 150-250 mm3
MIN_EAR_SEPARATION_MM = 40.0  # the ears are 90-100 mm apart; closer blobs belong to the same ear
EAR_CROP_MM = 50.0            # a scan no larger than this in every direction is a crop around one ear
WINDOW_SLACK = 1.25           # a coarse array this much larger than the patch is still one window
EXTRA_CANDIDATES = 2          # blobs beyond the chosen ears handed on for the segmenter to check
WEAK_THRESHOLD = 0.2          # when no blob reaches the card's threshold, weaker ones are checked
RELATIVE_THRESHOLD = 0.5      # ... and when none reaches that either, blobs above half the map's peak
MIN_PEAK = 0.02               # (unless even that is below this: nothing there)

Predictor = Callable[[object, np.ndarray, tuple], np.ndarray]


def scan_center(image: sitk.Image) -> tuple:
    lo, hi = grid.physical_bounds(image)
    return tuple(float(v) for v in (lo + hi) / 2.0)


def center_region(image: sitk.Image) -> EarRegion:
    """One region at the scan centre (score 0: not located), its side from the centre's x against x = 0."""
    center = scan_center(image)
    return EarRegion(side_of_x(center[0]), center, 0.0)


def fits_one_region(image: sitk.Image, region_mm) -> bool:
    """True when the whole scan fits inside one ear region (a scan already cropped to one ear)."""
    lo, hi = grid.physical_bounds(image)
    return bool(np.all(hi - lo <= np.asarray(region_mm, float)))


def _blobs(probability: np.ndarray, reference: sitk.Image, threshold: float, min_volume_mm3: float):
    """(volume mm3, centre LPS, peak probability) of each blob above ``threshold``, largest first."""
    mask = probability >= threshold
    components, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if n == 0:
        return []
    ids = np.arange(1, n + 1)
    volumes = np.bincount(components.ravel(), minlength=n + 1)[1:] * float(np.prod(reference.GetSpacing()))
    centres = ndimage.center_of_mass(mask, components, ids)
    peaks = ndimage.maximum(probability, components, ids)
    blobs = []
    for volume, zyx, peak in zip(volumes, centres, peaks):
        if volume >= min_volume_mm3:
            centre = reference.TransformContinuousIndexToPhysicalPoint([float(c) for c in zyx[::-1]])
            blobs.append((volume, tuple(centre), float(peak)))
    return sorted(blobs, key=lambda b: -b[0])


def find_ears(probability: np.ndarray, reference: sitk.Image, threshold: float,
              min_volume_mm3: float = MIN_EAR_MM3, extra: int = 0) -> List[EarRegion]:
    """Ears from a labyrinth probability map (z, y, x) on ``reference``'s grid, right first.

    The largest blob is one ear; the largest blob at least ``MIN_EAR_SEPARATION_MM`` away
    in x is the other. Score: the blob's peak probability. ``extra`` more blobs (the next
    largest) follow as further candidates, for ``confirm.confirm_ears`` to check.
    """
    blobs = _blobs(probability, reference, threshold, min_volume_mm3)
    if not blobs:
        return []
    first = blobs[0]
    others = [b for b in blobs[1:] if abs(b[1][0] - first[1][0]) >= MIN_EAR_SEPARATION_MM]
    chosen = [first] + others[:1]
    midline = (chosen[0][1][0] + chosen[1][1][0]) / 2.0 if len(chosen) == 2 else 0.0
    ears = sorted([EarRegion(side_of_x(c[0], midline), c, p) for _, c, p in chosen],
                  key=lambda e: e.side != "right")
    rest = [b for b in blobs if b not in chosen][:extra]
    return ears + [EarRegion(side_of_x(c[0], midline), c, p) for _, c, p in rest]


def locate_ears(image: sitk.Image, model, predictor: Predictor) -> List[EarRegion]:
    """Ear candidates for the segmenter, best first; an empty list when the scan holds no ear.

    The chosen ear per side comes first, then up to ``EXTRA_CANDIDATES`` other blobs;
    ``confirm.confirm_ears`` keeps those the segmenter confirms.

    Falls back to one region at the scan centre when the model has no localizer (with a
    warning) or when the whole scan fits in one ear region (a scan cropped to one ear,
    where a coarse 2 mm search would have almost nothing to look at). When the localizer
    finds nothing in a scan of at most ``EAR_CROP_MM`` in every direction, such a scan is
    taken as a crop around one ear too (with a warning): at 2 mm it is only ~30 voxels
    across, too little context for the localizer, and an ear crop is what such scans are.
    When it finds blobs in such a small scan, the scan centre follows them as a last candidate.
    In a larger scan with nothing above the threshold, blobs above ``WEAK_THRESHOLD``, else
    above ``RELATIVE_THRESHOLD`` x the map's peak, are handed on (with a warning): a localiser
    trained on synthetic scans may be unsure on a real one or a phantom (on labyrinths in a
    uniform block it found nothing above 0.2 in some scans, ``release/make_phantoms.py``), and
    the segmenter drops candidates without a labyrinth.
    """
    pre = model.card["preprocessing"]
    if fits_one_region(image, pre["ear_region_mm"]):
        return [center_region(image)]
    if model.localizer is None:
        warnings.warn("the model has no localizer network; segmenting one region at the scan centre")
        return [center_region(image)]
    net = model.localizer
    coarse, array = preprocess.localizer_input(image, pre["localizer_spacing_mm"], net.divisor,
                                               pre["normalisation"])
    patch = pre.get("localizer_patch_size", (64, 96, 96))
    # one window when the array is at most WINDOW_SLACK x the patch: 4 windows for an 88-voxel-wide
    # array and an 80-voxel patch cost 3x as much as one window over all of it
    roi = tuple(s if s <= WINDOW_SLACK * p else p for s, p in zip(array.shape, patch))
    probabilities = predictor(net, array, roi)
    threshold = pre.get("localizer_threshold", 0.5)
    ears = find_ears(probabilities[1], coarse, threshold, extra=EXTRA_CANDIDATES)
    small = fits_one_region(image, [EAR_CROP_MM] * 3)
    if not ears and small:
        warnings.warn("the localizer found no ear in this small scan; segmenting it as a crop around one ear")
        return [center_region(image)]
    if small:   # a crop around one ear: its centre is the last candidate, should the blobs be look-alikes
        return ears + [center_region(image)]
    peak = float(probabilities[1].max())
    for weak in (WEAK_THRESHOLD, RELATIVE_THRESHOLD * peak):
        if ears:
            break
        if not MIN_PEAK < weak < threshold:
            continue
        ears = find_ears(probabilities[1], coarse, weak, extra=EXTRA_CANDIDATES)
        if ears:
            warnings.warn(f"the localizer was unsure (no ear above {threshold:g}); checking {len(ears)} weaker "
                          f"candidate(s) with the segmenter")
    return ears
