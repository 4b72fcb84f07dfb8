"""From class probabilities on each ear's model-space grid to labels on the exact input grid.

Per ear region: clean the argmax labels on the isotropic model grid (where mm3 and
connectivity mean the same for every scan), write the cleaning back into the
probabilities as one-hot values, then resample the probabilities linearly onto the input
grid and take the argmax there. Interpolating probabilities instead of labels (nearest
neighbour) gives smooth sub-voxel boundaries on inputs finer than the model grid and no
half-voxel (0.2 mm) shifts; the cost is C resamplings of a small region.
Arrays are (z, y, x) or (C, z, y, x); side values follow ``result.SegmentationResult``.
"""
import warnings
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..core.labels import BY_VALUE
from . import edges

# Pieces of a structure smaller than this (mm3, by label value) inside the kept labyrinth take
# the label around them. Cochlea (about 50-150 mm3) and vestibule (30-60 mm3) are single bodies,
# so a few mm3 of either is an error, even when it is the only piece (a cochlea-only phantom cast
# got a 3.7 mm3 vestibule speck); a canal can break into real short pieces where it thins, so
# its limit stays 1 mm3 (before session 12: 1 mm3 for all, and such pieces became background).
MIN_PIECE_MM3 = {1: 5.0, 2: 5.0, 3: 1.0}
NEAR_MM = 2.0   # pieces this close to the largest labyrinth piece belong to it (``labyrinth_pieces``) ...
NEAR_PIECE_MM3 = 10.0   # ... when at least this large (a detached vestibule or canal, not a speck)
SIDE_VALUES = {"right": 1, "left": 2}
CONNECTIVITY = np.ones((3, 3, 3), bool)  # 26-neighbours: thin oblique canals stay connected


def reweight(probabilities: np.ndarray, weights: Optional[Sequence[float]]) -> np.ndarray:
    """Class probabilities times ``weights``, renormalised; unchanged (same array) without weights.

    Why: the synthetic-trained segmenter paints thin canals ~17 % too small (argmax of blurred
    probabilities at a 0.9 mm lumen on a 0.45 mm grid: volume 35 vs 42 mm3 on the test set) while
    cochlea and vestibule come out unbiased. A weight above 1 for a class lowers the share at
    which it wins the argmax (1 / (1 + w) against one other class). A model card sets it
    (``postprocessing.class_weights``), chosen on the validation set, never the test set.
    A card can set other weights per modality (``class_weights_by_modality``): on real CT the
    real-CT segmenter paints the labyrinth's wall about one CT voxel too far out on every ear
    (predicted / micro-CT volume 1.09-1.17 on the eight training ears), and a background weight
    of 2 chosen on those ears (``release/calibrate_background.py``; docs/real_data.md) moves it
    back; the real MRI would lose a third of its volume with it, so it holds for CT only.
    """
    if weights is None:
        return probabilities
    w = np.asarray(weights, np.float32).reshape((-1,) + (1,) * (probabilities.ndim - 1))
    out = probabilities * w
    return out / np.maximum(out.sum(0, keepdims=True), 1e-12)


