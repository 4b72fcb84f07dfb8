"""Speed and peak memory of the InnerEarSeg pipeline against the plain alternative, side by side.

Inputs: a synthetic MRI (0.4 mm, 400 x 400 x 120) and CT (0.4 x 0.4 x 0.6 mm, 400 x 400 x 100),
each a two-ear head slab from ``synth.generate.generate_volume`` padded with air to that
size; generated once and cached in the system temporary folder (generation is not timed).

Candidates, on the same input and weights:
- pipeline: ``pipeline.segment`` (localize the ears at 2 mm, segment two ear regions at the
  model spacing, map back, measure, surfaces), per-stage times from ``result.timings``;
- plain: what a user would write: resample the whole volume to the model spacing (the card's
  ``spacing_mm``; 0.45 mm in the reference method), min-max normalise,
  ``monai.inferers.sliding_window_inference`` with the segmenter (ROI = the card's patch size,
  overlap 0.25), torch fp32, argmax, nearest-neighbour back to the input grid.
Each run is a fresh subprocess so its peak RSS (VmHWM / ``ru_maxrss``: torch allocates outside
tracemalloc's view) is its own; the RSS after imports is shown as the baseline. Agreement:
DSC per structure between the two label maps, and of each against the synthetic truth.

    python benchmarks/benchmark.py [--model CARD] [--repeats N] [--threads N] [--skip-plain]
        [--cpu-precision auto|bf16|fp32] [--json PATH]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import numpy as np
import SimpleITK as sitk

from InnerEarSegLib.cli import CPU_PRECISION

CASES = {"mr": {"family": "mr", "spacing": (0.4, 0.4, 0.4), "size": (400, 400, 120)},
         "ct": {"family": "ct", "spacing": (0.4, 0.4, 0.6), "size": (400, 400, 100)}}
CACHE = Path(tempfile.gettempdir()) / "innerear-seg-benchmark"


def rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    Linux: VmHWM of this program image; ``ru_maxrss`` would also count the parent's memory at
    fork time, which Linux carries across exec. Elsewhere ``ru_maxrss`` (macOS reports bytes).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


# ---------------------------------------------------------------- inputs
def fit_to_size(image: sitk.Image, size, value: float) -> sitk.Image:
    """Pad (with ``value``) or crop symmetrically to ``size``; physical positions are kept."""
    diff = np.array(size) - np.array(image.GetSize())
    lo = diff // 2
    hi = diff - lo
    image = sitk.ConstantPad(image, np.maximum(lo, 0).tolist(), np.maximum(hi, 0).tolist(), value)
    return sitk.Crop(image, np.maximum(-lo, 0).tolist(), np.maximum(-hi, 0).tolist())


def make_input(case: str, size, seed: int = 7):
    """(image path, truth path) of the cached synthetic scan for ``case``, generated if missing."""
    spec = CASES[case]
    tag = f"{case}_{seed}_{'x'.join(map(str, size))}_{'x'.join(f'{s:g}' for s in spec['spacing'])}"
    image_path, truth_path = CACHE / f"{tag}.nrrd", CACHE / f"{tag}_label.nrrd"
    if not (image_path.is_file() and truth_path.is_file()):
        from InnerEarSegLib.synth.generate import generate_volume
        print(f"generating the synthetic {case.upper()} input (once; cached in {CACHE}) ...", flush=True)
        image, truth, _ = generate_volume(seed, family=spec["family"], spacing_xyz=spec["spacing"], fov="slab",
                                          direction=np.eye(3))
        air = float(sitk.GetArrayViewFromImage(image).min())
        CACHE.mkdir(parents=True, exist_ok=True)
        for img, value, path in ((image, air, image_path), (truth, 0, truth_path)):
            tmp = path.with_name(path.stem + ".tmp.nrrd")
            sitk.WriteImage(fit_to_size(img, size, value), str(tmp))
            tmp.replace(path)
    return image_path, truth_path


def resolved_precision(args) -> str:
    """The pipeline's CPU precision as run: ``auto`` says what it chose on this CPU."""
    if args.cpu_precision != "auto" or args.device == "cuda":
        return args.cpu_precision
    from InnerEarSegLib.inference.infer import native_cpu_bf16
    return f"auto ({'bf16' if native_cpu_bf16() else 'fp32'})"


