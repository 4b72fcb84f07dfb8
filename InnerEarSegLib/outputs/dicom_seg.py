"""DICOM Segmentation object (``NAME.seg.dcm``) for a scan read from a DICOM series.

Hospitals store DICOM, so a DICOM input also gets its result as a DICOM SEG (binary, one
segment per structure and side) that references the source series: same patient, study and
frame of reference, one frame per source slice holding that segment (empty frames omitted), each
frame naming its source instance and carrying its plane position. PACS viewers (OHIF, Weasis
...) and Slicer's DICOM module (QuantitativeReporting) load it over the source series.

Codes are those of the .seg.nrrd (``labels``): category "Anatomical Structure", the structure as
type, the inner ear as anatomic region with the side (SNOMED CT Right/Left) as its modifier, the
way Slicer's terminology stores laterality. The project's own coding scheme ``InnerEarSeg``
(vestibule, canals: no verified SNOMED CT code yet) is declared in the Coding Scheme
Identification Sequence. Algorithm identification: ``InnerEarSeg``, the library version, and
the model (card name and version) as a parameter.

Each source slice is placed on the labels' grid by its own position and orientation, never by
file order. When the sources cannot carry a SEG (a slice off the grid, which ``read`` should
have refused; tags missing or inconsistent, such as a study UID differing between files), no
SEG is written rather than a wrong one, and the case gets a warning saying why: its other
outputs are right, so they are still written.
"""
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..core import labels as L

SUFFIX = ".seg.dcm"
# starts the warning of a DICOM input whose SEG could not be made (``cohort.is_complete`` reads it)
NOT_WRITTEN = "no DICOM SEG (S.seg.dcm) written"
ALGORITHM_NAME = "InnerEarSeg"
PRIVATE_SCHEME = ("InnerEarSeg", "InnerEarSeg project codes for inner-ear structures without a verified SNOMED CT code")
GRID_TOLERANCE = 0.05  # of a voxel: a source slice's corner must fall on a grid point (positions are rounded)
ORIENTATION_TOLERANCE = 1e-4  # direction cosines of the source slices against the labels'


def source_files(source) -> List[str]:
    """The DICOM files of the series a scan was read from; [] when ``source`` is not a DICOM folder."""
    if not source:
        return []
    path = Path(source)
    if not path.is_dir():
        return []
    from ..core.read import dicom_series_files
    return dicom_series_files(path)


def slice_index(dataset, labels: sitk.Image) -> int:
    """Index k of the labels' slice that one single-frame source instance is, from its position
    and orientation; ValueError when it is not exactly one slice of the grid."""
    if "ImagePositionPatient" not in dataset or "ImageOrientationPatient" not in dataset:
        raise ValueError(f"instance {dataset.SOPInstanceUID} has no plane position (a multi-frame image?)")
    d = np.array(labels.GetDirection()).reshape(3, 3)
    orientation = np.array([float(v) for v in dataset.ImageOrientationPatient])
    size = labels.GetSize()
    if (int(dataset.Rows), int(dataset.Columns)) != (size[1], size[0]):
        raise ValueError(f"instance {dataset.SOPInstanceUID} is {dataset.Rows}x{dataset.Columns} pixels, "
                         f"the labels' slices {size[1]}x{size[0]}")
    if not np.allclose(orientation, np.concatenate([d[:, 0], d[:, 1]]), atol=ORIENTATION_TOLERANCE):
        raise ValueError(f"instance {dataset.SOPInstanceUID} is oriented differently from the labels' grid")
    index = labels.TransformPhysicalPointToContinuousIndex([float(v) for v in dataset.ImagePositionPatient])
    k = int(round(index[2]))
    if max(abs(index[0]), abs(index[1]), abs(index[2] - k)) > GRID_TOLERANCE or not 0 <= k < size[2]:
        raise ValueError(f"instance {dataset.SOPInstanceUID} at {list(dataset.ImagePositionPatient)} is not a "
                         "slice of the labels' grid")
    return k


def segment_list(present_sides: Sequence[str]) -> List[Tuple[str, L.Structure]]:
    """(side, structure) of each segment, numbered from 1 in this order (as in the .seg.nrrd:
    right before left); both sides when no ear was found, so every SEG has its segments."""
    sides = list(present_sides) or list(L.SIDES)
    return [(side, s) for side in sides for s in L.STRUCTURES]


