"""The real temporal-bone CT ears: fixed train/validation split, training folders, clinical-like copies.

Data: Wimmer W, Anschuetz L, Weder S, Wagner F, Delingette H, Caversaccio M. Human bony labyrinth
dataset: co-registered CT and micro-CT images, surface models and anatomical landmarks. Data in
Brief 2019; Zenodo doi:10.5281/zenodo.3355272 (CC BY 4.0). Found at ``../shared/realdata/ct-wimmer``.

    python release/real_ct.py prepare runs/real     # runs/real/{train,val,val_clinical}/X_image.nii.gz ...

``train`` and ``val`` hold the whole-labyrinth labels as published (``--label-kind labyrinth``);
``train_split`` and ``val_split`` the same ears with the labels cut into the cochlea (1) and the
rest (2) by ``InnerEarSegLib.training.cochlea_split`` (``--label-kind split``).

The validation ears are never trained on; models are selected on them. The split was fixed
before any model saw these ears: F03 and F06 (air-filled lumen) and T03 (fluid-filled, the kind
closest to a patient); the other eight labelled ears train.
"""
import argparse
import json
import sys
from pathlib import Path

import SimpleITK as sitk

from InnerEarSegLib.training.cochlea_split import split_labels

ROOT = Path(__file__).resolve().parents[1]

SOURCE = ROOT.parent / "shared" / "realdata" / "ct-wimmer"
SPLIT = {"train": ["F01", "F02", "F04", "F05", "F08", "T01", "T02", "T04"], "val": ["F03", "F06", "T03"]}
CLINICAL_SPACING = (0.4, 0.4, 0.6)   # x, y, z mm: a clinical temporal-bone CT


def clinical_like(image: sitk.Image, spacing=CLINICAL_SPACING) -> sitk.Image:
    """Blur to the coarser resolution (Gaussian of FWHM one new voxel per axis) and resample onto it."""
    sigma = [max(0.0, (s ** 2 - o ** 2)) ** 0.5 / 2.355 for s, o in zip(spacing, image.GetSpacing())]
    blurred = sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32), sigma)
    size = [int(round(n * o / s)) for n, o, s in zip(image.GetSize(), image.GetSpacing(), spacing)]
    ref = sitk.Image(size, sitk.sitkFloat32)
    ref.SetSpacing(spacing)
    ref.SetDirection(image.GetDirection())
    ref.SetOrigin(image.TransformContinuousIndexToPhysicalPoint([(s / o - 1) / 2 for s, o in
                                                                 zip(spacing, image.GetSpacing())]))
    out = sitk.Resample(blurred, ref, sitk.Transform(), sitk.sitkLinear, -1024.0, sitk.sitkFloat32)
    return sitk.Cast(sitk.Round(out), sitk.sitkInt16)


def link(target: Path, link: Path) -> None:
    if not link.exists():
        link.symlink_to(target.resolve())


def prepare(out: Path, source: Path = SOURCE) -> None:
    for part, ids in SPLIT.items():
        folder, split = out / part, out / f"{part}_split"
        folder.mkdir(parents=True, exist_ok=True)
        split.mkdir(exist_ok=True)
        for case in ids:
            for what, name in (("CT_RAW.nii.gz", "image.nii.gz"), ("CT_LABELS.nii.gz", "label.nii.gz"),
                               ("DESC.json", "desc.json")):
                link(source / f"{case}_{what}", folder / f"{case}_{name}")
                if name != "label.nii.gz":
                    link(source / f"{case}_{what}", split / f"{case}_{name}")
            label = split / f"{case}_label.nii.gz"
            if not label.exists():
                sitk.WriteImage(split_labels(sitk.ReadImage(str(source / f"{case}_CT_LABELS.nii.gz"))), str(label), True)
    clinical = out / "val_clinical"
    clinical.mkdir(exist_ok=True)
    for case in SPLIT["val"]:
        target = clinical / f"{case}_image.nii.gz"
        if not target.exists():
            sitk.WriteImage(clinical_like(sitk.ReadImage(str(source / f"{case}_CT_RAW.nii.gz"))), str(target),
                            True)
    print(json.dumps({k: len(v) for k, v in SPLIT.items()}), "->", out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="link the split into OUT/{train,val} and write OUT/val_clinical")
    p.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if not SOURCE.is_dir():
        print(f"real data not found: {SOURCE}", file=sys.stderr)
        return 1
    prepare(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
