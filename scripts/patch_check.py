"""Segmenter accuracy on fresh synthetic training-style patches, by contrast family.

Prints pooled Dice and predicted/true volume per structure (a ratio above 1 means the
network paints too much), and how much vestibule and canal it paints in patches whose
ear has lost them (labyrinthectomy: cochlea present, no vestibule). Seeds start at
``--seed`` (default 700,000,000: never used by training, which uses seed * 1,000,003 +
step * batch + i with small seeds, nor by validation at 10**9).

  python scripts/patch_check.py [--model Resources/Models/InnerEarSeg.json] [-n 48]
"""
import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from InnerEarSegLib.model_card import DEFAULT_MODEL, load_model  # noqa: E402
from InnerEarSegLib.synth.appearance import FAMILIES  # noqa: E402
from InnerEarSegLib.synth.generate import segmenter_sample  # noqa: E402

NAMES = ("cochlea", "vestibule", "canals")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("-n", type=int, default=48, help="patches per family")
    ap.add_argument("--seed", type=int, default=700_000_000)
    ap.add_argument("--patch", type=int, default=64)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    net = load_model(args.model).segmenter.eval()
    totals = defaultdict(lambda: np.zeros((3, 4)))   # family -> (pred, true, overlap) x class
    lost = np.zeros(2)                                # painted vestibule, canal mm3 where they were lost
    lost_cases = 0
    voxel = 0.45 ** 3
    for family in FAMILIES:
        for i in range(args.n):
            image, label = segmenter_sample(args.seed + 2 * i, (args.patch,) * 3, family=family)
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                pred = net(torch.as_tensor(image)[None, None]).float().argmax(1)[0].numpy()
            counts = [np.bincount(a.ravel(), minlength=4) for a in (pred, label)]
            overlap = np.bincount(pred[pred == label].ravel(), minlength=4)
            totals[family] += np.stack(counts + [overlap])
            if (label == 1).sum() * voxel > 20 and not (label == 2).any():
                lost_cases += 1
                lost += [(pred == 2).sum() * voxel, (pred == 3).sum() * voxel]
    print(f"{args.model}: {args.n} patches per family\n")
    print("family  " + "  ".join(f"{n:>9s} DSC  pred/true" for n in NAMES))
    for family, (p, t, o) in list(totals.items()) + [("all", sum(totals.values()))]:
        cells = [f"{2 * o[c] / max(p[c] + t[c], 1):13.3f} {p[c] / max(t[c], 1):10.2f}" for c in (1, 2, 3)]
        print(f"{family:7s} " + "  ".join(cells))
    if lost_cases:
        print(f"\n{lost_cases} patches with a cochlea but no vestibule: painted vestibule {lost[0] / lost_cases:.1f} mm3,"
              f" canals {lost[1] / lost_cases:.1f} mm3 per patch")


if __name__ == "__main__":
    main()
