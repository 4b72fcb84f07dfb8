"""The Slicer module's MRML logic and job (running the command line), on real slicer-core (no Slicer application).

A fake segmenter stands in for the network: it labels the bright voxels of the scan it is
given, so every check is about geometry and MRML, not about the model.
"""
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
from vtk.util.numpy_support import vtk_to_numpy

slicer = pytest.importorskip("slicer")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "InnerEarSeg"))

from InnerEarSegLib.core import labels as L  # noqa: E402
from InnerEarSegLib.core.errors import InputError  # noqa: E402
from InnerEarSegLib.core.result import SegmentationResult  # noqa: E402
from InnerEarSegLib.parameters import SegmentParameters  # noqa: E402
from InnerEarSegSlicerLib import job as J  # noqa: E402
from InnerEarSegSlicerLib import logic as G  # noqa: E402

DIMS = (24, 22, 20)  # i, j, k


def rotation(ax, ay):
    cx, sx, cy, sy = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay)
    return np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])


def matrix(linear, origin):
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = linear, origin
    return m


GEOMETRIES = {  # IJK-to-RAS matrices
    "axial": matrix(np.diag([-0.5, -0.6, 0.7]), [20.0, 15.0, -10.0]),
    "oblique": matrix(rotation(np.radians(30), np.radians(20)) @ np.diag([0.5, 0.5, 0.8]), [-5.0, 3.0, 7.0]),
    "flipped": matrix(np.array([[0, 0.5, 0], [0, 0, -0.6], [-0.7, 0, 0]]), [-40.0, 2.0, 30.0]),
}


def to_vtk(m):
    v = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            v.SetElement(r, c, m[r, c])
    return v


def ras_of_voxels(ijkToRas, ijk):
    return (ijkToRas[:3, :3] @ np.asarray(ijk, float).T).T + ijkToRas[:3, 3]


def add_volume(scene, ijkToRas, blobs=(), radius=2.0, name="scan"):
    """A volume with value ``v`` within ``radius`` mm of each RAS centre of ``blobs`` [(centre, v)]."""
    k, j, i = np.indices(DIMS[::-1])
    ras = ras_of_voxels(ijkToRas, np.stack([i.ravel(), j.ravel(), k.ravel()], 1)).reshape(DIMS[::-1] + (3,))
    array = np.zeros(DIMS[::-1], np.int16)
    for c, value in blobs:
        array[np.linalg.norm(ras - np.asarray(c), axis=-1) <= radius] = value
    image = vtk.vtkImageData()
    image.SetDimensions(*DIMS)
    image.AllocateScalars(vtk.VTK_SHORT, 1)
    vtk_to_numpy(image.GetPointData().GetScalars())[:] = array.ravel()
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetAndObserveImageData(image)
    node.SetIJKToRASMatrix(to_vtk(ijkToRas))
    return node, array


def center_ras(ijkToRas, offset=(0, 0, 0)):
    return ras_of_voxels(ijkToRas, [(np.array(DIMS) - 1) / 2.0 + offset])[0]


class FakeSegmenter:
    """Blob 100 -> cochlea, 101 -> vestibule, 102 -> canals; side from LPS x (left if > midline)."""

    def __init__(self, stats=None):
        self.calls = []
        self.stats = stats or []

    def __call__(self, image, model=None, params=None, progress=None, cancel=None, source=None):
        self.calls.append({"image": image, "model": model, "params": params, "source": source})
        a = sitk.GetArrayFromImage(image)
        labels = np.where(a >= 100, a - 99, 0).astype(np.uint8)
        k, j, i = np.nonzero(labels)
        lps = np.array([image.TransformIndexToPhysicalPoint((int(x), int(y), int(z))) for x, y, z in zip(i, j, k)])
        midline = lps[:, 0].mean() if len(lps) else 0.0
        sides = np.zeros_like(labels)
        sides[k, j, i] = np.where(lps[:, 0] > midline, 2, 1)
        out = []
        for arr in (labels, sides):
            img = sitk.GetImageFromArray(arr)
            img.CopyInformation(image)
            out.append(img)
        if progress:
            progress("segment", 1.0, "fake")
        return SegmentationResult(labels=out[0], sides=out[1], stats=list(self.stats), model_name="fake")


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


