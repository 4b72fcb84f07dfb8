"""Does test-time augmentation with small rotations help on real scans?

    PYTHONPATH=release python experiments/rotation_tta.py [--model MODEL.json] [--degrees 15]

The product averages the network's probabilities over the region and its left/right mirror
(``infer.TTA_FLIPS``). Here each pass of that average is also run with the region turned by
+-``degrees`` about each axis (the network was trained with rotations up to 30 degrees), turned
back, and averaged: 2 x 7 passes instead of 2. Prints the labyrinth DSC of the CT validation ears
(native) and of the real MRI crop (``release/real_mri.py``'s reference), without and with.
"""
import argparse
import math
import sys

import SimpleITK as sitk
import torch
import torch.nn.functional as F

from InnerEarSegLib.inference import infer
from InnerEarSegLib.model.model_card import load_model
from InnerEarSegLib.pipeline import SegmentParameters, segment

import real_mri  # release/ on PYTHONPATH
from scale_vote import cases  # this folder is on sys.path when run as a script


def rotation(axis: int, degrees: float) -> torch.Tensor:
    """3x3 rotation about normalised-grid axis 0 (x), 1 (y) or 2 (z)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    i, j = [k for k in range(3) if k != axis]
    R = torch.eye(3)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


def turn(t: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """``t`` (N, C, z, y, x) sampled at R p (grid coordinates scaled to millimetre-like units)."""
    half = torch.tensor(t.shape[2:][::-1], dtype=torch.float32) / 2   # x, y, z half extents
    theta = torch.diag(1 / half) @ R @ torch.diag(half)
    grid = F.affine_grid(torch.cat([theta, torch.zeros(3, 1)], 1)[None].to(t), list(t.shape), align_corners=False)
    return F.grid_sample(t, grid, mode="bilinear", padding_mode="border", align_corners=False)


def rotating_run(degrees):
    plain = infer._run
    turns = [None] + [rotation(a, d) for a in range(3) for d in (degrees, -degrees)]

    def run(net, x, roi_size, device, tta, amp, cpu_bf16):
        total = 0
        for R in turns:
            xi = x if R is None else turn(x, R)
            p = plain(net, xi, roi_size, device, tta, amp, cpu_bf16)
            total = total + (p if R is None else turn(p.float().cpu(), R.T))
        return total / len(turns)
    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--degrees", type=float, default=15.0)
    args = ap.parse_args(argv)
    model, params = load_model(args.model), SegmentParameters(surfaces=False)
    plain = infer._run
    print("case   mirror  +rotations")
    for name, image, ref in cases():
        scores = []
        for run in (plain, rotating_run(args.degrees)):
            infer._run = run
            labels = segment(image, model, params, source=name).labels
            scores.append(real_mri.dice(sitk.GetArrayFromImage(labels) > 0, ref))
        infer._run = plain
        print(f"{name:5} {scores[0]:7.3f} {scores[1]:7.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
