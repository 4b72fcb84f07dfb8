"""Reading scans: NIfTI, NRRD, MHA/MHD files and DICOM series folders, refused early when unusable.

Everything that cannot be segmented is refused here with an :class:`InputError` naming the
file and the true cause, so later stages can assume one scalar 3D volume on a sound grid:
missing files and data files, not an image, 2D, 4D, vector or complex pixels, fewer than
``MIN_SLICES`` slices on an axis, zero or non-finite spacing, degenerate or sheared directions,
headers claiming absurd sizes, truncated data (NIfTI too, which ITK would silently fill with
zeros), NaN/Inf voxels (NIfTI too, which ITK would silently turn into zeros), DICOM series with
missing slices or a gantry tilt, and folders holding more than one volume series. An image
given in memory as a numpy array becomes a SimpleITK one in ``as_image``.
"""
import gzip
import math
import re
import struct
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from .errors import InputError, brief

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
COMPLEX_TYPES = (sitk.sitkComplexFloat32, sitk.sitkComplexFloat64)
SUPPORTED = "NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd) or a DICOM series folder"
# Cubic B-spline resampling needs 4 samples along an axis; with 2 it returned values up to 1e18
# that differed from run to run, so thinner volumes are refused rather than segmented.
MIN_SLICES = 4
MAX_VOXELS = 2 ** 31  # 8 GB as float32, beyond any scan: a header claiming more is corrupt
ORTHOGONAL_TOLERANCE = 1e-3  # |cos| of the angle between two axes (0.06 degrees)
SLICE_GAP_TOLERANCE = 0.1  # a DICOM slice step differing from the usual one by more than 10% is a gap
# a DICOM stack whose last slice lies more than this (or 0.06 degrees) sideways of the first's
# normal is tilted; less is the rounding of positions written with few decimals
TILT_SHIFT_MM = 0.05
NIFTI_FLOATS = {16: "<f4", 64: "<f8"}  # NIfTI datatype codes whose voxels can be NaN/Inf


def is_image_file(path) -> bool:
    return Path(path).name.lower().endswith(IMAGE_SUFFIXES)


def case_name(path) -> str:
    """The scan's name for output files: file name without its image suffix, or the DICOM
    folder's name (the real folder's for ``.`` or ``..``)."""
    p = Path(path)
    if p.name in ("", ".", ".."):
        p = p.resolve()
    name = p.name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name if p.is_dir() else p.stem


# --- grid and voxel checks, shared with in-memory images (preprocess.check_values) ---------------

def check_grid(path, size: Sequence[int], spacing: Sequence[float], direction: Sequence[float]) -> None:
    """Refuse a 3D grid that cannot be resampled faithfully: too few slices, absurd size,
    zero or non-finite spacing, degenerate or sheared axes."""
    size = [int(s) for s in size[:3]]
    axes = "xyz"
    if min(size) < 2:
        raise InputError(path, f"2D image (size {tuple(size)}); a 3D volume with several slices is needed")
    if min(size) < MIN_SLICES:
        axis = axes[size.index(min(size))]
        raise InputError(path, f"only {min(size)} slices along {axis} (size {tuple(size)}); at least "
                               f"{MIN_SLICES} on every axis are needed to resample the volume")
    if math.prod(size) > MAX_VOXELS:
        raise InputError(path, f"the header describes {math.prod(size):.3g} voxels (size {tuple(size)}), "
                               "more than any scan; the header is corrupt")
    spacing = np.asarray(spacing[:3], float)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(path, f"voxel spacing {tuple(spacing.tolist())} mm is zero, negative or not a number; "
                               "the header's spacing is wrong")
    n = int(round(math.sqrt(len(direction))))
    d = np.asarray(direction, float).reshape(n, n)[:3, :3]
    if not np.all(np.isfinite(d)) or abs(np.linalg.det(d)) < 1e-6:
        raise InputError(path, "degenerate direction matrix (two axes point the same way or an axis is zero); "
                               "the header's orientation is wrong")
    cosines = np.abs(d.T @ d - np.eye(3))
    if cosines.max() > ORTHOGONAL_TOLERANCE:
        angle = math.degrees(math.acos(min(1.0, float(cosines.max()))))
        raise InputError(path, f"sheared grid: two image axes meet at {angle:.1f} degrees, not 90; outputs "
                               "could not keep that geometry in every format. Resample the scan onto a "
                               "rectangular grid first")


