"""The user options of a segmentation run, declared once."""
from dataclasses import dataclass
from typing import Optional


@dataclass
class SegmentParameters:
    """User options of one run.

    device: auto | cpu | cuda. modality: auto | mr | ct (auto: ``preprocess.detect_modality``).
    roi: ``ears`` (localizer finds each ear) | ``center`` (the reference method's fixed crop at
    the scan centre, split into right and left halves at its middle). tta: average the segmenter
    over the region and its left/right mirror (``infer.TTA_FLIPS``; on by default: about 1.5x the
    time, labyrinth DSC +0.01 and canals +0.02 on validation). Not the localiser: averaged, its
    weak blobs fell below threshold and whole ears were lost on the synthetic test set.
    cpu_bf16: bf16 autocast for both networks on the CPU: None (default) where the CPU has
    native bf16, True always, False never (``infer.native_cpu_bf16``; README, Speed).
    keep_largest / fill_holes: clean-up per ear (``postprocess.clean_labels``).
    fluid_check: remove a vestibule and canals that do not look like the cochlea's fluid
    (``fluid_check``; a warning says so). Off by default: on the real scans it changed nothing
    or, with an earlier model, removed a real vestibule; it has helped on synthetic cases only
    (docs/real_data.md).
    split_sides: False gives one segment per structure for both ears: ``sides`` stays 0,
    stats rows have side ``both`` and the surface builder gets ``sides=None``.
    smoothing: surface smoothing factor 0..1 for the surface stage. surfaces: build them.
    """

    device: str = "auto"
    modality: str = "auto"
    roi: str = "ears"
    tta: bool = True
    cpu_bf16: Optional[bool] = None
    keep_largest: bool = True
    fill_holes: bool = True
    fluid_check: bool = False
    split_sides: bool = True
    smoothing: float = 0.5
    surfaces: bool = True

    def isValid(self):
        """(True, "") or (False, what is wrong), for GUIs to show before running."""
        if self.device != "auto" and self.device != "cpu" and not str(self.device).startswith("cuda"):
            return False, f"device must be auto, cpu or cuda, not {self.device!r}"
        if self.modality not in ("auto", "mr", "ct"):
            return False, f"modality must be auto, mr or ct, not {self.modality!r}"
        if self.roi not in ("ears", "center"):
            return False, f"roi must be ears or center, not {self.roi!r}"
        if not 0.0 <= float(self.smoothing) <= 1.0:
            return False, f"smoothing must be between 0 and 1, not {self.smoothing}"
        if self.cpu_bf16 not in (None, True, False):
            return False, f"cpu_bf16 must be None (automatic), True or False, not {self.cpu_bf16!r}"
        return True, ""
