"""``innerear-seg evaluate-stack``: per-label Dice and IoU of predicted label stacks against
reference ones, per case and pooled over all cases (``metrics.py``).

``--pred`` and ``--ref`` take stack files and folders. In a folder, every stack file is a case
named after the file (without its ending and without a trailing ``_labels``/``_label``), and a
subfolder ``S/`` holding ``S_labels.*`` (the layout ``segment-stack`` and ``baseline`` write)
is case ``S``. Cases on one side only are reported and left out; one file against one file is a pair
whatever the names. The label values compared are
those of ``--labels NAME=VALUE`` or else the names in the predictions' ``S_stats.json``.
Writes ``OUTDIR/metrics.csv`` (case x label) and ``OUTDIR/summary.json`` (pooled and mean).
"""
import argparse
import csv
import json
from pathlib import Path
from typing import Dict, List

import numpy as np

from ..core.errors import InputError
from . import io, metrics

SUFFIXES = ("_labels", "_label")
PREFERRED = (".tif", ".tiff", ".png", ".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".nhdr")


def _name(path: Path) -> str:
    stem = io.case_name(path)
    for s in SUFFIXES:
        if stem.endswith(s) and len(stem) > len(s):
            return stem[:-len(s)]
    return stem


def find_cases(items) -> Dict[str, Path]:
    """Case name -> label stack file (rules in the module docstring)."""
    found: Dict[str, Path] = {}
    for item in items:
        p = Path(item)
        if p.is_file():
            found[_name(p)] = p
        elif p.is_dir():
            for f in sorted(p.iterdir()):
                if f.is_file() and io.ending(f) and not f.name.endswith(".seg.nrrd"):
                    found.setdefault(_name(f), f)
                elif f.is_dir():
                    own = sorted((g for g in f.iterdir() if _name(g) == f.name and io.ending(g)
                                  and io.case_name(g) != f.name),
                                 key=lambda g: PREFERRED.index(io.ending(g)))
                    if own:
                        found[f.name] = own[0]
        else:
            raise InputError(p, "no such file or folder")
    return found


def labels_from_stats(pred: Dict[str, Path]) -> List[dict]:
    """The label list of the first prediction with an ``S_stats.json`` beside it."""
    for name, path in pred.items():
        stats = path.parent / f"{name}_stats.json"
        if stats.is_file():
            return json.loads(stats.read_text())["labels"]
    return []


def evaluate(pred: Dict[str, Path], ref: Dict[str, Path], label_list, ref_threshold=None):
    """(rows per case x label, pooled {name: scores}, mean-over-cases {name: scores}, missing names)."""
    values = [lab["value"] for lab in label_list]
    common = [n for n in ref if n in pred]
    missing = sorted(set(ref) ^ set(pred))
    if not common:
        raise InputError(", ".join(str(p) for p in list(pred.values())[:3]), "no case matches a reference by name")
    rows, per_case = [], []
    for n in common:
        p = io.read_stack(pred[n]).array
        r_stack = io.read_stack(ref[n])
        r = io.to_label_values(r_stack.array, values, ref[n], ref_threshold)
        if p.shape != r.shape:
            raise InputError(pred[n], f"shape {p.shape} differs from the reference {ref[n]} {r.shape}")
        c = metrics.counts(p, r, values)
        per_case.append(c)
        for lab in label_list:
            rows.append(dict(case=n, label=lab["name"], **c[lab["value"]], **metrics.scores(c[lab["value"]])))
    pooled = metrics.pooled(per_case)
    pooled_by_name = {lab["name"]: pooled[lab["value"]] for lab in label_list}
    mean = {lab["name"]: {k: float(np.mean([r[k] for r in rows if r["label"] == lab["name"]])) for k in ("dice", "iou")}
            for lab in label_list}
    return rows, pooled_by_name, mean, missing


def parse_labels(items) -> List[dict]:
    out = []
    for item in items or []:
        name, _, value = item.rpartition("=")
        if not name or not value.isdigit():
            raise InputError(item, "--labels takes NAME=VALUE, e.g. mitochondria=1")
        out.append({"name": name, "value": int(value)})
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pred", nargs="+", required=True, metavar="DIR_OR_FILE")
    p.add_argument("--ref", nargs="+", required=True, metavar="DIR_OR_FILE")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    p.add_argument("--labels", nargs="+", metavar="NAME=VALUE", help="labels to score (default: from the stats)")
    p.add_argument("--ref-threshold", type=float, metavar="T", help="grey-level reference masks: label 1 where >= T")


def run(args) -> int:
    pred, ref = find_cases(args.pred), find_cases(args.ref)
    if len(args.pred) == len(args.ref) == 1 and Path(args.pred[0]).is_file() and Path(args.ref[0]).is_file():
        ref = {name: Path(args.ref[0]) for name in pred}  # one file against one file: a pair whatever the names
    label_list = parse_labels(args.labels) or labels_from_stats(pred) or [{"name": "foreground", "value": 1}]
    rows, pooled, mean, missing = evaluate(pred, ref, label_list, args.ref_threshold)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    cases = sorted({r["case"] for r in rows})
    (out / "summary.json").write_text(json.dumps({"cases": cases, "left_out": missing, "pooled": pooled,
                                                  "mean_over_cases": mean}, indent=2))
    if missing:
        print(f"{len(missing)} case(s) on one side only, left out: {', '.join(missing[:10])}")
    print(f"{len(cases)} cases")
    print(f"{'label':<20} {'Dice pooled':>12} {'IoU pooled':>11} {'Dice mean':>10} {'IoU mean':>9}")
    for name in pooled:
        print(f"{name:<20} {pooled[name]['dice']:>12.4f} {pooled[name]['iou']:>11.4f} "
              f"{mean[name]['dice']:>10.4f} {mean[name]['iou']:>9.4f}")
    return 0
