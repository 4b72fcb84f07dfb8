"""Does segmenting at several anatomy scales and voting help on real scans?

    PYTHONPATH=release python experiments/scale_vote.py [--model MODEL.json] [--factors 0.85 1 1.18]

Each real case (the CT validation ears of ``release/real_ct.py`` at native resolution, and the
real T2 MRI crop against ``release/real_mri.py``'s threshold reference) is segmented with the
product's defaults after scaling its spacing by each factor (the network sees the anatomy that
much larger; the labels stay on the same voxels), then the labyrinth masks are voted (majority).
Prints the labyrinth DSC of each factor and of the vote.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

import real_ct  # release/ on PYTHONPATH
import real_mri
from real_eval import scaled

from InnerEarSegLib.model.model_card import load_model
from InnerEarSegLib.pipeline import SegmentParameters, segment


def cases():
    folder = Path("runs/real/val")
    if not folder.is_dir():
        real_ct.prepare(Path("runs/real"))
    for case in real_ct.SPLIT["val"]:
        yield case, sitk.ReadImage(str(folder / f"{case}_image.nii.gz")), \
            sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{case}_label.nii.gz"))) > 0
    image = sitk.ReadImage(str(real_mri.SCAN))
    yield "MRI", image, sitk.GetArrayFromImage(real_mri.reference(image)) > 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--factors", type=float, nargs="+", default=[0.85, 1.0, 1.18])
    args = ap.parse_args(argv)
    model = load_model(args.model)
    params = SegmentParameters(surfaces=False)
    print("case  " + " ".join(f"{f:>6}" for f in args.factors) + "   vote")
    for name, image, ref in cases():
        masks = [sitk.GetArrayFromImage(segment(scaled(image, f), model, params, source=name).labels) > 0
                 for f in args.factors]
        vote = np.sum(masks, 0) * 2 > len(masks)
        print(f"{name:5} " + " ".join(f"{real_mri.dice(m, ref):6.3f}" for m in masks)
              + f" {real_mri.dice(vote, ref):6.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
