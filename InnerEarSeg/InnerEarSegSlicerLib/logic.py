"""MRML logic: run InnerEarSeg on a volume node and turn the result into Slicer nodes.

No Qt here, so the same code runs inside Slicer and, for tests, in plain Python with
``slicer-core``. What a run adds to the scene: a segmentation node (one segment per
structure and side, named, coloured and coded as in ``InnerEarSegLib.core.labels``) whose
reference geometry is the input volume, a closed-surface representation, model nodes in
a subject-hierarchy folder and a table of statistics, whose columns are those of the command
line's ``NAME_stats.csv`` (``InnerEarSegLib.outputs.write.csv_rows``; exported by ``write.write_csv``).
If anything fails the scene is left as it was. Running again into the same segmentation replaces the models, folder and table of
the earlier run instead of adding more. Geometry: SimpleITK images are LPS, Slicer's world is RAS; the conversion is
the single flip ``LPS_TO_RAS`` of the first two axes, applied to whole 4x4 matrices.
"""
import dataclasses
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy

from InnerEarSegLib.core import labels as L
from InnerEarSegLib.core.errors import Cancelled, InputError
from InnerEarSegLib.core.result import SegmentationResult

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])  # its own inverse
SIDE_BY_CODE = {1: "right", 2: "left"}  # values of SegmentationResult.sides
TERMINOLOGY_CONTEXT, ANATOMIC_CONTEXT = L.TERMINOLOGY_CONTEXT, L.ANATOMIC_CONTEXT  # see Resources/InnerEarSeg.term.json
DEFAULT_SMOOTHING = 0.5
BINARY_LABELMAP = "Binary labelmap"
# references from a segmentation node to what the last run made for it, replaced by the next run
STATISTICS_ROLE, SURFACE_ROLE = "InnerEarSegStatistics", "InnerEarSegSurface"
STATS_ATTRIBUTE = "InnerEarSeg.statsRows"  # the statistics table's rows as measured (JSON), for the CSV export


@dataclass
class Outputs:
    """What one run added to the scene."""

    segmentationNode: object
    tableNode: Optional[object]
    modelsFolderItemId: int  # 0 when no surfaces were made
    result: SegmentationResult


# --- geometry -------------------------------------------------------------------------------

def volume_ijk_to_ras(volumeNode) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def image_ijk_to_ras(image: sitk.Image) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = np.array(image.GetDirection(), float).reshape(3, 3) @ np.diag(image.GetSpacing())
    m[:3, 3] = image.GetOrigin()
    return LPS_TO_RAS @ m


def volume_to_image(volumeNode) -> sitk.Image:
    """The volume's voxels as a SimpleITK image with the same geometry, in LPS."""
    imageData = volumeNode.GetImageData() if volumeNode else None
    name = volumeNode.GetName() if volumeNode else None
    if imageData is None or imageData.GetPointData().GetScalars() is None:
        raise InputError(name, "the volume has no voxels")
    if imageData.GetNumberOfScalarComponents() != 1:
        raise InputError(name, f"{imageData.GetNumberOfScalarComponents()} components per voxel; "
                               "a single-component (scalar) volume is needed")
    dims = imageData.GetDimensions()
    array = vtk_to_numpy(imageData.GetPointData().GetScalars()).reshape(dims[::-1])
    image = sitk.GetImageFromArray(array.copy())
    ijkToLps = LPS_TO_RAS @ volume_ijk_to_ras(volumeNode)
    spacing = np.linalg.norm(ijkToLps[:3, :3], axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((ijkToLps[:3, :3] / spacing).ravel().tolist())
    image.SetOrigin(ijkToLps[:3, 3].tolist())
    return image


def image_to_volume(image: sitk.Image, scene, name: str):
    """A new scalar volume node holding a SimpleITK image, on the same physical grid."""
    array = sitk.GetArrayViewFromImage(image)
    imageData = vtk.vtkImageData()
    imageData.SetDimensions(*image.GetSize())
    imageData.GetPointData().SetScalars(numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=True))
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetAndObserveImageData(imageData)
    node.SetIJKToRASMatrix(_vtk_matrix(image_ijk_to_ras(image)))
    node.CreateDefaultDisplayNodes()
    return node


