"""Write one case's result files into ``OUTDIR/NAME/``, all or nothing.

Files (``NAME`` is the case name):
  ``NAME.seg.nrrd``          Slicer segmentation, one segment per structure and side (names,
                             colours, terminology), label values 1-3 right, 4-6 left, on the input grid.
  ``NAME_labels.nii.gz``     0 background, 1 cochlea, 2 vestibule, 3 semicircular canals, on the input grid.
  ``NAME_stats.json/.csv``   the statistics rows; the JSON adds input, model, timings, warnings.
  ``NAME_<structure>_<side>.stl/.vtp``  surfaces in LPS mm (as Slicer writes STL by default; the
                             files say ``SPACE=LPS`` the way Slicer marks it, so Slicer loads them in place).
  ``NAME_preview.png``       orthogonal planes and a 3D view of each ear.

Every file is first written under a hidden temporary name in the same folder and renamed only
when all are written. If anything fails, the temporary files and every output of this case
(including those of an earlier run) are removed, so the folder never mixes runs; the input is
only read.
"""
import csv
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, List

import numpy as np
import SimpleITK as sitk

from . import __version__
from . import labels as L
from .errors import InnerEarSegError, OutputError

FORMATS = ("seg", "labels", "json", "csv", "stl", "vtp", "preview")
TMP_PREFIX = ".tmp-"
COORDINATE_NOTE = ("centroid_lps, bbox_min_lps, bbox_max_lps and the STL/VTP surfaces are in LPS millimetres "
                   "(DICOM/ITK patient coordinates; Slicer's default for STL, marked SPACE=LPS in the files); "
                   "centroid_ras is the same point in RAS (Slicer's world coordinates)")
# Terminology context names written in the segment tags; the module's .term.json must use the same.
TERMINOLOGY_CONTEXT = "Segmentation category and type - InnerEarSeg"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
SEG_LABEL_OFFSET = {"right": 0, "left": 3}  # seg.nrrd label value = structure value + offset


def seg_label_value(structure_key: str, side: str) -> int:
    """Label value of a structure and side in ``NAME.seg.nrrd`` (right 1-3, left 4-6)."""
    return L.BY_KEY[structure_key].value + SEG_LABEL_OFFSET[side]


def output_names(name: str) -> List[str]:
    """Every file name this writer may produce for a case, for clean-up of stale or partial runs."""
    names = [f"{name}.seg.nrrd", f"{name}_labels.nii.gz", f"{name}_stats.json", f"{name}_stats.csv",
             f"{name}_preview.png"]
    for s in L.STRUCTURES:
        for side in L.SIDES:
            names += [f"{name}_{L.segment_id(s.key, side)}.stl", f"{name}_{L.segment_id(s.key, side)}.vtp"]
    return names


def _plain(value):
    """JSON/CSV-friendly copy: numpy values to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def sides_present(result) -> List[str]:
    """Sides with any labelled voxel, in ``labels.SIDES`` order."""
    sides = sitk.GetArrayViewFromImage(result.sides)
    found = sitk.GetArrayViewFromImage(result.labels) > 0
    return [side for code, side in ((1, "right"), (2, "left")) if np.any(found & (sides == code))]


def checked_labels(result, input_image) -> sitk.Image:
    """The labels as UInt8, with the input's geometry copied bit for bit after checking it matches."""
    labels = sitk.Cast(result.labels, sitk.sitkUInt8)
    if input_image is not None:
        same = (labels.GetSize() == input_image.GetSize()
                and np.allclose(labels.GetSpacing(), input_image.GetSpacing(), rtol=1e-6, atol=1e-9)
                and np.allclose(labels.GetOrigin(), input_image.GetOrigin(), rtol=1e-6, atol=1e-6)
                and np.allclose(labels.GetDirection(), input_image.GetDirection(), atol=1e-6))
        if not same:
            raise ValueError("the labels are not on the input image's grid; refusing to write misplaced results")
        labels.CopyInformation(input_image)
    return labels


