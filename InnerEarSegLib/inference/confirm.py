"""Confirm each ear candidate with the segmenter and centre its region on what it finds.

The 2 mm localiser is cheap but coarse. On unusual contrasts it can be 10-20 mm off, pick
a look-alike (the bright internal auditory canal and cistern) or miss the second ear of a
thin slab. So every candidate region is segmented; when the labyrinth found lies more than
``RECENTER_MM`` from the region's centre, the region moves onto it and is segmented again
(at most ``MAX_MOVES`` times). A candidate is confirmed when the segmenter finds at least
``MIN_LABYRINTH_MM3`` of labyrinth there (a labyrinth is 150-250 mm3; one lost after
labyrinthectomy still shows its cochlea). The mirror image of each finding across the head's
midline is searched right after it (the two labyrinths are mirror images ~90 mm apart): the
usual region first, then a larger one (``SEARCH_REGION_MM``) when the head is too asymmetric for
the first to see the ear; on unusual contrasts the localiser can rank several look-alikes above
the second ear. Two findings are a pair only where the two ears of a head can be
(``pair_plausible``); every finding is kept until a pair turns up, and the pair with the most
labyrinth wins (``_Findings``). When no candidate gives a finding, the segmenter sweeps the whole
scan (``sweep_centres``; at most ``SWEEP_PASSES``): the localiser sees a 2 mm copy and needs
context, and on a labyrinth in a uniform block (a phantom, ``release/make_phantoms.py``) it found
nothing or fired on the block's edges, while the segmenter found the labyrinth once its region
was there.
Cost: one segmenter pass per ear when the localiser was right, a few more when it was not,
the sweep (tens of passes) only when no ear was confirmed. ``segment_ears`` is the segment stage
of ``segment``: these confirmed ears, or the fixed centre crop's halves.
"""
import warnings
from dataclasses import dataclass
from typing import List, Optional, Protocol, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..core import grid
from ..core.labels import side_of_x
from ..core.result import EarRegion
from .localize import MIN_EAR_SEPARATION_MM
from .postprocess import clean_labels
from .preprocess import THICK_SLICE_MM

MIN_LABYRINTH_MM3 = 40.0
RECENTER_MM = 4.0
MAX_MOVES = 2
SEARCH_REGION_MM = 50.0
MAX_PASSES = 16          # segmenter passes (64^3 windows) per scan, all candidates together
SWEEP_PASSES = 96        # more for the sweep when nothing was found (a 160 x 110 x 40 mm slab: about 80)
SWEEP_OVERLAP = 0.25     # neighbouring sweep regions overlap by this share of the region
PAIR_X_MM = (60.0, 130.0)  # the two labyrinths: this far apart in x (left-right) ...
PAIR_YZ_MM = 30.0          # ... and at most this far apart front-back and up-down (head tilt)
SAME_FINDING_MM = 10.0     # sweep findings closer than this are one structure


class RegionSegmenter(Protocol):
    """What ``confirm_ears`` searches with: ``regions.RegionPredictor`` (a fake in the tests)."""

    def segment_region(self, center: Sequence[float], region_mm: Optional[float] = None
                       ) -> Tuple[sitk.Image, np.ndarray]:
        """(region grid, class probabilities (C, z, y, x)) of the ear region at ``center`` (LPS),
        or of a larger search region of ``region_mm``."""

    def midline_x(self) -> Optional[float]:
        """The head's middle (LPS x), where the mirror image of a finding is sought; None: no
        mirror search. Asked at most once, and only when a finding needs its mirror image."""


@dataclass
class Found:
    """A segmented region and the labyrinth in it (volume 0 and centre None when empty)."""

    reference: sitk.Image
    probabilities: np.ndarray
    volume_mm3: float
    center_lps: Optional[tuple]


def labyrinth_in(reference: sitk.Image, probabilities: np.ndarray) -> Found:
    """The largest connected labyrinth of a region's argmax: its volume and centroid (LPS)."""
    labels = clean_labels(probabilities.argmax(0).astype(np.uint8), reference.GetSpacing(), fill_holes=False)
    mask = labels > 0
    count = int(mask.sum())
    if count == 0:
        return Found(reference, probabilities, 0.0, None)
    zyx = ndimage.center_of_mass(mask)
    centre = reference.TransformContinuousIndexToPhysicalPoint([float(c) for c in zyx[::-1]])
    return Found(reference, probabilities, count * float(np.prod(reference.GetSpacing())), tuple(centre))