def segment_ras_voxels(segNode, segmentId):
    """RAS centres of a segment's labelmap voxels, whatever extent or geometry it is stored in."""
    labelmap = slicer.vtkOrientedImageData()
    segNode.GetBinaryLabelmapRepresentation(segmentId, labelmap)
    e = labelmap.GetExtent()
    a = vtk_to_numpy(labelmap.GetPointData().GetScalars()).reshape(e[5] - e[4] + 1, e[3] - e[2] + 1, e[1] - e[0] + 1)
    k, j, i = np.nonzero(a)
    m = vtk.vtkMatrix4x4()
    labelmap.GetImageToWorldMatrix(m)
    ijkToRas = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    return ras_of_voxels(ijkToRas, np.stack([i + e[0], j + e[2], k + e[4]], 1))


def exported_array(logic, segNode, segmentIds, volumeNode):
    """The segments exported as a labelmap on the volume's own grid (Slicer's own resampling path)."""
    labelmapNode = logic.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    ids = vtk.vtkStringArray()
    for s in segmentIds:
        ids.InsertNextValue(s)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(segNode, ids, labelmapNode, volumeNode)
    image = labelmapNode.GetImageData()
    array = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(image.GetDimensions()[::-1]).copy()
    logic.scene.RemoveNode(labelmapNode)
    return array


# --- geometry -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_blob_lands_on_the_same_voxels_and_ras_position(scene, name):
    ijkToRas = GEOMETRIES[name]
    c = center_ras(ijkToRas, (2, -1, 1))
    volume, array = add_volume(scene, ijkToRas, [(c, 100)])
    fake = FakeSegmenter()
    logic = G.InnerEarSegLogic(scene, segmenter=fake)
    outputs = logic.process(volume, parameters=None)

    # the library saw the blob at the LPS position of the RAS centre
    image = fake.calls[0]["image"]
    k, j, i = np.nonzero(sitk.GetArrayFromImage(image) >= 100)
    lps = np.mean([image.TransformIndexToPhysicalPoint((int(a), int(b), int(d))) for a, b, d in zip(i, j, k)], 0)
    assert np.allclose(lps, [-c[0], -c[1], c[2]], atol=0.5)

    segNode = outputs.segmentationNode
    segmentIds = [segNode.GetSegmentation().GetNthSegmentID(n) for n in range(segNode.GetSegmentation().GetNumberOfSegments())]
    assert segmentIds and all(s.startswith("cochlea") for s in segmentIds)
    # voxel for voxel on the input grid, through Slicer's own export
    assert np.array_equal(exported_array(logic, segNode, segmentIds, volume) > 0, array >= 100)
    # and in physical space: the same RAS points as the input's blob voxels
    ras = np.concatenate([segment_ras_voxels(segNode, s) for s in segmentIds])
    k, j, i = np.nonzero(array >= 100)
    expected = ras_of_voxels(ijkToRas, np.stack([i, j, k], 1))
    assert len(ras) == len(expected)
    assert np.allclose(np.sort(ras, 0), np.sort(expected, 0), atol=1e-4)
    assert np.linalg.norm(ras.mean(0) - c) < 0.5
    # the segmentation's reference geometry is the input volume
    ref = segNode.GetNodeReference(slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole())
    assert ref is volume


def test_volume_to_image_and_back_is_exact(scene):
    volume, array = add_volume(scene, GEOMETRIES["oblique"], [(center_ras(GEOMETRIES["oblique"]), 100)])
    image = G.volume_to_image(volume)
    assert np.array_equal(sitk.GetArrayFromImage(image), array)
    assert np.allclose(G.image_ijk_to_ras(image), GEOMETRIES["oblique"], atol=1e-9)
    assert image.GetSpacing() == pytest.approx((0.5, 0.5, 0.8))
    back = G.image_to_volume(image, scene, "copy")
    assert np.allclose(G.volume_ijk_to_ras(back), GEOMETRIES["oblique"], atol=1e-9)
    assert np.array_equal(sitk.GetArrayFromImage(G.volume_to_image(back)), array)


