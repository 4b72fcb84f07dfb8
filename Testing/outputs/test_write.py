"""Output files: Slicer segmentation, labels on the input grid, statistics, LPS surfaces, all or nothing."""
import csv
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkIOGeometry import vtkSTLReader
from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

from InnerEarSegLib.core import labels as L
from InnerEarSegLib.core.errors import OutputError
from InnerEarSegLib.core.result import EarRegion, SegmentationResult
from InnerEarSegLib.outputs import surface, write

# (structure value, offset from the ear centre in mm (x mirrored per side), radius mm)
BLOBS = ((1, (0.0, -3.0, 0.0), 2.5), (2, (0.0, 0.5, 0.0), 2.0), (3, (1.0, 3.0, 2.0), 1.8))
EAR_X = {"right": -18.0, "left": 18.0}  # LPS: the patient's right is -x


def oblique_flipped_grid(size=(96, 36, 22), spacing=(0.5, 0.5, 0.8)):
    a = np.deg2rad(20.0)
    direction = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]) @ np.diag([1, -1, 1])
    image = sitk.Image(list(size), sitk.sitkFloat32)
    image.SetSpacing(spacing)
    image.SetDirection(direction.ravel().tolist())
    centre = np.array(image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in size]))
    image.SetOrigin((np.array([3.0, -7.0, 11.0]) - centre).tolist())  # grid centred on (3, -7, 11)
    return image


def make_case(empty=False):
    """A scan on an oblique flipped anisotropic grid with two ears of three blobs, and its result."""
    reference = oblique_flipped_grid()
    size = reference.GetSize()
    matrix = surface.index_to_lps(reference)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), -1).reshape(-1, 3)
    points = ijk @ matrix[:3, :3].T + matrix[:3, 3]
    label = np.zeros(len(points), np.uint8)
    side_code = np.zeros(len(points), np.uint8)
    intensity = 100 + 10 * np.random.default_rng(0).standard_normal(len(points))
    for code, side in ((1, "right"), (2, "left")):
        if empty:
            break
        centre = np.array([3.0 + EAR_X[side], -7.0, 11.0])
        for value, offset, radius in BLOBS:
            offset = np.array(offset) * [np.sign(EAR_X[side]), 1, 1]
            inside = np.linalg.norm(points - centre - offset, axis=1) <= radius
            label[inside], side_code[inside], intensity[inside] = value, code, 400.0

    def to_image(values, pixel):
        out = sitk.GetImageFromArray(values.reshape(size).transpose(2, 1, 0).copy())
        out.CopyInformation(reference)
        return sitk.Cast(out, pixel)

    image = to_image(intensity, sitk.sitkFloat32)
    labels, sides = to_image(label, sitk.sitkUInt8), to_image(side_code, sitk.sitkUInt8)
    voxel_mm3 = float(np.prod(reference.GetSpacing()))
    stats = []
    for code, side in ((1, "right"), (2, "left")):
        for s in L.STRUCTURES:
            inside = (label == s.value) & (side_code == code)
            c = points[inside].mean(axis=0) if inside.any() else np.full(3, np.nan)
            stats.append({"structure": s.key, "side": side, "label": s.value, "voxels": int(inside.sum()),
                          "volume_mm3": inside.sum() * voxel_mm3, "surface_area_mm2": float("nan"),
                          "centroid_lps": tuple(c), "centroid_ras": (-c[0], -c[1], c[2]),
                          "bbox_min_lps": points[inside].min(0) if inside.any() else None,
                          "bbox_max_lps": points[inside].max(0) if inside.any() else None})
    result = SegmentationResult(labels=labels, sides=sides, stats=stats,
                                surfaces=surface.build_surfaces(labels, sides, 0.5),
                                ears=[EarRegion("right", (-15.0, -7.0, 11.0), 0.9)], warnings=["a warning"],
                                source="/data/case1.nii.gz", model_name="tiny 0.1", modality="ct",
                                timings={"segment": 1.5})
    return image, result


@pytest.fixture(scope="module")
def case():
    return make_case()