class _Search:
    """Segmenter passes with a budget, so a hard scan cannot take unbounded time."""

    def __init__(self, segmenter: RegionSegmenter, budget: int = MAX_PASSES):
        self.segmenter, self.budget = segmenter, budget

    def settle(self, center, region_mm: Optional[float] = None) -> Optional[Found]:
        """Segment at ``center`` (a larger search region when ``region_mm``), moving the
        standard region onto the labyrinth found until it is centred; None when out of budget."""
        found = None
        for move in range(MAX_MOVES + 1):
            if self.budget <= 0:
                return found
            self.budget -= 1
            found = labyrinth_in(*self.segmenter.segment_region(center, region_mm))
            if found.center_lps is None:
                return found
            offset = np.linalg.norm(np.subtract(found.center_lps, grid.center_of(found.reference)))
            if region_mm is None and offset <= RECENTER_MM:
                return found
            center, region_mm = found.center_lps, None
        return found


def pair_plausible(a, b) -> bool:
    """Whether LPS points ``a`` and ``b`` can be the two labyrinths of one head."""
    d = np.abs(np.subtract(a, b))
    return bool(PAIR_X_MM[0] <= d[0] <= PAIR_X_MM[1] and d[1] <= PAIR_YZ_MM and d[2] <= PAIR_YZ_MM)


def sweep_centres(image: sitk.Image, region_mm: Sequence[float]) -> List[tuple]:
    """Region centres (LPS) covering the scan's bounding box with overlapping regions, the
    scan centre's nearest first."""
    lo, hi = grid.physical_bounds(image)
    step = np.asarray(region_mm, float) * (1.0 - SWEEP_OVERLAP)
    axes = []
    for a, b, s in zip(lo, hi, step):
        n = max(1, int(np.ceil((b - a) / s)))
        axes.append(a + (b - a) / 2.0 + (np.arange(n) - (n - 1) / 2.0) * s)
    points = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    order = np.argsort(np.linalg.norm(points - (lo + hi) / 2.0, axis=1), kind="stable")
    return [tuple(float(v) for v in points[i]) for i in order]


def confirm_ears(image: sitk.Image, candidates: List[EarRegion], segmenter: RegionSegmenter,
                 sweep_mm: Optional[Sequence[float]] = None) -> List[Tuple[EarRegion, sitk.Image, np.ndarray]]:
    """At most one ear per side, right first: (ear, region grid, probabilities).

    ``candidates`` are tried best first with ``segmenter``, each finding's mirror image right
    after it (``segmenter.midline_x()`` places it; None: no mirror search). When they give no
    finding and ``sweep_mm`` (the region size) is given, the scan is swept (``sweep_centres``)
    with a warning. Chosen: the plausible pair with the most labyrinth; else the localiser's best
    finding (the largest one after a sweep, which has no ranking); else the largest finding
    below ``MIN_LABYRINTH_MM3`` (a small or damaged labyrinth is still reported); else nothing.
    """
    findings = _Findings(image, _Search(segmenter))
    for candidate in candidates:
        if findings.done():
            break
        if not findings.near(candidate.center_lps):
            findings.look(candidate.center_lps, candidate)
    swept = not findings.kept and sweep_mm is not None   # a small finding alone does not stop the sweep
    if swept:
        centres = sweep_centres(image, sweep_mm)
        warnings.warn(f"no labyrinth where the localizer pointed; searching the whole scan with the segmenter "
                      f"({min(len(centres), SWEEP_PASSES)} regions at most)")
        findings.search.budget = SWEEP_PASSES
        for centre in centres:
            if findings.done():
                break
            findings.look(centre)
    chosen = findings.chosen(largest=swept)
    if len(chosen) == 2:
        midline = (chosen[0][1].center_lps[0] + chosen[1][1].center_lps[0]) / 2.0
        sides = [side_of_x(f.center_lps[0], midline) for _, f in chosen]
    else:
        sides = [c.side for c, _ in chosen]
    out = [(EarRegion(side, f.center_lps, c.score), f.reference, f.probabilities)
           for side, (c, f) in zip(sides, chosen)]
    return sorted(out, key=lambda e: e[0].side != "right")


