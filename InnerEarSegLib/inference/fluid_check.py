"""A guard against a vestibule and canals painted where the image shows no fluid.

The segmenter has a strong shape prior: beside a visible cochlea it paints a vestibule and
canals even where they are gone (labyrinthectomy) or filled with bone. The cochlea and the
vestibule hold the same fluid, so on any contrast they differ from the surrounding otic
capsule by about the same amount. Where the vestibule's contrast to the capsule differs
from the cochlea's by more than a factor ``RATIO_LIMIT`` (either way), the vestibule and the
canals are removed with a warning. Measured with ``experiments/fluid_ratios.py`` on the
labyrinthectomy set (docs/history.md, "Labyrinthectomy"): normal ears 0.86-1.25; hallucinated vestibules
in bone or in tissue unlike fluid fall outside 0.5-2; a fill that looks like fluid (soft
tissue on CT) passes this ratio. Works on one ear's region on the model grid,
before ``postprocess``.

A fluid-like fill is caught by its wall instead: a vestibule is a chamber in otic-capsule bone,
so it stands out from its own wall as much as from the capsule around the whole labyrinth
(``wall_ratio`` about 1). A vestibule painted into a drilled cavity (labyrinthectomy, generator
1.9) is surrounded by the same soft tissue it is painted on, so its contrast to its own wall
collapses; below ``WALL_LIMIT`` the vestibule and canals go too. ``experiments/fluid_ratios.py``
with the model of commit 6d3a32c on the generator-1.9 sets: 0.94-1.03 over the 63 ears with a
vestibule of the test, validation and labyrinthectomy sets, 0.24-0.64 on the four drilled
cavities the segmenter painted.
"""
import warnings
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from ..core.result import EarRegion
from .postprocess import clean_labels

RATIO_LIMIT = 2.0
WALL_LIMIT = 0.75
MIN_COCHLEA_CONTRAST = 0.1   # of the normalised [0, 1] image; below it the cochlea cannot calibrate
SHELL_MM = (0.3, 0.9)   # the capsule sample: this far outside the labyrinth, in whole voxels of the model
                        # grid (1-3 on the bundled 0.30 mm grid; chosen as 1-3 voxels at 0.45 mm, which
                        # made the same decisions on the labyrinthectomy set)


def shells(labels: np.ndarray, spacing: Sequence[float]) -> Tuple[np.ndarray, np.ndarray, int]:
    """(near, capsule, outer): the labyrinth grown by the inner ``SHELL_MM``, the capsule sample
    between the inner and the outer distance, and the outer distance in voxels."""
    inner, outer = (max(1, int(round(mm / min(spacing)))) for mm in SHELL_MM)
    labyrinth = labels > 0
    near = ndimage.binary_dilation(labyrinth, iterations=inner)
    return near, ndimage.binary_dilation(labyrinth, iterations=outer) & ~near, outer


def vestibule_ratio(image: np.ndarray, labels: np.ndarray, walls) -> Optional[float]:
    """(vestibule - capsule) / (cochlea - capsule) of median intensities, the capsule from
    ``walls`` (``shells(labels, spacing)``); None when undecidable (no cochlea or vestibule, or a
    cochlea that does not stand out from the capsule)."""
    _, shell, _ = walls
    if not (labels == 1).any() or not (labels == 2).any() or not shell.any():
        return None
    capsule = float(np.median(image[shell]))
    cochlea = float(np.median(image[labels == 1])) - capsule
    if abs(cochlea) < MIN_COCHLEA_CONTRAST:
        return None
    return (float(np.median(image[labels == 2])) - capsule) / cochlea


def wall_ratio(image: np.ndarray, labels: np.ndarray, walls) -> Optional[float]:
    """(vestibule - its own wall) / (vestibule - the labyrinth's wall) of median intensities, both
    walls as far out as ``walls`` (``shells(labels, spacing)``); None when undecidable (no
    vestibule, no wall, or a vestibule that does not stand out from the capsule by
    ``MIN_COCHLEA_CONTRAST`` either)."""
    vestibule = labels == 2
    if not vestibule.any():
        return None
    near, common, outer = walls
    own = ndimage.binary_dilation(vestibule, iterations=outer) & ~near
    if not own.any():
        return None
    inside = float(np.median(image[vestibule]))
    contrast = inside - float(np.median(image[common]))
    if abs(contrast) < MIN_COCHLEA_CONTRAST:
        return None
    return (inside - float(np.median(image[own]))) / contrast


def keeps(ratio: Optional[float], wall: Optional[float]) -> bool:
    """The check's decision from the two ratios: keep unless the ratio is outside
    1/RATIO_LIMIT..RATIO_LIMIT or the wall ratio is below WALL_LIMIT (None: undecided, kept)."""
    return (ratio is None or 1.0 / RATIO_LIMIT <= ratio <= RATIO_LIMIT) and (wall is None or wall >= WALL_LIMIT)


def drop_unfilled(image: np.ndarray, probabilities: np.ndarray, spacing: Sequence[float]
                  ) -> Tuple[np.ndarray, Optional[float], Optional[float]]:
    """(probabilities, ratio, wall ratio): vestibule and canal probabilities moved to background
    unless ``keeps`` the ratios (``vestibule_ratio``, ``wall_ratio``) of the cleaned labels.
    The input array is left alone."""
    labels = clean_labels(probabilities.argmax(0).astype(np.uint8), spacing)
    walls = shells(labels, spacing)
    ratio, wall = vestibule_ratio(image, labels, walls), wall_ratio(image, labels, walls)
    if keeps(ratio, wall):
        return probabilities, ratio, wall
    out = probabilities.copy()
    out[0] += out[2] + out[3]
    out[2:4] = 0.0
    return out, ratio, wall


def check_region(region, array: np.ndarray, ear: EarRegion):
    """One (side, region grid, probabilities) with ``drop_unfilled`` applied to its network input
    ``array`` (the ratios kept in ``ear``), and a warning when it removed anything."""
    side, reference, probabilities = region
    checked, ratio, wall = drop_unfilled(array, probabilities, reference.GetSpacing())
    ear.fluid_ratio, ear.wall_ratio = ratio, wall
    if checked is not probabilities:
        why = (f"the vestibule stands out from its own wall only {wall:.2f} x as much as from the capsule"
               if keeps(ratio, None) else f"contrast to the otic capsule {ratio:.2f} x the cochlea's")
        warnings.warn(f"{side} ear: the vestibule and canals found do not look like the cochlea's fluid in a "
                      f"capsule ({why}); they were removed. Labyrinthectomy or ossification? Turn the fluid "
                      "check off to keep them.")
    return side, reference, checked


def check_ears(found: List[tuple], ears: List[EarRegion], region_input: Callable) -> List[tuple]:
    """``check_region`` on each ear's (side, region grid, probabilities), its network input from
    ``region_input(region grid)`` (``regions.RegionPredictor.region_input``)."""
    return [check_region(region, region_input(region[1]), ear) for region, ear in zip(found, ears)]
