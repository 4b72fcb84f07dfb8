"""Scans per hour for a cohort, three ways, on the same scans and model (docs/cohorts.md):

- plain loop: one ``innerear-seg segment SCAN`` process per scan, as a shell loop runs it
  (Python, torch and the model are loaded for every scan);
- loaded once without read-ahead: ``pipeline.segment_batch`` (the library's simple loop);
- loaded once: ``cohort.segment_cohort`` here (one process, the model loaded once, the next
  scan read while the current one is segmented), as ``innerear-seg segment DIR`` runs it;
- Dask: ``cohort.segment_cohort(workers=N)``, a LocalCluster of N single-threaded worker
  processes, cluster start included, as ``innerear-seg segment DIR --workers N`` runs it.

Every way writes every output (default parameters: TTA, surfaces, preview) into its own
temporary folder, removed afterwards; every scan must succeed. Prints a Markdown table.

    python benchmarks/cohort_benchmark.py [--scans DIR] [-n 20] [--workers 2] [--model CARD]
        [--skip plain|batch|once|dask ...] [--json PATH]

``--scans`` defaults to ``runs/testset/images`` (made by ``innerear-seg synth -o runs/testset -n 24
--seed 900000``); the first N scans in name order are used.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from InnerEarSegLib import cohort
from InnerEarSegLib.core.read import is_image_file


def plain_loop(scans, out, model):
    """One CLI process per scan."""
    command = [sys.executable, "-m", "InnerEarSegLib.cli", "segment"]
    for scan in scans:
        extra = ["--model", str(model)] if model else []
        done = subprocess.run(command + [str(scan), "-o", str(out)] + extra, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"plain loop: {scan} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def in_batch(scans, out, model):
    from InnerEarSegLib.pipeline import segment_batch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reports = segment_batch(scans, out, model)
    failed = [r.error for r in reports if not r.ok]
    if failed:
        raise SystemExit("batch: failures:\n" + "\n".join(failed))


def in_cohort(scans, out, model, workers):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reports = cohort.segment_cohort(scans, out, model, workers=workers)
    failed = [r.error for r in reports if not r.ok]
    if failed:
        raise SystemExit("cohort: failures:\n" + "\n".join(failed))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", type=Path, default=ROOT / "runs" / "testset" / "images")
    parser.add_argument("-n", type=int, default=20, help="number of scans (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers (default 2)")
    parser.add_argument("--model", help="model card; default: the bundled model")
    parser.add_argument("--skip", nargs="*", default=[], choices=["plain", "batch", "once", "dask"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    scans = sorted(p for p in args.scans.iterdir() if is_image_file(p))[:args.n]
    if len(scans) < args.n:
        raise SystemExit(f"{args.scans}: {len(scans)} scans, {args.n} asked for")
    ways = {"plain": ("plain loop (one CLI process per scan)", lambda out: plain_loop(scans, out, args.model)),
            "batch": ("loaded once (pipeline.segment_batch, no read-ahead)", lambda out: in_batch(scans, out, args.model)),
            "once": ("loaded once, next scan read ahead", lambda out: in_cohort(scans, out, args.model, 0)),
            "dask": (f"Dask LocalCluster, {args.workers} workers x 1 thread",
                     lambda out: in_cohort(scans, out, args.model, args.workers))}
    results = []
    for key, (label, run) in ways.items():
        if key in args.skip:
            continue
        out = Path(tempfile.mkdtemp(prefix=f"innerear-cohort-{key}-"))
        try:
            start = time.perf_counter()
            run(out)
            seconds = time.perf_counter() - start
        finally:
            shutil.rmtree(out, ignore_errors=True)
        results.append({"way": label, "scans": len(scans), "seconds": round(seconds, 1),
                        "seconds_per_scan": round(seconds / len(scans), 2),
                        "scans_per_hour": round(3600 * len(scans) / seconds)})
        print(f"{label}: {seconds:.1f} s", flush=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"\n{len(scans)} scans from {args.scans}, {cores} cores\n")
    print("| way | scans | seconds | s / scan | scans / hour |\n|---|---|---|---|---|")
    for r in results:
        print(f"| {r['way']} | {r['scans']} | {r['seconds']} | {r['seconds_per_scan']} | {r['scans_per_hour']} |")
    if args.json:
        args.json.write_text(json.dumps({"cores": cores, "scans_dir": str(args.scans), "results": results}, indent=2))


if __name__ == "__main__":
    main()
