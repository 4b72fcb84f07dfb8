"""The library's Python API: segment an image, a file, or a batch of files.

Stages, reported through ``progress(stage, fraction, message)`` and timed in
``result.timings``: read (input and model), preprocess (value checks, modality), localize,
segment (resampling and networks per ear; ``confirm.confirm_ears`` checks each localiser candidate
with the segmenter and centres its region), postprocess, measure, surface.
``cancel`` is checked between stages (and between ears), so Cancel stops at the next one.
Collaborators (predictor, locator, surface builder, writer) can be injected, which lets
tests run the whole path with fakes; the defaults are the real networks and writers.
"""
import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import SimpleITK as sitk

from . import confirm, fluid_check, grid, infer, localize, postprocess, preprocess
from .errors import Cancelled, InnerEarSegError, InputError
from .measure import measure
from .model_card import LoadedModel, load_model
from .parameters import SegmentParameters  # noqa: F401 (the API's name, kept here)
from .progress import CancelFlag, ProgressCallback, no_progress
from .read import case_name, check_unique_case_names, list_inputs, read_image
from .regions import RegionPredictor
from .result import EarRegion, SegmentationResult

HERE = Path(__file__).resolve().parent
# A whole labyrinth is about 150-300 mm3 (the real CT ears of Wimmer et al. 2019: 188-282); a
# cochlea alone after a labyrinthectomy is 50-100 mm3. Outside this range, a warning.
PLAUSIBLE_LABYRINTH_MM3 = (40.0, 450.0)
THICK_SLICE_MM = 1.5  # coarser voxels still run, with a warning: canals (about 1 mm) blur away


@dataclass
class CaseReport:
    """The outcome of one input of a batch; ``error`` names the file and the cause. ``skipped``:
    not segmented because complete outputs of an earlier run were there (``cohort``, resume)."""

    path: str
    name: str
    ok: bool
    error: str = ""
    outputs: List[Path] = field(default_factory=list)
    seconds: float = 0.0
    stats: List[dict] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    skipped: bool = False


class _Stages:
    """Times stages into ``timings`` and reports them; checks ``cancel`` at each boundary."""

    def __init__(self, progress: ProgressCallback, cancel: Optional[CancelFlag], timings: dict):
        self.progress, self.cancel, self.timings = progress, cancel, timings
        self.stage, self.start = None, 0.0

    def __call__(self, stage: str, message: str = "") -> None:
        self.done()
        if self.cancel is not None:
            self.cancel.check()
        self.stage, self.start = stage, time.perf_counter()
        self.progress(stage, 0.0, message)

    def done(self) -> None:
        if self.stage is not None:
            self.timings[self.stage] = self.timings.get(self.stage, 0.0) + time.perf_counter() - self.start
            self.progress(self.stage, 1.0, "")
            self.stage = None


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


def _model(model, device) -> LoadedModel:
    return model if isinstance(model, LoadedModel) else load_model(model, device)


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
    timings: dict = {}
    stage = _Stages(progress or no_progress, cancel, timings)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stage("read")
        image = as_image(image, spacing, origin, direction, source)
        device = infer.pick_device(params.device)
        model = _model(model, device)
        infer.configure_threads()
        run = partial(infer.predict_probabilities, device=device, cpu_bf16=params.cpu_bf16)
        regions = RegionPredictor(image, model, predictor or partial(run, tta=params.tta), stage.progress, cancel)

        stage("preprocess")
        modality = _modality(image, model, params, source, stage.progress)

        stage("localize")
        if params.roi == "center":
            candidates = []
        else:
            candidates = (locator or localize.locate_ears)(image, model, predictor or partial(run, tta=False))

        stage("segment")
        ears, found = _segment_ears(image, params, candidates, regions)

        stage("postprocess")
        labels, sides = _labels(image, params, ears, found, regions)

        stage("measure")
        stats = measure(labels, sides if params.split_sides else None)
        _warn_if_implausible(stats)
        surfaces = _surfaces(labels, sides, params, stage, surface_builder)
        stage.done()
    messages = _passed_on(caught)
    return SegmentationResult(labels=labels, sides=sides, stats=stats, surfaces=surfaces, ears=ears,
                              warnings=messages, source=str(source) if source else None,
                              model_name=model.name, modality=modality, timings=timings)