def check_voxels(image: sitk.Image, path) -> None:
    """Refuse NaN or infinite voxels: they would silently become wrong intensities."""
    a = sitk.GetArrayViewFromImage(image)
    if a.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(a)))
        if bad:
            raise InputError(path, nonfinite_problem(bad))


def nonfinite_problem(count: int) -> str:
    return f"{count} voxels are NaN or infinite; replace them before segmenting"


# --- files ------------------------------------------------------------------------------------

def _check_header(path, dimension: int, components: int, pixel_id: int, size) -> None:
    if pixel_id in COMPLEX_TYPES:
        raise InputError(path, "complex-valued pixels; a real-valued (magnitude) volume is needed")
    if components > 1:
        kind = "complex values or a 2-channel vector image" if components == 2 else "vector/RGB image"
        raise InputError(path, f"{components} components per voxel ({kind}); "
                               "a single-channel grey-scale (magnitude) volume is needed")
    if dimension == 2:
        raise InputError(path, f"2D image (size {tuple(size)}); a 3D volume with several slices is needed")
    if dimension == 4 and size[3] != 1:
        raise InputError(path, f"4D image (size {tuple(size)}, e.g. a time series); a single 3D volume is needed")
    if dimension not in (3, 4):
        raise InputError(path, f"{dimension}D image; a 3D volume is needed")


def _detached_data_file(path: Path) -> Optional[Path]:
    """The data file a ``.nhdr``/``.mhd`` header names, when it names exactly one; else None."""
    if not path.name.lower().endswith((".nhdr", ".mhd")):
        return None
    try:
        text = path.read_bytes()[:65536].decode("latin-1")
    except OSError:
        return None
    match = re.search(r"^\s*(?:data ?file\s*:|ElementDataFile\s*=)[ \t]*(\S[^\r\n]*?)\s*$", text, re.M | re.I)
    if not match or match.group(1).upper().startswith(("LIST", "LOCAL")) or "%" in match.group(1):
        return None
    return path.parent / match.group(1)


def _unreadable(path: Path, error: Exception, problem: str) -> InputError:
    """The error for a file ITK could not read: a missing detached data file if that is why."""
    data = _detached_data_file(path)
    if data is not None and not data.exists():
        return InputError(path, f"its data file {data.name} is missing (looked for {data})")
    return InputError(path, f"{problem} ({brief(error)})")


def _nifti_layout(path: Path) -> Optional[Tuple[int, int, Optional[str]]]:
    """(offset of the voxel data, bytes of voxel data the header promises, numpy dtype when the
    voxels are floats) of a NIfTI-1/2 file; None when the header cannot be parsed here."""
    with _open_nifti(path) as f:
        head = f.read(544)
    for order in "<>":
        if len(head) >= 348 and struct.unpack(order + "i", head[:4])[0] == 348:
            dims = struct.unpack(order + "8h", head[40:56])
            datatype, bitpix = struct.unpack(order + "2h", head[70:74])
            offset = int(struct.unpack(order + "f", head[108:112])[0])
            break
        if len(head) >= 540 and struct.unpack(order + "i", head[:4])[0] == 540:
            datatype, bitpix = struct.unpack(order + "2h", head[12:16])
            dims = struct.unpack(order + "8q", head[16:80])
            offset = struct.unpack(order + "q", head[168:176])[0]
            break
    else:
        return None
    if not 1 <= dims[0] <= 7 or bitpix <= 0:
        return None
    voxels = math.prod(max(int(d), 1) for d in dims[1:dims[0] + 1])
    dtype = NIFTI_FLOATS.get(datatype)
    return max(offset, 348), voxels * bitpix // 8, (dtype.replace("<", order) if dtype else None)


