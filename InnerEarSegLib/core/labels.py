"""Output labels: values, names, colours, sides and terminology codes.

The label values are the contract of ``S_labels.nii.gz`` and the model's output
channels: 0 background, 1 cochlea, 2 vestibule, 3 semicircular canals.
Sides are physical: in LPS (SimpleITK, DICOM) +x points to the patient's left.

Terminology: SNOMED CT codes are used only where verified (inner ear 22945000,
left 7771000, right 24028007, cochlea 80169004). Vestibule and semicircular canals
use this project's own coding scheme ``InnerEarSeg`` (see
``InnerEarSeg/Resources/InnerEarSeg.term.json``) until SNOMED codes are verified.
"""
from dataclasses import dataclass
from typing import Tuple

Code = Tuple[str, str, str]  # (coding scheme designator, code value, code meaning)

BACKGROUND = 0
COCHLEA = 1
VESTIBULE = 2
CANALS = 3
NUM_CLASSES = 4

# Terminology context names, shared by the .seg.nrrd writer and the Slicer module; the first must
# match "SegmentationCategoryTypeContextName" in InnerEarSeg/Resources/InnerEarSeg.term.json.
TERMINOLOGY_CONTEXT = "Segmentation category and type - InnerEarSeg"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"

ANATOMIC_CATEGORY: Code = ("SCT", "123037004", "Anatomical Structure")
INNER_EAR: Code = ("SCT", "22945000", "Inner ear")
SIDE_CODES = {"right": ("SCT", "24028007", "Right"), "left": ("SCT", "7771000", "Left")}
SIDES = ("right", "left")


@dataclass(frozen=True)
class Structure:
    value: int
    key: str            # file-name friendly: cochlea, vestibule, semicircular_canals
    name: str           # display name
    color: Tuple[float, float, float]  # RGB in [0, 1]
    code: Code


STRUCTURES = (
    Structure(COCHLEA, "cochlea", "Cochlea", (0.95, 0.62, 0.22), ("SCT", "80169004", "Cochlea")),
    Structure(VESTIBULE, "vestibule", "Vestibule", (0.33, 0.68, 0.95),
              ("InnerEarSeg", "IES-0002", "Vestibule of labyrinth")),
    Structure(CANALS, "semicircular_canals", "Semicircular canals", (0.45, 0.85, 0.42),
              ("InnerEarSeg", "IES-0003", "Semicircular canals")),
)
BY_VALUE = {s.value: s for s in STRUCTURES}
BY_KEY = {s.key: s for s in STRUCTURES}


def segment_id(structure_key: str, side: str) -> str:
    """Stable id of one structure on one side, e.g. ``cochlea_left``; used in file names too."""
    return f"{structure_key}_{side}"


def segment_name(structure_key: str, side: str) -> str:
    """Display name, e.g. ``Cochlea left``."""
    return f"{BY_KEY[structure_key].name} {side}"


def side_of_x(x_lps: float, midline_x_lps: float = 0.0) -> str:
    """Side of a point from its LPS x coordinate: larger x is the patient's left."""
    return "left" if x_lps > midline_x_lps else "right"
