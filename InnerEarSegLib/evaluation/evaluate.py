"""``innerear-seg evaluate``: compare predicted label maps with reference ones, case by case.

Matching rules (``--pred`` and ``--ref`` each take files and/or folders):
1. A file argument is used as given.
2. A folder argument contributes every label-map file directly inside it (``.nii.gz``,
   ``.nii``, ``.nrrd``, ``.mha``, ``.mhd``; Slicer ``.seg.nrrd`` files are not label maps and
   are skipped), and from each subfolder ``S/`` the files whose case name is ``S`` (the
   layout ``innerear-seg`` writes: ``OUT/S/S_labels.nii.gz``).
3. A file's case name is its name without the extension and without a trailing
   ``_labels`` or ``_label``: ``S_labels.nii.gz``, ``S_label.nrrd`` and ``S.nii.gz`` are all ``S``.
4. Where several files give one case name, the one with a label suffix wins (so
   ``S_label.nii.gz`` is taken over the scan ``S.nii.gz`` beside it); two of equal standing
   are an error naming both.
Cases found on one side only are reported and left out.

Outputs in ``OUTDIR`` (each written under a temporary name, then all renamed together):
``metrics.csv`` (one row per case x structure x side, see ``metrics``), ``summary.csv``
(n, mean, std, median per structure and metric over ears), ``bland_altman.png`` and ``dsc.png``.
Summaries and plots pool ears (sides right and left) and leave out ears where both the
prediction and the reference are empty, whose perfect DSC of 1 would say nothing.
"""
import argparse
import csv
import os
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from ..core.errors import InnerEarSegError, InputError, OutputError
from ..core.labels import STRUCTURES
from .metrics import LABYRINTH, METRICS, compute_metrics

EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
LABEL_SUFFIXES = ("_labels", "_label")
STRUCTURE_KEYS = tuple(s.key for s in STRUCTURES) + (LABYRINTH,)
TITLES = {**{s.key: s.name for s in STRUCTURES}, LABYRINTH: "Labyrinth"}
COLOURS = {**{s.key: s.color for s in STRUCTURES}, LABYRINTH: (0.4, 0.4, 0.4)}
FIELDS = ("case", "structure", "side") + METRICS


def case_name(path) -> str:
    """``S`` for ``S_labels.nii.gz``, ``S_label.nrrd`` or ``S.nii.gz``; '' for any other file."""
    return _parse(path)[0]


def _parse(path) -> Tuple[str, bool]:
    """(case name, whether the name carries a label suffix); ('', False) for a file that is no label map."""
    name = Path(path).name
    if name.startswith(".") or name.endswith(".seg.nrrd"):
        return "", False
    for ext in EXTENSIONS:
        if name.endswith(ext):
            stem = name[:-len(ext)]
            for suffix in LABEL_SUFFIXES:
                if stem.endswith(suffix) and len(stem) > len(suffix):
                    return stem[:-len(suffix)], True
            return stem, False
    return "", False


def find_cases(items: Sequence) -> Dict[str, Path]:
    """Case name -> label file, from file and folder arguments (rules in the module docstring)."""
    return _one_per_case([found for item in items for found in _label_files(Path(item))])


def _label_files(p: Path) -> List[Tuple[str, Path]]:
    """(case name, label file) of one argument: the label file itself, or a folder's label files
    and the files of its case subfolders named like the subfolder."""
    if p.is_file():
        if not case_name(p):
            raise InputError(p, f"not a label map file (expected one of {', '.join(EXTENSIONS)})")
        return [(case_name(p), p)]
    if not p.is_dir():
        raise InputError(p, "no such file or folder")
    found = [(case_name(f), f) for f in sorted(p.iterdir()) if f.is_file() and case_name(f)]
    for sub in sorted(d for d in p.iterdir() if d.is_dir()):
        found += [(sub.name, f) for f in sorted(sub.iterdir()) if f.is_file() and case_name(f) == sub.name]
    return found


def _one_per_case(found: List[Tuple[str, Path]]) -> Dict[str, Path]:
    """One label file per case name: a name with a label suffix wins over a plain one; two files of
    the same kind for one case are an error."""
    cases: Dict[str, Path] = {}
    for name, path in found:
        if name not in cases or (_has_label_suffix(path) and not _has_label_suffix(cases[name])):
            cases[name] = path
        elif _has_label_suffix(path) == _has_label_suffix(cases[name]) and path != cases[name]:
            raise InputError(path, f"gives the same case name '{name}' as {cases[name]}; rename one of them")
    return cases