def _vtk_matrix(array: np.ndarray):
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, array[r, c])
    return matrix


def check_same_grid(image: sitk.Image, volumeNode) -> None:
    """Refuse a result that is not on the input's grid: geometry must never drift silently."""
    dims = volumeNode.GetImageData().GetDimensions()
    a, b = image_ijk_to_ras(image), volume_ijk_to_ras(volumeNode)
    if tuple(image.GetSize()) != tuple(dims) or not np.allclose(a, b, atol=1e-4 * max(1.0, np.abs(b).max())):
        raise ValueError(f"the result's grid (size {image.GetSize()}) differs from the volume "
                         f"'{volumeNode.GetName()}' (size {dims}); it cannot be overlaid")


def oriented_mask(mask_zyx: np.ndarray, ijkToRas: np.ndarray):
    """A binary labelmap cropped to the mask's bounding box, placed by ``ijkToRas``; None if empty."""
    nz = np.nonzero(mask_zyx)
    if not nz[0].size:
        return None
    (k0, j0, i0), (k1, j1, i1) = [min(a) for a in nz], [max(a) for a in nz]
    crop = np.ascontiguousarray(mask_zyx[k0:k1 + 1, j0:j1 + 1, i0:i1 + 1], dtype=np.uint8)
    labelmap = slicer.vtkOrientedImageData()
    labelmap.SetExtent(i0, i1, j0, j1, k0, k1)
    labelmap.GetPointData().SetScalars(numpy_to_vtk(crop.ravel(), deep=True, array_type=vtk.VTK_UNSIGNED_CHAR))
    labelmap.SetImageToWorldMatrix(_vtk_matrix(ijkToRas))
    return labelmap


# --- naming and coding ----------------------------------------------------------------------

def terminology(structure: L.Structure, side: Optional[str]) -> str:
    """Slicer's serialized terminology entry: context~category~type~type modifier~
    anatomic context~region~region modifier, each code as ``scheme^value^meaning``."""
    def code(c):
        return "^".join(c) if c else "^^"
    return "~".join([TERMINOLOGY_CONTEXT, code(L.ANATOMIC_CATEGORY), code(structure.code), code(None),
                     ANATOMIC_CONTEXT, code(L.INNER_EAR), code(L.SIDE_CODES.get(side))])


def segment_id(structure: L.Structure, side: Optional[str]) -> str:
    return L.segment_id(structure.key, side) if side else structure.key


def segment_name(structure: L.Structure, side: Optional[str]) -> str:
    return L.segment_name(structure.key, side) if side else structure.name


# --- model card -----------------------------------------------------------------------------

def library_parent() -> Path:
    """The folder holding the ``InnerEarSegLib`` package (for the command's PYTHONPATH)."""
    import InnerEarSegLib
    return Path(InnerEarSegLib.__file__).resolve().parent.parent


def default_model_card() -> Path:
    """The bundled model card (``InnerEarSegLib.core.resources`` does not import torch)."""
    from InnerEarSegLib.core.resources import default_model
    return default_model()


def chosen_model(path) -> Optional[str]:
    """The model file the user chose, or None when the field is empty (the bundled model).

    A path that is not a file is an error: quietly using the bundled model instead would give
    results from a model the user did not choose."""
    if not path or not str(path).strip():
        return None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}; clear the field to use the bundled model")
    return str(path)


