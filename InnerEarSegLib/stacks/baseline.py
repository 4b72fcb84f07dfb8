"""``innerear-seg baseline``: classical segmentation of one label (scikit-image), so that a user
sees what thresholding gets before trusting a network. Scored by ``evaluate-stack`` like a model.

Methods, on the stack smoothed by a Gaussian of ``--sigma`` pixels, slice by slice (2D):
- ``otsu``: Otsu's threshold of the whole stack (or ``--threshold T`` on the raw grey values:
  ``threshold``);
- ``region-growing``: seeded region growing by hysteresis: seeds are pixels beyond a strict
  level (``--seed-threshold``, default halfway from Otsu's level to the 1st/99th percentile on
  the object side), grown through connected pixels beyond the loose level (Otsu or
  ``--threshold``);
- ``watershed``: marker-based watershed on the Sobel gradient, markers: sure object (as the
  seeds above) and sure background (as far on the other side), so boundaries follow edges; then
  touching objects are split by a distance-transform watershed for the object counts.
``--polarity dark`` (objects darker than their surroundings, e.g. EM organelles) or ``bright``;
``--min-size`` drops smaller objects and ``--fill-holes`` fills them, both per slice.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..core.errors import InnerEarSegError, InputError
from . import io, output
from .card import colour

METHODS = ("otsu", "threshold", "region-growing", "watershed")


def _smooth(arr: np.ndarray, sigma: float) -> np.ndarray:
    arr = arr.astype(np.float32)
    return ndimage.gaussian_filter(arr, sigma=(0, sigma, sigma)) if sigma > 0 else arr


def levels(img: np.ndarray, polarity: str, threshold=None, seed_threshold=None):
    """(object-side image, loose level, strict level), with objects always brighter in the
    returned image (a dark polarity is negated, and so are the given levels)."""
    from skimage.filters import threshold_otsu
    sign = -1.0 if polarity == "dark" else 1.0
    work = img * sign
    loose = threshold * sign if threshold is not None else float(threshold_otsu(work))
    if seed_threshold is not None:
        strict = seed_threshold * sign
    else:
        strict = loose + 0.5 * (float(np.percentile(work, 99)) - loose)
    return work, loose, strict


def segment_slice(work: np.ndarray, method: str, loose: float, strict: float) -> np.ndarray:
    """Binary mask of one (object-bright) slice."""
    from skimage.filters import apply_hysteresis_threshold, sobel
    from skimage.segmentation import watershed
    if method in ("otsu", "threshold"):
        return work > loose
    if method == "region-growing":
        return apply_hysteresis_threshold(work, loose, strict)
    background = loose - (strict - loose)
    markers = np.zeros(work.shape, np.int32)
    markers[work < background] = 1
    markers[work > strict] = 2
    return watershed(sobel(work), markers) == 2


def clean(mask: np.ndarray, min_size: int, fill_holes: bool) -> np.ndarray:
    from skimage.morphology import remove_small_objects
    if fill_holes:
        mask = ndimage.binary_fill_holes(mask)
    if min_size > 0:
        mask = remove_small_objects(mask, max_size=min_size)
    return mask


def split_touching(mask: np.ndarray, min_distance: int = 5) -> np.ndarray:
    """Instance labels of a 2D mask: a watershed of the distance transform from its maxima, so
    that touching round objects count separately."""
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed
    dist = ndimage.distance_transform_edt(mask)
    peaks = peak_local_max(dist, min_distance=min_distance, labels=ndimage.label(mask)[0], exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-dist, markers, mask=mask)


def baseline(arr: np.ndarray, method: str = "otsu", polarity: str = "bright", threshold=None,
             seed_threshold=None, sigma: float = 1.0, min_size: int = 0, fill_holes: bool = False):
    """(z, y, x) uint8 mask (1 = object) and, for ``watershed``, the number of split objects."""
    if method == "threshold" and threshold is None:
        raise ValueError("the 'threshold' method needs --threshold")
    sm = _smooth(arr, sigma)
    work, loose, strict = levels(sm, polarity, threshold, seed_threshold)
    mask = np.stack([clean(segment_slice(work[z], method, loose, strict), min_size, fill_holes)
                     for z in range(work.shape[0])])
    n_split = sum(int(split_touching(mask[z]).max()) for z in range(mask.shape[0])) if method == "watershed" else None
    return mask.astype(np.uint8), n_split


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="stack: multi-page TIFF, 2D TIFF/PNG, slice folder, volume")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    p.add_argument("--method", default="otsu", choices=METHODS)
    p.add_argument("--polarity", default="bright", choices=["bright", "dark"], help="objects brighter or darker")
    p.add_argument("--threshold", type=float, help="grey level (raw values); default Otsu's")
    p.add_argument("--seed-threshold", type=float, help="strict grey level for seeds/markers")
    p.add_argument("--sigma", type=float, default=1.0, help="Gaussian smoothing, pixels (0: none)")
    p.add_argument("--min-size", type=int, default=0, help="drop objects of at most this many pixels")
    p.add_argument("--fill-holes", action="store_true")
    p.add_argument("--label-name", default="foreground")
    p.add_argument("--pixel-size", nargs="+", type=float, metavar="UM", help="x y [z] in micrometres")
    p.add_argument("--no-surfaces", action="store_true")


def run(args) -> int:
    label_list = [{"name": args.label_name, "value": 1, "color": list(colour(1))}]
    failed = 0
    for path in args.inputs:
        try:
            stack = io.read_stack(path, args.pixel_size)
            try:
                mask, n_split = baseline(stack.array, args.method, args.polarity, args.threshold, args.seed_threshold,
                                         args.sigma, args.min_size, args.fill_holes)
            except ValueError as e:
                raise InputError(path, str(e)) from e
            info = {"input": str(path), "method": args.method, "polarity": args.polarity, "sigma": args.sigma,
                    "threshold": args.threshold, "seed_threshold": args.seed_threshold, "min_size": args.min_size}
            if n_split is not None:
                info["watershed_objects"] = n_split
            name = io.case_name(path)
            output.write_outputs(args.output, name, mask, label_list, stack.pixel_size_um, info, per_slice=True,
                                 surfaces=not args.no_surfaces, image=stack.array)
            print(f"{name}: {int(mask.sum())} px -> {Path(args.output) / name}")
        except InnerEarSegError as e:
            failed += 1
            print(f"innerear-seg: error: {e}", file=sys.stderr)
    return 1 if failed else 0
