"""Does moving the outline to the scan's own edge (``edges.refine_labels``) help on real CT, and how
much do its band and blur matter?

    innerear-seg segment ../shared/realdata/ct-wimmer/*_CT_RAW.nii.gz -o runs/noedges --no-refine-edges \
        --no-surfaces --no-preview
    PYTHONPATH=release python experiments/edge_refinement.py --pred-dir runs/noedges \
        [--split train] [--bands 0.25 0.4 0.6] [--sigmas 0.5 1 2]

Data: Wimmer et al. 2019 temporal-bone CT with micro-CT labels (Zenodo doi:10.5281/zenodo.3355272,
CC BY 4.0), the ears of one split of ``release/real_ct.py`` (default: the training ears, where the
band and blur may be looked at without touching the validation ears). Prints each ear's
labyrinth DSC against the micro-CT label before and after the refinement, for each band (blur
at its default) and each blur (band at its default).
"""
import argparse
from pathlib import Path

import numpy as np
import SimpleITK as sitk

import real_ct  # release/ on PYTHONPATH
from real_mri import dice

from InnerEarSegLib.inference import edges

DATA = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "ct-wimmer"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pred-dir", type=Path, required=True, help="segment output made with --no-refine-edges")
    ap.add_argument("--split", choices=("train", "val"), default="train")
    ap.add_argument("--bands", type=float, nargs="+", default=[0.25, edges.BAND_MM, 0.6])
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.5, edges.SIGMA_MM, 2.0])
    args = ap.parse_args(argv)
    settings = [(b, edges.SIGMA_MM) for b in args.bands] + [(edges.BAND_MM, s) for s in args.sigmas
                                                           if s != edges.SIGMA_MM]
    print("case  before  " + "  ".join(f"b{b:g}/s{s:g}" for b, s in settings))
    rows = []
    for case in real_ct.SPLIT[args.split]:
        image = sitk.ReadImage(str(DATA / f"{case}_CT_RAW.nii.gz"))
        ref = sitk.GetArrayFromImage(sitk.ReadImage(str(DATA / f"{case}_CT_LABELS.nii.gz"))) > 0
        name = f"{case}_CT_RAW"
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(args.pred_dir / name / f"{name}_labels.nii.gz")))
        array, spacing = sitk.GetArrayFromImage(image), image.GetSpacing()[::-1]
        row = [dice(labels > 0, ref)] + [dice(edges.refine_labels(array, labels, spacing, b, s) > 0, ref)
                                          for b, s in settings]
        rows.append(row)
        print(f"{case:5} " + "  ".join(f"{d:7.3f}" for d in row), flush=True)
    print("mean  " + "  ".join(f"{d:7.3f}" for d in np.mean(rows, 0)))


if __name__ == "__main__":
    main()
