"""Writing a segmented stack: ``S_labels.tif`` (ImageJ TIFF with the pixel size),
``S_labels.nii.gz`` (spacing in mm), ``S_image.nii.gz`` (the input, same grid, for Slicer), ``S.seg.nrrd`` (Slicer segmentation: one segment per label
with the card's names and colours), ``S_stats.json``/``S_stats.csv`` (per label: pixels,
physical volume, connected objects: count and mean size) and, for stacks of more than one
slice, ``S_<label>.stl`` surfaces (LPS millimetres, for Slicer's 3D view).

Each file is written under a temporary name in the output folder and renamed when complete.
"""
import contextlib
import csv
import json
import os
import re
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
from scipy import ndimage

from ..core.errors import OutputError, brief
from . import io


@contextlib.contextmanager
def atomic(path: Path):
    """A temporary path beside ``path`` (same ending), renamed to it when the block succeeds."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{path.name}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(path, f"cannot write ({brief(e)})") from e
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def file_key(name: str) -> str:
    """A label name as a file-name part: ``Cell body`` -> ``cell_body``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "label"


def objects(mask: np.ndarray, per_slice: bool) -> np.ndarray:
    """Sizes (pixels) of the connected objects of a mask: face-connected in 3D, or slice by slice
    (for a 2D model on thick sections, where an object need not continue into the next section)."""
    if per_slice:
        sizes = []
        for z in range(mask.shape[0]):
            lab, n = ndimage.label(mask[z])
            sizes += np.bincount(lab.ravel())[1:].tolist()
        return np.array(sizes, dtype=np.int64)
    lab, n = ndimage.label(mask)
    return np.bincount(lab.ravel())[1:]


def label_stats(labels: np.ndarray, label_list: Sequence[dict], pixel_size_um, per_slice: bool) -> List[dict]:
    """One row per label: pixels, volume (um3; area um2 for one slice), objects, mean object size."""
    voxel = float(np.prod(pixel_size_um)) if pixel_size_um else None
    area = float(pixel_size_um[1] * pixel_size_um[2]) if pixel_size_um else None
    rows = []
    for lab in label_list:
        mask = labels == lab["value"]
        sizes = objects(mask, per_slice)
        n = int(mask.sum())
        unit = area if labels.shape[0] == 1 else voxel
        rows.append({"label": lab["name"], "value": lab["value"], "pixels": n,
                     "size_um" + ("2" if labels.shape[0] == 1 else "3"): n * unit if unit else None,
                     "objects": int(len(sizes)), "mean_object_pixels": float(sizes.mean()) if len(sizes) else 0.0,
                     "objects_counted": "per slice" if per_slice else "3D"})
    return rows


def write_seg_nrrd(path: Path, labels: np.ndarray, label_list: Sequence[dict], pixel_size_um) -> None:
    """Slicer ``.seg.nrrd`` with one segment per label (name, colour), on the label grid."""
    import slicerio
    nz, ny, nx = labels.shape
    z, y, x = [s / 1000.0 for s in pixel_size_um] if pixel_size_um else (1.0, 1.0, 1.0)
    segments = [{"id": f"Segment_{lab['value']}", "name": lab["name"], "labelValue": int(lab["value"]),
                 "layer": 0, "color": [float(c) for c in lab["color"]],
                 "extent": [0, nx - 1, 0, ny - 1, 0, nz - 1]} for lab in label_list]
    segmentation = {"voxels": labels.transpose(2, 1, 0).astype(np.uint8), "ijkToLPS": np.diag([x, y, z, 1.0]),
                    "containedRepresentationNames": ["Binary labelmap"], "masterRepresentation": "Binary labelmap",
                    "referenceImageExtentOffset": [0, 0, 0], "segments": segments}
    slicerio.write_segmentation(str(path), segmentation, compression_level=6)


def write_outputs(out_dir, name: str, labels: np.ndarray, label_list: Sequence[dict], pixel_size_um,
                  info: Optional[dict] = None, per_slice: bool = False, surfaces: bool = True,
                  image: Optional[np.ndarray] = None) -> List[Path]:
    """Write every output of one stack into ``out_dir/name/``; returns the paths written.
    ``image`` (the input stack) also goes out as ``S_image.nii.gz`` on the same grid, so that a
    TIFF input opens in Slicer with its pixel size, under the ``.seg.nrrd``."""
    import SimpleITK as sitk
    folder = Path(out_dir) / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(folder, f"cannot create the output folder ({brief(e)})") from e
    written = []
    with atomic(folder / f"{name}_labels.tif") as tmp:
        io.write_tiff(tmp, labels, pixel_size_um)
    written.append(folder / f"{name}_labels.tif")
    with atomic(folder / f"{name}_labels.nii.gz") as tmp:
        sitk.WriteImage(io.to_sitk(labels, pixel_size_um), str(tmp), True)
    written.append(folder / f"{name}_labels.nii.gz")
    if image is not None:
        with atomic(folder / f"{name}_image.nii.gz") as tmp:
            sitk.WriteImage(io.to_sitk(image, pixel_size_um), str(tmp), True)
        written.append(folder / f"{name}_image.nii.gz")
    with atomic(folder / f"{name}.seg.nrrd") as tmp:
        write_seg_nrrd(tmp, labels, label_list, pixel_size_um)
    written.append(folder / f"{name}.seg.nrrd")
    rows = label_stats(labels, label_list, pixel_size_um, per_slice)
    doc = dict(info or {}, format="InnerEarSeg stack statistics 1", case=name, shape_zyx=list(labels.shape),
               pixel_size_um=list(pixel_size_um) if pixel_size_um else None,
               labels=[dict(lab) for lab in label_list], stats=rows)
    with atomic(folder / f"{name}_stats.json") as tmp:
        tmp.write_text(json.dumps(doc, indent=2))
    with atomic(folder / f"{name}_stats.csv") as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["label"])
            w.writeheader()
            w.writerows(rows)
    written += [folder / f"{name}_stats.json", folder / f"{name}_stats.csv"]
    if surfaces and labels.shape[0] > 1:
        written += write_surfaces(folder, name, labels, label_list, pixel_size_um)
    return written


def write_surfaces(folder: Path, name: str, labels, label_list, pixel_size_um) -> List[Path]:
    """``S_<label>.stl`` per non-empty label: flying edges, Slicer's default smoothing (``surface.py``)."""
    from ..outputs.surface import surface_from_mask
    from ..outputs.write import write_stl
    reference = io.to_sitk(np.zeros((1, 1, 1), np.uint8), pixel_size_um)
    written = []
    for lab in label_list:
        mask = labels == lab["value"]
        if not mask.any():
            continue
        poly = surface_from_mask(mask, reference, smoothing=0.5, decimation=0.5)
        path = folder / f"{name}_{file_key(lab['name'])}.stl"
        with atomic(path) as tmp:
            write_stl(tmp, poly)
        written.append(path)
    return written