def model_card_summary(path=None) -> str:
    """A few lines about a model for the panel: name, version, training data and validation."""
    card_path = Path(path) if path else default_model_card()
    card_path = card_path if card_path.suffix == ".json" else card_path.with_suffix(".json")
    try:
        card = json.loads(card_path.read_text())
    except FileNotFoundError:
        return f"Model card not found: {card_path}"
    except (OSError, ValueError) as e:
        return f"Cannot read the model card {card_path}: {e}"
    lines = [f"{card.get('name', card_path.stem)} {card.get('version', '')}".strip()]
    if card.get("format") == "InnerEarSeg stack model card 1":  # from train-stack: any labels (docs/stacks.md)
        return "\n".join(lines + stack_card_lines(card))
    for stage, info in card.get("training", {}).items():
        data = "synthetic data" if info.get("synthetic") and not info.get("cases") else \
            f"{info.get('cases', 0)} scans" + (" + synthetic data" if info.get("synthetic") else "")
        lines.append(f"{stage}: trained on {data}, {info.get('steps', '?')} steps")
        validation = info.get("validation") or {}
        scores = ", ".join(f"{k} {v:.3f}" for k, v in validation.items() if isinstance(v, (int, float)))
        if scores:
            lines.append(f"  validation: {scores}")
    return "\n".join(lines)


def stack_card_lines(card: dict) -> List[str]:
    """The panel's lines for a stack model: its labels, dimensions, training and validation."""
    training = card.get("training") or {}
    lines = ["labels: " + ", ".join(f"{lab['value']} {lab['name']}" for lab in card.get("labels", [])),
             f"{card.get('architecture', {}).get('spatial_dims', '?')}D stack model, trained on "
             f"{len(training.get('cases', []))} stacks, {training.get('steps', '?')} steps"]
    scores = ((card.get("validation") or {}).get("labels") or {})
    if scores:
        lines.append("  validation Dice: " + ", ".join(f"{k} {v['dice']:.3f}" for k, v in scores.items()))
    return lines


# --- statistics table -----------------------------------------------------------------------

def stats_columns(stats: List[dict]):
    """(column name, values) pairs, the columns of the command line's CSV (``write.csv_rows``): one
    per scalar key, one per component of a vector key (``centroid_ras`` -> ``centroid_ras_x/_y/_z``);
    missing is None."""
    from InnerEarSegLib.outputs.write import csv_rows
    rows = csv_rows(stats)
    return [(key, [row.get(key) for row in rows]) for key in dict.fromkeys(k for row in rows for k in row)]


def fill_table(tableNode, stats: List[dict]) -> None:
    """Numeric columns as numbers (missing: NaN), others as text (missing: empty); the rows as
    measured are kept in the node's ``STATS_ATTRIBUTE`` for ``exportStatistics``."""
    from InnerEarSegLib.outputs.write import csv_rows
    table = tableNode.GetTable()
    table.Initialize()
    tableNode.SetAttribute(STATS_ATTRIBUTE, json.dumps(csv_rows(stats)))
    for name, values in stats_columns(stats):
        present = [v for v in values if v is not None]
        numeric = bool(present) and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                                        for v in present)
        array = vtk.vtkDoubleArray() if numeric else vtk.vtkStringArray()
        array.SetName(name)
        for v in values:
            array.InsertNextValue((float("nan") if v is None else float(v)) if numeric else ("" if v is None else str(v)))
        table.AddColumn(array)
    tableNode.Modified()


def table_rows(tableNode) -> List[dict]:
    """A table node's rows as {column: value}; NaN and empty cells are None."""
    table = tableNode.GetTable()
    columns = [table.GetColumn(c) for c in range(table.GetNumberOfColumns())]
    rows = []
    for r in range(table.GetNumberOfRows()):
        values = [c.GetValue(r) for c in columns]
        rows.append({c.GetName(): None if v == "" or (isinstance(v, float) and np.isnan(v)) else v
                     for c, v in zip(columns, values)})
    return rows


# --- the command line's files -----------------------------------------------------------------