def test_result_on_another_grid_is_refused(scene):
    volume, _ = add_volume(scene, GEOMETRIES["axial"], [(center_ras(GEOMETRIES["axial"]), 100)])
    result = FakeSegmenter()(G.volume_to_image(volume))
    result.labels.SetOrigin((1.0, 2.0, 3.0))
    logic = G.InnerEarSegLogic(scene)
    before = scene.GetNumberOfNodes()
    with pytest.raises(ValueError, match="differs from the volume 'scan'"):
        logic.importResult(result, volume)
    assert scene.GetNumberOfNodes() == before


def test_vector_volume_is_refused_with_its_name(scene):
    node = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "rgb scan")
    image = vtk.vtkImageData()
    image.SetDimensions(4, 4, 4)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 3)
    node.SetAndObserveImageData(image)
    with pytest.raises(InputError, match="rgb scan.*3 components"):
        G.volume_to_image(node)


# --- segments, surfaces, models, table ------------------------------------------------------

STATS = [{"structure": "cochlea", "side": "right", "label": 1, "voxels": 33, "volume_mm3": 7.25,
          "centroid_ras": [1.0, 2.0, 3.5]},
         {"structure": "vestibule", "side": "left", "label": 2, "voxels": 40, "volume_mm3": 8.5,
          "centroid_ras": [-1.0, 0.5, 2.0]}]


@pytest.fixture
def two_ears(scene):
    """Cochlea and vestibule on both sides, canals on one side only."""
    m = GEOMETRIES["axial"]
    blobs = [(center_ras(m, (di, dj, 0)), value) for di in (-7, 7) for dj, value in ((-6, 100), (6, 101))]
    blobs.append((center_ras(m, (-7, 0, 0)), 102))
    return add_volume(scene, m, blobs, radius=1.2)[0]


def test_names_colours_and_terminology(scene, two_ears):
    logic = G.InnerEarSegLogic(scene, segmenter=FakeSegmenter(STATS))
    segmentation = logic.process(two_ears).segmentationNode.GetSegmentation()
    names = sorted(segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments()))
    assert len(names) == 5 and len(set(names)) == 5
    assert {"Cochlea left", "Cochlea right", "Vestibule left", "Vestibule right"} <= set(names)
    assert any(n.startswith("Semicircular canals") for n in names)
    for n in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(n)
        key, side = segmentation.GetNthSegmentID(n).rsplit("_", 1)
        structure = L.BY_KEY[key]
        assert segment.GetName() == L.segment_name(key, side)
        assert segment.GetColor() == pytest.approx(structure.color)
        parts = segment.GetTerminology().split("~")
        assert parts[1] == "SCT^123037004^Anatomical Structure"
        assert parts[2] == "^".join(structure.code)
        assert parts[5] == "SCT^22945000^Inner ear"
        assert parts[6] == "^".join(L.SIDE_CODES[side])
    cochlea = segmentation.GetSegment("cochlea_left").GetTerminology()
    assert "SCT^80169004^Cochlea" in cochlea and "SCT^7771000^Left" in cochlea
    assert "SCT^24028007^Right" in segmentation.GetSegment("cochlea_right").GetTerminology()


def test_custom_terminology_file_defines_every_structure_code():
    terminologies = slicer.vtkSlicerTerminologiesModuleLogic()
    name = terminologies.LoadTerminologyFromFile(str(ROOT / "InnerEarSeg/Resources/InnerEarSeg.term.json"))
    assert name == G.TERMINOLOGY_CONTEXT
    category = slicer.vtkSlicerTerminologyCategory()
    assert terminologies.GetNthCategoryInTerminology(name, 0, category)
    assert category.GetCodeValue() == L.ANATOMIC_CATEGORY[1]
    found = set()
    for n in range(terminologies.GetNumberOfTypesInTerminologyCategory(name, category)):
        t = slicer.vtkSlicerTerminologyType()
        terminologies.GetNthTypeInTerminologyCategory(name, category, n, t)
        found.add((t.GetCodingSchemeDesignator(), t.GetCodeValue(), t.GetCodeMeaning()))
    assert found == {s.code for s in L.STRUCTURES}
    entry = slicer.vtkSlicerTerminologyEntry()
    assert terminologies.DeserializeTerminologyEntry(G.terminology(L.BY_KEY["vestibule"], "left"), entry)
    assert entry.GetTypeObject().GetCodeValue() == L.BY_KEY["vestibule"].code[1]
    assert entry.GetRegionModifierObject().GetCodeValue() == L.SIDE_CODES["left"][1]


