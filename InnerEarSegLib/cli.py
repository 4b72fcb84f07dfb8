"""``innerear-seg``: segment scans, run the demo, show the model card, and (delegated) train,
evaluate and synthesise.

Exit status: 0 when everything asked for succeeded, 1 when an input or the run failed (the
other inputs of a batch are still processed), 2 for a usage error, 130 when interrupted
(Ctrl-C: the summary of the scans done so far is still printed), 143 on SIGTERM (like Ctrl-C,
the file being written is cleaned up first). Library errors print one line naming the file and
the cause, never a traceback. Inputs that would share one output folder are refused before any
work, and so is an output folder that cannot be written. A reader that stops reading (``| head``)
ends the printing quietly, not the run. ``segment --workers N / --scheduler ADDRESS / --resume``
run the cohort on Dask and skip finished scans (``cohort``; docs/cohorts.md); every run writes
``OUTDIR/cohort_summary.csv``. ``segment --events json`` is for programs (the Slicer module
runs the CLI so): stdout carries only JSON lines (``JsonEvents``), the text goes to stderr.
"""
import argparse
import contextlib
import importlib
import json
import os
import signal
import sys
import tempfile
import threading
import warnings
from pathlib import Path

from . import __version__
from .core.errors import InnerEarSegError, InputError, OutputError, brief
from .core.resources import bundled
from .parameters import SegmentParameters

SAMPLE = bundled("Samples", "sample_t2.nrrd")
# --cpu-precision's words -> SegmentParameters.cpu_bf16 (None: bf16 where the CPU has it natively)
CPU_PRECISION = next(o for o in SegmentParameters.options() if o.name == "cpu_bf16").choices
STAGES = ("read", "preprocess", "localize", "segment", "postprocess", "measure", "surface")
# sub-command -> (module, help). The module's add_arguments(parser) and run(args) do the work; it is
# imported only when chosen, so a missing or broken module never breaks the other commands
DELEGATES = {
    "train": ("InnerEarSegLib.training.train", "train the localizer or segmenter network"),
    "evaluate": ("InnerEarSegLib.evaluation.evaluate",
                 "compare predicted labels with reference labels (DSC, distances, volumes)"),
    "synth": ("InnerEarSegLib.synth", "write synthetic temporal-bone scans with known labels"),
    # any label set on image stacks (TIFF/PNG slices, volumes): InnerEarSegLib/stacks, docs/stacks.md
    "train-stack": ("InnerEarSegLib.stacks.train",
                    "train a 2D/3D U-Net on your own labelled image stacks (any labels)"),
    "segment-stack": ("InnerEarSegLib.stacks.segment", "segment image stacks with a model from train-stack"),
    "evaluate-stack": ("InnerEarSegLib.stacks.evaluate", "per-label Dice and IoU of label stacks against references"),
    "baseline": ("InnerEarSegLib.stacks.baseline",
                 "classical segmentation of a stack: Otsu/threshold, region growing, watershed"),
}


class ScanProgress:
    """A tqdm bar per scan: the batch's ``("batch", i / n, name)`` starts one, stage reports move it."""

    def __init__(self, count: int):
        self.count, self.index, self.bar = count, 0, None

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        if stage == "batch":
            self.close()
            if fraction < 1.0:
                from tqdm import tqdm
                self.index += 1
                self.bar = tqdm(total=len(STAGES), desc=f"[{self.index}/{self.count}] {message}", unit="stage",
                                bar_format="{desc}: {percentage:3.0f}%|{bar:20}| [{elapsed}{postfix}]")
        elif self.bar is not None and stage in STAGES:
            self.bar.n = STAGES.index(stage) + min(max(float(fraction), 0.0), 1.0)
            self.bar.set_postfix_str(stage)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class JsonEvents:
    """``--events json``: one JSON object per line on ``stream``, each with an ``event`` key:

    - ``progress``: ``case`` (its name), ``stage``, ``fraction`` (0..1 within the stage), ``message``;
      stage ``batch`` starts a case (fraction: the cases started before it / all).
    - ``case``: a case ended: ``name``, ``input``, ``status`` (ok, failed, skipped), ``seconds``,
      ``error``, ``warnings``, ``outputs`` (the files written).
    - ``done``: the run ended: ``status`` (the exit status), ``summary`` (the summary CSV).
    - ``error``: the run stopped before any case could be done: ``kind``, ``message``.

    Used as the cohort's progress callback; ``report`` is called with each case's report."""

    def __init__(self, stream):
        self.stream, self.case = stream, ""

    def emit(self, event: str, **fields) -> None:
        print(json.dumps({"event": event, **fields}, default=str), file=self.stream, flush=True)

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        if stage == "batch" and float(fraction) < 1.0:
            self.case = message
        self.emit("progress", case=self.case, stage=stage, fraction=float(fraction), message=message)

    def report(self, report) -> None:
        from .cohort import status
        self.emit("case", name=report.name, input=report.path, status=status(report),
                  seconds=round(report.seconds, 3), error=report.error, warnings=list(report.warnings),
                  outputs=[str(p) for p in report.outputs])

    def close(self) -> None:
        pass