def _has_label_suffix(path: Path) -> bool:
    return _parse(path)[1]


def match_cases(preds: Dict[str, Path], refs: Dict[str, Path]):
    """(pairs of (case, prediction, reference), cases with no reference, cases with no prediction)."""
    pairs = [(name, preds[name], refs[name]) for name in sorted(preds) if name in refs]
    return pairs, sorted(set(preds) - set(refs)), sorted(set(refs) - set(preds))


def read_labels(path) -> sitk.Image:
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as e:
        raise InputError(path, f"cannot read the label map ({str(e).strip().splitlines()[-1]})") from e


def evaluate_cases(pairs: Iterable[Tuple[str, object, object]], out_dir, resample_to_reference: bool = False
                   ) -> List[dict]:
    """Metrics rows for ``(case, prediction file, reference file)`` pairs; writes the four outputs."""
    rows = []
    for case, pred_path, ref_path in pairs:
        case_rows = compute_metrics(read_labels(pred_path), read_labels(ref_path), resample_to_reference,
                                    pred_name=str(pred_path), ref_name=str(ref_path))
        rows += [{"case": case, **r} for r in case_rows]
    write_outputs(rows, out_dir)
    return rows


def ears(rows: Iterable[dict]) -> List[dict]:
    """Per-side rows where the prediction or the reference has something."""
    return [r for r in rows if r["side"] in ("right", "left") and (r["pred_mm3"] > 0 or r["ref_mm3"] > 0)]


def summarise(rows: Iterable[dict]) -> Dict[str, float]:
    """Mean DSC over ears per structure and for the labyrinth (NaN where no ear has it)."""
    per_ear = ears(rows)
    out = {}
    for key in STRUCTURE_KEYS:
        values = [r["dsc"] for r in per_ear if r["structure"] == key]
        out[key] = float(np.mean(values)) if values else float("nan")
    return out


def summary_rows(rows: Iterable[dict]) -> List[dict]:
    """n, mean, std (sample) and median over ears of every metric per structure; NaN values left out."""
    per_ear = ears(rows)
    out = []
    for key in STRUCTURE_KEYS:
        for metric in METRICS:
            v = np.array([r[metric] for r in per_ear if r["structure"] == key], float)
            v = v[np.isfinite(v)]
            nan = float("nan")
            out.append({"structure": key, "metric": metric, "n": int(v.size),
                        "mean": float(v.mean()) if v.size else nan,
                        "std": float(v.std(ddof=1)) if v.size > 1 else nan,
                        "median": float(np.median(v)) if v.size else nan})
    return out


def format_summary(rows: Iterable[dict]) -> str:
    """A plain-text table: per structure, ears, DSC, HD95 and ASSD as mean +- std (median)."""
    summary = {(s["structure"], s["metric"]): s for s in summary_rows(rows)}
    head = f"{'structure':<22}{'ears':>5}  {'DSC':<24}{'HD95 mm':<24}{'ASSD mm'}"
    lines = [head, "-" * len(head)]
    for key in STRUCTURE_KEYS:
        cells = [f"{summary[key, m]['mean']:.3f} +- {summary[key, m]['std']:.3f} ({summary[key, m]['median']:.3f})"
                 for m in ("dsc", "hd95_mm", "assd_mm")]
        row = f"{TITLES[key]:<22}{summary[key, 'dsc']['n']:>5}  " + "".join(f"{c:<24}" for c in cells)
        lines.append(row.rstrip())
    return "\n".join(lines)


def write_outputs(rows: List[dict], out_dir) -> List[Path]:
    """metrics.csv, summary.csv, bland_altman.png, dsc.png: all to temporary names, then renamed."""
    out = Path(out_dir)
    writers = {
        "metrics.csv": lambda f: _write_csv(f, rows, FIELDS),
        "summary.csv": lambda f: _write_csv(f, summary_rows(rows), ("structure", "metric", "n", "mean", "std",
                                                                    "median")),
        "bland_altman.png": lambda f: bland_altman_figure(rows).savefig(f, format="png", dpi=120),
        "dsc.png": lambda f: dsc_figure(rows).savefig(f, format="png", dpi=120),
    }
    temps = {name: out / f".{name}.tmp" for name in writers}
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, write in writers.items():
            write(temps[name])
        for name, tmp in temps.items():
            os.replace(tmp, out / name)
    except OSError as e:
        raise OutputError(out, f"cannot write the evaluation outputs ({e})") from e
    finally:
        for tmp in temps.values():
            if tmp.exists():
                tmp.unlink()
    return [out / name for name in writers]


