"""Does test-time augmentation with small turns help on real scans?

    PYTHONPATH=release python experiments/rotation_tta.py [--model MODEL.json]

Each real case (the CT validation ears of ``release/real_ct.py`` at native resolution, and the
real T2 MRI crop against ``release/real_mri.py``'s threshold reference) is segmented with the
left/right mirror alone (``--no-tta-turns``) and with the region also turned +-15 degrees about
each axis (``infer.TURNS``, now the product's default), and the labyrinth DSC of both printed.
"""
import argparse
import sys

import SimpleITK as sitk

from InnerEarSegLib.model.model_card import load_model
from InnerEarSegLib.pipeline import SegmentParameters, segment

import real_mri  # release/ on PYTHONPATH
from scale_vote import cases  # this folder is on sys.path when run as a script


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    args = ap.parse_args(argv)
    model = load_model(args.model)
    print("case   mirror  +turns")
    for name, image, ref in cases():
        scores = [real_mri.dice(sitk.GetArrayFromImage(
            segment(image, model, SegmentParameters(surfaces=False, tta_turns=turns), source=name).labels) > 0, ref)
            for turns in (False, True)]
        print(f"{name:5} {scores[0]:7.3f} {scores[1]:7.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
