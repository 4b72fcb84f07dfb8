"""Write one case's result files into ``OUTDIR/NAME/``, all or nothing.

Files (``NAME`` is the case name):
  ``NAME.seg.nrrd``          Slicer segmentation, one segment per structure and side (names,
                             colours, terminology), label values 1-3 right, 4-6 left, on the input grid.
  ``NAME_labels.nii.gz``     0 background, 1 cochlea, 2 vestibule, 3 semicircular canals, on the input grid.
  ``NAME_stats.json/.csv``   the statistics rows; the JSON adds input, model, timings, warnings.
  ``NAME_<structure>_<side>.stl/.vtp``  surfaces in LPS mm (as Slicer writes STL by default; the
                             files say ``SPACE=LPS`` the way Slicer marks it, so Slicer loads them in place).
  ``NAME_preview.png``       orthogonal planes, the cochlear view and a 3D view of each ear; not
                             written when the run's ``preview`` option is off (``formats_for``).
  ``NAME.seg.dcm``           DICOM Segmentation referencing the source series, for DICOM-series
                             inputs only (``dicom_seg``).

Every file is first written into a new hidden folder beside the case folder
(``OUTDIR/.NAME.tmp-XXXX``, unique per run); only when all are written does that folder replace
``OUTDIR/NAME`` (files of the user's own in the old folder are carried over, our outputs of an
earlier run are not). So a failed or interrupted run leaves the previous results as they were,
two runs into the same folder never delete each other's files (the last to finish wins, whole),
and the folder never mixes runs. The input is only read.
"""
import contextlib
import csv
import errno
import json
import math
import os
import stat
import shutil
import tempfile
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, List, Optional

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..core import labels as L
from ..core.errors import InnerEarSegError, OutputError, brief
from . import dicom_seg, planning

FORMATS = ("seg", "labels", "json", "csv", "stl", "vtp", "preview", "dicom_seg")
TMP_PREFIX = ".tmp-"  # hidden temporary files of earlier versions, never carried over
SWAP_ATTEMPTS = 20  # another run may swap its own folder in between ours; each retry moves it aside
COORDINATE_NOTE = ("centroid_lps, bbox_min_lps, bbox_max_lps and the STL/VTP surfaces are in LPS millimetres "
                   "(DICOM/ITK patient coordinates; Slicer's default for STL, marked SPACE=LPS in the files); "
                   "centroid_ras is the same point in RAS (Slicer's world coordinates)")
# Terminology context names written in the segment tags; the module's .term.json must use the same.
TERMINOLOGY_CONTEXT, ANATOMIC_CONTEXT = L.TERMINOLOGY_CONTEXT, L.ANATOMIC_CONTEXT
SEG_LABEL_OFFSET = {"right": 0, "left": 3, "both": 0}  # seg.nrrd label value = structure value + offset
ALL_SIDES = L.SIDES + ("both",)  # "both": sides not split (the pipeline's split_sides=False)


def seg_label_value(structure_key: str, side: str) -> int:
    """Label value of a structure and side in ``NAME.seg.nrrd`` (right 1-3, left 4-6, both 1-3)."""
    return L.BY_KEY[structure_key].value + SEG_LABEL_OFFSET[side]


def formats_for(params) -> tuple:
    """The formats a run writes: all, but the preview only when ``params.preview`` is on (None: the defaults)."""
    return tuple(f for f in FORMATS if f != "preview" or params is None or params.preview)


def output_names(name: str) -> List[str]:
    """Every file name this writer may produce for a case, for clean-up of stale or partial runs."""
    names = [f"{name}.seg.nrrd", f"{name}_labels.nii.gz", f"{name}_stats.json", f"{name}_stats.csv",
             f"{name}_preview.png", f"{name}{dicom_seg.SUFFIX}"]
    for s in L.STRUCTURES:
        for side in ALL_SIDES:
            names += [f"{name}_{L.segment_id(s.key, side)}.stl", f"{name}_{L.segment_id(s.key, side)}.vtp"]
    return names + planning.output_names(name)


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
    """Sides holding labels: ``right``/``left``, or ``both`` when the result has no side split."""
    from .surface import side_groups
    sides = sitk.GetArrayViewFromImage(result.sides) if result.sides is not None else None
    return [side for side, _ in side_groups(sitk.GetArrayViewFromImage(result.labels), sides)]


def segment_fields(structure: L.Structure, side: str) -> dict:
    """Name, colour and terminology of one segment, as Slicer stores them in a .seg.nrrd."""
    terminology = {"contextName": TERMINOLOGY_CONTEXT, "category": list(L.ANATOMIC_CATEGORY),
                   "type": list(structure.code), "anatomicContextName": ANATOMIC_CONTEXT,
                   "anatomicRegion": list(L.INNER_EAR)}
    if side in L.SIDE_CODES:
        terminology["anatomicRegionModifier"] = list(L.SIDE_CODES[side])
    return {"id": L.segment_id(structure.key, side),
            "name": L.segment_name(structure.key, side) if side in L.SIDE_CODES else structure.name,
            "nameAutoGenerated": False, "color": list(structure.color), "colorAutoGenerated": False,
            "labelValue": seg_label_value(structure.key, side), "terminology": terminology}


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


