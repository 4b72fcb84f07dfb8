"""Print the README's figure tables (Markdown) from the files the measuring commands write.

    python release/readme_tables.py [--eval runs/testeval] [--cases runs/testset/cases.json]
                                    [--benchmark runs/benchmark.json]

- test-set table: ``summary.csv`` of ``bash release/evaluate_default_model.sh``;
- per-contrast labyrinth DSC: its ``metrics.csv`` with the families in ``cases.json``;
- speed table: the JSON of ``python benchmarks/benchmark.py --json runs/benchmark.json``;
- training totals: the bundled model card's ``training_runs`` (``release/make_default_model.py``).
Nothing is typed in by hand, so the README says only what those commands measured.
"""
import argparse
import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path

from InnerEarSegLib.synth.appearance import FAMILIES

NAMES = {"cochlea": "Cochlea", "vestibule": "Vestibule", "semicircular_canals": "Semicircular canals",
         "labyrinth": "Labyrinth"}


def test_set_table(eval_dir: Path) -> str:
    rows = {(r["structure"], r["metric"]): r for r in csv.DictReader(open(eval_dir / "summary.csv"))}
    volume = defaultdict(lambda: [0.0, 0.0])   # structure -> predicted, reference mm3 over all ears
    for r in csv.DictReader(open(eval_dir / "metrics.csv")):
        if r["side"] in ("left", "right"):
            volume[r["structure"]][0] += float(r["pred_mm3"])
            volume[r["structure"]][1] += float(r["ref_mm3"])
    out = ["| structure | DSC mean +- SD (median) | TPR mean | FDR mean | HD95 mm, median | ASSD mm, median "
           "| predicted / true volume |", "|---" * 7 + "|"]
    for key, name in NAMES.items():
        d = rows[(key, "dsc")]
        pred, ref = volume[key]
        ratio = f"{pred / ref:.2f}" if ref else "-"
        out.append(f"| {name} | {float(d['mean']):.3f} +- {float(d['std']):.3f} ({float(d['median']):.3f}) "
                   f"| {float(rows[(key, 'tpr')]['mean']):.3f} | {float(rows[(key, 'fdr')]['mean']):.3f} "
                   f"| {float(rows[(key, 'hd95_mm')]['median']):.2f} | {float(rows[(key, 'assd_mm')]['median']):.2f} "
                   f"| {ratio} |")
    return "\n".join(out)


def family_table(eval_dir: Path, cases_json: Path) -> str:
    family = {c["name"]: c["family"] for c in json.loads(cases_json.read_text())["cases"]}
    rows = [r for r in csv.DictReader(open(eval_dir / "metrics.csv")) if r["side"] in ("left", "right")]
    ears = {(r["case"], r["side"]) for r in rows if r["structure"] == "labyrinth" and float(r["ref_mm3"]) > 0}
    per = defaultdict(lambda: defaultdict(list))   # the ears the summary counts, all their structures
    for r in rows:   # like the summary, a structure empty in both prediction and reference is left out
        empty = float(r["pred_mm3"]) == 0 and float(r["ref_mm3"]) == 0
        if (r["case"], r["side"]) in ears and r["structure"] in NAMES and not empty:
            per[family[r["case"]]][r["structure"]].append(float(r["dsc"]))
    out = ["| contrast | ears | " + " | ".join(NAMES.values()) + " |", "|---" * (len(NAMES) + 2) + "|"]
    # the generator's contrasts first, then any other (phantom kinds)
    for fam in [f for f in FAMILIES if f in per] + sorted(set(per) - set(FAMILIES)):
        cells = [f"{statistics.mean(per[fam][k]):.3f}" if per[fam][k] else "-" for k in NAMES]
        out.append(f"| {fam} | {len(per[fam]['labyrinth'])} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def speed_table(benchmark_json: Path) -> str:
    b = json.loads(benchmark_json.read_text())
    out = ["| input | pipeline | of which localise / segment / surfaces | plain alternative | ratio "
           "| peak RSS pipeline / plain | labyrinth DSC vs truth, pipeline / plain |", "|---" * 7 + "|"]
    for name, c in b["cases"].items():
        p, q, t = c["pipeline"], c.get("plain"), c["pipeline"]["timings"]
        size = "x".join(str(s) for s in c["size"])
        stages = " / ".join(f"{t.get(k, 0):.2f}" for k in ("localize", "segment", "surface"))
        plain = f"{q['total']:.1f} s" if q else "-"
        ratio = f"{q['total'] / p['total']:.1f}x" if q else "-"
        rss = f"{p['peak_rss_mb']:.0f} / {q['peak_rss_mb']:.0f} MiB" if q else f"{p['peak_rss_mb']:.0f} MiB"
        dsc = c.get("dsc", {})
        agree = " / ".join(f"{dsc[k]['labyrinth']:.3f}" for k in ("pipeline vs truth", "plain vs truth") if k in dsc)
        out.append(f"| {name.upper()} {size} | {p['total']:.1f} s | {stages} s | {plain} | {ratio} | {rss} | {agree} |")
    return f"threads {b['threads']}, device {b['device']}, repeats {b['repeats']}\n\n" + "\n".join(out)


def training_line(card_path: Path) -> str:
    """Steps and hours per network over the card's chain of runs (each run to its best checkpoint)."""
    runs = json.loads(card_path.read_text()).get("training_runs", [])
    parts = []
    for stage in ("segmenter", "localizer"):
        chain = [r for r in runs if r["stage"] == stage]
        if chain:
            # one run per folder (a run's best card and its last checkpoint: the larger counts);
            # a weight average trains nothing
            per_run = {}
            for r in chain:
                if not r.get("averaged"):
                    key = str(Path(r["run"]).parent)
                    per_run[key] = max(per_run.get(key, (0, 0.0)), (r.get("steps") or 0, r.get("seconds") or 0.0))
            steps = sum(s for s, _ in per_run.values())
            hours = sum(t for _, t in per_run.values()) / 3600
            parts.append(f"{stage}: {steps:,} steps in {len(per_run)} runs, {hours:.1f} h")
    return "training: " + "; ".join(parts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval", type=Path, default=Path("runs/testeval"))
    ap.add_argument("--cases", type=Path, default=Path("runs/testset/cases.json"))
    ap.add_argument("--benchmark", type=Path, default=Path("runs/benchmark.json"))
    ap.add_argument("--card", type=Path, default=Path("Resources/Models/InnerEarSeg.json"))
    args = ap.parse_args(argv)
    if args.card.is_file():
        print(training_line(args.card), end="\n\n")
    if (args.eval / "summary.csv").is_file():
        print(test_set_table(args.eval), end="\n\n")
        if args.cases.is_file():
            print(family_table(args.eval, args.cases), end="\n\n")
    if args.benchmark.is_file():
        print(speed_table(args.benchmark))


if __name__ == "__main__":
    main()