def input_file_name(volumeName: str) -> str:
    """The file name the volume is written to for the command line: the volume's name, what a
    file name cannot hold replaced, so the command's messages and case folder carry that name."""
    return (re.sub(r"[^\w\- ]+", "_", volumeName or "").strip(" _") or "volume") + ".nrrd"


def named_error(error: str, inputPath, volumeName: str) -> str:
    """The command's error message with the volume's name where it names the temporary input file."""
    return error.replace(str(inputPath), volumeName)


def case_name(inputPath) -> str:
    """The name of the command line's case folder for ``inputPath`` (``InnerEarSegLib.core.read.case_name``)."""
    from InnerEarSegLib.core.read import case_name as library_case_name
    return library_case_name(inputPath)


def read_case_folder(folder) -> SegmentationResult:
    """The result ``innerear-seg segment`` wrote into ``folder`` (``OUT/<name>/``): the labels, the
    sides from the ``.seg.nrrd`` label values (right 1-3, left 4-6; all 0 when the sides were not
    split: statistics rows of side ``both`` only), the statistics, warnings (and why the planning
    measures failed, if they did) and model name. The measures themselves: ``read_measures``."""
    from InnerEarSegLib.outputs.write import SEG_LABEL_OFFSET
    folder = Path(folder)
    name = folder.name
    labels = sitk.ReadImage(str(folder / f"{name}_labels.nii.gz"), sitk.sitkUInt8)
    info = json.loads((folder / f"{name}_stats.json").read_text())
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{name}.seg.nrrd"), sitk.sitkUInt8))
    if seg.shape != sitk.GetArrayViewFromImage(labels).shape:
        raise ValueError(f"{folder}: {name}.seg.nrrd and {name}_labels.nii.gz differ in size")
    split = any(row.get("side") in SIDE_BY_CODE.values() for row in info.get("stats", []))
    codes = np.where(seg > SEG_LABEL_OFFSET["left"], 2, np.where(seg > 0, 1, 0)) if split else np.zeros_like(seg)
    sides = sitk.GetImageFromArray(codes.astype(np.uint8))
    sides.CopyInformation(labels)
    failed = info.get("measures", {}).get("error")  # the planning measures failed (``read_measures``)
    return SegmentationResult(labels=labels, sides=sides, stats=info.get("stats", []),
                              warnings=info.get("warnings", []) + ([f"planning measures {failed}"] if failed else []),
                              model_name=info.get("model") or "")


# --- the logic ------------------------------------------------------------------------------

def _default_segmenter(*args, **kwargs):
    from InnerEarSegLib.pipeline import segment
    return segment(*args, **kwargs)


def library_parameters(parameters):
    """The parameters the library gets from Slicer: the same, but no surfaces of its own (Slicer
    builds them from the segmentation, with the same ``smoothing``) and no preview PNG (the panel
    never shows it; rendering it costs seconds per scan)."""
    if dataclasses.is_dataclass(parameters) and hasattr(parameters, "surfaces"):
        return dataclasses.replace(parameters, surfaces=False, preview=False)
    return parameters