def write_seg_nrrd(path, labels: sitk.Image, sides, present_sides: Iterable[str]) -> None:
    """Slicer ``.seg.nrrd``: one layer, a segment per structure and side, with names, colours, terminology."""
    import slicerio
    from .surface import index_to_lps

    label_zyx = sitk.GetArrayFromImage(labels)
    left = (sitk.GetArrayViewFromImage(sides) == 2) if sides is not None else False
    voxels = np.where((label_zyx > 0) & left, label_zyx + SEG_LABEL_OFFSET["left"], label_zyx).astype(np.uint8)
    nx, ny, nz = labels.GetSize()
    # the full extent for every segment: older Slicer versions crop a layer to its first segment's
    segments = [dict(segment_fields(s, side), layer=0, extent=[0, nx - 1, 0, ny - 1, 0, nz - 1])
                for side in present_sides for s in L.STRUCTURES]
    segmentation = {
        "voxels": voxels.transpose(2, 1, 0),  # (i, j, k) as slicerio expects
        "ijkToLPS": index_to_lps(labels),
        "containedRepresentationNames": ["Binary labelmap"],
        "masterRepresentation": "Binary labelmap",
        "referenceImageExtentOffset": [0, 0, 0],
        "segments": segments,
    }
    slicerio.write_segmentation(str(path), segmentation, compression_level=6)


