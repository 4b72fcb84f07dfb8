"""Reading scans: NIfTI, NRRD, MHA/MHD files and DICOM series folders, refused early when unusable.

Everything that cannot be segmented (missing, not an image, 2D, 4D, vector or complex
pixels) is refused here with an :class:`InputError` naming the file, so later stages can
assume one scalar 3D volume.
"""
from pathlib import Path
from typing import Iterable, List

import SimpleITK as sitk

from .errors import InputError

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
COMPLEX_TYPES = (sitk.sitkComplexFloat32, sitk.sitkComplexFloat64)
SUPPORTED = "NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd) or a DICOM series folder"


def is_image_file(path) -> bool:
    return Path(path).name.lower().endswith(IMAGE_SUFFIXES)


def case_name(path) -> str:
    """The scan's name for output files: file name without its image suffix, or the DICOM folder's name."""
    p = Path(path)
    name = p.name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name if p.is_dir() else p.stem


def dicom_series_files(folder) -> List[str]:
    """File names of the folder's largest DICOM series (the scan, not a localizer), or [] if none."""
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # "No Series were found" is an answer, not a warning
    try:
        ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)
    series = [sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid) for sid in ids]
    return list(max(series, key=len)) if series else []


def _check_header(path, dimension: int, components: int, pixel_id: int, size) -> None:
    if pixel_id in COMPLEX_TYPES:
        raise InputError(path, "complex-valued pixels; a real-valued (magnitude) volume is needed")
    if components > 1:
        raise InputError(path, f"{components} components per voxel (vector/RGB image); "
                               "a single-channel grey-scale volume is needed")
    if dimension == 2 or (dimension == 3 and min(size) < 2):
        raise InputError(path, f"2D image (size {tuple(size)}); a 3D volume with several slices is needed")
    if dimension == 4 and size[3] != 1:
        raise InputError(path, f"4D image (size {tuple(size)}, e.g. a time series); a single 3D volume is needed")
    if dimension not in (3, 4):
        raise InputError(path, f"{dimension}D image; a 3D volume is needed")


def read_image(path) -> sitk.Image:
    """Read one 3D scalar volume (file or DICOM series folder), in LPS as SimpleITK keeps it."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "file or folder not found")
    if p.is_dir():
        files = dicom_series_files(p)
        if not files:
            raise InputError(p, f"folder holds no DICOM series; expected {SUPPORTED}")
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(files)
        try:
            image = reader.Execute()
        except RuntimeError as e:
            raise InputError(p, f"cannot read the DICOM series ({_brief(e)})") from e
        _check_header(p, image.GetDimension(), image.GetNumberOfComponentsPerPixel(),
                      image.GetPixelID(), image.GetSize())
        return image
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        raise InputError(p, f"not an image file SimpleITK can read; expected {SUPPORTED}") from e
    _check_header(p, reader.GetDimension(), reader.GetNumberOfComponents(), reader.GetPixelID(),
                  reader.GetSize())
    try:
        image = reader.Execute()
    except RuntimeError as e:
        raise InputError(p, f"cannot read the image data, the file may be truncated ({_brief(e)})") from e
    if image.GetDimension() == 4:  # 4D with a single volume: keep that volume
        image = sitk.Extract(image, list(image.GetSize()[:3]) + [0], [0, 0, 0, 0])
    return image


def list_inputs(paths: Iterable) -> List[Path]:
    """Expand the user's inputs into scans: files as given, a DICOM series folder as one scan,
    any other folder into its image files (not recursive) and its DICOM series sub-folders.

    Missing paths and folders without scans are kept as they are, so that a batch reports
    them as failed cases instead of silently skipping them.
    """
    out: List[Path] = []
    for path in paths:
        p = Path(path)
        if not p.is_dir() or dicom_series_files(p):
            out.append(p)
            continue
        found = [c for c in sorted(p.iterdir())
                 if (c.is_file() and is_image_file(c)) or (c.is_dir() and dicom_series_files(c))]
        out.extend(found or [p])
    return out


def _brief(error: Exception) -> str:
    """The last non-empty line of an ITK error, which is the one saying what went wrong."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1][:200] if lines else type(error).__name__