def model_path(requested) -> Path:
    """The model to time: ``--model``, else the bundled one, else untrained default-size networks."""
    from InnerEarSegLib.model.model_card import DEFAULT_MODEL, default_card, save_model
    if requested:
        return Path(requested)
    if DEFAULT_MODEL.is_file():
        return DEFAULT_MODEL
    import torch
    from InnerEarSegLib.model.network import AttentionPyramidUNet
    print(f"warning: no bundled model at {DEFAULT_MODEL}; timing untrained networks of the default size "
          "(times and memory are representative, agreement and accuracy are not)", flush=True)
    torch.manual_seed(0)
    card = default_card()
    card["name"] = "untrained"
    return save_model(CACHE / "untrained.json",
                      {"localizer": AttentionPyramidUNet(1, 2), "segmenter": AttentionPyramidUNet(1, 4)}, card)


# ---------------------------------------------------------------- candidates (run in a worker process)
def run_pipeline(image_path, model, device, cpu_bf16=None):
    from InnerEarSegLib.core.read import read_image
    from InnerEarSegLib.pipeline import SegmentParameters, segment
    start = time.perf_counter()
    image = read_image(image_path)
    read = time.perf_counter() - start
    result = segment(image, model, SegmentParameters(device=device, cpu_bf16=cpu_bf16), source=image_path)
    total = time.perf_counter() - start
    timings = {"read": read + result.timings.pop("read", 0.0), **result.timings}
    return result.labels, timings, total


