"""The library's Python API: segment an image, a file, or a batch of files.

``segment`` (one image, in memory) reads top-down in ``flow.py``; here it is wrapped for files
(read, segment, write) and batches (one ``CaseReport`` per scan, a failing scan does not stop the
others). ``cohort.segment_cohort`` adds reading ahead, resuming, a summary CSV and Dask workers.
The writer and surface builder can be injected, which lets tests run the whole path with fakes;
the defaults are the real writers.
"""
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, List, Optional

from .core.errors import Cancelled, InnerEarSegError
from .core.progress import CancelFlag, ProgressCallback, no_progress
from .core.read import as_image, case_name, check_unique_case_names, list_inputs, read_image
from .core.result import SegmentationResult
from .flow import segment
from .inference import infer
from .model.model_card import LoadedModel, load_model
from .parameters import SegmentParameters

# the API's names, importable from here
__all__ = ["CaseReport", "SegmentParameters", "SegmentationResult", "as_image", "segment", "segment_batch",
           "segment_case", "segment_file"]


@dataclass
class CaseReport:
    """The outcome of one input of a batch; ``error`` names the file and the cause. ``skipped``:
    not segmented because complete outputs of an earlier run were there (``cohort``, resume)."""

    path: str
    name: str
    ok: bool
    error: str = ""
    outputs: List[Path] = field(default_factory=list)
    seconds: float = 0.0
    stats: List[dict] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    skipped: bool = False


def _model(model, device) -> LoadedModel:
    """``model`` loaded once for a batch (``load_model`` looked up here, so tests can count loads)."""
    return model if isinstance(model, LoadedModel) else load_model(model, device)


def _segment_and_write(path, out_dir, model, params, progress, cancel, writer, surface_builder, read=None):
    start = time.perf_counter()
    image = read() if read is not None else read_image(path)
    seconds = time.perf_counter() - start
    result = segment(image, model, params, progress, cancel, surface_builder=surface_builder, source=path)
    result.timings["read"] = result.timings.get("read", 0.0) + seconds
    if writer is None:
        from .outputs.write import formats_for, write_outputs
        writer = partial(write_outputs, formats=formats_for(params))  # no preview when params.preview is off
    outputs = writer(result, out_dir, case_name(path), image)
    return result, [Path(p) for p in outputs]


def segment_file(path, out_dir, model=None, params: Optional[SegmentParameters] = None,
                 progress: Optional[ProgressCallback] = None, cancel: Optional[CancelFlag] = None, *,
                 writer: Optional[Callable] = None, surface_builder: Optional[Callable] = None
                 ) -> SegmentationResult:
    """Read a scan (file or DICOM folder), segment it, and write its outputs into ``out_dir/<case>/``.

    writer(result, out_dir, name, input_image) -> [paths] defaults to ``write.write_outputs`` (with
    ``write.formats_for(params)``: no preview when ``params.preview`` is off).
    """
    return _segment_and_write(path, out_dir, model, params, progress, cancel, writer, surface_builder)[0]


def segment_batch(paths, out_dir, model=None, params: Optional[SegmentParameters] = None,
                  progress: Optional[ProgressCallback] = None, cancel: Optional[CancelFlag] = None, *,
                  writer: Optional[Callable] = None, surface_builder: Optional[Callable] = None
                  ) -> List[CaseReport]:
    """Segment every scan in ``paths`` (expanded by ``read.list_inputs``), one report each.

    A failing scan does not stop the others; its report's error names the file and the cause.
    The model is loaded once (a bad model stops the batch: nothing could succeed), and Cancel
    stops the batch. Progress also gets ``("batch", i / n, case name)`` before each scan.
    ``cohort.segment_cohort`` adds reading ahead, resuming, a summary CSV and Dask workers.
    """
    params = params or SegmentParameters()
    model = _model(model, infer.pick_device(params.device))
    progress = progress or no_progress
    inputs = list_inputs(paths)
    check_unique_case_names(inputs)
    reports = []
    for i, path in enumerate(inputs):
        progress("batch", i / len(inputs), case_name(path))
        reports.append(segment_case(path, out_dir, model, params, progress, cancel, writer=writer,
                                    surface_builder=surface_builder))
    progress("batch", 1.0, "")
    return reports


def segment_case(path, out_dir, model, params: Optional[SegmentParameters] = None,
                 progress: Optional[ProgressCallback] = None, cancel: Optional[CancelFlag] = None, *,
                 writer: Optional[Callable] = None, surface_builder: Optional[Callable] = None,
                 read: Optional[Callable] = None) -> CaseReport:
    """Segment one scan of a batch, write its outputs and report: a failing scan gives a report
    whose error names the file and the cause, never an exception (Cancel and Ctrl-C still stop).
    ``read() -> image`` replaces reading ``path`` (``cohort`` reads the next scan ahead)."""
    name = case_name(path)
    start = time.perf_counter()
    try:
        result, outputs = _segment_and_write(path, out_dir, model, params or SegmentParameters(),
                                             progress or no_progress, cancel, writer, surface_builder, read)
        report = CaseReport(str(path), name, True, "", outputs, 0.0, result.stats, result.warnings)
    except Cancelled:
        raise
    except Exception as e:  # one failing scan must not lose the others
        cause = str(e) if isinstance(e, InnerEarSegError) else f"{type(e).__name__}: {e}"
        report = CaseReport(str(path), name, False, cause if str(path) in cause else f"{path}: {cause}")
    report.seconds = time.perf_counter() - start
    return report