class InnerEarSegLogic:
    """Runs the library (``segmenter``, injectable) and builds the MRML nodes of a result."""

    def __init__(self, scene=None, segmenter: Optional[Callable] = None):
        self.scene = scene if scene is not None else slicer.mrmlScene
        self.segmenter = segmenter or _default_segmenter
        if hasattr(slicer, "modules"):  # inside Slicer
            self.segmentationsLogic = slicer.modules.segmentations.logic()
        else:  # slicer-core: what Slicer's modules would do, node classes and subject hierarchy items
            self.segmentationsLogic = slicer.vtkSlicerSegmentationsModuleLogic()
            self.segmentationsLogic.SetMRMLScene(self.scene)
            self.subjectHierarchyLogic = slicer.vtkSlicerSubjectHierarchyModuleLogic()
            self.subjectHierarchyLogic.SetMRMLScene(self.scene)

    def segment(self, inputVolumeNode, parameters=None, model=None, progress=None, cancel=None):
        """Run the library on a volume node; returns its SegmentationResult (nothing added to the scene)."""
        image = volume_to_image(inputVolumeNode)
        return self.segmenter(image, model=model, params=library_parameters(parameters), progress=progress,
                              cancel=cancel, source=inputVolumeNode.GetName())

    def process(self, inputVolumeNode, outputSegmentationNode=None, parameters=None, model=None,
                progress=None, cancel=None) -> Outputs:
        """Segment a volume in this process and add the result to the scene."""
        result = self.segment(inputVolumeNode, parameters, model, progress, cancel)
        return self.importResult(result, inputVolumeNode, outputSegmentationNode,
                                 smoothing=getattr(parameters, "smoothing", DEFAULT_SMOOTHING),
                                 surfaces=getattr(parameters, "surfaces", True))

    def importResultFiles(self, caseFolder, inputVolumeNode, outputSegmentationNode=None,
                          smoothing=DEFAULT_SMOOTHING, surfaces=True) -> Outputs:
        """Add what the command line wrote into ``caseFolder`` (``OUT/<name>/``) to the scene
        (the out-of-process path; ``read_case_folder``)."""
        return self.importResult(read_case_folder(caseFolder), inputVolumeNode, outputSegmentationNode, smoothing,
                                 surfaces)

    def importResult(self, result: SegmentationResult, inputVolumeNode, outputSegmentationNode=None,
                     smoothing=DEFAULT_SMOOTHING, surfaces=True) -> Outputs:
        """Build the segmentation, surfaces, models and table; on failure undo every change."""
        check_same_grid(result.labels, inputVolumeNode)
        scene = self.scene
        created, folderId, backup = [], 0, None
        segNode = outputSegmentationNode
        previous = self._madeFor(segNode) if segNode is not None else ([], None)
        if segNode is None:
            segNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode",
                                              scene.GenerateUniqueName(f"{inputVolumeNode.GetName()} inner ear"))
            created.append(segNode)
        else:
            backup = slicer.vtkSegmentation()
            backup.DeepCopy(segNode.GetSegmentation())
        if segNode.GetDisplayNode() is None:
            segNode.CreateDefaultDisplayNodes()
            if backup is not None:
                created.append(segNode.GetDisplayNode())
        try:
            segmentIds = self._fillSegmentation(segNode, result, inputVolumeNode)
            if surfaces:
                segNode.GetSegmentation().SetConversionParameter("Smoothing factor", str(smoothing))
                segNode.CreateClosedSurfaceRepresentation()
                shNode = scene.GetSubjectHierarchyNode()
                folderId = shNode.CreateFolderItem(shNode.GetSceneItemID(), f"{segNode.GetName()} surfaces")
                self._exportModels(segNode, segmentIds, folderId, created)
            tableNode = None
            if result.stats:
                tableNode = scene.AddNewNodeByClass("vtkMRMLTableNode",
                                                    scene.GenerateUniqueName(f"{segNode.GetName()} statistics"))
                created.append(tableNode)
                fill_table(tableNode, result.stats)
        except BaseException:
            for node in created:
                self.removeNode(node)
            if folderId:
                scene.GetSubjectHierarchyNode().RemoveItem(folderId, False, False)
            if backup is not None:
                segNode.GetSegmentation().DeepCopy(backup)
            raise
        self._replaceMade(segNode, previous, [n for n in created if n.IsA("vtkMRMLModelNode")], tableNode)
        return Outputs(segNode, tableNode, folderId, result)

    def _madeFor(self, segNode):
        """(model nodes, table node) an earlier run made for ``segNode``."""
        models = [segNode.GetNthNodeReference(SURFACE_ROLE, n)
                  for n in range(segNode.GetNumberOfNodeReferences(SURFACE_ROLE))]
        return [m for m in models if m is not None], segNode.GetNodeReference(STATISTICS_ROLE)

    def _replaceMade(self, segNode, previous, models, tableNode) -> None:
        """Remove what an earlier run made for ``segNode`` (models, their folder, the table), so
        re-running never piles up stale copies; remember what this run made."""
        oldModels, oldTable = previous
        shNode = self.scene.GetSubjectHierarchyNode()
        folders = {shNode.GetItemParent(shNode.GetItemByDataNode(m)) for m in oldModels}
        for node in oldModels + ([oldTable] if oldTable is not None else []):
            self.removeNode(node)
        for folder in folders - {0, shNode.GetSceneItemID()}:
            if shNode.GetNumberOfItemChildren(folder) == 0:
                shNode.RemoveItem(folder, False, False)
        segNode.RemoveNodeReferenceIDs(SURFACE_ROLE)
        for model in models:
            segNode.AddNodeReferenceID(SURFACE_ROLE, model.GetID())
        segNode.SetNodeReferenceID(STATISTICS_ROLE, tableNode.GetID() if tableNode is not None else None)

    def removeNode(self, node) -> None:
        """Remove a node with its display nodes and subject-hierarchy item (plain slicer-core
        removes neither by itself)."""
        shNode = self.scene.GetSubjectHierarchyNode()
        item = shNode.GetItemByDataNode(node)
        if item:
            shNode.RemoveItem(item, False, False)
        if node.IsA("vtkMRMLDisplayableNode"):
            for n in reversed(range(node.GetNumberOfDisplayNodes())):
                self.scene.RemoveNode(node.GetNthDisplayNode(n))
        self.scene.RemoveNode(node)

    def _fillSegmentation(self, segNode, result: SegmentationResult, volumeNode) -> List[str]:
        """One segment per structure and side present; existing segments with the same ids are
        replaced, others kept. Returns the ids written."""
        labels = sitk.GetArrayViewFromImage(result.labels)
        sides = sitk.GetArrayViewFromImage(result.sides)
        ijkToRas = image_ijk_to_ras(result.labels)
        segNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        segNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
        segmentation = segNode.GetSegmentation()
        if segmentation.GetNumberOfSegments() == 0:
            segmentation.SetSourceRepresentationName(BINARY_LABELMAP)
        written = []
        for structure in L.STRUCTURES:
            inStructure = labels == structure.value
            for code in np.unique(sides[inStructure]):
                side = SIDE_BY_CODE.get(int(code))
                labelmap = oriented_mask(inStructure & (sides == code), ijkToRas)
                segment = slicer.vtkSegment()
                segment.SetName(segment_name(structure, side))
                segment.SetColor(*structure.color)
                segment.SetTerminology(terminology(structure, side))
                segment.AddRepresentation(BINARY_LABELMAP, labelmap)
                sid = segment_id(structure, side)
                if segmentation.GetSegment(sid):
                    segmentation.RemoveSegment(sid)
                segmentation.AddSegment(segment, sid)
                written.append(sid)
        return written

    def _exportModels(self, segNode, segmentIds: List[str], folderId: int, created: list) -> None:
        """One model node per segment's closed surface, in a subject-hierarchy folder; hidden,
        since the segmentation already shows the same surfaces."""
        shNode = self.scene.GetSubjectHierarchyNode()
        for sid in segmentIds:
            segment = segNode.GetSegmentation().GetSegment(sid)
            model = self.scene.AddNewNodeByClass("vtkMRMLModelNode", segment.GetName())
            created.append(model)
            model.CreateDefaultDisplayNodes()
            model.GetDisplayNode().SetVisibility(False)
            model.SetAndObserveTransformNodeID(segNode.GetTransformNodeID())
            if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentToRepresentationNode(segment, model):
                raise RuntimeError(f"could not export the surface of segment '{segment.GetName()}'")
            # Slicer's subject hierarchy plugins make the item; plain slicer-core does not
            item = shNode.GetItemByDataNode(model) or shNode.CreateItem(folderId, model)
            shNode.SetItemParent(item, folderId)

    # --- batch and files ------------------------------------------------------------------------

    def writeInput(self, volumeNode, path) -> Path:
        """Write the volume for the command line's process, geometry in the file header (LPS)."""
        sitk.WriteImage(volume_to_image(volumeNode), str(path), True)
        return Path(path)

    def saveSegmentation(self, segNode, path) -> Path:
        """Write a ``.seg.nrrd`` through a unique temporary name, so a failure leaves no partial file."""
        from InnerEarSegLib.outputs.write import atomic_path
        storage = self.scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
        try:
            with atomic_path(path) as tmp:
                storage.SetFileName(str(tmp))
                if not storage.WriteData(segNode):
                    raise OSError(f"{path}: could not write the segmentation")
        finally:
            self.scene.RemoveNode(storage)
        return Path(path)

    def exportStatistics(self, tableNode, path) -> Path:
        """Write a statistics table as the command line's ``NAME_stats.csv`` (same columns, same
        writer: ``write.write_csv``), through a unique temporary name. The rows are those measured
        (``STATS_ATTRIBUTE``); a table without them is written as it is shown."""
        from InnerEarSegLib.outputs.write import atomic_path, write_csv
        stored = tableNode.GetAttribute(STATS_ATTRIBUTE)
        rows = json.loads(stored) if stored else table_rows(tableNode)
        with atomic_path(path) as tmp:
            write_csv(tmp, rows)
        return Path(path)

    def exportSurfaces(self, segNode, folder, fileFormat="STL") -> None:
        """Write each segment's closed surface (STL or OBJ, LPS coordinates as Slicer does)."""
        segNode.CreateClosedSurfaceRepresentation()
        ids = vtk.vtkStringArray()
        segNode.GetSegmentation().GetSegmentIDs(ids)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsClosedSurfaceRepresentationToFiles(
                str(folder), segNode, ids, fileFormat, True, 1.0, False):
            raise OSError(f"{folder}: could not write the {fileFormat} surfaces")

    def processFiles(self, inputs, outputFolder, parameters=None, model=None, progress=None, cancel=None):
        """Batch, with the command line's outputs: each scan of ``inputs`` (files, folders of scans,
        DICOM series folders) is segmented by this logic's segmenter and written by the library's
        writer into ``outputFolder/<name>/``, the files ``innerear-seg segment`` writes, and
        ``outputFolder/cohort_summary.csv`` (``cohort.write_summary``) lists the scans. Nothing is
        added to the scene. Returns ``(path, error or None)`` per scan; one bad scan does not stop
        the others. Inputs sharing a case name are refused (InputError naming them) before any work."""
        from InnerEarSegLib.cohort import write_summary
        from InnerEarSegLib.core.read import check_unique_case_names, list_inputs
        scans = list_inputs(inputs if isinstance(inputs, (list, tuple)) else [inputs])
        check_unique_case_names(scans)  # before any work: their files would overwrite each other
        Path(outputFolder).mkdir(parents=True, exist_ok=True)
        reports = []
        for path in scans:
            reports.append(self.processFile(path, outputFolder, parameters, model, progress, cancel))
            write_summary(outputFolder, reports)
        return [(path, report.error or None) for path, report in zip(scans, reports)]

    def processFile(self, path, outputFolder, parameters=None, model=None, progress=None, cancel=None):
        """Segment one scan file into ``outputFolder/<name>/`` as the command line does; its
        ``CaseReport``, whose error names the file and the cause (Cancel still stops)."""
        from InnerEarSegLib.core.read import case_name, read_image
        from InnerEarSegLib.outputs.write import formats_for, write_outputs
        from InnerEarSegLib.pipeline import CaseReport
        name, start = case_name(path), time.perf_counter()
        try:
            image = read_image(path)
            result = self.segmenter(image, model=model, params=parameters, progress=progress, cancel=cancel,
                                    source=str(path))
            outputs = write_outputs(result, outputFolder, name, image, formats_for(parameters))
            report = CaseReport(str(path), name, True, "", outputs, 0.0, result.stats, result.warnings)
        except Cancelled:
            raise
        except Exception as e:  # one failing scan must not lose the others
            report = CaseReport(str(path), name, False, str(e) if str(path) in str(e) else f"{path}: {e}")
        report.seconds = time.perf_counter() - start
        return report