def surface_volume(polydata):
    mass = vtk.vtkMassProperties()
    mass.SetInputData(polydata)
    mass.Update()
    return mass.GetVolume()


def test_closed_surfaces_models_and_table(scene):
    m = matrix(np.diag([-0.5, -0.5, 0.5]), [0, 0, 0])
    volume, array = add_volume(scene, m, [(center_ras(m), 100)], radius=3.0)
    logic = G.InnerEarSegLogic(scene, segmenter=FakeSegmenter(STATS))
    params = type("P", (), {"smoothing": 0.2, "surfaces": True})()
    outputs = logic.process(volume, parameters=params)
    segNode = outputs.segmentationNode
    segmentation = segNode.GetSegmentation()
    assert segmentation.GetConversionParameter("Smoothing factor") == "0.2"
    assert segmentation.GetNumberOfSegments() == 2  # the fake splits the sphere into two sides
    surfaces = {}
    for n in range(segmentation.GetNumberOfSegments()):
        surface = segmentation.GetNthSegment(n).GetRepresentation("Closed surface")
        assert surface is not None and surface.GetNumberOfPoints() > 0
        labelmap_mm3 = len(segment_ras_voxels(segNode, segmentation.GetNthSegmentID(n))) * 0.125
        assert surface_volume(surface) == pytest.approx(labelmap_mm3, rel=0.05)
        surfaces[segmentation.GetNthSegment(n).GetName()] = surface

    shNode = scene.GetSubjectHierarchyNode()
    children = vtk.vtkIdList()
    shNode.GetItemChildren(outputs.modelsFolderItemId, children)
    models = [shNode.GetItemDataNode(children.GetId(n)) for n in range(children.GetNumberOfIds())]
    assert sorted(mn.GetName() for mn in models) == sorted(surfaces)
    for model in models:
        assert model.IsA("vtkMRMLModelNode") and not model.GetDisplayNode().GetVisibility()
        assert surface_volume(model.GetPolyData()) == pytest.approx(surface_volume(surfaces[model.GetName()]), rel=1e-6)

    table = outputs.tableNode
    assert table.GetNumberOfRows() == len(STATS)
    assert table.GetCellText(1, table.GetColumnIndex("structure")) == "vestibule"
    assert float(table.GetCellText(0, table.GetColumnIndex("volume_mm3"))) == 7.25
    assert float(table.GetCellText(0, table.GetColumnIndex("centroid_ras_y"))) == 2.0  # the CLI CSV's columns
    assert float(table.GetCellText(1, table.GetColumnIndex("centroid_ras_z"))) == 2.0


def test_no_surfaces_when_not_asked(scene):
    volume, _ = add_volume(scene, GEOMETRIES["axial"], [(center_ras(GEOMETRIES["axial"]), 100)])
    outputs = G.InnerEarSegLogic(scene, segmenter=FakeSegmenter()).process(
        volume, parameters=type("P", (), {"surfaces": False})())
    assert outputs.modelsFolderItemId == 0 and outputs.tableNode is None
    assert scene.GetNumberOfNodesByClass("vtkMRMLModelNode") == 0
    assert outputs.segmentationNode.GetSegmentation().GetNthSegment(0).GetRepresentation("Closed surface") is None


