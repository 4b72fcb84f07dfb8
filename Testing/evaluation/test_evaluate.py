"""The evaluate command: case matching, CSV and PNG outputs, summaries, errors."""
import csv
import math
from argparse import ArgumentParser

import numpy as np
import pytest
import SimpleITK as sitk

from InnerEarSegLib.evaluation import evaluate
from InnerEarSegLib.evaluation.metrics import compute_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def labels(shift=0, canals=True):
    """A one-ear label map: cochlea and vestibule boxes (and canals), shifted ``shift`` voxels in x."""
    a = np.zeros((10, 12, 16), np.uint8)
    a[2:7, 2:8, 2 + shift:7 + shift] = 1
    a[2:7, 2:8, 7 + shift:10 + shift] = 2
    if canals:
        a[7:9, 3:6, 8 + shift:12 + shift] = 3
    img = sitk.GetImageFromArray(a)
    img.SetSpacing((0.4, 0.5, 0.6))
    img.SetOrigin((30.0, -5.0, 2.0))
    return img


def write(img, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))
    return path


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_case_names():
    assert [evaluate.case_name(n) for n in ("S_labels.nii.gz", "S_label.nrrd", "S.nii.gz", "S.mha",
                                            "a.b_label.nii", "S.seg.nrrd", "S.png", "_labels.nii.gz")] == \
        ["S", "S", "S", "S", "a.b", "", "", "_labels"]


def test_find_and_match_cases(tmp_path):
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    a_pred = touch(pred / "A" / "A_labels.nii.gz")   # innerear-seg output layout
    touch(pred / "A" / "A.seg.nrrd")                  # not a label map
    touch(pred / "A" / "A_sides.nii.gz")              # other output of case A: not case A
    b_pred = touch(pred / "B.nii.gz")                 # flat, no suffix
    touch(pred / "C_labels.nii.gz")                   # no reference
    touch(ref / "A.nii.gz")                           # the scan ...
    a_ref = touch(ref / "A_label.nii.gz")             # ... loses to its label map
    b_ref = touch(ref / "B_label.nrrd")
    touch(ref / "D_label.nii.gz")                     # no prediction
    pairs, no_ref, no_pred = evaluate.match_cases(evaluate.find_cases([pred]), evaluate.find_cases([ref]))
    assert pairs == [("A", a_pred, a_ref), ("B", b_pred, b_ref)]
    assert no_ref == ["C"] and no_pred == ["D"]
    # explicit files work too
    assert evaluate.find_cases([a_pred, b_ref]) == {"A": a_pred, "B": b_ref}


def test_duplicate_case_names_are_an_error(tmp_path):
    first = touch(tmp_path / "S_labels.nii.gz")
    touch(tmp_path / "S" / "S_labels.nii.gz")
    with pytest.raises(evaluate.InputError, match="same case name 'S'") as e:
        evaluate.find_cases([tmp_path])
    assert str(first) in str(e.value)


def test_summarise_skips_ears_empty_in_both():
    rows = compute_metrics(labels(canals=False), labels(canals=False))
    s = evaluate.summarise(rows)
    assert s["cochlea"] == 1.0 and s["labyrinth"] == 1.0
    assert math.isnan(s["semicircular_canals"])  # both empty: no ear counts


def test_evaluate_end_to_end(tmp_path, capsys):
    pred_dir, ref_dir, out = tmp_path / "pred", tmp_path / "ref", tmp_path / "out"
    images = {}
    for case, shift in (("c1", 0), ("c2", 1), ("c3", 2)):
        images[case] = (labels(shift), labels())
        write(images[case][0], pred_dir / case / f"{case}_labels.nii.gz")
        write(images[case][1], ref_dir / f"{case}_label.nii.gz")
    write(labels(), ref_dir / "extra_label.nii.gz")
    parser = ArgumentParser()
    evaluate.add_arguments(parser)
    assert evaluate.run(parser.parse_args(["--pred", str(pred_dir), "--ref", str(ref_dir), "-o", str(out)])) == 0
    printed = capsys.readouterr()
    assert "extra" in printed.err and "Cochlea" in printed.out

    assert sorted(p.name for p in out.iterdir()) == ["bland_altman.png", "dsc.png", "metrics.csv", "summary.csv"]
    for png in ("bland_altman.png", "dsc.png"):
        data = (out / png).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000

    with open(out / "metrics.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 3 * 4 * 3  # cases x structures x sides
    expected = {(c, r["structure"], r["side"]): r for c, (p, ref) in images.items() for r in compute_metrics(p, ref)}
    for row in table:
        want = expected[row["case"], row["structure"], row["side"]]
        for metric in ("dsc", "hd95_mm", "assd_mm", "tp_mm3", "fdr"):
            assert float(row[metric]) == pytest.approx(want[metric], rel=1e-5, nan_ok=True)
    left_cochlea = {r["case"]: float(r["dsc"]) for r in table if r["structure"] == "cochlea" and r["side"] == "left"}
    assert left_cochlea["c1"] == 1.0 and left_cochlea["c3"] < 1.0

    with open(out / "summary.csv") as f:
        summary = {(r["structure"], r["metric"]): r for r in csv.DictReader(f)}
    dscs = [want["dsc"] for (c, s, side), want in expected.items() if s == "vestibule" and side == "left"]
    assert float(summary["vestibule", "dsc"]["mean"]) == pytest.approx(np.mean(dscs), rel=1e-5)
    assert float(summary["vestibule", "dsc"]["median"]) == pytest.approx(np.median(dscs), rel=1e-5)
    assert float(summary["vestibule", "dsc"]["std"]) == pytest.approx(np.std(dscs, ddof=1), rel=1e-5)
    assert int(summary["vestibule", "dsc"]["n"]) == 3
    assert evaluate.summarise(list(expected.values()))["vestibule"] == pytest.approx(np.mean(dscs), rel=1e-5)


def test_unreadable_file_fails_cleanly(tmp_path, capsys):
    pred = touch(tmp_path / "p" / "S_labels.nii.gz")  # not a NIfTI file
    ref = write(labels(), tmp_path / "r" / "S_label.nii.gz")
    out = tmp_path / "out"
    parser = ArgumentParser()
    evaluate.add_arguments(parser)
    assert evaluate.run(parser.parse_args(["--pred", str(pred), "--ref", str(ref), "-o", str(out)])) == 1
    assert str(pred) in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_no_matching_case_is_an_error(tmp_path, capsys):
    write(labels(), tmp_path / "p" / "A_labels.nii.gz")
    write(labels(), tmp_path / "r" / "B_label.nii.gz")
    assert evaluate.main(["--pred", str(tmp_path / "p"), "--ref", str(tmp_path / "r"), "-o", str(tmp_path / "o")]) == 1
    assert "no case name" in capsys.readouterr().err