def run_plain(image_path, model, device):
    """The straightforward whole-volume sliding-window inference a user would write."""
    import torch
    from monai.inferers import sliding_window_inference
    from InnerEarSegLib.inference.infer import pick_device
    device = pick_device(device)
    net = model.segmenter.to(device)
    timings = {}
    start = last = time.perf_counter()

    def lap(name):
        nonlocal last
        now = time.perf_counter()
        timings[name], last = now - last, now

    image = sitk.ReadImage(str(image_path))
    lap("read")
    spacing = model.card["preprocessing"]["spacing_mm"]
    size = [int(round(n * s / spacing)) for n, s in zip(image.GetSize(), image.GetSpacing())]
    resampled = sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(),
                              [spacing] * 3, image.GetDirection(), 0.0, sitk.sitkFloat32)
    lap("resample")
    array = sitk.GetArrayFromImage(resampled)
    array = (array - array.min()) / max(float(array.max() - array.min()), 1e-8)
    lap("normalise")
    with torch.inference_mode():
        x = torch.from_numpy(array)[None, None].to(device)
        logits = sliding_window_inference(x, model.card["preprocessing"]["patch_size"], 1, net, overlap=0.25)
        labels = logits.argmax(1)[0].to(torch.uint8).cpu().numpy()
    lap("infer")
    small = sitk.GetImageFromArray(labels)
    small.CopyInformation(resampled)
    out = sitk.Resample(small, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    lap("resample back")
    return out, timings, time.perf_counter() - start


def worker(args) -> None:
    """One candidate on one input; writes its labels and a JSON of timings and memory."""
    import torch
    from InnerEarSegLib.model.model_card import load_model
    torch.set_num_threads(args.threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    baseline = rss_mb()
    model = load_model(args.model, "cpu")
    if args.worker == "pipeline":
        labels, timings, total = run_pipeline(args.input, model, args.device, CPU_PRECISION[args.cpu_precision])
    else:
        labels, timings, total = run_plain(args.input, model, args.device)
    report = {"timings": timings, "total": total, "peak_rss_mb": rss_mb(), "import_rss_mb": baseline}
    if torch.cuda.is_available():
        report["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / (1 << 20)
    sitk.WriteImage(labels, args.labels_out)
    Path(args.json_out).write_text(json.dumps(report))


# ---------------------------------------------------------------- driver
def measure(kind, image_path, model, args, work: Path) -> dict:
    """Run ``kind`` ``args.repeats`` times, each in its own process; median times, largest peak."""
    runs = []
    for i in range(args.repeats):
        labels, out = work / f"{kind}_labels.nrrd", work / f"{kind}_{i}.json"
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        subprocess.run([sys.executable, __file__, "--worker", kind, "--input", str(image_path), "--model", str(model),
                        "--threads", str(args.threads), "--device", args.device, "--labels-out", str(labels),
                        "--json-out", str(out), "--cpu-precision", args.cpu_precision], check=True, env=env)
        runs.append(json.loads(out.read_text()))
    stages = {k: statistics.median(r["timings"][k] for r in runs) for k in runs[0]["timings"]}
    result = {"timings": stages, "total": statistics.median(r["total"] for r in runs),
              "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "import_rss_mb": runs[0]["import_rss_mb"],
              "labels": str(labels)}
    if "cuda_peak_mb" in runs[0]:
        result["cuda_peak_mb"] = max(r["cuda_peak_mb"] for r in runs)
    return result


def dsc_by_structure(pred_path, ref_path) -> dict:
    from InnerEarSegLib.evaluation.metrics import compute_metrics
    rows = compute_metrics(sitk.ReadImage(str(pred_path)), sitk.ReadImage(str(ref_path)), distances=False)
    return {r["structure"]: r["dsc"] for r in rows if r["side"] == "both"}


def candidate_line(kind: str, r: dict) -> str:
    stages = ", ".join(f"{k} {v:.2f}" for k, v in r["timings"].items())
    return (f"  {kind:<9} total {r['total']:7.1f} s  peak RSS {r['peak_rss_mb']:6.0f} MiB "
            f"(after imports {r['import_rss_mb']:.0f} MiB)  stages [s]: {stages}")


def print_report(report: dict) -> None:
    print(f"\nmodel: {report['model']}; threads: {report['threads']}; device: {report['device']}; "
          f"cpu precision: {report.get('cpu_precision', 'fp32')}; "
          f"repeats: {report['repeats']} (median time, largest peak)")
    for case, res in report["cases"].items():
        print(f"\n{case.upper()} input: {res['size']} voxels at {res['spacing']} mm")
        for kind in ("pipeline", "plain"):
            if kind in res:
                print(candidate_line(kind, res[kind]))
        if "plain" in res:
            p, q = res["pipeline"], res["plain"]
            print(f"  plain / pipeline: time x{q['total'] / p['total']:.2f}, peak RSS x"
                  f"{q['peak_rss_mb'] / p['peak_rss_mb']:.2f}")
        for name, dsc in res["dsc"].items():
            print(f"  DSC {name:<20} " + "  ".join(f"{k} {v:.3f}" for k, v in dsc.items()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model card (.json) or weights (.pt); default: the bundled model")
    parser.add_argument("--repeats", type=int, default=1, help="runs per candidate (default 1)")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parser.add_argument("--threads", type=int, default=cores,
                        help="CPU threads for torch and SimpleITK (default: all cores)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto, for both candidates")
    parser.add_argument("--cpu-precision", default="auto", choices=list(CPU_PRECISION),
                        help="the pipeline's CPU precision, as innerear-seg segment --cpu-precision (default auto: "
                             "bf16 where the CPU has it natively); the plain alternative stays fp32")
    parser.add_argument("--skip-plain", action="store_true", help="time the pipeline only (the plain run is slow)")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=["mr", "ct"])
    parser.add_argument("--size", type=int, nargs=3, metavar=("X", "Y", "Z"), help="override the input size")
    parser.add_argument("--json", metavar="PATH", help="also save the results as JSON")
    for hidden in ("--worker", "--input", "--labels-out", "--json-out"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    model = model_path(args.model)
    report = {"model": str(model), "threads": args.threads, "device": args.device, "repeats": args.repeats,
              "cpu_precision": resolved_precision(args), "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            size = tuple(args.size or CASES[case]["size"])
            image_path, truth_path = make_input(case, size)
            res = {"size": list(size), "spacing": list(CASES[case]["spacing"]), "input": str(image_path)}
            kinds = ["pipeline"] + ([] if args.skip_plain else ["plain"])
            for kind in kinds:
                print(f"timing {kind} on {case.upper()} ...", flush=True)
                res[kind] = measure(kind, image_path, model, args, Path(tmp))
                print(candidate_line(kind, res[kind]), flush=True)
            res["dsc"] = {f"{k} vs truth": dsc_by_structure(res[k]["labels"], truth_path) for k in kinds}
            if not args.skip_plain:
                res["dsc"]["pipeline vs plain"] = dsc_by_structure(res["pipeline"]["labels"], res["plain"]["labels"])
            for kind in kinds:
                res[kind].pop("labels")
            report["cases"][case] = res
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
