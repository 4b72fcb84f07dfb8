"""Does the MR-like validation set (``innerear-seg train --val-shape-samples``) rank models the way
the real MRI crop does?

    python experiments/mr_proxy.py --models runs/real43/model.json runs/real45/model.json [--samples 16]

Renders ``--samples`` fixed MR-like patches from the label shapes of the CT validation ears
(``runs/real/val_split``: Wimmer et al. 2019, Zenodo doi:10.5281/zenodo.3355272, CC BY 4.0) exactly
as training does, and prints each model's Dice on them next to nothing else: compare by hand with
``python release/real_mri.py --model CARD`` (the real MRI is never used here).
"""
import argparse

import torch

from InnerEarSegLib.model.model_card import load_model
from InnerEarSegLib.training import datasets
from InnerEarSegLib.training import train as training


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", required=True, metavar="CARD")
    ap.add_argument("--val-data", default="runs/real/val_split")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--patch", type=int, default=80)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    card = load_model(args.models[0]).card
    spacing, patch = card["preprocessing"]["spacing_mm"], (args.patch,) * 3
    shapes = [datasets.load_shape(c, spacing) for c in datasets.find_cases([args.val_data], "split")]
    renders = training.mr_shape_patches(shapes, patch, spacing, args.samples, "split")
    for path in args.models:
        model = load_model(path)
        norm = model.card["preprocessing"]["normalisation"]
        m = training.validate(model.segmenter, (renders[0][:0], renders[1][:0]), [], "segmenter", patch, 2,
                              torch.device("cpu"), None, (norm["low"], norm["high"]), renders)
        r = m[training.MR_SHAPES_SET]
        print(f"{path}: MR-like renders mean {r['mean']:.3f} (cochlea {r['cochlea']:.3f}, "
              f"vestibule+canals {r['vestibule_canals']:.3f}, labyrinth {r['labyrinth']:.3f})", flush=True)


if __name__ == "__main__":
    main()
