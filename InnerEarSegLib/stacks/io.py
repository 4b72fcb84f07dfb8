"""Reading and writing image stacks: multi-page TIFF, a folder of 2D TIFF/PNG slices, a single
2D TIFF/PNG (a one-slice stack), or a NIfTI/NRRD/MHA volume.

Arrays are (z, y, x). Pixel sizes are (z, y, x) in micrometres; ``None`` where the file does
not say (TIFF and PNG usually do not: give ``--pixel-size`` on the command line).
"""
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..core.errors import InputError, OutputError, brief

SLICE_ENDINGS = (".tif", ".tiff", ".png")
VOLUME_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
ENDINGS = SLICE_ENDINGS + VOLUME_ENDINGS


@dataclass
class Stack:
    """An image or label stack, (z, y, x), with its pixel size in micrometres (None: unknown)."""
    array: np.ndarray
    pixel_size_um: Optional[Tuple[float, float, float]]
    path: Path


def ending(path) -> str:
    """The recognised file ending of ``path`` ('' when none): '.nii.gz' counts as one."""
    name = Path(path).name.lower()
    return next((e for e in ENDINGS if name.endswith(e)), "")


def case_name(path) -> str:
    """A stack's name: the file name without its ending, or the folder name."""
    p = Path(path)
    return p.name[:-len(ending(p))] if ending(p) else p.name


def slice_files(folder) -> List[Path]:
    """The 2D slice files in ``folder``, in name order (``00.tif``, ``01.tif``...)."""
    return sorted(f for f in Path(folder).iterdir()
                  if f.is_file() and not f.name.startswith(".") and ending(f) in SLICE_ENDINGS)


def _read_2d_or_tiff(path: Path) -> Tuple[np.ndarray, Optional[Tuple[float, float, float]]]:
    """One TIFF (any number of pages) or PNG file as (z, y, x), with the TIFF's pixel size if it has one."""
    if ending(path) == ".png":
        from PIL import Image
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L") if im.mode in ("RGB", "RGBA", "P", "LA") else im)
        return arr[None], None
    import tifffile
    with tifffile.TiffFile(path) as tif:
        arr = tif.asarray()
        size = _tiff_pixel_size(tif)
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.shape[0] > 4:  # one RGB(A) image
        arr = arr[..., :3].mean(axis=-1)[None]
    if arr.ndim != 3:
        raise InputError(path, f"expected a 2D image or a stack of 2D pages, found an array of shape {arr.shape}")
    return arr, size


MICRONS_PER = {"micron": 1.0, "um": 1.0, "\\u00b5m": 1.0, "µm": 1.0, "nm": 1e-3, "nanometer": 1e-3,
               "mm": 1e3, "millimeter": 1e3}


def _tiff_pixel_size(tif) -> Optional[Tuple[float, float, float]]:
    """(z, y, x) micrometres from the X/Y resolution tags, in the unit of the ImageJ metadata, or
    in centimetres (ResolutionUnit 3); None otherwise (inches are screen DPI, not a pixel size)."""
    ij = tif.imagej_metadata or {}
    tags = tif.pages[0].tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return None
    unit = MICRONS_PER.get(str(ij.get("unit", "")).lower())
    if unit is None and "ResolutionUnit" in tags and int(tags["ResolutionUnit"].value) == 3:
        unit = 1e4
    xr, yr = tags["XResolution"].value, tags["YResolution"].value
    if unit is None or not xr[0] or not yr[0]:
        return None
    x, y = unit * xr[1] / xr[0], unit * yr[1] / yr[0]
    return float(ij.get("spacing", x / unit)) * unit, float(y), float(x)


def _read_volume(path: Path) -> Tuple[np.ndarray, Tuple[float, float, float]]:
    import SimpleITK as sitk
    img = sitk.ReadImage(str(path))
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(path, "a vector or colour volume; expected one scalar value per voxel")
    arr = sitk.GetArrayFromImage(img)
    spacing = tuple(float(s) * 1000.0 for s in img.GetSpacing())  # mm -> micrometres, (x, y[, z])
    if arr.ndim == 2:
        return arr[None], (1.0, spacing[1], spacing[0])
    if arr.ndim != 3:
        raise InputError(path, f"expected a 2D or 3D image, found {arr.ndim} dimensions")
    return arr, (spacing[2], spacing[1], spacing[0])