def test_library_is_asked_for_no_surfaces_of_its_own(scene):
    from InnerEarSegLib.pipeline import SegmentParameters
    volume, _ = add_volume(scene, GEOMETRIES["axial"], [(center_ras(GEOMETRIES["axial"]), 100)])
    fake = FakeSegmenter()
    G.InnerEarSegLogic(scene, segmenter=fake).process(volume, parameters=SegmentParameters(smoothing=0.1), model="m.json")
    assert fake.calls[0]["params"].surfaces is False and fake.calls[0]["params"].smoothing == 0.1
    assert fake.calls[0]["model"] == "m.json"


# --- failure leaves the scene as it was; existing output node ---------------------------------

def test_failure_midway_leaves_the_scene_unchanged(scene, two_ears, monkeypatch):
    logic = G.InnerEarSegLogic(scene, segmenter=FakeSegmenter(STATS))
    existing = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "mine")
    existing.GetSegmentation().AddEmptySegment("keep", "keep me")
    before = scene.GetNumberOfNodes()
    shBefore = scene.GetSubjectHierarchyNode().GetNumberOfItems()

    def broken(*args):
        raise RuntimeError("disk full")
    monkeypatch.setattr(G, "fill_table", broken)
    for output in (None, existing):
        with pytest.raises(RuntimeError, match="disk full"):
            logic.process(two_ears, output)
        assert scene.GetNumberOfNodes() == before
        assert scene.GetSubjectHierarchyNode().GetNumberOfItems() == shBefore
    segmentation = existing.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 1 and segmentation.GetSegment("keep").GetName() == "keep me"


def test_existing_output_keeps_other_segments_and_replaces_ours(scene, two_ears):
    logic = G.InnerEarSegLogic(scene, segmenter=FakeSegmenter())
    existing = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "mine")
    existing.GetSegmentation().AddEmptySegment("keep", "keep me")
    logic.process(two_ears, existing)
    outputs = logic.process(two_ears, existing)
    segmentation = existing.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 6
    assert segmentation.GetSegment("keep") is not None
    children = vtk.vtkIdList()
    scene.GetSubjectHierarchyNode().GetItemChildren(outputs.modelsFolderItemId, children)
    assert children.GetNumberOfIds() == 5  # models of our segments only


# --- files: seg.nrrd, the command line's outputs, batch ---------------------------------------

def test_seg_nrrd_reads_back_in_a_fresh_scene_and_with_slicerio(scene, two_ears, tmp_path):
    slicerio = pytest.importorskip("slicerio")
    logic = G.InnerEarSegLogic(scene, segmenter=FakeSegmenter())
    segNode = logic.process(two_ears, parameters=type("P", (), {"surfaces": False})()).segmentationNode
    path = logic.saveSegmentation(segNode, tmp_path / "ears.seg.nrrd")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ears.seg.nrrd"]
    original = segNode.GetSegmentation()
    expected = {original.GetNthSegment(n).GetName(): original.GetNthSegment(n) for n in range(original.GetNumberOfSegments())}

    fresh = slicer.vtkMRMLScene()
    G.InnerEarSegLogic(fresh)
    readNode = fresh.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = fresh.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(readNode)
    segmentation = readNode.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == len(expected)
    for n in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(n)
        assert segment.GetColor() == pytest.approx(expected[segment.GetName()].GetColor(), abs=1e-5)
        assert segment.GetTerminology() == expected[segment.GetName()].GetTerminology()
        sid = segmentation.GetNthSegmentID(n)
        assert np.allclose(np.sort(segment_ras_voxels(readNode, sid), 0),
                           np.sort(segment_ras_voxels(segNode, sid), 0), atol=1e-3)

    seg = slicerio.read_segmentation(str(path))
    by_name = {s["name"]: s for s in seg["segments"]}
    assert set(by_name) == set(expected)
    for name, s in by_name.items():
        assert s["color"] == pytest.approx(expected[name].GetColor(), abs=1e-5)