def _open_nifti(path: Path):
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def check_nifti_data(path: Path) -> None:
    """Refuse a NIfTI file with less voxel data than its header promises, or NaN/Inf voxels:
    ITK reads both silently as zeros."""
    layout = _nifti_layout(path)
    if layout is None:
        return
    offset, expected, dtype = layout
    found, bad, rest = 0, 0, b""
    try:
        with _open_nifti(path) as f:
            f.read(offset)
            while found < expected:
                chunk = f.read(min(1 << 24, expected - found))
                if not chunk:
                    break
                found += len(chunk)
                if dtype:
                    data = rest + chunk
                    usable = len(data) - len(data) % np.dtype(dtype).itemsize
                    bad += int(np.count_nonzero(~np.isfinite(np.frombuffer(data[:usable], dtype))))
                    rest = data[usable:]
    except (EOFError, OSError, gzip.BadGzipFile, ValueError):
        pass  # a cut gzip stream: the data found so far is all there is
    if found < expected:
        raise InputError(path, f"the file is truncated: {found} of the {expected} bytes of voxel data its "
                               "header describes are there")
    if bad:
        raise InputError(path, nonfinite_problem(bad))


def _read_file(p: Path) -> sitk.Image:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        raise _unreadable(p, e, f"not an image file SimpleITK can read; expected {SUPPORTED}") from e
    _check_header(p, reader.GetDimension(), reader.GetNumberOfComponents(), reader.GetPixelID(),
                  reader.GetSize())
    check_grid(p, reader.GetSize(), reader.GetSpacing(), reader.GetDirection())
    if p.name.lower().endswith((".nii", ".nii.gz")):
        check_nifti_data(p)
    try:
        image = reader.Execute()
    except RuntimeError as e:
        raise _unreadable(p, e, "cannot read the image data, the file may be truncated") from e
    if image.GetDimension() == 4:  # 4D with a single volume: keep that volume
        image = sitk.Extract(image, list(image.GetSize()[:3]) + [0], [0, 0, 0, 0])
    return image


# --- DICOM ------------------------------------------------------------------------------------

def dicom_series(folder) -> List[Tuple[str, List[str]]]:
    """(series UID, file names in slice order) of every DICOM series directly in ``folder``."""
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # "No Series were found" is an answer, not a warning
    try:
        ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
        return [(sid, list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid))) for sid in ids]
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def dicom_series_files(folder) -> List[str]:
    """File names of the folder's one volume series, or [] if it holds no series.

    Series of fewer than ``MIN_SLICES`` files (localizers, scouts) are ignored when a volume
    series is there; two or more volume series are refused, naming them, rather than guessed.
    """
    series = dicom_series(folder)
    volumes = [s for s in series if len(s[1]) >= MIN_SLICES]
    if len(volumes) > 1:
        listed = ", ".join(f"{uid} ({len(files)} files)" for uid, files in volumes)
        raise InputError(folder, f"the folder holds {len(volumes)} DICOM series ({listed}); which one to "
                                 "segment is unclear. Put each series in a folder of its own")
    chosen = volumes or sorted(series, key=lambda s: len(s[1]))[-1:]
    return chosen[0][1] if chosen else []


def _slice_geometry(files: List[str]) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """(each file's position (n, 3) in LPS mm, the slice normal), or None when the tags are missing."""
    positions, cosines = [], None
    for name in files:
        reader = sitk.ImageFileReader()
        reader.SetFileName(name)
        try:
            reader.ReadImageInformation()
            positions.append([float(v) for v in reader.GetMetaData("0020|0032").split("\\")])
            cosines = cosines or [float(v) for v in reader.GetMetaData("0020|0037").split("\\")]
        except (RuntimeError, ValueError):
            return None
    if cosines is None or len(cosines) != 6:
        return None
    return np.array(positions), np.cross(cosines[:3], cosines[3:6])


