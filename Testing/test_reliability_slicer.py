"""The Slicer module's job, logic and installer under hostile conditions (issue 24,
S1-S6): Cancel through a launcher, a non-UTF-8 byte, unchecked input, re-runs piling up nodes,
installs that could replace Slicer's own packages, a mistyped model path."""
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "InnerEarSeg"))

from InnerEarSegSlicerLib import dependencies as D  # noqa: E402
from InnerEarSegSlicerLib import job as J  # noqa: E402
from InnerEarSegSlicerLib import logic as G  # noqa: E402
from test_slicer_logic import GEOMETRIES, STATS, FakeSegmenter, add_volume, center_ras, fake_worker  # noqa: E402

LAUNCHER = """
import subprocess, sys
# like PythonSlicer: start the real Python as a child and wait for it
sys.exit(subprocess.call([sys.executable, sys.argv[1], *sys.argv[2:]]))
"""
WORKER = """
import os, sys, time
from pathlib import Path
job, pidfile = Path(sys.argv[1]), Path(sys.argv[2])
pidfile.write_text(str(os.getpid()))
print("started", flush=True)
while True:  # keeps (re)writing patient-derived files into the job folder until killed
    (job / "output").mkdir(parents=True, exist_ok=True)
    (job / "output" / "labels.nii.gz").write_text("x")
    time.sleep(0.05)
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a killed child not yet reaped by its new parent is dead


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_cancel_stops_the_worker_behind_a_launcher(tmp_path):
    (tmp_path / "launcher.py").write_text(LAUNCHER)
    (tmp_path / "worker.py").write_text(WORKER)
    jobFolder, pidfile = tmp_path / "job", tmp_path / "worker.pid"
    job = J.SegmentationJob([sys.executable, str(tmp_path / "launcher.py"), str(tmp_path / "worker.py"),
                             str(jobFolder), str(pidfile)])
    job.start()
    deadline = time.time() + 30
    while not pidfile.exists() and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
    job.cancel()
    worker = int(pidfile.read_text())
    try:
        assert job.state == J.CANCELLED
        deadline = time.time() + 5
        while alive(worker) and time.time() < deadline:
            time.sleep(0.05)
        assert not alive(worker)
        shutil.rmtree(jobFolder)  # what the panel does after Cancel
        time.sleep(0.3)
        assert not jobFolder.exists()
    finally:
        if alive(worker):
            os.kill(worker, signal.SIGKILL)


def test_a_non_utf8_byte_does_not_hang_the_job(tmp_path):
    job = J.SegmentationJob(fake_worker(tmp_path, """
        sys.stdout.buffer.write(b"GDCM says \\xff\\xfe caf\\xe9\\n")
        sys.stdout.flush()
        emit(event="error", kind="InputError", message="scan.nrrd: bad")
        sys.exit(1)
    """))
    job.start()
    deadline = time.time() + 30
    while job.poll() == J.RUNNING and time.time() < deadline:
        time.sleep(0.05)
    assert job.state == J.FAILED and job.error == "scan.nrrd: bad"


def test_the_panel_runs_the_command_lines_input_checks_and_names_the_volume(tmp_path, tiny_model_path):
    """The panel's process is the command line itself, so it refuses what the CLI refuses, with the
    same message; the panel shows it with the volume's name instead of the temporary file's."""
    image = sitk.GetImageFromArray(np.random.default_rng(0).normal(100, 10, (1, 16, 16)).astype(np.float32))
    inputPath = tmp_path / G.input_file_name("Thin volume")
    sitk.WriteImage(image, str(inputPath))
    job = J.SegmentationJob(J.segment_command(sys.executable, inputPath, tmp_path / "out", tiny_model_path),
                            J.command_environment(str(G.library_parent())))
    job.start()
    assert job.wait(timeout=300) == J.FAILED
    assert "2D" in job.error and str(inputPath) in job.error
    shown = G.named_error(job.error, inputPath, "Thin volume")
    assert "Thin volume" in shown and str(tmp_path) not in shown


def count(scene, cls):
    return scene.GetNumberOfNodesByClass(cls)


def test_rerun_into_the_same_segmentation_replaces_models_table_and_folder(tmp_path):
    scene = slicer.vtkMRMLScene()
    m = GEOMETRIES["axial"]
    volume, _ = add_volume(scene, m, [(center_ras(m, (-4, 0, 0)), 100), (center_ras(m, (4, 0, 0)), 100)])
    logic = G.InnerEarSegLogic(scene, segmenter=FakeSegmenter(STATS))
    first = logic.process(volume)
    counts = [(count(scene, "vtkMRMLModelNode"), count(scene, "vtkMRMLTableNode"))]
    for _ in range(2):
        again = logic.process(volume, outputSegmentationNode=first.segmentationNode)
        counts.append((count(scene, "vtkMRMLModelNode"), count(scene, "vtkMRMLTableNode")))
    assert counts[0][0] > 0 and counts == [counts[0]] * 3
    sh = scene.GetSubjectHierarchyNode()
    folders = [again.modelsFolderItemId]
    assert sh.GetItemByName(sh.GetItemName(folders[0])) == folders[0]  # one folder of that name
    assert first.segmentationNode.GetNodeReference(G.STATISTICS_ROLE) is again.tableNode


def test_installing_never_changes_a_package_already_there(tmp_path):
    constraints = D.write_constraints(tmp_path / "constraints.txt")
    pins = dict(line.split("==") for line in constraints.read_text().splitlines() if "==" in line)
    assert pins["numpy"] == np.__version__
    command = D.pip_command("/slicer/bin/PythonSlicer", ["monai==1.6.1"], constraints)
    assert command[:4] == ["/slicer/bin/PythonSlicer", "-m", "pip", "install"]
    assert command[command.index("-c") + 1] == str(constraints) and command[-1] == "monai==1.6.1"


def test_a_mistyped_model_path_is_an_error_not_the_bundled_model(tmp_path):
    assert G.chosen_model("") is None and G.chosen_model(None) is None
    with pytest.raises(FileNotFoundError, match="modle.json"):
        G.chosen_model(str(tmp_path / "modle.json"))
    (tmp_path / "model.json").write_text("{}")
    assert G.chosen_model(str(tmp_path / "model.json")) == str(tmp_path / "model.json")


def test_batch_refuses_inputs_with_one_case_name(tmp_path):
    scene = slicer.vtkMRMLScene()
    image = sitk.GetImageFromArray(np.random.default_rng(0).normal(100, 10, (8, 8, 8)).astype(np.float32))
    for folder in ("p1", "p2"):
        (tmp_path / folder).mkdir()
        sitk.WriteImage(image, str(tmp_path / folder / "scan.nrrd"))
    logic = G.InnerEarSegLogic(scene, segmenter=FakeSegmenter())
    from InnerEarSegLib.core.errors import InputError
    with pytest.raises(InputError) as info:
        logic.processFiles([tmp_path / "p1" / "scan.nrrd", tmp_path / "p2" / "scan.nrrd"], tmp_path / "out")
    assert str(tmp_path / "p1" / "scan.nrrd") in str(info.value) and str(tmp_path / "p2" / "scan.nrrd") in str(info.value)
    assert not (tmp_path / "out").exists()