def _write_csv(path: Path, rows: Iterable[dict], fields: Sequence[str]) -> None:
    """Floats to 6 significant digits: float32 spacings and monai's float32 DSC carry noise beyond that."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()} for r in rows)


def _figure(title: str):
    """A 2 x 2 figure, one panel per structure; built without pyplot so it runs headless and in Slicer."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(10, 8), layout="constrained")
    fig.suptitle(title)
    return fig, fig.subplots(2, 2).ravel()


def bland_altman_figure(rows: Iterable[dict]):
    """Predicted minus reference volume against their mean per ear, with the bias and 1.96 SD limits."""
    per_ear = ears(rows)
    fig, axes = _figure("Bland-Altman: predicted - reference volume")
    for ax, key in zip(axes, STRUCTURE_KEYS):
        pred = np.array([r["pred_mm3"] for r in per_ear if r["structure"] == key])
        ref = np.array([r["ref_mm3"] for r in per_ear if r["structure"] == key])
        ax.set_title(TITLES[key])
        ax.set_xlabel("mean volume (mm3)")
        ax.set_ylabel("difference (mm3)")
        if not pred.size:
            continue
        diff = pred - ref
        ax.scatter((pred + ref) / 2, diff, s=16, color=COLOURS[key])
        bias, sd = diff.mean(), (diff.std(ddof=1) if diff.size > 1 else 0.0)
        for y, style, name in ((bias, "-", "mean"), (bias + 1.96 * sd, "--", "+1.96 SD"),
                               (bias - 1.96 * sd, "--", "-1.96 SD")):
            ax.axhline(y, linestyle=style, color="grey", label=f"{name} {y:.1f}")
        ax.legend(fontsize="small")
    return fig


def dsc_figure(rows: Iterable[dict]):
    """DSC per ear as a box plot with the individual ears jittered over it, per structure."""
    from matplotlib.figure import Figure
    per_ear = ears(rows)
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    values = [[r["dsc"] for r in per_ear if r["structure"] == key] for key in STRUCTURE_KEYS]
    ax.boxplot([v if v else [np.nan] for v in values], showfliers=False)
    ax.set_xticks(range(1, len(STRUCTURE_KEYS) + 1), [TITLES[k] for k in STRUCTURE_KEYS])
    jitter = np.random.default_rng(0)
    for i, (key, v) in enumerate(zip(STRUCTURE_KEYS, values), start=1):
        ax.scatter(i + jitter.uniform(-0.15, 0.15, len(v)), v, s=14, alpha=0.7, color=COLOURS[key])
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("Dice similarity coefficient")
    ax.set_title("DSC per ear")
    return fig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", nargs="+", required=True, metavar="DIR_OR_FILE",
                        help="predicted label maps: files, or folders (flat or one subfolder per case)")
    parser.add_argument("--ref", nargs="+", required=True, metavar="DIR_OR_FILE",
                        help="reference label maps (S_label.*, S_labels.* or S.*)")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for CSVs and plots")
    parser.add_argument("--resample", action="store_true",
                        help="resample predictions onto the reference grid (nearest) instead of failing")


def run(args: argparse.Namespace) -> int:
    """0 when every matched case was evaluated, 1 on an error or when no case matched."""
    try:
        pairs, no_ref, no_pred = match_cases(find_cases(args.pred), find_cases(args.ref))
        for label, names in (("no reference for", no_ref), ("no prediction for", no_pred)):
            if names:
                print(f"warning: {label} {len(names)} case(s): {', '.join(names)}", file=sys.stderr)
        if not pairs:
            print("error: no case name is in both --pred and --ref", file=sys.stderr)
            return 1
        rows = evaluate_cases(pairs, args.output, args.resample)
    except InnerEarSegError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{len(pairs)} case(s) evaluated; outputs in {args.output}")
    print(format_summary(rows))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="innerear-seg evaluate", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