def segment_ears(image: sitk.Image, candidates: List[EarRegion], regions, center_crop: bool = False
                 ) -> Tuple[List[EarRegion], List[Tuple[str, sitk.Image, np.ndarray]]]:
    """(ears, [(side, region grid, probabilities)]) from ``regions`` (a ``regions.RegionPredictor``):
    with ``center_crop`` the fixed centre crop's halves, else the ``candidates`` confirmed by the
    segmenter (``confirm_ears``; a warning when none is)."""
    if center_crop:
        found = regions.center_halves()
        return [EarRegion(side, grid.center_of(ref), 0.0) for side, ref, _ in found], found
    # no whole-scan sweep on voxels too coarse for the canals: tens of passes that find nothing
    sweep = regions.preprocessing["ear_region_mm"] if max(image.GetSpacing()) <= THICK_SLICE_MM else None
    confirmed = confirm_ears(image, candidates, regions, sweep_mm=sweep)
    ears = [ear for ear, _, _ in confirmed]
    if not ears:
        warnings.warn("no inner ear found in the field of view; the labels are empty")
    return ears, [(ear.side, reference, probabilities) for ear, reference, probabilities in confirmed]


class _Findings:
    """Every labyrinth the segmenter found so far, one per ``SAME_FINDING_MM``.

    Nothing found is trusted alone: a look-alike (a fluid ball near the midline, the cistern)
    confirmed first used to reject both real ears as "no partner of it" (phantoms with
    ``--lookalikes``). So every finding of at least ``MIN_LABYRINTH_MM3`` is kept, the mirror image
    of each off-midline one is searched next (the second ear is most likely there: on unusual
    contrasts the localiser ranks look-alikes above it), and the search stops at the first
    plausible pair, or when the scan does not reach where any finding's partner would be (a crop
    around one ear: sweeping on cost 99 passes instead of 5 on a 54 mm ear-crop phantom).
    """

    def __init__(self, image: sitk.Image, search: _Search):
        self.image, self.search, self._mid, self._mid_asked = image, search, None, False
        self.kept: List[Tuple[EarRegion, Found]] = []
        self.small: Optional[Tuple[EarRegion, Found]] = None   # the largest below MIN_LABYRINTH_MM3

    def mid(self) -> Optional[float]:
        if not self._mid_asked:
            self._mid, self._mid_asked = self.search.segmenter.midline_x(), True
        return self._mid

    def near(self, point) -> bool:
        return any(np.linalg.norm(np.subtract(point, f.center_lps)) < SAME_FINDING_MM for _, f in self.kept)

    def pairs(self):
        return [(a, b) for i, a in enumerate(self.kept) for b in self.kept[i + 1:]
                if pair_plausible(a[1].center_lps, b[1].center_lps)]

    def partner_fits(self, found: Found) -> bool:
        x, y, z = found.center_lps
        return any(grid.in_field_of_view(self.image, (x + d, y, z)) for a in np.linspace(*PAIR_X_MM, 8) for d in (a, -a))

    def done(self) -> bool:
        return (self.search.budget <= 0 or bool(self.pairs())
                or (bool(self.kept) and not any(self.partner_fits(f) for _, f in self.kept)))

    def look(self, centre, candidate: Optional[EarRegion] = None) -> None:
        """Segment there; keep a new finding and search its mirror image."""
        found = self._settle(centre, candidate)
        if found is None:
            return
        mid = self.mid()
        if mid is None or abs(found.center_lps[0] - mid) < MIN_EAR_SEPARATION_MM / 2:
            return
        mirror = (2.0 * mid - found.center_lps[0], found.center_lps[1], found.center_lps[2])
        if grid.in_field_of_view(self.image, mirror) and not self.done() and self._settle(mirror) is None and not self.done():
            self._settle(mirror, region_mm=SEARCH_REGION_MM)   # a head too asymmetric for the usual region

    def _settle(self, centre, candidate: Optional[EarRegion] = None, region_mm=None) -> Optional[Found]:
        """A new finding (kept) or None."""
        found = self.search.settle(centre, region_mm)
        if found is None or found.center_lps is None or self.near(found.center_lps):
            return None
        if candidate is None:   # one ear alone: the scanner's x = 0 decides (a crop's midline says nothing)
            candidate = EarRegion(side_of_x(found.center_lps[0]), found.center_lps, 0.0)
        finding = (candidate, found)
        if found.volume_mm3 < MIN_LABYRINTH_MM3:
            if self.small is None or found.volume_mm3 > self.small[1].volume_mm3:
                self.small = finding
            return None
        self.kept.append(finding)
        return found

    def chosen(self, largest: bool) -> List[Tuple[EarRegion, Found]]:
        best = self.pairs()
        if best:
            return list(max(best, key=lambda p: p[0][1].volume_mm3 + p[1][1].volume_mm3))
        if self.kept:
            return [max(self.kept, key=lambda f: f[1].volume_mm3) if largest else self.kept[0]]
        return [self.small] if self.small is not None else []