def segment_numbers(labels_zyx: np.ndarray, sides_zyx: Optional[np.ndarray], segments) -> np.ndarray:
    """The labels as segment numbers (0 none) on the same (z, y, x) grid."""
    side_code = {"right": 1, "left": 2}
    out = np.zeros(labels_zyx.shape, np.uint8)
    for number, (side, structure) in enumerate(segments, 1):
        mask = labels_zyx == structure.value
        if side in side_code and sides_zyx is not None:
            mask &= sides_zyx == side_code[side]
        out[mask] = number
    return out


def _code(code: L.Code):
    import highdicom as hd
    return hd.sr.CodedConcept(value=code[1], scheme_designator=code[0], meaning=code[2])


def segment_description(number: int, side: str, structure: L.Structure, algorithm):
    """One segment: label, colour and codes as in the .seg.nrrd (``write.segment_fields``)."""
    import highdicom as hd
    label = L.segment_name(structure.key, side) if side in L.SIDE_CODES else structure.name
    description = hd.seg.SegmentDescription(
        segment_number=number, segment_label=label,
        segmented_property_category=_code(L.ANATOMIC_CATEGORY),
        segmented_property_type=_code(structure.code),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm, tracking_uid=hd.UID(), tracking_id=L.segment_id(structure.key, side),
        anatomic_regions=[_code(L.INNER_EAR)],
        display_color=hd.color.CIELabColor.from_rgb(*[int(round(255 * c)) for c in structure.color]))
    if side in L.SIDE_CODES:
        description.AnatomicRegionSequence[0].AnatomicRegionModifierSequence = [_code(L.SIDE_CODES[side])]
    return description


def _coding_scheme_item():
    from pydicom import Dataset
    item = Dataset()
    item.CodingSchemeDesignator, item.CodingSchemeName = PRIVATE_SCHEME
    item.CodingSchemeResponsibleOrganization = "InnerEarSeg project"
    return item


def build_dicom_seg(labels: sitk.Image, sides: Optional[sitk.Image], present_sides: Sequence[str],
                    files: Sequence[str], model_name: str):
    """The DICOM SEG dataset of ``labels`` (on the grid read from ``files``); ValueError (or
    highdicom's own error) when the sources cannot carry one."""
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    try:
        order = [slice_index(ds, labels) for ds in datasets]
    except ValueError as e:
        raise ValueError(f"cannot place the source slices on the labels' grid ({e})") from e
    labels_zyx = sitk.GetArrayViewFromImage(labels)
    sides_zyx = sitk.GetArrayViewFromImage(sides) if sides is not None else None
    segments = segment_list(present_sides)
    numbers = segment_numbers(labels_zyx, sides_zyx, segments)[order]  # one plane per source instance
    algorithm = hd.AlgorithmIdentificationSequence(
        name=ALGORITHM_NAME, family=codes.DCM.ArtificialIntelligence, version=__version__,
        parameters={"model": model_name or "unknown"})
    seg = hd.seg.Segmentation(
        source_images=datasets, pixel_array=numbers,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment_description(n, side, s, algorithm)
                              for n, (side, s) in enumerate(segments, 1)],
        series_instance_uid=hd.UID(), series_number=max(int(getattr(datasets[0], "SeriesNumber", 0) or 0), 0) + 900,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="InnerEarSeg project",
        manufacturer_model_name=ALGORITHM_NAME, software_versions=__version__, device_serial_number="none",
        content_label="INNEREAR", content_description="Inner ear: cochlea, vestibule, semicircular canals")
    seg.SeriesDescription = f"InnerEarSeg {model_name}".strip()[:64]
    seg.CodingSchemeIdentificationSequence = [_coding_scheme_item()]
    return seg


def dicom_seg_or_warning(result, labels: sitk.Image, present_sides: Sequence[str]):
    """(dataset, None) for a scan read from a DICOM series, (None, warning) when its sources
    cannot carry a DICOM SEG (tags missing or inconsistent: the other outputs are still right),
    (None, None) for any other input."""
    files = source_files(result.source)
    if not files:
        return None, None
    try:
        return build_dicom_seg(labels, result.sides, present_sides, files, result.model_name), None
    except Exception as e:  # noqa: BLE001 - highdicom refuses malformed sources in many ways
        from ..core.errors import brief
        return None, f"{NOT_WRITTEN}: the source DICOM series cannot carry one ({brief(e)})"
