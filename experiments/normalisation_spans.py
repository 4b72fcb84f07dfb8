"""How close each ear region of an evaluation set comes to the normalisation's phantom rule.

For every labelled ear (a connected labyrinth of the reference) the segmenter's region around
it is resampled as the pipeline does, and the ratio of its 0.5-99.5 percentile span to its
0.01-99.99 span is printed (``grid.normalise`` switches to the wider pair below
``grid.CLIPPED_SPAN``). Heads should sit well above it, phantoms with a small labyrinth below.

  python experiments/normalisation_spans.py runs/testset runs/valset runs/phantomset [--lowest 10]
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from InnerEarSegLib.core import grid
from InnerEarSegLib.inference import preprocess
from InnerEarSegLib.model.model_card import DEFAULT_MODEL, read_card

PERCENTILES = (0.5, 99.5, *grid.TAIL_PERCENTILES)


def ear_centres(labels: sitk.Image, min_voxels=50):
    """LPS centroids of the reference's labyrinths (components joined within 3 voxels)."""
    mask = sitk.GetArrayFromImage(labels) > 0
    parts, n = ndimage.label(ndimage.binary_dilation(mask, iterations=3))
    for k in range(1, n + 1):
        ear = (parts == k) & mask
        if ear.sum() >= min_voxels:
            zyx = np.argwhere(ear).mean(0)
            yield labels.TransformContinuousIndexToPhysicalPoint([float(v) for v in zyx[::-1]])


def span_ratio(image: sitk.Image, centre, pre: dict) -> float:
    array = preprocess.region_resampled(image, preprocess.ear_reference(centre, pre, 8), pre["normalisation"]["low"])
    if array is None:
        return float("nan")
    lo, hi, bottom, top = np.percentile(array, PERCENTILES)
    return float((hi - lo) / (top - bottom)) if top > bottom else float("nan")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="+", type=Path, help="folders with images/, labels/ and cases.json")
    ap.add_argument("--lowest", type=int, default=10, help="list this many of the lowest ratios per set")
    args = ap.parse_args(argv)
    pre = read_card(DEFAULT_MODEL)["preprocessing"]
    for folder in args.sets:
        rows = []
        for case in json.loads((folder / "cases.json").read_text())["cases"]:
            image = sitk.ReadImage(str(next((folder / "images").glob(case["name"] + ".*"))))
            labels = sitk.ReadImage(str(next((folder / "labels").glob(case["name"] + ".*"))))
            rows += [(span_ratio(image, c, pre), case["name"], case["family"]) for c in ear_centres(labels)]
        ratios = np.array([r[0] for r in rows])
        print(f"{folder}: {len(rows)} ears, span ratio min {np.nanmin(ratios):.3f}, median "
              f"{np.nanmedian(ratios):.3f}, max {np.nanmax(ratios):.3f}; below {grid.CLIPPED_SPAN}: "
              f"{int((ratios < grid.CLIPPED_SPAN).sum())}")
        for ratio, name, family in sorted(rows)[:args.lowest]:
            print(f"  {ratio:.3f}  {name}  {family}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
