"""``innerear-seg segment-stack``: segment image stacks with a stack model (``train-stack``).

Each INPUT is one stack: a multi-page TIFF, a single 2D TIFF/PNG, a folder of 2D slices (in
name order), or a NIfTI/NRRD/MHA volume. Outputs go to ``OUTDIR/<name>/`` (``output.py``).
"""
import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from ..core.errors import InnerEarSegError, InputError
from . import infer, io, output
from .card import load_model


def check_names(inputs: Sequence) -> None:
    """Two inputs with one name would write into one folder: refuse before any work."""
    seen = {}
    for i in inputs:
        name = io.case_name(i)
        if name in seen:
            raise InputError(i, f"has the same name {name!r} as {seen[name]}: outputs would collide")
        seen[name] = i


def segment_one(model, path, out_dir, pixel_size_um=None, surfaces=True, device="cpu", tta=False):
    """Read, segment and write one stack; returns the stats rows."""
    stack = io.read_stack(path, pixel_size_um)
    size = stack.pixel_size_um
    if size is None and model.card.get("pixel_size_um"):
        size = tuple(model.card["pixel_size_um"][i] * model.card["zoom"][i] for i in range(3))
        print(f"warning: {path}: no pixel size in the file or on the command line; taking the training "
              f"stacks' {size} um (z, y, x)", file=sys.stderr)
    t0 = time.monotonic()
    labels = infer.predict_labels(model, stack.array, size, device=device, tta=tta)
    info = {"input": str(path), "model": str(model.card_path), "model_name": model.card.get("name"), "tta": tta,
            "seconds": round(time.monotonic() - t0, 2)}
    output.write_outputs(out_dir, io.case_name(path), labels, model.labels, size, info,
                         per_slice=model.spatial_dims == 2, surfaces=surfaces, image=stack.array)
    return labels


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="stack: multi-page TIFF, 2D TIFF/PNG, slice folder, volume")
    p.add_argument("--model", required=True, metavar="CARD.json", help="a model card written by train-stack")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    p.add_argument("--pixel-size", nargs="+", type=float, metavar="UM", help="x y [z] in micrometres")
    p.add_argument("--no-surfaces", action="store_true")
    p.add_argument("--tta", action="store_true", help="average over the 4 in-plane mirror images (4x slower)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")


def run(args) -> int:
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    check_names(args.inputs)
    model = load_model(args.model)
    failed = 0
    for path in args.inputs:
        try:
            labels = segment_one(model, path, args.output, args.pixel_size, not args.no_surfaces, tta=args.tta)
            counts = ", ".join(f"{lab['name']} {int((labels == lab['value']).sum())} px" for lab in model.labels)
            print(f"{io.case_name(path)}: {counts} -> {Path(args.output) / io.case_name(path)}")
        except InnerEarSegError as e:
            failed += 1
            print(f"innerear-seg: error: {e}", file=sys.stderr)
    return 1 if failed else 0


def run_from_segment(args) -> int:
    """``innerear-seg segment --model CARD`` with a stack card: the inputs are stacks (pixel size
    from the files or, failing that, the training stacks'); ``--tta`` and ``--no-surfaces`` kept."""
    stack_args = argparse.Namespace(inputs=args.inputs, model=args.model, output=args.output, pixel_size=None,
                                    no_surfaces=args.no_surfaces, tta=args.tta, threads=None)
    return run(stack_args)