def _modality(image: sitk.Image, model: LoadedModel, params: SegmentParameters, source, report) -> str:
    """The scan's modality, as set or detected, after the value checks; warnings for unsuited inputs."""
    preprocess.check_values(image, source)
    modality = preprocess.detect_modality(image) if params.modality == "auto" else params.modality
    report("preprocess", 0.5, f"modality {modality.upper()}")
    _warn_if_unsuited(image, model, modality, source)
    return modality


def _segment_ears(image: sitk.Image, params: SegmentParameters, candidates: List[EarRegion],
                  regions: RegionPredictor):
    """(ears, [(side, region grid, probabilities)]): the centre crop's halves, or the candidates
    confirmed by the segmenter (``confirm.confirm_ears``)."""
    if params.roi == "center":
        found = regions.center_halves()
        return [EarRegion(side, grid.center_of(ref), 0.0) for side, ref, _ in found], found
    # no whole-scan sweep on voxels too coarse for the canals: tens of passes that find nothing
    sweep = regions.preprocessing["ear_region_mm"] if max(image.GetSpacing()) <= THICK_SLICE_MM else None
    confirmed = confirm.confirm_ears(image, candidates, regions, sweep_mm=sweep)
    ears = [ear for ear, _, _ in confirmed]
    if not ears:
        warnings.warn("no inner ear found in the field of view; the labels are empty")
    return ears, [(ear.side, reference, probabilities) for ear, reference, probabilities in confirmed]


def _labels(image: sitk.Image, params: SegmentParameters, ears: List[EarRegion], found, regions: RegionPredictor):
    """(labels, sides) on the input grid from each ear's region, after the fluid check if asked for."""
    if params.fluid_check:
        found = [_check_fluid(region, regions.region_input(region[1]), ear) for region, ear in zip(found, ears)]
    regions.forget_inputs()
    labels, sides = postprocess.assemble(image, found, params.keep_largest, params.fill_holes)
    if not params.split_sides:
        sides = postprocess.to_image(np.zeros(image.GetSize()[::-1], np.uint8), image)
    if ears and not sitk.GetArrayViewFromImage(labels).any():
        warnings.warn("no inner ear found in the located region(s); the labels are empty")
    return labels, sides


def _surfaces(labels: sitk.Image, sides: sitk.Image, params: SegmentParameters, stage: "_Stages",
              surface_builder: Optional[Callable]) -> dict:
    """{segment_id: vtkPolyData} when surfaces are asked for (stage "surface"), else empty."""
    if not params.surfaces:
        return {}
    stage("surface")
    if surface_builder is None:
        from .surface import build_surfaces as surface_builder
    return surface_builder(labels, sides if params.split_sides else None, params.smoothing)


def _passed_on(caught) -> List[str]:
    """Every caught warning passed on to the caller; the messages of the library's own."""
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return [str(w.message) for w in caught if Path(w.filename).resolve().parent == HERE]


def _check_fluid(region, array: np.ndarray, ear: EarRegion):
    """One region with ``fluid_check.drop_unfilled`` applied to its network input ``array``
    (the ratio kept in ``ear``), and a warning when it removed anything."""
    side, reference, probabilities = region
    checked, ratio, wall = fluid_check.drop_unfilled(array, probabilities, reference.GetSpacing())
    ear.fluid_ratio, ear.wall_ratio = ratio, wall
    if checked is not probabilities:
        why = (f"the vestibule stands out from its own wall only {wall:.2f} x as much as from the capsule"
               if fluid_check.keeps(ratio, None) else f"contrast to the otic capsule {ratio:.2f} x the cochlea's")
        warnings.warn(f"{side} ear: the vestibule and canals found do not look like the cochlea's fluid in a "
                      f"capsule ({why}); they were removed. Labyrinthectomy or ossification? Turn the fluid "
                      "check off to keep them.")
    return side, reference, checked


def _warn_if_implausible(stats: List[dict]) -> None:
    """A warning for each ear whose labyrinth is far outside the sizes of real ones: noise, a
    look-alike, or a fragment was labelled. A warning, not a removal: a labyrinthectomy leaves
    a cochlea alone (about 50-100 mm3) and a malformed ear may be larger."""
    low, high = PLAUSIBLE_LABYRINTH_MM3
    for row in stats:
        per_ear = row["structure"] == "labyrinth" and row["side"] != "both" and row["voxels"]
        if per_ear and not low <= row["volume_mm3"] <= high:
            warnings.warn(f"{row['side']} ear: a labyrinth of {row['volume_mm3']:.0f} mm3 is outside "
                          f"{low:g}-{high:g} mm3; check that it is an inner ear")