def test_command_line_outputs_import_like_the_in_process_result(scene, two_ears, tmp_path):
    from InnerEarSegLib.outputs.write import write_outputs
    logic = G.InnerEarSegLogic(scene, segmenter=FakeSegmenter(STATS))
    result = logic.segment(two_ears)
    write_outputs(result, tmp_path, "case", G.volume_to_image(two_ears), formats=("seg", "labels", "json"))
    read = G.read_case_folder(tmp_path / "case")
    assert np.array_equal(sitk.GetArrayFromImage(read.sides), sitk.GetArrayFromImage(result.sides))
    assert read.stats == STATS and read.model_name == "fake"
    outputs = logic.importResultFiles(tmp_path / "case", two_ears, smoothing=0.3)
    segmentation = outputs.segmentationNode.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 5
    assert segmentation.GetConversionParameter("Smoothing factor") == "0.3"
    assert outputs.tableNode.GetNumberOfRows() == len(STATS)
    ids = [segmentation.GetNthSegmentID(n) for n in range(5)]
    exported = exported_array(logic, outputs.segmentationNode, ids, two_ears)
    labels = sitk.GetArrayFromImage(result.labels)
    assert np.array_equal(exported > 0, labels > 0)


def test_command_line_outputs_with_sides_not_split(scene, two_ears, tmp_path):
    from InnerEarSegLib.outputs.write import write_outputs
    result = G.InnerEarSegLogic(scene, segmenter=FakeSegmenter()).segment(two_ears)
    result.sides = result.sides * 0
    result.stats = [dict(row, side="both") for row in STATS]
    write_outputs(result, tmp_path, "case", G.volume_to_image(two_ears), formats=("seg", "labels", "json"))
    read = G.read_case_folder(tmp_path / "case")
    assert not sitk.GetArrayFromImage(read.sides).any()
    assert np.array_equal(sitk.GetArrayFromImage(read.labels), sitk.GetArrayFromImage(result.labels))


def test_batch_continues_past_a_bad_file_and_cleans_the_scene(scene, tmp_path):
    m = GEOMETRIES["oblique"]
    volume, _ = add_volume(scene, m, [(center_ras(m), 100)])
    good = tmp_path / "in" / "ear1.nrrd"
    good.parent.mkdir()
    sitk.WriteImage(G.volume_to_image(volume), str(good))
    scene.RemoveNode(volume)
    bad = tmp_path / "in" / "notes.nrrd"
    bad.write_text("not an image")
    logic = G.InnerEarSegLogic(scene, segmenter=FakeSegmenter(STATS))
    before = scene.GetNumberOfNodes()
    report = logic.processFiles(tmp_path / "in", tmp_path / "out")  # a folder of scans
    assert report[0] == (good, None)
    assert report[1][0] == bad and "notes.nrrd" in report[1][1]
    assert scene.GetNumberOfNodes() == before
    # the command line's outputs: OUT/<name>/ with its files, and the cohort summary
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cohort_summary.csv", "ear1"]
    from InnerEarSegLib.cohort import SUMMARY_COLUMNS, required_outputs
    assert set(required_outputs(good)) <= {p.name for p in (tmp_path / "out" / "ear1").iterdir()}
    rows = (tmp_path / "out" / "ear1" / "ear1_stats.csv").read_text().splitlines()
    assert rows[0].startswith("structure,side,label") and len(rows) == 1 + len(STATS)
    summary = (tmp_path / "out" / "cohort_summary.csv").read_text().splitlines()
    assert summary[0] == ",".join(SUMMARY_COLUMNS) and len(summary) == 3
    assert summary[1].startswith("ear1,") and ",ok," in summary[1] and ",failed," in summary[2]


def test_statistics_export_is_the_command_lines_csv(scene, two_ears, tmp_path):
    """The table's columns and the exported CSV are those of the CLI's NAME_stats.csv, written by one function."""
    from InnerEarSegLib.outputs.write import write_csv
    outputs = G.InnerEarSegLogic(scene, segmenter=FakeSegmenter(STATS)).process(two_ears)
    table = outputs.tableNode.GetTable()
    write_csv(tmp_path / "cli.csv", STATS)
    columns = (tmp_path / "cli.csv").read_text().splitlines()[0].split(",")
    assert [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())] == columns
    G.InnerEarSegLogic(scene).exportStatistics(outputs.tableNode, tmp_path / "slicer.csv")
    assert (tmp_path / "slicer.csv").read_bytes() == (tmp_path / "cli.csv").read_bytes()
    outputs.tableNode.RemoveAttribute(G.STATS_ATTRIBUTE)  # a table as shown: the same columns
    G.InnerEarSegLogic(scene).exportStatistics(outputs.tableNode, tmp_path / "shown.csv")
    assert (tmp_path / "shown.csv").read_text().splitlines()[0].split(",") == columns