def stats_document(result, name: str, labels: sitk.Image, present_sides: Iterable[str]) -> dict:
    return _plain({
        "format": "InnerEarSeg statistics 1",
        "case": name,
        "input": result.source,
        "model": result.model_name,
        "modality": result.modality,
        "library_version": __version__,
        "coordinate_system": "LPS",
        "coordinate_note": COORDINATE_NOTE,
        "label_values": {str(s.value): s.name for s in L.STRUCTURES},
        "seg_nrrd_label_values": {L.segment_id(s.key, side): seg_label_value(s.key, side)
                                  for side in present_sides for s in L.STRUCTURES},
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


VTK_CAUSES = {"OutOfDiskSpaceError": (errno.ENOSPC, "No space left on device"),
              "CannotOpenFileError": (errno.EACCES, "cannot open the file for writing"),
              "FileNameError": (errno.EINVAL, "invalid file name")}


def run_vtk_writer(writer, path) -> None:
    """Run a VTK writer quietly; failure raises OSError with VTK's own reason (disk full,
    cannot open...), since VTK reports it only as an error code and a line on stderr."""
    from vtkmodules.vtkCommonCore import vtkObject
    from vtkmodules.vtkCommonMisc import vtkErrorCode
    shown = vtkObject.GetGlobalWarningDisplay()
    vtkObject.GlobalWarningDisplayOff()
    try:
        ok = writer.Write() == 1
    finally:
        vtkObject.SetGlobalWarningDisplay(shown)
    code = writer.GetErrorCode()
    if not ok or code:
        reason = vtkErrorCode.GetStringFromErrorCode(code) if code else "unknown VTK error"
        if reason == "CannotOpenFileError":
            open(path, "ab").close()  # the operating system says why (name too long, no permission...)
        number, text = VTK_CAUSES.get(reason, (errno.EIO, f"VTK: {reason}"))
        raise OSError(number, text, str(path))


def write_nifti(path, image: sitk.Image) -> None:
    """Write a compressed NIfTI and check it is complete: ITK reports a full disk only on stderr
    and leaves a truncated file."""
    from ..core.errors import InputError
    from ..core.read import check_nifti_data
    sitk.WriteImage(image, str(path), True)
    try:
        check_nifti_data(Path(path))
    except InputError as e:
        raise OSError(errno.ENOSPC, f"the file written is incomplete, is the disk full? ({e.problem})",
                      str(path)) from e


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
    run_vtk_writer(writer, path)


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
    run_vtk_writer(writer, path)


@contextlib.contextmanager
def atomic_path(path):
    """A unique temporary path beside ``path``, ending in its name (so writers pick the format
    from the extension), renamed to ``path`` when the block succeeds and removed when it fails:
    nobody sees a half-written file, and concurrent writers never share a temporary name."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=f"-{path.name}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _discard(folder: Path) -> None:
    """Best-effort removal: a folder that cannot be removed must not hide the error being reported."""
    shutil.rmtree(folder, ignore_errors=True)


def _staging_folder(out_dir: Path, name: str) -> Path:
    """A new, unique hidden folder in ``out_dir`` to write this run's files into."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=out_dir))
    except OSError as e:
        raise OutputError(out_dir / name, f"cannot create the output folder ({brief(e)})") from e


def _carry_over(old: Path, target: Path, ours) -> None:
    """Move the user's own files from a previous case folder into ``target``, then remove the
    previous folder; if any file cannot be moved the folder is kept (hidden), never lost."""
    kept = False
    for item in old.iterdir():
        if item.name in ours or item.name.startswith(TMP_PREFIX):
            continue
        try:
            if (target / item.name).exists():
                raise FileExistsError(item.name)
            os.replace(item, target / item.name)
        except OSError:
            kept = True
    if not kept:
        _discard(old)


def _moved_aside(case_dir: Path) -> Optional[Path]:
    """Rename an existing case folder to a unique hidden name beside it; None if there is none."""
    old = case_dir.with_name(f".{case_dir.name}.old-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(case_dir, old)
    except FileNotFoundError:
        return None
    return old


def _is_non_folder(path: Path) -> bool:
    """Whether ``path`` exists and is not a folder, asked in one system call: a concurrent run may
    rename the folder away between two separate questions (exists, then is_dir)."""
    try:
        return not stat.S_ISDIR(os.stat(path).st_mode)
    except FileNotFoundError:
        return False


def swap_in(staging: Path, case_dir: Path, ours) -> None:
    """Make ``staging`` the case folder; the previous one is moved aside first and removed after,
    its user files carried over. A concurrent run's folder that lands in between is replaced too."""
    if _is_non_folder(case_dir):
        raise OutputError(case_dir, "exists and is not a folder")
    for _ in range(SWAP_ATTEMPTS):
        old = _moved_aside(case_dir)
        try:
            os.rename(staging, case_dir)
        except OSError as e:
            raced = e.errno in (errno.ENOTEMPTY, errno.EEXIST)
            if old is not None and not raced:
                with contextlib.suppress(OSError):
                    os.rename(old, case_dir)  # put the previous results back
                raise
            if old is not None:
                _carry_over(old, staging, ours)
            if not raced:
                raise
            continue  # another run put its folder there first: move that one aside too
        if old is not None:
            _carry_over(old, case_dir, ours)
        return
    raise OutputError(case_dir, "other runs kept replacing this folder at the same time; try again")


def write_outputs(result, out_dir, name: str, input_image=None, formats=FORMATS) -> List[Path]:
    """Write ``result`` into ``out_dir/name/`` and return the written paths.

    ``input_image`` (the scan as read) fixes the output geometry and is drawn in the preview.
    A DICOM-series input whose sources cannot carry a DICOM SEG gets none, and a warning
    appended to ``result.warnings`` (so it is in the stats and the reports) says why.
    Raises OutputError (naming the folder and the cause) when the folder or a file cannot be
    written; the previous contents of ``out_dir/name/`` are then left as they were.
    """
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown output formats {sorted(unknown)}; known: {', '.join(FORMATS)}")
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"invalid case name {name!r}")
    labels = checked_labels(result, input_image)
    case_dir = Path(out_dir) / name
    jobs = _jobs(result, name, labels, input_image, formats)
    staging = _staging_folder(Path(out_dir), name)
    current = case_dir
    try:
        for file_name, write in jobs:
            current = case_dir / file_name
            write(staging / file_name)
        current = case_dir
        swap_in(staging, case_dir, set(output_names(name)))
    except BaseException as e:
        _discard(staging)
        if isinstance(e, (OSError, RuntimeError)) and not isinstance(e, InnerEarSegError):
            raise OutputError(case_dir, f"cannot write {current.name} ({brief(e)})") from e
        raise
    return [case_dir / file_name for file_name, _ in jobs]


def _jobs(result, name: str, labels: sitk.Image, input_image, formats):
    """(file name, writer taking the path to write) for every output asked for."""
    present = sides_present(result)
    seg_dcm = None
    if "dicom_seg" in formats:  # built first: when it cannot be made, the warning goes into the stats
        seg_dcm, why_not = dicom_seg.dicom_seg_or_warning(result, labels, present)
        if why_not and why_not not in result.warnings:
            result.warnings.append(why_not)
    jobs = []
    if "seg" in formats:
        jobs.append((f"{name}.seg.nrrd", lambda p: write_seg_nrrd(p, labels, result.sides, present)))
    if "labels" in formats:
        jobs.append((f"{name}_labels.nii.gz", lambda p: write_nifti(p, labels)))
    measures = None  # measured once, for the stats, the measures files and the preview
    if "json" in formats:
        doc = stats_document(result, name, labels, present)
        jobs.append((f"{name}_stats.json", lambda p: p.write_text(json.dumps(doc, indent=2))))
        measures = planning.measure_into(result, doc)
        jobs += planning.output_jobs(measures, name)  # surgical-planning measures, markups
    if "csv" in formats:
        jobs.append((f"{name}_stats.csv", lambda p: write_csv(p, result.stats)))
    for seg_id, poly in result.surfaces.items():
        if poly is None or poly.GetNumberOfCells() == 0:
            continue
        if "stl" in formats:
            jobs.append((f"{name}_{seg_id}.stl", lambda p, poly=poly: write_stl(p, poly)))
        if "vtp" in formats:
            jobs.append((f"{name}_{seg_id}.vtp", lambda p, poly=poly: write_vtp(p, poly)))
    if seg_dcm is not None:
        jobs.append((f"{name}{dicom_seg.SUFFIX}", lambda p: seg_dcm.save_as(str(p))))
    if "preview" in formats:
        from .preview import render_preview
        jobs.append((f"{name}_preview.png", lambda p: render_preview(input_image, result, p, measures)))
    return jobs
