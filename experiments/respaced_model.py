"""A copy of a model whose segmenter reads its input at another spacing, untrained for it.

Why: to ask how much the 0.45 mm grid costs before paying for a run at a finer one. The
copy keeps the weights (and their SHA-256) and the ear region in millimetres; only
``preprocessing.spacing_mm`` changes, so a labyrinth looks larger (finer spacing) or smaller to
the network, and an ear region of more voxels than one patch is covered by several windows.

  python experiments/respaced_model.py MODEL.json 0.40 runs/sp40
  TAG=_sp40 bash release/evaluate_default_model.sh runs/sp40/MODEL.json val
"""
import argparse
import json
import shutil
from pathlib import Path

from InnerEarSegLib.model.model_card import load_model, read_card


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="model card (MODEL.json, weights beside it)")
    ap.add_argument("spacing", type=float, help="segmenter input spacing in mm")
    ap.add_argument("out", help="folder for the copy (card and weights, same names)")
    args = ap.parse_args(argv)
    if not args.spacing > 0:
        ap.error("spacing must be positive")
    card = read_card(args.model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(args.model).parent / card["weights"], out / card["weights"])
    card["preprocessing"]["spacing_mm"] = args.spacing
    path = out / Path(args.model).name
    path.write_text(json.dumps(card, indent=2) + "\n")
    load_model(path)   # the copy loads: same weights, same hash
    print(f"wrote {path} (segmenter spacing {args.spacing} mm)")


if __name__ == "__main__":
    main()
