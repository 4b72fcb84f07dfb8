"""Cohorts: many scans with the model loaded once per process, here or on a Dask cluster,
resumable, with one summary CSV.

``segment_cohort`` runs every scan of the inputs in one of two ways, with the same reports:

- here (``workers=0``): one process holds the model and segments the scans one after another;
  a reader thread reads the next scan while the networks run on the current one.
- on Dask (``workers=N``: a ``LocalCluster`` of N single-threaded worker processes on this
  machine; ``scheduler=ADDRESS``: an existing cluster, the same code path): each scan is one task
  (``run_case``). A worker process loads the model at its first scan and keeps it
  (``worker_model``). Torch and SimpleITK threads per worker are the cores of its machine divided
  by the worker threads on that machine, so workers do not fight over cores. Every worker writes its
  scan's outputs into ``OUT/<name>/`` itself, through ``write.write_outputs``' staged-folder swap,
  so the output folder must be shared with a remote cluster's workers.

Failure isolation: a scan that fails gives a failed report (its error names the file and the
cause); a worker process that dies mid-scan (killed, out of memory, a crash in native code)
loses only that scan: the scheduler hands the scans it held to the other workers, retries the
one it was running once (``ALLOWED_FAILURES``) and then reports it as failed. Outputs are
written whole or not at all, so a dead worker leaves no half-written case folder.

``resume=True`` skips scans whose outputs are complete (``is_complete``). After every finished
scan, ``OUT/cohort_summary.csv`` is rewritten (atomically) with one row per scan finished so far:
status (ok, failed, skipped), seconds, volumes per structure and side, warnings, error.
"""
import csv
import functools
import json
import os
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List, Optional

from . import pipeline
from .core import labels as L
from .core.errors import Cancelled, InnerEarSegError, brief
from .core.progress import CancelFlag, ProgressCallback, no_progress
from .core.read import case_name, check_unique_case_names, list_inputs, read_image
from .outputs.dicom_seg import NOT_WRITTEN
from .outputs.dicom_seg import SUFFIX as DICOM_SEG_SUFFIX
from .pipeline import CaseReport, SegmentParameters