# --- the job: the command line's events ------------------------------------------------------

def fake_worker(tmp_path, body):
    script = tmp_path / "fake_worker.py"
    script.write_text("import json, sys, time\n"
                      "def emit(**e): print(json.dumps(e), flush=True)\n" + textwrap.dedent(body))
    return [sys.executable, str(script)]


def run_job(command):
    seen = []
    job = J.SegmentationJob(command, onProgress=lambda *a: seen.append(a))
    assert job.state == J.IDLE
    job.start()
    assert job.state == J.RUNNING
    return job, job.wait(timeout=30), seen


def test_job_done_with_progress(tmp_path):
    job, state, seen = run_job(fake_worker(tmp_path, """
        print("the command's text")
        emit(event="progress", case="scan", stage="localize", fraction=0.5, message="ears")
        emit(event="case", name="scan", status="ok", error="", warnings=["only one ear"])
        emit(event="done", status=0)
    """))
    assert state == J.DONE and seen == [("localize", 0.5, "ears")] and job.warnings == ["only one ear"]
    assert job.output() == ["the command's text"]


def test_job_failed_with_the_cases_error(tmp_path):
    job, state, _ = run_job(fake_worker(tmp_path, """
        emit(event="case", name="scan", status="failed", error="scan.nrrd: constant volume", warnings=[])
        emit(event="done", status=1)
        sys.exit(1)
    """))
    assert state == J.FAILED and job.error == "scan.nrrd: constant volume"


def test_job_failed_with_the_runs_error(tmp_path):
    job, state, _ = run_job(fake_worker(tmp_path, """
        emit(event="error", kind="ModelError", message="m.json: not a model card")
        sys.exit(1)
    """))
    assert state == J.FAILED and job.error == "m.json: not a model card"


def test_job_crash_reports_exit_code_and_output(tmp_path):
    job, state, _ = run_job(fake_worker(tmp_path, """
        raise MemoryError("out of memory in the worker")
    """))
    assert state == J.FAILED and "exit code 1" in job.error and "out of memory in the worker" in job.error


def test_job_cancel_kills_the_process(tmp_path):
    job = J.SegmentationJob(fake_worker(tmp_path, """
        emit(event="progress", stage="segment", fraction=0.1, message="")
        time.sleep(60)
    """))
    job.start()
    job.cancel()
    assert job.state == J.CANCELLED and job._process.returncode is not None
    assert job.poll() == J.CANCELLED


def test_segment_command_is_the_command_line_with_the_options_flags(tmp_path):
    from InnerEarSegLib import cli
    params = SegmentParameters(tta=False, cpu_bf16=True, smoothing=0.25)
    command = J.segment_command(sys.executable, tmp_path / "scan.nrrd", tmp_path / "out", model="m.json",
                                params=params)
    assert command[:4] == [sys.executable, "-m", "InnerEarSegLib.cli", "segment"]
    args = cli.build_parser("segment").parse_args(command[3:])
    assert (args.inputs, args.output, args.model, args.events) == ([str(tmp_path / "scan.nrrd")], str(tmp_path / "out"),
                                                                  "m.json", "json")
    assert SegmentParameters.fromArgs(args) == params
    env = J.command_environment(str(ROOT), {"PYTHONPATH": "/elsewhere"})
    assert env["PYTHONPATH"].split(":") == [str(ROOT), "/elsewhere"]


