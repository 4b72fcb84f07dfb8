"""The command line: outputs per the contract, exit codes, batches with a bad input, info, demo, delegation."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from InnerEarSegLib import cli
from InnerEarSegLib.core import labels as L
from InnerEarSegLib.inference import infer
from InnerEarSegLib.model import model_card
from conftest import make_volume, rotation_matrix

EARS_LPS = ((-45.0, 2.0, -1.0), (45.0, 2.0, -1.0))  # right, left: 90 mm apart, as in a head
BLOB_RADII = (3.5, 6.0, 3.5)  # long in y, so the fake segmenter's y-thirds give all three structures


def fake_predict(net, array, roi_size, device="cpu", tta=False, amp=True, cpu_bf16=None, turns=False):
    """Stands in for the networks: bright voxels are labyrinth; the segmenter splits them into
    cochlea, vestibule and canals by thirds of the region along y (anterior to posterior)."""
    bright = array > 0.5
    if net.head.out_channels == 2:
        return np.stack([~bright, bright]).astype(np.float32)
    classes = np.where(bright, 1 + (np.arange(array.shape[1]) * 3 // array.shape[1])[None, :, None], 0)
    return np.stack([classes == c for c in range(4)]).astype(np.float32)


def write_scan(path, direction=np.eye(3)):
    image, _ = make_volume((200, 48, 30), (0.5, 0.5, 0.6), direction, (0.0, 2.0, -1.0),
                           blobs=[(c, BLOB_RADII) for c in EARS_LPS], noise=5.0)
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture
def fake_networks(monkeypatch):
    monkeypatch.setattr(infer, "predict_probabilities", fake_predict)


def test_segment_writes_the_contract(tmp_path, tiny_model_path, fake_networks, capsys):
    scan = write_scan(tmp_path / "S.nrrd", rotation_matrix(15, 0, 0) @ np.diag([1.0, -1.0, 1.0]))
    before = scan.read_bytes()

    status = cli.main(["segment", str(scan), "-o", str(tmp_path / "out"), "--model", str(tiny_model_path),
                       "--device", "cpu"])

    assert status == 0
    folder = tmp_path / "out" / "S"
    expected = {"S.seg.nrrd", "S_labels.nii.gz", "S_stats.json", "S_stats.csv", "S_preview.png",
                "S_measures.csv", "S_measures.mrk.json"}
    expected |= {f"S_{L.segment_id(s.key, side)}.{ext}" for s in L.STRUCTURES for side in L.SIDES
                 for ext in ("stl", "vtp")}
    assert {p.name for p in folder.iterdir()} == expected
    assert scan.read_bytes() == before
    labels = sitk.ReadImage(str(folder / "S_labels.nii.gz"))
    image = sitk.ReadImage(str(scan))
    assert labels.GetSize() == image.GetSize()
    np.testing.assert_allclose(labels.GetDirection(), image.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(labels.GetOrigin(), image.GetOrigin(), atol=1e-4)
    stats = json.loads((folder / "S_stats.json").read_text())["stats"]
    cochlea_left = next(r for r in stats if r["structure"] == "cochlea" and r["side"] == "left")
    assert cochlea_left["centroid_lps"][0] == pytest.approx(EARS_LPS[1][0], abs=2.0)
    out = capsys.readouterr().out
    right, left = (next(r["volume_mm3"] for r in stats if r["structure"] == "labyrinth" and r["side"] == s)
                   for s in ("right", "left"))
    assert f"{right:.1f} / {left:.1f}" in out and "1 of 1 scans segmented" in out


def test_batch_with_a_bad_file_exits_nonzero_and_does_the_others(tmp_path, tiny_model_path, fake_networks, capsys):
    scans = tmp_path / "scans"
    scans.mkdir()
    write_scan(scans / "good1.nrrd")
    (scans / "broken.nii.gz").write_text("this is not an image")
    write_scan(scans / "good2.nii.gz")

    status = cli.main(["segment", str(scans), "-o", str(tmp_path / "out"), "--model", str(tiny_model_path),
                       "--no-surfaces", "--no-preview"])

    assert status == 1
    for name in ("good1", "good2"):
        assert (tmp_path / "out" / name / f"{name}.seg.nrrd").is_file()
        assert (tmp_path / "out" / name / f"{name}_measures.mrk.json").is_file()
        assert not list((tmp_path / "out" / name).glob("*.stl")) and not list((tmp_path / "out" / name).glob("*.png"))
    assert not (tmp_path / "out" / "broken").exists()
    out = capsys.readouterr().out
    broken_line = next(line for line in out.splitlines() if line.startswith("broken"))
    assert "FAILED" in broken_line and "broken.nii.gz" in broken_line
    assert "2 of 3 scans segmented" in out


def test_real_tiny_network_runs_end_to_end(tmp_path, tiny_model_path):
    scan = write_scan(tmp_path / "T.nii.gz")
    status = cli.main(["segment", str(scan), "-o", str(tmp_path / "out"), "--model", str(tiny_model_path),
                       "--device", "cpu"])
    assert status == 0
    folder = tmp_path / "out" / "T"
    for name in ("T.seg.nrrd", "T_labels.nii.gz", "T_stats.json", "T_stats.csv", "T_preview.png"):
        assert (folder / name).is_file()


def test_library_errors_are_one_line(tmp_path, capsys):
    bad_model = tmp_path / "missing.json"
    assert cli.main(["info", "--model", str(bad_model)]) == 1
    err = capsys.readouterr().err
    assert "missing.json" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert cli.main(["segment", str(tmp_path / "x.nrrd"), "-o", str(tmp_path), "--model", str(bad_model)]) == 1
    assert "missing.json" in capsys.readouterr().err


def test_usage_errors_exit_2(tmp_path):
    with pytest.raises(SystemExit) as info:
        cli.main(["segment", "x.nrrd"])  # no -o
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        cli.main(["segment", "x.nrrd", "-o", str(tmp_path), "--smoothing", "2"])
    assert info.value.code == 2


def test_info_prints_the_card(tiny_model_path, capsys):
    assert cli.main(["info", "--model", str(tiny_model_path)]) == 0
    out = capsys.readouterr().out
    card = json.loads(tiny_model_path.read_text())
    assert card["name"] in out and card["sha256"][:16] in out and "verified" in out
    assert "1 Cochlea" in out and "patch_size" in out


def test_demo_segments_the_sample(tmp_path, tiny_model_path, fake_networks, monkeypatch, capsys):
    monkeypatch.setattr(cli, "SAMPLE", write_scan(tmp_path / "sample_t2.nrrd"))
    monkeypatch.setattr(model_card, "DEFAULT_MODEL", tiny_model_path)
    assert cli.main(["demo", "-o", str(tmp_path / "demo")]) == 0
    assert (tmp_path / "demo" / "sample_t2" / "sample_t2.seg.nrrd").is_file()
    assert str(tmp_path / "demo" / "sample_t2") in capsys.readouterr().out

    monkeypatch.setattr(cli, "SAMPLE", tmp_path / "gone.nrrd")
    assert cli.main(["demo", "-o", str(tmp_path / "demo2")]) == 1
    assert "gone.nrrd" in capsys.readouterr().err


def test_delegated_commands_load_only_when_chosen(monkeypatch, tmp_path, tiny_model_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["evaluate", "--help"])
    assert info.value.code == 0 and "--pred" in capsys.readouterr().out
    monkeypatch.setitem(cli.DELEGATES, "train", ("InnerEarSegLib.not_there", "gone"))
    assert cli.main(["info", "--model", str(tiny_model_path)]) == 0  # other commands unaffected
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--out", "m.json"])
    assert info.value.code == 2 and "train" in capsys.readouterr().err


@pytest.mark.parametrize("flags, tta, bf16", [([], True, None), (["--no-tta"], False, None), (["--tta"], True, None),
                                             (["--cpu-precision", "bf16"], True, True),
                                             (["--cpu-precision", "fp32"], True, False)])
def test_segment_options_reach_the_parameters(monkeypatch, flags, tta, bf16):
    seen = {}
    monkeypatch.setattr(cli, "segment_inputs",
                        lambda inputs, out, model, params, **cohort: seen.update(params=params) or 0)
    assert cli.main(["segment", "x.nrrd", "-o", "out"] + flags) == 0
    assert seen["params"].tta is tta
    assert seen["params"].cpu_bf16 is bf16


def test_segment_events_json_for_programs(tmp_path, tiny_model_path, fake_networks, capsys):
    """``--events json``: stdout is JSON lines only (progress, one event per case, done); text on stderr."""
    scan = write_scan(tmp_path / "S.nrrd")
    (tmp_path / "bad.nrrd").write_text("not an image")
    status = cli.main(["segment", str(scan), str(tmp_path / "bad.nrrd"), "-o", str(tmp_path / "out"),
                       "--model", str(tiny_model_path), "--no-surfaces", "--events", "json"])
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    assert status == 1 and "1 of 2 scans segmented" in err
    stages = [e["stage"] for e in events if e["event"] == "progress" and e["case"] == "S"]
    assert stages[0] == "batch" and "segment" in stages and "measure" in stages
    cases = {e["name"]: e for e in events if e["event"] == "case"}
    assert cases["S"]["status"] == "ok" and str(tmp_path / "out" / "S" / "S.seg.nrrd") in cases["S"]["outputs"]
    assert cases["bad"]["status"] == "failed" and "bad.nrrd" in cases["bad"]["error"]
    assert events[-1] == {"event": "done", "status": 1, "summary": str((tmp_path / "out" / "cohort_summary.csv").resolve())}


def test_segment_events_json_refuses_a_stack_model_in_json(tmp_path, capsys):
    """Stack models print for people only: asked for events, the run says so as an event and stops."""
    from InnerEarSegLib.stacks.card import CARD_FORMAT
    (tmp_path / "stack.json").write_text(json.dumps({"format": CARD_FORMAT}))
    status = cli.main(["segment", str(write_scan(tmp_path / "S.nrrd")), "-o", str(tmp_path / "out"),
                       "--model", str(tmp_path / "stack.json"), "--events", "json"])
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    assert status == 1 and [e["event"] for e in events] == ["error"]
    assert "segment-stack" in events[0]["message"] and "stack.json" in err and not (tmp_path / "out").exists()


def test_segment_events_json_reports_a_run_that_cannot_start(tmp_path, capsys):
    (tmp_path / "m.json").write_text("{")
    status = cli.main(["segment", str(write_scan(tmp_path / "S.nrrd")), "-o", str(tmp_path / "out"),
                       "--model", str(tmp_path / "m.json"), "--events", "json"])
    out, err = capsys.readouterr()
    event = json.loads(out.splitlines()[-1])
    assert status == 1 and event["event"] == "error" and "m.json" in event["message"] and "m.json" in err