SUMMARY_NAME = "cohort_summary.csv"
# a scan whose worker died is retried once on another worker, then reported: a scan that kills
# every worker it meets (a native crash, memory) must not take the cluster down one by one
ALLOWED_FAILURES = 1
CONNECT_TIMEOUT_S = 30  # to an existing scheduler (--scheduler)
# A worker that dies counts a failure against every task it was processing, not only the one it
# ran; with saturation 1.0 a single-threaded worker holds just the scan it runs (Dask's 1.1 lets
# it hold a second one), so a scan that kills its workers cannot get an innocent one reported.
CLUSTER_CONFIG = {"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                  "distributed.scheduler.worker-saturation": 1.0}
VOLUME_COLUMNS = ([f"{key}_{side}_mm3" for side in L.SIDES for key in [s.key for s in L.STRUCTURES] + ["labyrinth"]]
                  + [f"{key}_mm3" for key in [s.key for s in L.STRUCTURES] + ["labyrinth"]])
SUMMARY_COLUMNS = ["name", "input", "status", "seconds"] + VOLUME_COLUMNS + ["warnings", "error"]


# --- completeness and the summary ---------------------------------------------------------------

def required_outputs(scan) -> List[str]:
    """The files that make a case complete: the segmentation, labels and statistics. Written
    together by one folder swap, so they are there together or not at all."""
    name = case_name(scan)
    return [f"{name}.seg.nrrd", f"{name}_labels.nii.gz", f"{name}_stats.json", f"{name}_stats.csv"]


def stored_document(out_dir, scan) -> dict:
    """The case's ``S_stats.json`` as written, or {} when it is missing or unreadable."""
    try:
        return json.loads((Path(out_dir) / case_name(scan) / f"{case_name(scan)}_stats.json").read_text())
    except (OSError, ValueError):
        return {}


def is_complete(out_dir, scan) -> bool:
    """Whether the case's outputs are all there: the required files, and for a DICOM series
    (folder) input its ``S.seg.dcm`` too, unless its stats say why none could be made."""
    folder = Path(out_dir) / case_name(scan)
    if not all((folder / n).is_file() for n in required_outputs(scan)):
        return False
    if not Path(scan).is_dir() or (folder / f"{case_name(scan)}{DICOM_SEG_SUFFIX}").is_file():
        return True
    return any(str(w).startswith(NOT_WRITTEN) for w in stored_document(out_dir, scan).get("warnings", []))


def skipped_report(out_dir, scan) -> CaseReport:
    """The report of a scan whose complete outputs are there: stats and warnings from its JSON."""
    folder = Path(out_dir) / case_name(scan)
    document = stored_document(out_dir, scan)
    return CaseReport(str(scan), case_name(scan), True, "", sorted(folder.iterdir()), 0.0,
                      document.get("stats", []), document.get("warnings", []), skipped=True)


def status(report: CaseReport) -> str:
    return "skipped" if report.skipped else "ok" if report.ok else "failed"


def summary_row(report: CaseReport) -> Dict[str, str]:
    row = {"name": report.name, "input": report.path, "status": status(report),
           "seconds": f"{report.seconds:.2f}", "warnings": " | ".join(report.warnings), "error": report.error}
    for stat in report.stats:
        column = f"{stat['structure']}_mm3" if stat["side"] == "both" else f"{stat['structure']}_{stat['side']}_mm3"
        if column in VOLUME_COLUMNS and stat.get("volume_mm3") is not None:
            row[column] = f"{stat['volume_mm3']:.2f}"
    return row


def write_summary(out_dir, reports: List[CaseReport]) -> Path:
    """``OUT/cohort_summary.csv``, one row per report, replaced whole (never half written)."""
    from .outputs.write import atomic_path
    path = Path(out_dir) / SUMMARY_NAME
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(summary_row(r) for r in reports)
    return path


# --- the cohort ----------------------------------------------------------------------------------

def segment_cohort(paths, out_dir, model=None, params: Optional[SegmentParameters] = None, *,
                   workers: int = 0, scheduler: Optional[str] = None, resume: bool = False,
                   progress: Optional[ProgressCallback] = None, cancel: Optional[CancelFlag] = None,
                   on_report: Optional[Callable[[CaseReport], None]] = None,
                   case_runner: Optional[Callable] = None) -> List[CaseReport]:
    """Segment every scan in ``paths`` (expanded by ``read.list_inputs``) into ``out_dir``; one
    report per scan, in input order, and ``out_dir/cohort_summary.csv``.

    model: a card path, None (the bundled model) or, when running here, a LoadedModel. workers:
    0 runs here; N > 0 on a Dask LocalCluster of N worker processes. scheduler: the address of an
    existing Dask scheduler (instead of a LocalCluster). resume: skip scans whose outputs are
    complete. progress gets ``("batch", i / n, name)`` and the stages when running here;
    on_report(report) is called as each scan finishes (also skipped ones). case_runner replaces
    ``run_case`` on Dask workers (tests). A bad model stops the run (nothing could succeed);
    Cancel stops it at the next stage boundary (here) or the next finished scan (Dask).
    """
    params = params or SegmentParameters()
    ok, why = params.isValid()
    if not ok:
        raise ValueError(why)
    scans = list_inputs(paths)
    check_unique_case_names(scans)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    done: Dict[int, CaseReport] = {}

    def finished(index: int, report: CaseReport) -> None:
        done[index] = report
        write_summary(out_dir, [done[i] for i in sorted(done)])
        if on_report is not None:
            on_report(report)

    todo = []
    for index, scan in enumerate(scans):
        if resume and is_complete(out_dir, scan):
            finished(index, skipped_report(out_dir, scan))
        else:
            todo.append((index, scan))
    if todo and (workers or scheduler):
        _run_on_dask(todo, out_dir, model, params, workers, scheduler, finished, cancel, case_runner or run_case)
    elif todo:
        _run_here(todo, out_dir, model, params, progress or no_progress, cancel, finished)
    return [done[i] for i in sorted(done)]


def _run_here(todo, out_dir, model, params, progress, cancel, finished) -> None:
    """One process, the model loaded once; the next scan is read while the current one runs."""
    from .inference import infer
    model = pipeline._model(model, infer.pick_device(params.device))
    with ThreadPoolExecutor(1, thread_name_prefix="innerear-read") as reader:
        upcoming = reader.submit(read_image, todo[0][1])
        for n, (index, scan) in enumerate(todo):
            current = upcoming
            if n + 1 < len(todo):
                upcoming = reader.submit(read_image, todo[n + 1][1])
            progress("batch", n / len(todo), case_name(scan))
            finished(index, pipeline.segment_case(scan, out_dir, model, params, progress, cancel, read=current.result))
    progress("batch", 1.0, "")


# --- Dask ------------------------------------------------------------------------------------------

def _model_spec(model) -> Optional[str]:
    """What a worker loads the model from: a card path, or None for the bundled model."""
    from .model.model_card import LoadedModel
    if isinstance(model, LoadedModel):
        if model.card_path is None:
            raise ValueError("a model loaded without a card path cannot be sent to Dask workers; give its path")
        return str(model.card_path)
    return str(model) if model is not None else None


@functools.lru_cache(maxsize=2)
def worker_model(spec: Optional[str], device: str):
    """The model of this worker process, loaded at its first scan and kept for the others."""
    from .inference import infer
    from .model.model_card import load_model
    return load_model(spec, infer.pick_device(device))


def worker_threads(workers_per_host: Dict[str, int]) -> int:
    """Torch threads for a task on this Dask worker: this machine's cores shared among the worker
    threads that run on it."""
    from distributed import get_worker
    from distributed.comm import get_address_host
    worker = get_worker()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    sharing = workers_per_host.get(get_address_host(worker.address), 1) * max(1, worker.state.nthreads)
    return max(1, cores // sharing)


def run_case(path, out_dir, model_spec, params: SegmentParameters, workers_per_host: Dict[str, int]) -> CaseReport:
    """One scan as a Dask task: the worker's model, its share of the cores, a report whatever happens."""
    import SimpleITK as sitk
    import torch
    threads = worker_threads(workers_per_host)
    torch.set_num_threads(threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)  # resampling, too, keeps to its share
    try:
        model = worker_model(model_spec, params.device)
    except InnerEarSegError as e:
        return CaseReport(str(path), case_name(path), False, f"{path}: the model could not be loaded ({e})")
    return pipeline.segment_case(path, out_dir, model, params)


def lost_report(scan, error: BaseException) -> CaseReport:
    """The report of a scan whose task never returned: its worker died, or Dask failed it."""
    from distributed import KilledWorker
    if isinstance(error, KilledWorker):
        cause = (f"the worker segmenting this scan died {ALLOWED_FAILURES + 1} times (killed, out of memory "
                 "or crashed); nothing of it was written")
    else:
        cause = f"the task failed on the cluster ({type(error).__name__}: {error})"
    return CaseReport(str(scan), case_name(scan), False, f"{scan}: {cause}")


def _client(workers: int, scheduler: Optional[str]):
    """(client, cluster or None): a LocalCluster of ``workers`` single-threaded processes, or the
    existing scheduler at ``scheduler``."""
    import logging

    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as e:
        raise InnerEarSegError(f"running on Dask needs dask[distributed] installed ({e}); "
                               "pip install -r requirements.txt") from e
    if scheduler:
        try:
            return Client(scheduler, timeout=CONNECT_TIMEOUT_S), None
        except (OSError, TimeoutError, ValueError) as e:
            raise InnerEarSegError(f"cannot reach the Dask scheduler at {scheduler} within {CONNECT_TIMEOUT_S} s "
                                   f"({brief(e)}); is it running, and is the address right?") from e
    with dask.config.set(CLUSTER_CONFIG):
        cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.CRITICAL)
    return Client(cluster), cluster


def _run_on_dask(todo, out_dir, model, params, workers, scheduler, finished, cancel, runner) -> None:
    from distributed import as_completed
    spec = _model_spec(model)
    client, cluster = _client(workers, scheduler)
    try:
        per_host = Counter(w["host"] for w in client.scheduler_info(n_workers=-1)["workers"].values())
        run = uuid.uuid4().hex[:8]
        futures = {client.submit(runner, str(scan), str(out_dir), spec, params, dict(per_host),
                                 key=f"innerear-{run}-{index}", pure=False): (index, scan)
                   for index, scan in todo}
        for future in as_completed(futures):
            index, scan = futures[future]
            try:
                report = future.result()
            except Exception as e:  # the task never returned a report: only this scan is lost
                report = lost_report(scan, e)
            finished(index, report)
            if cancel is not None and cancel.cancelled:
                client.cancel(list(futures))
                raise Cancelled(cancel.reason)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