def write_seg_nrrd(path, labels: sitk.Image, sides: sitk.Image, present_sides: Iterable[str]) -> None:
    """Slicer ``.seg.nrrd``: one layer, a segment per structure and side, with names, colours, terminology."""
    import slicerio
    from .surface import index_to_lps

    label_zyx = sitk.GetArrayFromImage(labels)
    left = sitk.GetArrayViewFromImage(sides) == 2
    voxels = np.where((label_zyx > 0) & left, label_zyx + SEG_LABEL_OFFSET["left"], label_zyx).astype(np.uint8)
    nx, ny, nz = labels.GetSize()
    segments = []
    for side in present_sides:
        for s in L.STRUCTURES:
            segments.append({
                "id": L.segment_id(s.key, side),
                "name": L.segment_name(s.key, side),
                "nameAutoGenerated": False,
                "color": list(s.color),
                "colorAutoGenerated": False,
                "labelValue": seg_label_value(s.key, side),
                "layer": 0,
                # the full extent for every segment: older Slicer versions crop a layer to its first segment's
                "extent": [0, nx - 1, 0, ny - 1, 0, nz - 1],
                "terminology": {
                    "contextName": TERMINOLOGY_CONTEXT,
                    "category": list(L.ANATOMIC_CATEGORY),
                    "type": list(s.code),
                    "anatomicContextName": ANATOMIC_CONTEXT,
                    "anatomicRegion": list(L.INNER_EAR),
                    "anatomicRegionModifier": list(L.SIDE_CODES[side]),
                },
            })
    segmentation = {
        "voxels": voxels.transpose(2, 1, 0),  # (i, j, k) as slicerio expects
        "ijkToLPS": index_to_lps(labels),
        "containedRepresentationNames": ["Binary labelmap"],
        "masterRepresentation": "Binary labelmap",
        "referenceImageExtentOffset": [0, 0, 0],
        "segments": segments,
    }
    slicerio.write_segmentation(str(path), segmentation, compression_level=6)


def stats_document(result, name: str, labels: sitk.Image) -> dict:
    return _plain({
        "format": "InnerEarSeg statistics 1",
        "case": name,
        "input": result.source,
        "model": result.model_name,
        "library_version": __version__,
        "coordinate_system": "LPS",
        "coordinate_note": COORDINATE_NOTE,
        "label_values": {str(s.value): s.name for s in L.STRUCTURES},
        "seg_nrrd_label_values": {L.segment_id(s.key, side): seg_label_value(s.key, side)
                                  for side in L.SIDES for s in L.STRUCTURES},
        "image": {"size": labels.GetSize(), "spacing": labels.GetSpacing(), "origin_lps": labels.GetOrigin(),
                  "direction": labels.GetDirection()},
        "ears": [asdict(e) for e in result.ears],
        "timings_s": result.timings,
        "warnings": result.warnings,
        "stats": result.stats,
    })


def csv_rows(stats: List[dict]) -> List[dict]:
    """Flatten vector values (centroids, bounding boxes) into ``key_x/_y/_z`` columns."""
    rows = []
    for row in _plain(stats):
        flat = {}
        for key, value in row.items():
            if isinstance(value, list):
                flat.update({f"{key}_{axis}": v for axis, v in zip("xyz", value)})
            else:
                flat[key] = value
        rows.append(flat)
    return rows


def write_csv(path, stats: List[dict]) -> None:
    rows = csv_rows(stats)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def write_stl(path, poly) -> None:
    from vtkmodules.vtkFiltersCore import vtkTriangleFilter
    from vtkmodules.vtkIOGeometry import vtkSTLWriter
    triangles = vtkTriangleFilter()
    triangles.SetInputData(poly)
    writer = vtkSTLWriter()
    writer.SetInputConnection(triangles.GetOutputPort())
    writer.SetFileName(str(path))
    writer.SetFileTypeToBinary()
    writer.SetHeader("InnerEarSeg output. SPACE=LPS")
    if writer.Write() != 1:
        raise OSError(f"VTK could not write {path}")


