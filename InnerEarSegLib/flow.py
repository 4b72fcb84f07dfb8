"""One ``segment`` call, top to bottom: read -> preprocess -> locate and confirm the ears ->
postprocess -> measure -> result. Each step is a call into the module of its concern, and
none of them calls back here; ``pipeline`` adds files and batches around it.

Stages, reported through ``progress(stage, fraction, message)`` and timed in ``result.timings``
(``progress.Stages``): read (input and model), preprocess (value checks, modality), localize,
segment (resampling and networks per ear; ``confirm.confirm_ears`` checks each localiser candidate
with the segmenter and centres its region), postprocess, measure, surface. ``cancel`` is checked
between stages (and between ears), so Cancel stops at the next one. Collaborators (predictor,
locator, surface builder) can be injected, which lets tests run the whole path with fakes.
"""
from functools import partial
from typing import Callable, Optional

from .core.errors import library_warnings
from .core.progress import CancelFlag, ProgressCallback, Stages, no_progress
from .core.read import as_image
from .core.result import SegmentationResult
from .inference import confirm, infer, localize, postprocess, preprocess
from .inference.regions import RegionPredictor
from .model.model_card import LoadedModel, load_model
from .outputs import measure
from .parameters import SegmentParameters


def segment(image, model=None, params: Optional[SegmentParameters] = None,
            progress: Optional[ProgressCallback] = None, cancel: Optional[CancelFlag] = None, *,
            spacing=None, origin=None, direction=None, surface_builder: Optional[Callable] = None,
            predictor: Optional[Callable] = None, locator: Optional[Callable] = None,
            source=None) -> SegmentationResult:
    """Segment one scan; everything returned lies on the exact input grid.

    image: sitk.Image, or a (z, y, x) array with ``spacing`` etc. (LPS). model: LoadedModel,
    a card/weights path, or None for the bundled model. predictor(net, array, roi) -> (C, z, y, x)
    probabilities replaces the networks; locator(image, model, predictor) -> [EarRegion] replaces
    ``localize.locate_ears``; surface_builder(labels, sides, smoothing) -> {segment_id: vtkPolyData}.
    source names the scan in error messages. A scan with no ear found gives empty labels
    and a warning. The input is never modified.
    """
    params = params or SegmentParameters()
    ok, why = params.isValid()
    if not ok:
        raise ValueError(why)
    stage = Stages(progress or no_progress, cancel)
    with library_warnings() as messages:
        stage("read")
        image = as_image(image, spacing, origin, direction, source)
        device = infer.pick_device(params.device)
        model = model if isinstance(model, LoadedModel) else load_model(model, device)
        infer.configure_threads()
        run = partial(infer.predict_probabilities, device=device, cpu_bf16=params.cpu_bf16)

        stage("preprocess")
        modality = preprocess.checked_modality(image, model, params.modality, source, stage.progress)
        regions = RegionPredictor(image, model, predictor or partial(run, tta=params.tta, turns=params.tta_turns),
                                  stage.progress, cancel, modality)

        stage("localize")
        center = params.roi == "center"  # the fixed centre crop: nothing to locate
        locate = locator or localize.locate_ears
        candidates = [] if center else locate(image, model, predictor or partial(run, tta=False))

        stage("segment")
        ears, found = confirm.segment_ears(image, candidates, regions, center_crop=center)

        stage("postprocess")
        labels, sides = postprocess.labels_and_sides(image, found, params.keep_largest, params.fill_holes,
                                                     params.split_sides, params.refine_edges)

        stage("measure")
        stats = measure.measure(labels, sides if params.split_sides else None)
        measure.warn_if_implausible(stats)
        surfaces = _surfaces(labels, sides, params, stage, surface_builder) if params.surfaces else {}
        stage.done()
    return SegmentationResult(labels=labels, sides=sides, stats=stats, surfaces=surfaces, ears=ears,
                              warnings=messages, source=str(source) if source else None,
                              model_name=model.name, modality=modality, timings=stage.timings)


def _surfaces(labels, sides, params: SegmentParameters, stage: Stages, builder: Optional[Callable]) -> dict:
    """The surface stage: {segment_id: vtkPolyData}; VTK is imported only when surfaces are built."""
    stage("surface")
    if builder is None:
        from .outputs.surface import build_surfaces as builder
    return builder(labels, sides if params.split_sides else None, params.smoothing)
