"""Cohorts (``cohort.segment_cohort`` and ``segment --workers/--scheduler/--resume``): the model loaded
once, scans read ahead, one summary CSV, resumable runs, and Dask workers where a bad scan and a
worker killed mid-scan are reported while nothing else is lost."""
import csv
import os
import signal
import sys
import warnings

import pytest
import SimpleITK as sitk

from InnerEarSegLib import cli, cohort, pipeline
from InnerEarSegLib.pipeline import SegmentParameters
from conftest import make_volume

PARAMS = SegmentParameters(surfaces=False, device="cpu")


def write_small_scan(path):
    """A 15 mm cube with one bright blob: the tiny model segments it in about a second."""
    image, _ = make_volume((30, 30, 30), (0.5, 0.5, 0.5), blobs=[((0, 0, 0), (3, 3, 3))])
    sitk.WriteImage(image, str(path))
    return path


def read_summary(out):
    with open(out / cohort.SUMMARY_NAME, newline="") as f:
        return {row["name"]: row for row in csv.DictReader(f)}


def quietly(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def test_here_the_model_is_loaded_once_and_one_summary_lists_every_scan(tmp_path, tiny_model_path, monkeypatch):
    scans = tmp_path / "scans"
    scans.mkdir()
    for name in ("a.nii.gz", "c.nrrd", "d.mha"):
        write_small_scan(scans / name)
    (scans / "b.nii.gz").write_bytes(b"not an image at all")
    loads = []
    real_load = pipeline.load_model
    monkeypatch.setattr(pipeline, "load_model", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    out = tmp_path / "out"

    reports = quietly(cohort.segment_cohort, [scans], out, str(tiny_model_path), PARAMS)

    assert len(loads) == 1
    assert [(r.name, r.ok) for r in reports] == [("a", True), ("b", False), ("c", True), ("d", True)]
    rows = read_summary(out)
    assert list(rows) == ["a", "b", "c", "d"]
    assert rows["b"]["status"] == "failed" and "b.nii.gz" in rows["b"]["error"] and "not an image" in rows["b"]["error"]
    for name in "acd":
        assert rows[name]["status"] == "ok" and float(rows[name]["seconds"]) > 0 and rows[name]["error"] == ""
        assert (out / name / f"{name}_stats.json").is_file()
    stats = reports[0].stats
    volume = next(r["volume_mm3"] for r in stats if r["structure"] == "labyrinth" and r["side"] == "both")
    assert float(rows["a"]["labyrinth_mm3"]) == pytest.approx(volume)
    assert {"cochlea_right_mm3", "semicircular_canals_left_mm3", "warnings"} <= set(rows["a"])


def test_resume_skips_complete_cases_and_redoes_failed_and_incomplete_ones(tmp_path, tiny_model_path):
    from test_dicom_seg import write_ct_series
    scans = tmp_path / "scans"
    scans.mkdir()
    write_small_scan(scans / "a.nrrd")
    (scans / "b.nrrd").write_bytes(b"broken")
    ct, _ = make_volume((30, 30, 12), (0.5, 0.5, 1.0), blobs=[((0, 0, 0), (3, 3, 3))])
    write_ct_series(sitk.Cast(ct, sitk.sitkInt16), scans / "dicom1")
    out = tmp_path / "out"
    first = quietly(cohort.segment_cohort, [scans], out, str(tiny_model_path), PARAMS)
    assert [(r.name, r.ok) for r in first] == [("a", True), ("b", False), ("dicom1", True)]
    assert (out / "dicom1" / "dicom1.seg.dcm").is_file()
    kept = (out / "a" / "a_stats.json").stat().st_mtime_ns
    write_small_scan(scans / "b.nrrd")  # repaired
    (out / "dicom1" / "dicom1.seg.dcm").unlink()  # a DICOM case without its SEG is not complete

    second = quietly(cohort.segment_cohort, [scans], out, str(tiny_model_path), PARAMS, resume=True)

    assert [(r.name, r.ok, r.skipped) for r in second] == [("a", True, True), ("b", True, False),
                                                           ("dicom1", True, False)]
    assert (out / "a" / "a_stats.json").stat().st_mtime_ns == kept
    assert (out / "dicom1" / "dicom1.seg.dcm").is_file()
    rows = read_summary(out)
    assert [rows[n]["status"] for n in ("a", "b", "dicom1")] == ["skipped", "ok", "ok"]
    assert rows["a"]["labyrinth_mm3"] != ""  # volumes of a skipped case come from its stats


def test_cli_resume_and_the_summary(tmp_path, tiny_model_path, capsys):
    scans = tmp_path / "scans"
    scans.mkdir()
    write_small_scan(scans / "a.nrrd")
    out = tmp_path / "out"
    args = ["segment", str(scans), "-o", str(out), "--model", str(tiny_model_path), "--device", "cpu", "--no-surfaces"]
    assert quietly(cli.main, args) == 0
    write_small_scan(scans / "b.nrrd")
    capsys.readouterr()
    assert quietly(cli.main, args + ["--resume"]) == 0
    printed = capsys.readouterr().out
    assert "skipped" in printed and "2 of 2" in printed and str(out / cohort.SUMMARY_NAME) in printed
    assert [r["status"] for r in read_summary(out).values()] == ["skipped", "ok"]


@pytest.mark.parametrize("flags, expected", [(["--workers", "3"], {"workers": 3, "scheduler": None, "resume": False}),
                                             (["--scheduler", "tcp://10.0.0.5:8786", "--resume"],
                                              {"workers": 0, "scheduler": "tcp://10.0.0.5:8786", "resume": True})])
def test_cohort_flags_reach_the_cohort(monkeypatch, flags, expected):
    seen = {}
    monkeypatch.setattr(cli, "segment_inputs", lambda inputs, out, model, params, **options: seen.update(options) or 0)
    assert cli.main(["segment", "x.nrrd", "-o", "out"] + flags) == 0
    assert seen == expected


def killed_on_crash_scans(path, *args, **kwargs):
    """Runs a scan on a Dask worker as ``cohort.run_case`` does, but a scan named ``crash*`` kills
    the worker's process mid-scan (as the kernel's out-of-memory killer would)."""
    if os.path.basename(path).startswith("crash"):
        os.kill(os.getpid(), signal.SIGKILL)
    return cohort.run_case(path, *args, **kwargs)


def test_two_dask_workers_report_a_bad_and_a_killed_scan_and_lose_nothing_else(tmp_path, tiny_model_path):
    pytest.importorskip("distributed")
    import cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers need not import this test
    scans = tmp_path / "scans"
    scans.mkdir()
    for name in ("a.nrrd", "c.nrrd", "crash.nrrd"):
        write_small_scan(scans / name)
    (scans / "b.nrrd").write_bytes(b"broken")
    out = tmp_path / "out"

    reports = quietly(cohort.segment_cohort, [scans], out, str(tiny_model_path), PARAMS, workers=2,
                      case_runner=killed_on_crash_scans)

    assert [(r.name, r.ok) for r in reports] == [("a", True), ("b", False), ("c", True), ("crash", False)]
    assert "b.nrrd" in reports[1].error and "not an image" in reports[1].error
    assert "crash.nrrd" in reports[3].error and "worker" in reports[3].error and "died" in reports[3].error
    for name in "ac":
        assert (out / name / f"{name}_stats.json").is_file() and (out / name / f"{name}.seg.nrrd").is_file()
    assert not (out / "crash").exists() and not [p for p in out.iterdir() if ".tmp-" in p.name]
    rows = read_summary(out)
    assert [rows[n]["status"] for n in ("a", "b", "c", "crash")] == ["ok", "failed", "ok", "failed"]

    # the rerun with resume, on an existing cluster (--scheduler), completes the cohort and redoes
    # only what is missing
    (scans / "b.nrrd").unlink()
    from distributed import LocalCluster
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as existing:
        again = quietly(cohort.segment_cohort, [scans], out, str(tiny_model_path), PARAMS, resume=True,
                        scheduler=existing.scheduler_address)
        assert len(existing.workers) == 1  # still there: the run closed its client, not the cluster
    assert [(r.name, r.ok, r.skipped) for r in again] == [("a", True, True), ("c", True, True), ("crash", True, False)]
    assert (out / "crash" / "crash_stats.json").is_file()


def test_an_unreachable_scheduler_is_one_clear_error(tmp_path, tiny_model_path, monkeypatch, capsys):
    pytest.importorskip("distributed")
    import socket
    monkeypatch.setattr(cohort, "CONNECT_TIMEOUT_S", 1)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    write_small_scan(tmp_path / "a.nrrd")
    status = cli.main(["segment", str(tmp_path / "a.nrrd"), "-o", str(tmp_path / "out"), "--model",
                       str(tiny_model_path), "--scheduler", f"tcp://127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert status == 1 and f"127.0.0.1:{port}" in err and "scheduler" in err and "Traceback" not in err
