"""The in-memory result of segmenting one scan; what ``segment`` returns and writers consume."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import SimpleITK as sitk


@dataclass
class EarRegion:
    """One located ear: side, centre (LPS mm) and the localiser's confidence in [0, 1]."""

    side: str
    center_lps: tuple
    score: float


@dataclass
class SegmentationResult:
    """Everything one run produced, all on the exact input grid.

    labels: UInt8 image, 0 background, 1 cochlea, 2 vestibule, 3 semicircular canals,
        same size, spacing, origin and direction as the input (LPS, as SimpleITK).
    sides: UInt8 image on the same grid, 0 none, 1 right, 2 left (where labels > 0).
    stats: one dict per structure and side plus totals, see ``measure.measure``.
    surfaces: ``segment_id`` (e.g. ``cochlea_left``) -> vtkPolyData in LPS millimetres.
    modality: ``mr`` or ``ct``, as given or as detected (``preprocess.detect_modality``).
    """

    labels: sitk.Image
    sides: sitk.Image
    stats: List[dict] = field(default_factory=list)
    surfaces: Dict[str, object] = field(default_factory=dict)
    ears: List[EarRegion] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    source: Optional[str] = None
    model_name: str = ""
    modality: str = ""
    timings: Dict[str, float] = field(default_factory=dict)