# --- surgical-planning measures (InnerEarSegLib.outputs.planning) -------------------------------------

MEASURES_ROLE = "InnerEarSegMeasures"
MARKUP_CLASSES = {"Fiducial": "vtkMRMLMarkupsFiducialNode", "Line": "vtkMRMLMarkupsLineNode",
                  "Curve": "vtkMRMLMarkupsCurveNode"}


def measures_rows(values_per_side: dict) -> List[dict]:
    """One row per measure: its name and unit, then per ear the value and its status.
    values_per_side: side -> {measure: {value, unit, status}} (``read_measures``, ``result_measures``)."""
    rows = {}
    for side, values in values_per_side.items():
        for key, m in values.items():
            row = rows.setdefault(key, {"measure": key, "unit": m["unit"]})
            row[side], row[f"{side} status"] = m["value"], m["status"]
    return list(rows.values())


def read_measures(folder):
    """(values per side, markups document) that ``innerear-seg segment`` measured into ``folder``:
    the ``values`` of each ear in the ``measures`` block of ``NAME_stats.json`` and the document of
    ``NAME_measures.mrk.json`` (``planning.markups_document``). Measures that failed there give
    no values and no markups (``read_case_folder`` adds why to the warnings)."""
    folder = Path(folder)
    block = json.loads((folder / f"{folder.name}_stats.json").read_text()).get("measures", {})
    markups = json.loads((folder / f"{folder.name}_measures.mrk.json").read_text())
    return {side: ear["values"] for side, ear in block.get("ears", {}).items()}, markups


