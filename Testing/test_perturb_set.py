"""release/perturb_set.py: perturbed copies of a case set keep every label where it was."""
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from conftest import load_script


def write_set(folder: Path):
    """Three 8x12x16 cases (mr, ct, cbct) with one labelled voxel, oblique geometry."""
    cases = []
    for name, family, low in (("a", "mr", 0), ("b", "ct", -1000), ("c", "cbct", -1000)):
        image = sitk.GetImageFromArray(np.full((8, 12, 16), low + 100, np.int16))
        labels = sitk.GetImageFromArray(np.zeros((8, 12, 16), np.uint8))
        labels[5, 6, 3] = 2
        for img in (image, labels):
            img.SetSpacing((0.4, 0.5, 0.6))
            img.SetOrigin((10.0, -20.0, 5.0))
            img.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))
        for img, sub in ((image, "images"), (labels, "labels")):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(img, str(folder / sub / f"{name}.nrrd"))
        cases.append({"name": name, "family": family})
    (folder / "cases.json").write_text(json.dumps({"cases": cases}))


def labelled_point(path: Path):
    labels = sitk.ReadImage(str(path))
    index = np.argwhere(sitk.GetArrayFromImage(labels) == 2)
    assert len(index) == 1
    return np.array(labels.TransformIndexToPhysicalPoint([int(i) for i in index[0][::-1]]))


def test_pad_keeps_labels_in_place_and_pads_ct_with_dicom_padding(tmp_path):
    write_set(tmp_path / "set")
    (tmp_path / "pred" / "a").mkdir(parents=True)
    (tmp_path / "pred" / "b").mkdir(parents=True)
    load_script("perturb_set").main([str(tmp_path / "set"), str(tmp_path / "out"), "--perturb", "pad",
                        "--compare", str(tmp_path / "pred")])
    out = tmp_path / "out"
    assert sorted(p.stem for p in (out / "images").glob("*.nrrd")) == ["a", "b"]  # cbct left out
    for name in ("a", "b"):
        assert np.allclose(labelled_point(out / "labels" / f"{name}.nrrd"),
                           labelled_point(tmp_path / "set" / "labels" / f"{name}.nrrd"))
        assert (out / "baseline_pred" / name).resolve() == (tmp_path / "pred" / name).resolve()
        assert (out / "baseline_ref" / f"{name}.nrrd").is_file()
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "images" / "b.nrrd")))
    assert ct.shape == (8, 12 + 2 * 3, 16 + 2 * 4) and ct.min() == -3024 and ct.max() == -900
    mr = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "images" / "a.nrrd")))
    assert mr.min() == 0 and mr.max() == 100
    assert json.loads((out / "cases.json").read_text())["perturbation"] == "pad"


def test_ghost_adds_shifted_copies_to_mr_only(tmp_path):
    write_set(tmp_path / "set")
    image = sitk.ReadImage(str(tmp_path / "set" / "images" / "a.nrrd"))
    array = sitk.GetArrayFromImage(image)
    array[:, 0, :] = 1000                          # a bright row, ghosted a quarter FOV (3 rows) away
    bright = sitk.GetImageFromArray(array)
    bright.CopyInformation(image)
    sitk.WriteImage(bright, str(tmp_path / "set" / "images" / "a.nrrd"))
    load_script("perturb_set").main([str(tmp_path / "set"), str(tmp_path / "out"), "--perturb", "ghost"])
    out = sitk.ReadImage(str(tmp_path / "out" / "images" / "a.nrrd"))
    ghosted = sitk.GetArrayFromImage(out)
    assert out.GetDirection() == image.GetDirection() and out.GetOrigin() == image.GetOrigin()
    assert np.isclose(ghosted[0, 3, 0], 100 + 0.15 * (1000 + 100)) and np.isclose(ghosted[0, 9, 0], 100 + 0.15 * 1100)
    assert np.isclose(ghosted[0, 1, 0], 100 * 1.3)
    assert [p.stem for p in (tmp_path / "out" / "images").glob("*.nrrd")] == ["a"]