def labyrinth_volumes(stats) -> str:
    """``right / left`` labyrinth volumes in mm3 from a case's stats rows (or the total when not split)."""
    volumes = {r["side"]: r["volume_mm3"] for r in stats if r.get("structure") == "labyrinth"}
    if "right" in volumes or "left" in volumes:
        return " / ".join(f"{volumes[s]:.1f}" if volumes.get(s) is not None else "-" for s in ("right", "left"))
    return f"{volumes['both']:.1f} (both)" if volumes.get("both") is not None else "-"


def summary_table(reports) -> str:
    from .cohort import status
    rows = [("name", "status", "labyrinth R / L mm3", "seconds", "error")]
    rows += [(r.name, status(r) if r.ok else "FAILED", labyrinth_volumes(r.stats) if r.ok else "-",
              f"{r.seconds:.1f}", r.error) for r in reports]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4]
                     for row in rows).rstrip()


def say(text: str = "", file=None) -> None:
    """Print, unless the reader has gone (``| head``): then further output is dropped, the run goes on."""
    file = file or sys.stdout
    try:
        print(text, file=file, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), file.fileno())  # also silences the flush at exit


def check_output_folder(out_dir) -> None:
    """Create ``out_dir`` and prove a file can be written there, before hours of segmenting."""
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as e:
        raise OutputError(out_dir, f"cannot use this as the output folder ({brief(e)})") from e


def segment_inputs(inputs, out_dir, model, params, workers=0, scheduler=None, resume=False, events=None) -> int:
    """Segment every scan in ``inputs`` into ``out_dir``, print the summary; 0 only if all succeeded
    (or were skipped by ``resume``), 130 when interrupted (after printing the summary of the scans
    done). ``workers``/``scheduler``: on Dask (``cohort.segment_cohort``). ``events``: a
    ``JsonEvents`` that gets the progress and each report instead of the progress bars."""
    from .inference import infer
    from .model.model_card import LoadedModel, load_model
    scans = checked_scans(inputs, out_dir)
    if not isinstance(model, LoadedModel):
        model = load_model(model, infer.pick_device(params.device))  # once; a bad model stops here
    reports = Reports(scans, distributed=bool(workers or scheduler), events=events)
    interrupted = run_cohort(scans, out_dir, model, params, reports, workers, scheduler, resume)
    finished = reports.in_order()
    print_outcome(finished, scans, out_dir)
    if interrupted:
        say(f"innerear-seg: interrupted; {len(scans) - len(finished)} scan(s) not started or not finished", sys.stderr)
        return 130
    return 0 if sum(r.ok for r in finished) == len(scans) else 1


def checked_scans(inputs, out_dir) -> list:
    """The scans in ``inputs``; refused before any work when there are none, when two would share
    an output folder, or when ``out_dir`` cannot be written."""
    from .core import read
    scans = read.list_inputs(inputs)
    if not scans:
        raise InputError(", ".join(str(i) for i in inputs), "no scans found")
    read.check_unique_case_names(scans)
    check_output_folder(out_dir)
    return scans