def result_measures(result: SegmentationResult):
    """(values per side, markups document) of ``result``, measured here (the in-process path;
    ``read_measures`` reads what the command line measured)."""
    from InnerEarSegLib.outputs import planning
    per_side = planning.measures_for_result(result)
    return {side: ear["values"] for side, ear in per_side.items()}, planning.markups_document(per_side)


def add_measures(logic, segNode, values_per_side: dict, markups_doc: dict):
    """Add a table of the measures (``measures_rows``) and the markups of ``markups_doc`` (the
    landmarks, the A and B lines, the modiolar axis and the lateral wall; LPS in the document, RAS
    in the scene) as locked markups; replaces what an earlier run added for ``segNode``. Returns the
    table node. ``read_measures`` or ``result_measures`` give the two."""
    scene = logic.scene
    for n in reversed(range(segNode.GetNumberOfNodeReferences(MEASURES_ROLE))):
        old = segNode.GetNthNodeReference(MEASURES_ROLE, n)
        if old is not None:
            logic.removeNode(old)
    segNode.RemoveNodeReferenceIDs(MEASURES_ROLE)
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(f"{segNode.GetName()} measures"))
    fill_table(table, measures_rows(values_per_side))
    segNode.AddNodeReferenceID(MEASURES_ROLE, table.GetID())
    for markup in markups_doc["markups"]:
        node = scene.AddNewNodeByClass(MARKUP_CLASSES[markup["type"]], markup["name"])
        for point in markup["controlPoints"]:
            x, y, z = point["position"]   # LPS in the file, RAS in the scene
            node.AddControlPoint(vtk.vtkVector3d(-x, -y, z), point["label"])
        node.SetLocked(True)
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        if display is not None:
            display.SetSelectedColor(markup["display"]["color"])
            display.SetColor(markup["display"]["color"])
            display.SetPointLabelsVisibility(markup["type"] == "Fiducial")
        segNode.AddNodeReferenceID(MEASURES_ROLE, node.GetID())
    return table