def outside_is_background(probabilities: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Background (one-hot) wherever ``inside`` is False; the same array when all is inside.

    Why: a region can reach past the scan's edge (padded with background intensity there), and
    the segmenter sometimes paints a labyrinth into that padding. Such a finding has no voxel in
    the scan, yet it was confirmed as an ear (a phantom ear crop lost its real ear to one) and it
    could win keep-largest over the real labyrinth inside."""
    if inside.all():
        return probabilities
    out = probabilities.copy()
    out[:, ~inside] = 0.0
    out[0, ~inside] = 1.0
    return out


def clean_labels(labels: np.ndarray, spacing: Sequence[float], keep_largest: bool = True,
                 fill_holes: bool = True, min_piece_mm3: Optional[Mapping[int, float]] = None) -> np.ndarray:
    """One ear's labels, cleaned: a new array, the input is left alone.

    keep_largest: keep only the labyrinth (labels > 0): its largest piece and the pieces near it
    (``labyrinth_pieces``); in it, a structure's pieces under ``min_piece_mm3[value]`` take the
    label around them; the rest becomes background.
    fill_holes: fill enclosed background inside each structure with that structure.
    The work is done in the labels' bounding box: outside it all is background, so components
    and enclosed holes are the same as in the whole region (background at the box's faces
    touches the outside), at a fraction of the cost: the labyrinth fills a few percent of it.
    """
    out = labels.copy()
    if not out.any():
        return out
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(out))
    out[box] = _clean_box(out[box], spacing, keep_largest, fill_holes,
                          MIN_PIECE_MM3 if min_piece_mm3 is None else min_piece_mm3)
    return out


def _clean_box(out: np.ndarray, spacing, keep_largest: bool, fill_holes: bool,
               min_piece_mm3: Mapping[int, float]) -> np.ndarray:
    """``clean_labels`` in place on a box that holds every label."""
    voxel_mm3 = float(np.prod(spacing))
    if keep_largest and out.any():
        out[~labyrinth_pieces(out > 0, spacing)] = 0
        for value in BY_VALUE:
            pieces, _ = ndimage.label(out == value, structure=CONNECTIVITY)
            sizes = np.bincount(pieces.ravel()) * voxel_mm3
            for i, where in enumerate(ndimage.find_objects(pieces), start=1):
                if where is not None and sizes[i] < min_piece_mm3[value]:
                    _merge_into_neighbours(out, pieces, i, where)
    if fill_holes:
        for value in BY_VALUE:
            filled = ndimage.binary_fill_holes(out == value)
            out[filled & (out == 0)] = value
    return out


def labyrinth_pieces(mask: np.ndarray, spacing: Sequence[float], near_mm: float = None) -> np.ndarray:
    """The largest connected piece of ``mask`` and every piece within ``near_mm`` of it.

    Why not the largest alone: on a real MRI ear the vestibule and canals came out as a second
    piece, a fraction of a millimetre from the cochlea, and keep-largest deleted them. Pieces
    farther away (a look-alike elsewhere in the region) still go.
    """
    near_mm = NEAR_MM if near_mm is None else near_mm
    components, n = ndimage.label(mask, structure=CONNECTIVITY)
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    largest = components == sizes.argmax()
    if n <= 1 or near_mm <= 0:
        return largest
    distance = ndimage.distance_transform_edt(~largest, sampling=list(spacing)[::-1])
    near = np.unique(components[(distance <= near_mm) & mask])
    big = np.flatnonzero(sizes * float(np.prod(spacing)) >= NEAR_PIECE_MM3)
    return np.isin(components, np.intersect1d(near[near > 0], big)) | largest


def _merge_into_neighbours(out: np.ndarray, pieces: np.ndarray, i: int, where) -> None:
    """Piece ``i`` takes the label most common around it. Why not background: such a piece
    lies inside the kept labyrinth (a vestibule speck within a cochlea), so its voxels are
    labyrinth (a cochlea-only phantom's labyrinth Dice fell when its speck was dropped)."""
    grown = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in where)
    piece = pieces[grown] == i
    ring = ndimage.binary_dilation(piece, structure=CONNECTIVITY) & ~piece
    around = out[grown][ring]
    around = around[around > 0]
    out[grown][piece] = np.bincount(around).argmax() if around.size else 0


def clean_probabilities(probabilities: np.ndarray, spacing: Sequence[float], keep_largest: bool = True,
                        fill_holes: bool = True) -> np.ndarray:
    """Probabilities whose argmax is the cleaned labels: changed voxels get one-hot values, and a
    structure the cleaned labels do not hold gets 0 everywhere. Why the latter: resampled
    linearly, a class second on both sides of a voxel face (cochlea winning on one, background on
    the other) can win in between; a cochlea-only phantom got a 0.25 mm3 vestibule that way."""
    labels = probabilities.argmax(0).astype(np.uint8)
    cleaned = clean_labels(labels, spacing, keep_largest, fill_holes)
    changed = cleaned != labels
    absent = [value for value in BY_VALUE if not (cleaned == value).any()]
    if not changed.any() and not absent:
        return probabilities
    out = probabilities.copy()
    out[:, changed] = 0.0
    where = np.nonzero(changed)
    out[(cleaned[where],) + where] = 1.0
    out[absent] = 0.0
    return out


def split_halves(reference: sitk.Image, probabilities: np.ndarray) -> List[Tuple[str, sitk.Image, np.ndarray]]:
    """Split a region holding both ears at its middle x into a right and a left region.

    The halves share the middle voxel column, so no gap is left between them.
    """
    nx = probabilities.shape[-1]
    mid = nx // 2
    out = []
    for side, start, stop in (("right", 0, mid + 1), ("left", mid, nx)):
        sub = sitk.RegionOfInterest(reference, [stop - start] + list(reference.GetSize()[1:]), [start, 0, 0])
        out.append((side, sub, probabilities[..., start:stop]))
    return out


def input_subgrid(image: sitk.Image, reference: sitk.Image) -> Optional[Tuple[sitk.Image, tuple]]:
    """The box of the input grid under ``reference`` (an empty image with the input's spacing and
    direction) and its slices into the input's (z, y, x) array; None if they do not overlap."""
    size = np.array(reference.GetSize())
    corners = [[i, j, k] for i in (-0.5, size[0] - 0.5) for j in (-0.5, size[1] - 0.5) for k in (-0.5, size[2] - 0.5)]
    idx = np.array([image.TransformPhysicalPointToContinuousIndex(reference.TransformContinuousIndexToPhysicalPoint(c))
                    for c in corners])
    lo = np.maximum(np.floor(idx.min(0)).astype(int), 0)
    hi = np.minimum(np.ceil(idx.max(0)).astype(int), np.array(image.GetSize()) - 1)
    if np.any(hi < lo):
        return None
    sub = sitk.Image((hi - lo + 1).tolist(), sitk.sitkUInt8)
    sub.SetSpacing(image.GetSpacing())
    sub.SetDirection(image.GetDirection())
    sub.SetOrigin(image.TransformIndexToPhysicalPoint(lo.tolist()))
    slices = tuple(slice(a, b + 1) for a, b in zip(lo[::-1], hi[::-1]))
    return sub, slices


def labels_on(target: sitk.Image, reference: sitk.Image, probabilities: np.ndarray) -> np.ndarray:
    """Argmax of the probabilities linearly resampled from ``reference`` onto ``target``'s grid.

    One channel at a time (running maximum), so memory stays at two float arrays of the target.
    Outside the region every voxel is background.
    """
    best = None
    labels = np.zeros(target.GetSize()[::-1], np.uint8)
    for c in range(probabilities.shape[0]):
        channel = sitk.GetImageFromArray(np.ascontiguousarray(probabilities[c], dtype=np.float32))
        channel.CopyInformation(reference)
        p = sitk.GetArrayFromImage(sitk.Resample(channel, target, sitk.Transform(), sitk.sitkLinear,
                                                 1.0 if c == 0 else 0.0, sitk.sitkFloat32))
        if best is None:
            best = p
        else:
            labels[p > best] = c
            np.maximum(best, p, out=best)
    return labels


def assemble(image: sitk.Image, regions: List[Tuple[str, sitk.Image, np.ndarray]], keep_largest: bool = True,
             fill_holes: bool = True, refine_edges: bool = True) -> Tuple[sitk.Image, sitk.Image]:
    """Labels and sides (UInt8) on the exact input grid from (side, region grid, probabilities) per ear;
    ``refine_edges``: each ear's outline moved to the input's own edges (``edges.refine_labels``).

    Where regions overlap, the first region's labels win.
    """
    labels = np.zeros(image.GetSize()[::-1], np.uint8)
    sides = np.zeros_like(labels)
    for side, reference, probabilities in regions:
        box = input_subgrid(image, reference)
        if box is None:
            continue
        target, where = box
        cleaned = clean_probabilities(probabilities, reference.GetSpacing(), keep_largest, fill_holes)
        found = labels_on(target, reference, cleaned)
        if refine_edges:
            found = edges.refine_labels(sitk.GetArrayViewFromImage(image)[where], found, image.GetSpacing()[::-1])
        free = (found > 0) & (labels[where] == 0)
        labels[where][free] = found[free]
        sides[where][free] = SIDE_VALUES[side]
    return to_image(labels, image), to_image(sides, image)


def labels_and_sides(image: sitk.Image, regions: List[Tuple[str, sitk.Image, np.ndarray]], keep_largest: bool = True,
                     fill_holes: bool = True, split_sides: bool = True,
                     refine_edges: bool = True) -> Tuple[sitk.Image, sitk.Image]:
    """``assemble``, with sides all 0 unless ``split_sides``; a warning when there were ear regions
    but nothing in them was labelled."""
    labels, sides = assemble(image, regions, keep_largest, fill_holes, refine_edges)
    if not split_sides:
        sides = to_image(np.zeros(image.GetSize()[::-1], np.uint8), image)
    if regions and not sitk.GetArrayViewFromImage(labels).any():
        warnings.warn("no inner ear found in the located region(s); the labels are empty")
    return labels, sides


def to_image(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    """A UInt8 image of ``array`` with ``like``'s exact size, spacing, origin and direction."""
    out = sitk.GetImageFromArray(array.astype(np.uint8, copy=False))
    out.CopyInformation(like)
    return out