@pytest.fixture(scope="module")
def written(case, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    image, result = case
    before = sitk.GetArrayFromImage(image).copy()
    paths = write.write_outputs(result, out, "case1", image)
    assert np.array_equal(sitk.GetArrayFromImage(image), before)  # input untouched
    return out / "case1", paths


def test_every_file_written_and_nothing_else(written):
    folder, paths = written
    expected = {"case1.seg.nrrd", "case1_labels.nii.gz", "case1_stats.json", "case1_stats.csv", "case1_preview.png",
                "case1_measures.csv", "case1_measures.mrk.json"}
    expected |= {f"case1_{s.key}_{side}.{ext}" for s in L.STRUCTURES for side in L.SIDES for ext in ("stl", "vtp")}
    assert {p.name for p in paths} == expected
    assert {p.name for p in folder.iterdir()} == expected  # no temporary files left
    assert (folder / "case1_preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_seg_nrrd_reads_back_with_slicerio(case, written):
    image, result = case
    seg = slicerio.read_segmentation(str(written[0] / "case1.seg.nrrd"))
    np.testing.assert_allclose(seg["ijkToLPS"], surface.index_to_lps(image), atol=1e-9)
    assert seg["voxels"].shape == image.GetSize()
    labels_ijk = sitk.GetArrayFromImage(result.labels).transpose(2, 1, 0)
    sides_ijk = sitk.GetArrayFromImage(result.sides).transpose(2, 1, 0)
    assert len(seg["segments"]) == 6
    for side, code in (("right", 1), ("left", 2)):
        for s in L.STRUCTURES:
            segment = slicerio.segment_from_name(seg, L.segment_name(s.key, side))
            assert segment["id"] == L.segment_id(s.key, side)
            np.testing.assert_allclose(segment["color"], s.color, atol=1e-6)
            term = segment["terminology"]
            assert term["category"] == list(L.ANATOMIC_CATEGORY)
            assert term["type"] == list(s.code)
            assert term["anatomicRegion"] == list(L.INNER_EAR)
            assert term["anatomicRegionModifier"] == list(L.SIDE_CODES[side])
            mask = slicerio.segment_mask(seg, segment)
            truth = (labels_ijk == s.value) & (sides_ijk == code)
            assert truth.any() and np.array_equal(mask, truth)


def test_labels_nifti_on_input_grid(case, written):
    image, result = case
    back = sitk.ReadImage(str(written[0] / "case1_labels.nii.gz"))
    assert back.GetSize() == image.GetSize()
    assert back.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=1e-6)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(result.labels))


def test_json_and_csv_agree_with_stats(case, written):
    _, result = case
    doc = json.loads((written[0] / "case1_stats.json").read_text())
    assert doc["coordinate_system"] == "LPS" and "STL" in doc["coordinate_note"]
    assert doc["input"] == "/data/case1.nii.gz" and doc["model"] == "tiny 0.1" and doc["modality"] == "ct"
    assert doc["warnings"] == ["a warning"] and doc["timings_s"] == {"segment": 1.5}
    with open(written[0] / "case1_stats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(doc["stats"]) == len(rows) == len(result.stats)
    for row, saved, csv_row in zip(result.stats, doc["stats"], rows):
        assert saved["structure"] == csv_row["structure"] == row["structure"]
        assert saved["voxels"] == int(csv_row["voxels"]) == row["voxels"]
        assert saved["volume_mm3"] == pytest.approx(float(csv_row["volume_mm3"]))
        assert saved["volume_mm3"] == pytest.approx(row["volume_mm3"])
        for axis, value in zip("xyz", row["centroid_lps"]):
            assert float(csv_row[f"centroid_lps_{axis}"]) == pytest.approx(value)
        assert saved["surface_area_mm2"] is None and csv_row["surface_area_mm2"] == ""  # NaN is not JSON


def test_surfaces_are_in_lps(case, written):
    _, result = case
    for row in result.stats:
        seg_id = L.segment_id(row["structure"], row["side"])
        stl = vtkSTLReader()
        stl.SetFileName(str(written[0] / f"case1_{seg_id}.stl"))
        stl.Update()
        assert "SPACE=LPS" in stl.GetHeader()
        centre = vtk_to_numpy(stl.GetOutput().GetPoints().GetData()).mean(axis=0)
        np.testing.assert_allclose(centre, row["centroid_lps"], atol=0.35)  # RAS would be ~36 mm away in x
        vtp = vtkXMLPolyDataReader()
        vtp.SetFileName(str(written[0] / f"case1_{seg_id}.vtp"))
        vtp.Update()
        assert vtp.GetOutput().GetFieldData().GetAbstractArray("SPACE").GetValue(0) == "LPS"
        assert vtp.GetOutput().GetNumberOfCells() == result.surfaces[seg_id].GetNumberOfCells()


def test_failure_midway_leaves_the_earlier_run_as_it_was(case, tmp_path, monkeypatch):
    image, result = case
    earlier = write.write_outputs(result, tmp_path, "case1", image)  # an earlier, complete run

    def broken(path, poly):
        open(path, "wb").write(b"partial")
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(write, "write_stl", broken)
    with pytest.raises(OutputError, match="disk on fire") as info:
        write.write_outputs(result, tmp_path, "case1", image)
    assert str(tmp_path / "case1") in str(info.value)
    assert sorted((tmp_path / "case1").iterdir()) == sorted(earlier)
    assert [p.name for p in tmp_path.iterdir()] == ["case1"]  # no temporary files


def test_stale_files_of_an_earlier_run_removed(case, tmp_path):
    image, result = case
    write.write_outputs(result, tmp_path, "case1", image)
    mine = tmp_path / "case1" / "notes.txt"
    mine.write_text("the user's own file")
    no_surfaces = SegmentationResult(labels=result.labels, sides=result.sides, stats=result.stats)
    paths = write.write_outputs(no_surfaces, tmp_path, "case1", image, formats=("labels", "json"))
    assert {p.name for p in (tmp_path / "case1").iterdir()} == {p.name for p in paths} | {"notes.txt"}


def test_unwritable_folder_raises_output_error(case, tmp_path):
    image, result = case
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError) as info:
        write.write_outputs(result, blocker / "out", "case1", image)
    assert str(blocker / "out" / "case1") in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_raises_output_error(case, tmp_path):
    image, result = case
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="locked"):
            write.write_outputs(result, locked, "case1", image)
    finally:
        locked.chmod(0o700)