def read_stack(path, pixel_size_um: Optional[Sequence[float]] = None) -> Stack:
    """Read a stack from a file or a folder of slices; ``pixel_size_um`` (x, y[, z], as typed on the
    command line) overrides what the file says. Errors name the file and the cause."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such file or folder")
    try:
        arr, size = _read_any(p)
    except InputError:
        raise
    except Exception as e:  # a corrupt or truncated file: say which and why
        raise InputError(p, f"cannot read this image ({brief(e)})") from e
    if arr.size == 0:
        raise InputError(p, "the image is empty")
    if arr.dtype == bool:  # 1-bit masks (PNG mode "1"): 0/255, like 8-bit masks
        arr = arr.astype(np.uint8) * 255
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InputError(p, f"unsupported pixel type {arr.dtype}")
    if pixel_size_um is not None:
        size = pixel_size_from_arguments(pixel_size_um, p)
    return Stack(arr, size, p)


def _read_any(p: Path):
    """(array (z, y, x), pixel size (z, y, x) in micrometres) of a slice folder, slice file or volume file."""
    if p.is_dir():
        return _read_slice_folder(p)
    if ending(p) in SLICE_ENDINGS:
        return _read_2d_or_tiff(p)
    if ending(p) in VOLUME_ENDINGS:
        return _read_volume(p)
    raise InputError(p, f"not a stack (expected a folder of slices or one of {', '.join(ENDINGS)})")


def _read_slice_folder(p: Path):
    """The slices of a folder, in name order, stacked; the first slice's pixel size."""
    files = slice_files(p)
    if not files:
        raise InputError(p, f"no slice files ({', '.join(SLICE_ENDINGS)}) in this folder")
    slices = [_read_2d_or_tiff(f) for f in files]
    shapes = {s[0].shape[1:] for s in slices}
    if len(shapes) > 1:
        raise InputError(p, f"slices of different sizes in one stack: {sorted(shapes)}")
    return np.concatenate([s[0] for s in slices], axis=0), slices[0][1]


def pixel_size_from_arguments(values: Sequence[float], path=None) -> Tuple[float, float, float]:
    """(z, y, x) from ``--pixel-size X Y [Z]`` (micrometres); Z defaults to X (a 2D image)."""
    values = [float(v) for v in values]
    if len(values) not in (2, 3) or any(not np.isfinite(v) or v <= 0 for v in values):
        raise InputError(path, f"--pixel-size needs 2 or 3 positive numbers (x y [z], micrometres), not {values}")
    x, y = values[:2]
    z = values[2] if len(values) == 3 else x
    return z, y, x


def to_label_values(arr: np.ndarray, values: Sequence[int], path, threshold: Optional[float] = None) -> np.ndarray:
    """A mask as label values: ``threshold`` given -> 1 where ``arr >= threshold``; a 0/255 mask
    for a one-label set -> 0/1; otherwise the values must be among ``values`` (else an error
    naming the file and the values it did not expect)."""
    if threshold is not None:
        return (arr >= threshold).astype(np.uint8)
    found = np.unique(arr)
    allowed = set(int(v) for v in values) | {0}
    if len(allowed) == 2 and set(found.tolist()) <= {0, 255}:
        return (arr == 255).astype(np.uint8) * max(allowed)
    unexpected = [v for v in found.tolist() if v not in allowed]
    if unexpected:
        raise InputError(path, f"label values {unexpected[:8]} are not in the label set {sorted(allowed)} "
                               "(give --mask-threshold for a grey-level mask)")
    return arr.astype(np.uint8 if max(allowed) < 256 else np.uint16)


def write_tiff(path, labels: np.ndarray, pixel_size_um: Optional[Tuple[float, float, float]]) -> None:
    """A multi-page ImageJ TIFF of a (z, y, x) label stack, with the pixel size in micrometres
    (so Fiji and this reader get it back)."""
    import tifffile
    kwargs = {}
    if pixel_size_um is not None:
        z, y, x = pixel_size_um
        kwargs = dict(resolution=(1.0 / x, 1.0 / y), metadata={"unit": "um", "spacing": z, "axes": "ZYX"})
    else:
        kwargs = dict(metadata={"axes": "ZYX"})
    try:
        tifffile.imwrite(str(path), labels, imagej=True, **kwargs)
    except OSError as e:
        raise OutputError(path, f"cannot write ({brief(e)})") from e


def to_sitk(arr: np.ndarray, pixel_size_um: Optional[Tuple[float, float, float]]):
    """A SimpleITK image of a (z, y, x) array with spacing in millimetres (1 when unknown)."""
    import SimpleITK as sitk
    img = sitk.GetImageFromArray(arr)
    if pixel_size_um is not None:
        z, y, x = pixel_size_um
        img.SetSpacing((x / 1000.0, y / 1000.0, z / 1000.0))
    return img