def test_out_of_process_run_with_the_real_pipeline(scene, tmp_path, tiny_model_path):
    """Widget path without the widget: input file, the command line's process (real pipeline, tiny
    random model), its case folder, MRML nodes on the input grid."""
    m = GEOMETRIES["oblique"]
    volume, _ = add_volume(scene, m, [(center_ras(m, (-5, 0, 0)), 100), (center_ras(m, (5, 0, 0)), 100)],
                           name="CT 1/2: ear")
    logic = G.InnerEarSegLogic(scene)
    inputPath = logic.writeInput(volume, tmp_path / G.input_file_name(volume.GetName()))
    assert inputPath.name == "CT 1_2_ ear.nrrd"
    env = J.command_environment(str(G.library_parent()))
    params = G.library_parameters(SegmentParameters(device="cpu", smoothing=0.2))
    job = J.SegmentationJob(J.segment_command(sys.executable, inputPath, tmp_path / "out", tiny_model_path, params),
                            env)
    job.start()
    assert job.wait(timeout=300) == J.DONE, job.error
    outputs = logic.importResultFiles(tmp_path / "out" / G.case_name(inputPath), volume)
    segNode = outputs.segmentationNode
    assert segNode.GetNodeReference(slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()) is volume
    stats = json.loads((tmp_path / "out" / "CT 1_2_ ear" / "CT 1_2_ ear_stats.json").read_text())["stats"]
    assert outputs.tableNode.GetNumberOfRows() == len(stats) > 0
    assert not list((tmp_path / "out" / "CT 1_2_ ear").glob("*.stl"))  # Slicer builds its own surfaces
    assert not list((tmp_path / "out" / "CT 1_2_ ear").glob("*_preview.png"))  # which the panel never shows
    values, markups = G.read_measures(tmp_path / "out" / "CT 1_2_ ear")  # the panel's measures, as the process wrote
    table = G.add_measures(logic, segNode, values, markups)
    assert table.GetTable().GetNumberOfRows() == len({key for ear in values.values() for key in ear})


# --- first-use installation --------------------------------------------------------------------

def test_only_missing_requirements_are_installed_and_slicers_own_never(tmp_path):
    from InnerEarSegSlicerLib import dependencies as D
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy==0.0.1  # installed, other version: left alone\n# a comment\n\n"
                            "SimpleITK==9.9\nvtk\ntorch==2.0\ninneareseg-not-a-package>=1.0 # note\n")
    assert D.missing_requirements(requirements) == ["inneareseg-not-a-package>=1.0"]
    assert D.requirement_name("scikit-image>=0.20") == "scikit-image" and D.requirement_name("# x") is None


def test_requirements_found_beside_the_module_or_one_level_up(tmp_path):
    from InnerEarSegSlicerLib import dependencies as D
    module = tmp_path / "InnerEarSeg"
    module.mkdir()
    with pytest.raises(FileNotFoundError, match="requirements.txt"):
        D.find_requirements(module)
    (tmp_path / "requirements.txt").write_text("numpy\n")
    assert D.find_requirements(module) == tmp_path / "requirements.txt"  # source checkout
    (module / "requirements.txt").write_text("numpy\n")
    assert D.find_requirements(module) == module / "requirements.txt"  # built extension


def test_default_model_is_where_the_library_looks():
    from InnerEarSegLib.model.model_card import DEFAULT_MODEL
    assert G.default_model_card() == DEFAULT_MODEL


def test_model_card_summary(tmp_path):
    card = {"name": "m", "version": "1.2", "training": {"segmenter": {
        "synthetic": True, "cases": 0, "steps": 500, "validation": {"dice_mean": 0.8123, "note": "x"}}}}
    (tmp_path / "m.json").write_text(json.dumps(card))
    text = G.model_card_summary(tmp_path / "m.pt")
    assert text.splitlines() == ["m 1.2", "segmenter: trained on synthetic data, 500 steps",
                                 "  validation: dice_mean 0.812"]
    assert G.model_card_summary(tmp_path / "missing.json") == f"Model card not found: {tmp_path / 'missing.json'}"
    (tmp_path / "bad.json").write_text("{")
    assert G.model_card_summary(tmp_path / "bad.json").startswith(f"Cannot read the model card {tmp_path / 'bad.json'}")