def test_labels_off_the_input_grid_refused(case, tmp_path):
    image, result = case
    moved = sitk.Image(image)
    moved.SetOrigin([o + 1.0 for o in image.GetOrigin()])
    with pytest.raises(ValueError, match="grid"):
        write.write_outputs(result, tmp_path, "case1", moved)
    assert not (tmp_path / "case1").exists()


def test_empty_result_writes_files_and_preview(tmp_path):
    image, result = make_case(empty=True)
    result.surfaces = {}
    paths = write.write_outputs(result, tmp_path, "none", image)
    assert {p.name for p in paths} == {"none.seg.nrrd", "none_labels.nii.gz", "none_stats.json",
                                       "none_stats.csv", "none_preview.png", "none_measures.csv",
                                       "none_measures.mrk.json"}
    assert slicerio.read_segmentation(str(tmp_path / "none" / "none.seg.nrrd"))["segments"] == []
    assert (tmp_path / "none" / "none_preview.png").stat().st_size > 1000


def test_files_load_in_slicer_core(case, written):
    """Slicer's own storage nodes read the segmentation (names, colours, terminology) and the LPS surfaces."""
    slicer = pytest.importorskip("slicer")
    import vtk
    _, result = case
    scene = slicer.vtkMRMLScene()
    slicer.vtkSlicerSegmentationsModuleLogic().SetMRMLScene(scene)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(written[0] / "case1.seg.nrrd"))
    assert storage.ReadData(node) == 1
    segment = node.GetSegmentation().GetSegment("vestibule_left")
    assert segment.GetName() == "Vestibule left"
    np.testing.assert_allclose(segment.GetColor(), L.BY_KEY["vestibule"].color, atol=1e-6)
    tag = vtk.mutable("")
    segment.GetTag("TerminologyEntry", tag)
    assert "IES-0002" in str(tag) and "7771000" in str(tag)

    model = scene.AddNewNodeByClass("vtkMRMLModelNode")
    model_storage = scene.AddNewNodeByClass("vtkMRMLModelStorageNode")
    row = next(r for r in result.stats if r["structure"] == "cochlea" and r["side"] == "left")
    for ext in ("stl", "vtp"):
        model_storage.SetFileName(str(written[0] / f"case1_cochlea_left.{ext}"))
        assert model_storage.ReadData(model) == 1
        centre_ras = vtk_to_numpy(model.GetPolyData().GetPoints().GetData()).mean(axis=0)
        np.testing.assert_allclose(centre_ras, row["centroid_ras"], atol=0.35)


def test_without_side_split_one_segment_per_structure(case, tmp_path):
    """The pipeline's split_sides=False: sides all 0, stats side 'both', surfaces '<structure>_both'."""
    image, result = case
    no_sides = sitk.Image(result.sides.GetSize(), sitk.sitkUInt8)
    no_sides.CopyInformation(result.sides)
    merged = SegmentationResult(labels=result.labels, sides=no_sides, stats=result.stats,
                                surfaces=surface.build_surfaces(result.labels, None, 0.5),
                                ears=[EarRegion("right", (-15.0, -7.0, 11.0), 0.9),
                                      EarRegion("left", (21.0, -7.0, 11.0), 0.9)])
    assert set(merged.surfaces) == {f"{s.key}_both" for s in L.STRUCTURES}
    paths = write.write_outputs(merged, tmp_path, "merged", image)
    assert {f"merged_{s.key}_both.stl" for s in L.STRUCTURES} <= {p.name for p in paths}
    seg = slicerio.read_segmentation(str(tmp_path / "merged" / "merged.seg.nrrd"))
    assert [s["name"] for s in seg["segments"]] == [s.name for s in L.STRUCTURES]
    labels_ijk = sitk.GetArrayFromImage(result.labels).transpose(2, 1, 0)
    for s, segment in zip(L.STRUCTURES, seg["segments"]):
        assert "anatomicRegionModifier" not in segment["terminology"]
        assert np.array_equal(slicerio.segment_mask(seg, segment), labels_ijk == s.value)