def _warn_if_unsuited(image: sitk.Image, model: LoadedModel, modality: str, source) -> None:
    """Warnings for inputs that run but may disappoint: thick slices, a modality the model never saw."""
    coarsest = max(image.GetSpacing())
    if coarsest > THICK_SLICE_MM:
        warnings.warn(f"{source or 'input'}: voxels up to {coarsest:g} mm are much coarser than the model's "
                      f"{model.card['preprocessing']['spacing_mm']} mm; thin structures such as the "
                      "semicircular canals will be unreliable")
    trained = model.card.get("modalities")  # e.g. ["mr", "ct"]; no entry: no check
    if trained and modality not in trained:
        warnings.warn(f"{source or 'input'} looks like {modality.upper()} but the model was trained on "
                      f"{', '.join(m.upper() for m in trained)} only; set the modality if this is wrong")


def _segment_and_write(path, out_dir, model, params, progress, cancel, writer, surface_builder, read=None):
    start = time.perf_counter()
    image = read() if read is not None else read_image(path)
    seconds = time.perf_counter() - start
    result = segment(image, model, params, progress, cancel, surface_builder=surface_builder, source=path)
    result.timings["read"] = result.timings.get("read", 0.0) + seconds
    if writer is None:
        from .write import write_outputs as writer
    outputs = writer(result, out_dir, case_name(path), image)
    return result, [Path(p) for p in outputs]


def segment_file(path, out_dir, model=None, params: Optional[SegmentParameters] = None,
                 progress: Optional[ProgressCallback] = None, cancel: Optional[CancelFlag] = None, *,
                 writer: Optional[Callable] = None, surface_builder: Optional[Callable] = None
                 ) -> SegmentationResult:
    """Read a scan (file or DICOM folder), segment it, and write its outputs into ``out_dir/<case>/``.

    writer(result, out_dir, name, input_image) -> [paths] defaults to ``write.write_outputs``.
    """
    return _segment_and_write(path, out_dir, model, params, progress, cancel, writer, surface_builder)[0]


def segment_batch(paths, out_dir, model=None, params: Optional[SegmentParameters] = None,
                  progress: Optional[ProgressCallback] = None, cancel: Optional[CancelFlag] = None, *,
                  writer: Optional[Callable] = None, surface_builder: Optional[Callable] = None
                  ) -> List[CaseReport]:
    """Segment every scan in ``paths`` (expanded by ``read.list_inputs``), one report each.

    A failing scan does not stop the others; its report's error names the file and the cause.
    The model is loaded once (a bad model stops the batch: nothing could succeed), and Cancel
    stops the batch. Progress also gets ``("batch", i / n, case name)`` before each scan.
    ``cohort.segment_cohort`` adds reading ahead, resuming, a summary CSV and Dask workers.
    """
    params = params or SegmentParameters()
    model = _model(model, infer.pick_device(params.device))
    progress = progress or no_progress
    inputs = list_inputs(paths)
    check_unique_case_names(inputs)
    reports = []
    for i, path in enumerate(inputs):
        progress("batch", i / len(inputs), case_name(path))
        reports.append(segment_case(path, out_dir, model, params, progress, cancel, writer=writer,
                                    surface_builder=surface_builder))
    progress("batch", 1.0, "")
    return reports


def segment_case(path, out_dir, model, params: Optional[SegmentParameters] = None,
                 progress: Optional[ProgressCallback] = None, cancel: Optional[CancelFlag] = None, *,
                 writer: Optional[Callable] = None, surface_builder: Optional[Callable] = None,
                 read: Optional[Callable] = None) -> CaseReport:
    """Segment one scan of a batch, write its outputs and report: a failing scan gives a report
    whose error names the file and the cause, never an exception (Cancel and Ctrl-C still stop).
    ``read() -> image`` replaces reading ``path`` (``cohort`` reads the next scan ahead)."""
    name = case_name(path)
    start = time.perf_counter()
    try:
        result, outputs = _segment_and_write(path, out_dir, model, params or SegmentParameters(),
                                             progress or no_progress, cancel, writer, surface_builder, read)
        report = CaseReport(str(path), name, True, "", outputs, 0.0, result.stats, result.warnings)
    except Cancelled:
        raise
    except Exception as e:  # one failing scan must not lose the others
        cause = str(e) if isinstance(e, InnerEarSegError) else f"{type(e).__name__}: {e}"
        report = CaseReport(str(path), name, False, cause if str(path) in cause else f"{path}: {cause}")
    report.seconds = time.perf_counter() - start
    return report