def check_slice_spacing(folder, files: List[str]) -> None:
    """Refuse a series whose slices are not evenly spaced (a missing or doubled slice): ITK
    would spread the gap over every slice and misplace all of them. Refuse a gantry tilt too
    (slices stacked obliquely to their own plane): ITK would read the volume as if untilted,
    shifting every slice, and no output format here could keep the sheared grid."""
    if len(files) < 3:
        return
    geometry = _slice_geometry(files)
    if geometry is None:
        return
    points, normal = geometry
    along = points @ normal
    order = np.argsort(along)
    steps = np.abs(np.diff(along[order]))
    usual = float(np.median(steps))
    if usual <= 0:
        raise InputError(folder, "several DICOM slices share one position (duplicated slices); "
                                 "one volume series per folder is needed")
    odd = np.flatnonzero(np.abs(steps - usual) > SLICE_GAP_TOLERANCE * usual)
    if odd.size:
        i = int(odd[np.argmax(np.abs(steps[odd] - usual))])
        raise InputError(folder, f"the DICOM slices are unevenly spaced: {steps[i]:.3g} mm between slices "
                                 f"{i + 1} and {i + 2} where the others are {usual:.3g} mm apart "
                                 f"(a missing slice?); {odd.size} uneven step(s) in {len(files)} files")
    stack = points[order[-1]] - points[order[0]]  # first to last slice
    length = float(np.linalg.norm(stack))
    sideways = float(np.linalg.norm(stack - (stack @ normal) * normal))
    if sideways > max(TILT_SHIFT_MM, ORTHOGONAL_TOLERANCE * length):
        tilt = math.degrees(math.asin(min(1.0, sideways / length)))
        raise InputError(folder, f"gantry tilt: the slices are stacked at {tilt:.1f} degrees to their normal; "
                                 "resample the series onto a rectangular grid first (e.g. Slicer's DICOM "
                                 "import, which corrects the tilt, then save the volume as NRRD)")


def _read_dicom(p: Path) -> sitk.Image:
    files = dicom_series_files(p)
    if not files:
        raise InputError(p, f"folder holds no DICOM series; expected {SUPPORTED}")
    check_slice_spacing(p, files)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as e:
        raise InputError(p, f"cannot read the DICOM series ({brief(e)})") from e
    _check_header(p, image.GetDimension(), image.GetNumberOfComponentsPerPixel(),
                  image.GetPixelID(), image.GetSize())
    check_grid(p, image.GetSize(), image.GetSpacing(), image.GetDirection())
    return image


def read_image(path) -> sitk.Image:
    """Read one 3D scalar volume (file or DICOM series folder), in LPS as SimpleITK keeps it."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "file or folder not found")
    image = _read_dicom(p) if p.is_dir() else _read_file(p)
    check_voxels(image, p)
    return image


def as_image(image, spacing=None, origin=None, direction=None, source=None) -> sitk.Image:
    """A sitk image as is, or a (z, y, x) numpy array with LPS ``spacing`` (x, y, z) (required),
    ``origin`` (default 0) and ``direction`` (9 values, default identity)."""
    if isinstance(image, sitk.Image):
        return image
    array = np.asarray(image)
    if array.ndim != 3:
        raise InputError(source, f"array of shape {array.shape}; a 3D (z, y, x) array is needed")
    if spacing is None:
        raise InputError(source, "a numpy array needs its voxel spacing (x, y, z) in mm")
    out = sitk.GetImageFromArray(array)
    out.SetSpacing([float(s) for s in spacing])
    if origin is not None:
        out.SetOrigin([float(v) for v in origin])
    if direction is not None:
        out.SetDirection([float(v) for v in np.ravel(direction)])
    return out


def list_inputs(paths: Iterable) -> List[Path]:
    """Expand the user's inputs into scans: files as given, a DICOM series folder as one scan,
    any other folder into its image files (not recursive) and its DICOM series sub-folders.

    Missing paths and folders without scans are kept as they are, so that a batch reports
    them as failed cases instead of silently skipping them.
    """
    out: List[Path] = []
    for path in paths:
        p = Path(path)
        if not p.is_dir() or dicom_series(p):
            out.append(p)
            continue
        found = [c for c in sorted(p.iterdir())
                 if (c.is_file() and is_image_file(c)) or (c.is_dir() and dicom_series(c))]
        out.extend(found or [p])
    return out


def check_unique_case_names(scans: Iterable) -> None:
    """Refuse inputs whose outputs would land in one case folder (``p1/scan.nii.gz`` and
    ``p2/scan.nii.gz``, ``good.mha`` and ``good.nii.gz``), naming them, before any work: one
    result would silently overwrite the other."""
    by_name: dict = {}
    for scan in scans:
        by_name.setdefault(case_name(scan), []).append(str(scan))
    clashes = [(name, paths) for name, paths in by_name.items() if len(paths) > 1]
    if clashes:
        listed = "; ".join(f"{' and '.join(paths)} -> {name}" for name, paths in clashes)
        raise InputError(listed, "these inputs have the same name, so their results would overwrite each "
                                 "other; rename one or segment them into different output folders")
