"""Nothing lost on output (issue 24, items 1, 5, 10 and 11): two processes writing one case,
a failed or interrupted re-run, and write errors named by their true cause."""
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from InnerEarSegLib.core.errors import OutputError
from InnerEarSegLib.outputs import write
from test_write import make_case

TESTING = Path(__file__).resolve().parent
FAST = ("labels", "json", "csv")


@pytest.fixture(scope="module")
def case():
    return make_case()


def digests(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def hidden(folder: Path) -> list:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_failed_rerun_leaves_the_previous_outputs_intact(case, tmp_path, monkeypatch):
    image, result = case
    write.write_outputs(result, tmp_path, "case1", image)
    before = digests(tmp_path / "case1")

    def broken(path, poly):
        open(path, "wb").write(b"partial")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(write, "write_stl", broken)
    with pytest.raises(OutputError, match="No space left on device"):
        write.write_outputs(result, tmp_path, "case1", image)
    assert digests(tmp_path / "case1") == before
    assert hidden(tmp_path) == []


def test_interrupted_rerun_leaves_the_previous_outputs_and_no_temporary_files(case, tmp_path, monkeypatch):
    image, result = case
    write.write_outputs(result, tmp_path, "case1", image, formats=FAST)
    before = digests(tmp_path / "case1")

    def interrupted(path, stats):
        raise KeyboardInterrupt
    monkeypatch.setattr(write, "write_csv", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write.write_outputs(result, tmp_path, "case1", image, formats=FAST)
    assert digests(tmp_path / "case1") == before and hidden(tmp_path) == []


WRITER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {testing!r})
from test_write import make_case
from InnerEarSegLib.outputs import write
image, result = make_case()
out, go = Path(sys.argv[1]), Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.01)
failed = 0
for _ in range(25):
    try:
        write.write_outputs(result, out, "case1", image, formats={formats!r})
    except Exception as e:
        failed += 1
        print(e, file=sys.stderr)
sys.exit(1 if failed else 0)
"""


def test_two_processes_writing_one_case_both_succeed_and_leave_it_complete(case, tmp_path):
    script = WRITER.format(testing=str(TESTING), formats=FAST)
    go = tmp_path / "go"
    runs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "out"), str(go)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for run in runs:
        assert run.stdout.readline().strip() == "ready"
    go.touch()
    outcomes = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
    assert outcomes == [(0, ""), (0, "")]
    image, result = case
    expected = write.write_outputs(result, tmp_path / "alone", "case1", image, formats=FAST)
    assert sorted(p.name for p in (tmp_path / "out" / "case1").iterdir()) == sorted(p.name for p in expected)
    assert hidden(tmp_path / "out") == []


def test_the_users_own_files_in_the_case_folder_are_kept(case, tmp_path):
    image, result = case
    write.write_outputs(result, tmp_path, "case1", image, formats=FAST)
    (tmp_path / "case1" / "notes.txt").write_text("mine")
    write.write_outputs(result, tmp_path, "case1", image, formats=("labels",))
    assert sorted(p.name for p in (tmp_path / "case1").iterdir()) == ["case1_labels.nii.gz", "notes.txt"]


FULL_DISK = """
import resource, signal, sys
sys.path.insert(0, {testing!r})
from test_write import make_case
from InnerEarSegLib.core.errors import OutputError
from InnerEarSegLib.outputs import write
image, result = make_case()
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file over the limit fails like a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
try:
    write.write_outputs(result, sys.argv[1], "case1", image, formats={formats!r})
except OutputError as e:
    print(e)
    sys.exit(3)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="file size limits as a stand-in for a full disk")
@pytest.mark.parametrize("formats, limit, cause", [(("labels",), 300, "disk full"),
                                                  (("stl",), 2000, "No space left on device")])
def test_full_disk_is_named_and_keeps_the_previous_outputs(case, tmp_path, formats, limit, cause):
    image, result = case
    write.write_outputs(result, tmp_path, "case1", image)
    before = digests(tmp_path / "case1")
    script = FULL_DISK.format(testing=str(TESTING), limit=limit, formats=formats)
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 3 and cause in run.stdout, run.stdout + run.stderr
    assert digests(tmp_path / "case1") == before and hidden(tmp_path) == []


@pytest.mark.parametrize("length", [240, 300])  # the surface file names, or the folder itself, too long
def test_over_long_case_name_is_named(case, tmp_path, length):
    image, result = case
    with pytest.raises(OutputError, match="too long"):
        write.write_outputs(result, tmp_path, "x" * length, image)
    assert list(tmp_path.iterdir()) == []


def test_a_file_where_the_case_folder_should_be_is_refused_and_kept(case, tmp_path):
    image, result = case
    (tmp_path / "case1").write_text("the user's file")
    with pytest.raises(OutputError, match="not a folder"):
        write.write_outputs(result, tmp_path, "case1", image, formats=FAST)
    assert (tmp_path / "case1").read_text() == "the user's file" and hidden(tmp_path) == []