class Reports:
    """The cohort's ``on_report``: keeps each report as its scan finishes (so an interruption still
    has the reports so far), passes it to ``events`` and prints a line for a skipped scan, or for
    each scan on Dask (no progress bars there)."""

    def __init__(self, scans, distributed: bool, events=None):
        self.scans, self.distributed, self.events = scans, distributed, events
        self.reports = []

    def __call__(self, report) -> None:
        from .cohort import status
        self.reports.append(report)
        if self.events is not None:
            self.events.report(report)
        if report.skipped or self.distributed:
            say(f"[{len(self.reports)}/{len(self.scans)}] {report.name}: {status(report)}"
                + (" (complete outputs found)" if report.skipped else f" in {report.seconds:.1f} s"))

    def in_order(self) -> list:
        """The reports in the order of the scans (Dask finishes them in any order)."""
        order = {str(scan): i for i, scan in enumerate(self.scans)}
        self.reports.sort(key=lambda r: order.get(r.path, len(order)))
        return self.reports


def run_cohort(scans, out_dir, model, params, reports: Reports, workers, scheduler, resume) -> bool:
    """``cohort.segment_cohort`` with progress bars (or ``reports.events``) here; True when interrupted."""
    from . import cohort
    bars = reports.events or ScanProgress(sum(not (resume and cohort.is_complete(out_dir, s)) for s in scans))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the library's own warnings are in the reports, printed after
            cohort.segment_cohort(scans, out_dir, model, params, workers=workers, scheduler=scheduler, resume=resume,
                                  progress=None if reports.distributed else bars, on_report=reports)
    except KeyboardInterrupt:
        return True
    finally:
        bars.close()
    return False


def print_outcome(reports, scans, out_dir) -> None:
    """The summary table, every warning, the counts and where the outputs are."""
    from .cohort import SUMMARY_NAME
    if reports:
        say(summary_table(reports))
    for r in reports:
        for w in r.warnings:
            say(f"warning: {r.name}: {w}")
    skipped = sum(r.skipped for r in reports)
    say(f"{sum(r.ok for r in reports)} of {len(scans)} scans segmented"
        + (f" ({skipped} skipped: complete outputs found)" if skipped else "")
        + f"; outputs in {Path(out_dir).resolve()}/<name>/")
    say(f"summary: {Path(out_dir).resolve() / SUMMARY_NAME}")


def run_segment(args) -> int:
    params = SegmentParameters.fromArgs(args)
    if args.model:
        from .stacks import card as stack_card
        if stack_card.is_stack_card(args.model):  # a model from train-stack: the stack tools segment
            if args.events == "json":   # they print for people only
                error = InputError(args.model, "a stack model (train-stack) reports no --events json: use "
                                               "segment-stack, or segment without --events")
                JsonEvents(sys.stdout).emit("error", kind=type(error).__name__, message=str(error))
                raise error
            from .stacks import segment as stack_segment
            return stack_segment.run_from_segment(argparse.Namespace(**vars(args), no_surfaces=not params.surfaces))
    if args.events == "json":
        return segment_with_events(args, params, JsonEvents(sys.stdout))
    return segment_inputs(args.inputs, args.output, args.model, params, workers=args.workers,
                          scheduler=args.scheduler, resume=args.resume)


def segment_with_events(args, params, events: JsonEvents) -> int:
    """``segment --events json``: the events on stdout, the text for people on stderr."""
    from .cohort import SUMMARY_NAME
    try:
        with contextlib.redirect_stdout(sys.stderr):
            status = segment_inputs(args.inputs, args.output, args.model, params, workers=args.workers,
                                    scheduler=args.scheduler, resume=args.resume, events=events)
    except InnerEarSegError as e:
        events.emit("error", kind=type(e).__name__, message=str(e))
        raise
    events.emit("done", status=status, summary=str(Path(args.output).resolve() / SUMMARY_NAME))
    return status