def write_vtp(path, poly) -> None:
    from vtkmodules.vtkCommonCore import vtkStringArray
    from vtkmodules.vtkCommonDataModel import vtkPolyData
    from vtkmodules.vtkIOXML import vtkXMLPolyDataWriter
    marked = vtkPolyData()
    marked.ShallowCopy(poly)  # the caller's surface keeps its own field data
    space = vtkStringArray()
    space.SetName("SPACE")  # what Slicer reads the coordinate system from in .vtp
    space.InsertNextValue("LPS")
    marked.GetFieldData().AddArray(space)
    writer = vtkXMLPolyDataWriter()
    writer.SetInputData(marked)
    writer.SetFileName(str(path))
    if writer.Write() != 1:
        raise OSError(f"VTK could not write {path}")


def _cause(error: Exception) -> str:
    """One line saying why: the OS reason, else the last line of the message (VTK/ITK messages are long)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    lines = str(error).strip().splitlines()
    return lines[-1] if lines else type(error).__name__


def _remove(paths) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def write_outputs(result, out_dir, name: str, input_image=None, formats=FORMATS) -> List[Path]:
    """Write ``result`` into ``out_dir/name/`` and return the written paths.

    ``input_image`` (the scan as read) fixes the output geometry and is drawn in the preview.
    Raises OutputError (naming the folder and the cause) when the folder or a file cannot be written.
    """
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown output formats {sorted(unknown)}; known: {', '.join(FORMATS)}")
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"invalid case name {name!r}")
    labels = checked_labels(result, input_image)
    case_dir = Path(out_dir) / name
    try:
        case_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(case_dir, f"cannot create the output folder ({e.strerror or e})") from e

    jobs = []  # (file name, writer taking the temporary path)
    if "seg" in formats:
        present = sides_present(result)
        jobs.append((f"{name}.seg.nrrd", lambda p: write_seg_nrrd(p, labels, result.sides, present)))
    if "labels" in formats:
        jobs.append((f"{name}_labels.nii.gz", lambda p: sitk.WriteImage(labels, str(p), True)))
    if "json" in formats:
        doc = stats_document(result, name, labels)
        jobs.append((f"{name}_stats.json", lambda p: p.write_text(json.dumps(doc, indent=2))))
    if "csv" in formats:
        jobs.append((f"{name}_stats.csv", lambda p: write_csv(p, result.stats)))
    for seg_id, poly in result.surfaces.items():
        if poly is None or poly.GetNumberOfCells() == 0:
            continue
        if "stl" in formats:
            jobs.append((f"{name}_{seg_id}.stl", lambda p, poly=poly: write_stl(p, poly)))
        if "vtp" in formats:
            jobs.append((f"{name}_{seg_id}.vtp", lambda p, poly=poly: write_vtp(p, poly)))
    if "preview" in formats:
        from .preview import render_preview
        jobs.append((f"{name}_preview.png", lambda p: render_preview(input_image, result, p)))

    finals = [case_dir / file_name for file_name, _ in jobs]
    temps = [case_dir / (TMP_PREFIX + file_name) for file_name, _ in jobs]
    current = case_dir
    try:
        for (file_name, write), tmp in zip(jobs, temps):
            current = case_dir / file_name
            write(tmp)
        for tmp, final in zip(temps, finals):
            current = final
            tmp.replace(final)
    except BaseException as e:
        _remove(temps)
        _remove(case_dir / n for n in output_names(name))
        if not any(case_dir.iterdir()):
            case_dir.rmdir()
        if isinstance(e, (OSError, RuntimeError)) and not isinstance(e, InnerEarSegError):
            raise OutputError(case_dir, f"cannot write {current.name} ({_cause(e)})") from e
        raise
    _remove(case_dir / n for n in set(output_names(name)) - {f.name for f in finals})  # stale, earlier run
    return finals
