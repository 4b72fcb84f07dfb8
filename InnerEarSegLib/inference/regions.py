"""The segmenter on regions of one scan: ear regions placed by centre, or the centre crop.

A ``RegionPredictor`` is made once per ``segment`` call. It turns a region grid into the
segmenter's class probabilities on that grid: the scan resampled and normalised into the
region (``preprocess.region_input``), the network pass (``predictor``), the model card's class
weights, and background wherever the region reaches past the scan. ``confirm.confirm_ears``
searches for the ears with it (``segment_region``, ``midline_x``).
"""
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from ..core import grid
from ..core.progress import CancelFlag, ProgressCallback, no_progress
from ..model.model_card import LoadedModel, class_weights
from . import postprocess, preprocess

# predictor(net, array (z, y, x), roi_size) -> class probabilities (C, z, y, x)
Predictor = Callable[[object, np.ndarray, Tuple[int, ...]], np.ndarray]


class RegionPredictor:
    """Segmenter probabilities on region grids of ``image``, with ``progress`` reported and
    ``cancel`` checked before each ear region; the card's class weights for ``modality``."""

    def __init__(self, image: sitk.Image, model: LoadedModel, predictor: Predictor,
                 progress: ProgressCallback = no_progress, cancel: Optional[CancelFlag] = None,
                 modality: Optional[str] = None):
        self.image, self.model, self.predictor = image, model, predictor
        self.progress, self.cancel = progress, cancel
        self.preprocessing = model.card["preprocessing"]
        self.class_weights = class_weights(model.card, modality)
        self.divisor = model.segmenter.divisor
        self.passes = 0

    def predict(self, reference: sitk.Image) -> np.ndarray:
        """Class probabilities (C, z, y, x) on ``reference``, reweighted, background outside the scan."""
        array = preprocess.region_input(self.image, reference, self.preprocessing["normalisation"])
        probabilities = self.predictor(self.model.segmenter, array, tuple(self.preprocessing["patch_size"]))
        return postprocess.outside_is_background(postprocess.reweight(probabilities, self.class_weights),
                                                 grid.inside_mask(self.image, reference))

    def segment_region(self, center: Sequence[float], region_mm: Optional[float] = None
                       ) -> Tuple[sitk.Image, np.ndarray]:
        """(region grid, probabilities) of the ear region at ``center`` (LPS; a larger search region
        when ``region_mm``): what ``confirm.confirm_ears`` asks for each place it checks."""
        if self.cancel is not None:
            self.cancel.check()
        self.passes += 1
        self.progress("segment", 0.5, f"region {self.passes}")
        reference = preprocess.ear_reference(center, self.preprocessing, self.divisor, region_mm)
        return reference, self.predict(reference)

    def midline_x(self) -> float:
        """The middle (LPS x) of the head in the scan (``preprocess.head_midline_x``)."""
        return preprocess.head_midline_x(self.image, self.preprocessing["normalisation"])

    def center_halves(self) -> List[Tuple[str, sitk.Image, np.ndarray]]:
        """The fixed centre crop segmented and cut at its middle: (side, grid, probabilities), right first."""
        reference = preprocess.center_reference(self.image, self.preprocessing, self.divisor)
        return postprocess.split_halves(reference, self.predict(reference))
