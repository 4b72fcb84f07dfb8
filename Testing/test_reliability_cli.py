"""The command line as a hostile user drives it (issue 24, items 2, 10 and 11): same-name inputs,
an unusable output folder, Ctrl-C mid-batch, SIGTERM while writing, a closed pipe, option case."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from InnerEarSegLib import cli, pipeline
from test_cli import write_scan

TESTING = Path(__file__).resolve().parent
ROOT = TESTING.parent


def no_segmenting(*args, **kwargs):
    raise AssertionError("nothing may be segmented")


@pytest.mark.parametrize("names", [("p1/scan.nii.gz", "p2/scan.nii.gz"), ("good.mha", "good.nii.gz")])
def test_inputs_with_one_case_name_are_refused_before_any_work(names, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pipeline, "segment_case", no_segmenting)
    paths = []
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        paths.append(write_scan(tmp_path / name))
    inputs = [str(p) for p in paths] if "/" in names[0] else [str(tmp_path)]
    assert cli.main(["segment", *inputs, "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert all(str(p) in err for p in paths) and "same name" in err, err
    assert not (tmp_path / "out").exists()


def test_unusable_output_folder_is_found_before_segmenting(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pipeline, "segment_case", no_segmenting)
    blocker = tmp_path / "results"
    blocker.write_text("a file, not a folder")
    scan = write_scan(tmp_path / "S.nrrd")
    assert cli.main(["segment", str(scan), "-o", str(blocker)]) == 1
    err = capsys.readouterr().err
    assert str(blocker) in err and "output folder" in err


def test_ctrl_c_mid_batch_prints_the_summary_of_what_was_done(tmp_path, tiny_model_path, monkeypatch, capsys):
    scans = [write_scan(tmp_path / f"s{i}.nrrd") for i in range(3)]
    done = []

    def case(path, out_dir, model, params, progress=None, cancel=None, **kwargs):
        if done:
            raise KeyboardInterrupt
        done.append(path)
        return pipeline.CaseReport(str(path), "s0", True, "", [], 1.0, [], [])
    monkeypatch.setattr(pipeline, "segment_case", case)
    status = cli.main(["segment", *map(str, scans), "-o", str(tmp_path / "out"), "--model", str(tiny_model_path)])
    captured = capsys.readouterr()
    assert status == 130
    assert "s0" in captured.out and "ok" in captured.out
    assert "1 of 3 scans segmented" in captured.out and "interrupted" in captured.err


def test_modality_is_accepted_in_either_case(monkeypatch):
    seen = {}
    monkeypatch.setattr(cli, "segment_inputs",
                        lambda inputs, out, model, params, **cohort: seen.update(params=params) or 0)
    assert cli.main(["segment", "x.nrrd", "-o", "out", "--modality", "MR"]) == 0
    assert seen["params"].modality == "mr"


def python(script: str, *args, **kwargs):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTING)]), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], env=env, cwd=ROOT, **kwargs)


SLOW_WRITE = """
import sys, time
from pathlib import Path
import test_cli
from InnerEarSegLib import cli
from InnerEarSegLib.inference import infer
from InnerEarSegLib.outputs import write
infer.predict_probabilities = test_cli.fake_predict
def slow_csv(path, stats):
    Path(path).write_text("partial")
    Path(sys.argv[3]).touch()
    time.sleep(60)
write.write_csv = slow_csv
sys.exit(cli.main(["segment", sys.argv[1], "-o", sys.argv[2], "--model", sys.argv[4], "--no-surfaces"]))
"""


def test_sigterm_while_writing_leaves_no_temporary_files(tmp_path, tiny_model_path):
    scan = write_scan(tmp_path / "S.nrrd")
    out, ready = tmp_path / "out", tmp_path / "ready"
    run = python(SLOW_WRITE, scan, out, ready, tiny_model_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not ready.exists() and run.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert ready.exists(), run.communicate()
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 128 + signal.SIGTERM, err
    assert list(out.iterdir()) == [] and b"Traceback" not in err


def test_a_closed_pipe_ends_quietly(tiny_model_path):
    run = python("import sys; from InnerEarSegLib import cli; sys.exit(cli.main(sys.argv[1:]))",
                 "info", "--model", tiny_model_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run.stdout.close()  # like `| head -0`: nobody reads what is printed
    err = run.stderr.read()
    assert run.wait(timeout=120) == 0 and b"Traceback" not in err and b"BrokenPipe" not in err, err