def run_demo(args) -> int:
    if not SAMPLE.is_file():
        raise InputError(SAMPLE, "the bundled sample scan is missing from this installation")
    status = segment_inputs([SAMPLE], args.output, None, SegmentParameters())
    if status == 0:
        from .core.read import case_name
        folder = Path(args.output).resolve() / case_name(SAMPLE)
        say(f"Demo outputs: {folder}\n  open {case_name(SAMPLE)}.seg.nrrd in 3D Slicer over {SAMPLE}, "
            f"or look at {case_name(SAMPLE)}_preview.png")
    return status


def card_summary(loaded) -> str:
    """A readable model card: identity, verified weights, labels, then everything else as YAML."""
    import yaml
    card = loaded.card
    lines = [f"Model: {loaded.name}", f"Card: {loaded.card_path}",
             f"Weights: {card['weights']} (SHA-256 {card['sha256'][:16]}..., verified)",
             "Labels: " + ", ".join(f"{lab['value']} {lab['name']}" for lab in card.get("labels", []))]
    rest = {k: v for k, v in card.items() if k not in ("name", "version", "format", "weights", "sha256", "labels")}
    return "\n".join(lines) + "\n" + yaml.safe_dump(rest, sort_keys=False, default_flow_style=None).rstrip()


def run_info(args) -> int:
    from .model.model_card import load_model
    say(card_summary(load_model(args.model, "cpu")))
    return 0


def _workers(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (run here) or more, not {text}")
    return value


def build_parser(command=None) -> argparse.ArgumentParser:
    """The parser; only the delegated sub-command actually chosen (``command``) is imported."""
    parser = argparse.ArgumentParser(prog="innerear-seg", description="Inner-ear segmentation of temporal-bone "
                                     "MRI and CT: cochlea, vestibule and semicircular canals, per side.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("segment", help="segment scans (files, DICOM folders or folders of scans)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="scan file, DICOM series folder or folder of scans")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="results go to OUTDIR/<name>/")
    p.add_argument("--model", metavar="PATH", help="model card (.json) or weights (.pt); default: bundled model")
    SegmentParameters.add_arguments(p)  # the options of how to segment, declared once (parameters.py)
    p.add_argument("--workers", type=_workers, default=0, metavar="N",
                   help="segment on a Dask LocalCluster of N worker processes, one scan per task "
                        "(default 0: here, one process, the next scan read ahead; docs/cohorts.md)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="segment on an existing Dask cluster (e.g. tcp://host:8786); its workers must see "
                        "the inputs and OUTDIR at the same paths")
    p.add_argument("--resume", action="store_true",
                   help="skip scans whose outputs in OUTDIR are complete (an interrupted or failed run's rest)")
    p.add_argument("--events", choices=["json"],
                   help="json: for programs, progress and results as JSON lines on stdout (one object per line, "
                        "key 'event': progress, case, done, error); the text goes to stderr")
    p.set_defaults(func=run_segment)

    p = sub.add_parser("demo", help="segment the bundled sample scan with the bundled model")
    p.add_argument("-o", "--output", default="innerear-seg-demo", metavar="OUTDIR")
    p.set_defaults(func=run_demo)

    p = sub.add_parser("info", help="show the model card")
    p.add_argument("--model", metavar="PATH", help="model card or weights; default: bundled model")
    p.set_defaults(func=run_info)

    for name, (module_name, help_text) in DELEGATES.items():
        p = sub.add_parser(name, help=help_text)
        if name == command:
            try:
                module = importlib.import_module(module_name)
                module.add_arguments(p)
                p.set_defaults(func=module.run)
            except (ImportError, AttributeError) as e:
                parser.error(f"the '{name}' command is not available in this installation ({e})")
    return parser


def _terminate(signum, frame):
    """SIGTERM ends the run like Ctrl-C ends it: through the clean-up of the file being written."""
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()  # signals can only be set there
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        return int(args.func(args) or 0)
    except InnerEarSegError as e:
        say(f"innerear-seg: error: {e}", sys.stderr)
        return 1
    except KeyboardInterrupt:
        say("innerear-seg: interrupted", sys.stderr)
        return 130
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
