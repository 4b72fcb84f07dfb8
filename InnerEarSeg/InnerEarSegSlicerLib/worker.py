"""Out-of-process runner: segment one scan and report progress as JSON lines on stdout.

Slicer starts it with its own Python (``PythonSlicer worker.py --input ... --output-dir ...``
and the options as ``innerear-seg segment`` takes them, ``SegmentParameters.asArgList``) so
inference never blocks or crashes the application, and Cancel can simply kill it.
Each stdout line is one JSON object: ``{"event": "progress", "stage", "fraction", "message"}``,
then ``{"event": "done", "warnings": [...]}`` or ``{"event": "error", "kind", "message"}``.
The input is read and checked exactly as the command line does (``InnerEarSegLib.read``),
so what the CLI refuses the panel refuses too, with the same message.
Outputs in ``--output-dir``: labels and sides images on the exact input grid (LPS, as
SimpleITK writes them) and the statistics as JSON; each is written to a temporary name
and renamed, so a killed run leaves no half-written file under the final name. The output
folder is created only inside an existing job folder: a job folder removed after Cancel is
never re-created.
"""
import argparse
import json
import sys
from pathlib import Path

LABELS_FILE = "labels.nii.gz"
SIDES_FILE = "sides.nii.gz"
STATS_FILE = "stats.json"


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def _jsonable(value):
    """numpy scalars and arrays in the stats become plain numbers and lists."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def write_outputs(result, out_dir: Path) -> None:
    from InnerEarSegLib.write import atomic_path, write_nifti
    out_dir.mkdir(exist_ok=True)  # not parents: the job folder must still be there
    stats = {"stats": result.stats, "warnings": result.warnings, "model": result.model_name}
    for name, write in ((LABELS_FILE, lambda p: write_nifti(p, result.labels)),
                        (SIDES_FILE, lambda p: write_nifti(p, result.sides)),
                        (STATS_FILE, lambda p: p.write_text(json.dumps(stats, default=_jsonable, indent=1)))):
        with atomic_path(out_dir / name) as tmp:
            write(tmp)


def parse_args(argv):
    from InnerEarSegLib.parameters import SegmentParameters
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="scan to segment (any format SimpleITK reads)")
    parser.add_argument("--output-dir", required=True, help="folder for labels, sides and stats")
    parser.add_argument("--model", default=None, help="model card or weights; default: the bundled model")
    parser.add_argument("--source", default=None, help="name of the scan in error messages (default: --input)")
    SegmentParameters.add_arguments(parser)  # the same option flags as innerear-seg segment
    return parser.parse_args(argv)


def main(argv=None, segment=None) -> int:
    """Run one segmentation; ``segment`` replaces ``InnerEarSegLib.pipeline.segment`` in tests."""
    args = parse_args(argv)
    try:
        from InnerEarSegLib.errors import InputError
        from InnerEarSegLib.parameters import SegmentParameters
        from InnerEarSegLib.read import read_image
        if segment is None:
            from InnerEarSegLib.pipeline import segment
        params = SegmentParameters.fromArgs(args)
        ok, message = params.isValid()
        if not ok:
            raise ValueError(f"invalid parameters: {message}")
        source = args.source or args.input
        try:
            image = read_image(args.input)
        except InputError as e:  # named as the user knows the scan, not by the temporary file
            raise InputError(source, e.problem) from e
        result = segment(image, model=args.model, params=params, source=source,
                         progress=lambda stage, fraction, message="": emit(
                             "progress", stage=stage, fraction=float(fraction), message=message))
        emit("progress", stage="write", fraction=1.0, message="writing results")
        write_outputs(result, Path(args.output_dir))
        emit("done", warnings=list(result.warnings))
        return 0
    except Exception as e:  # every failure is reported on the protocol, with its cause
        emit("error", kind=type(e).__name__, message=str(e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
