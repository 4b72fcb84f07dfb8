"""Training data: user image/label folders and synthetic samples, as patches in model space.

User volumes are resampled once onto an identity-direction isotropic grid at the model
spacing (image B-spline, label nearest), the way inference sees scans, and kept in memory.
A patch is a crop (80 % of the time near a labelled voxel, else anywhere), normalised on
its own like the inference regions, then augmented with MONAI. Synthetic samples come from
the generator. Every random choice of a batch is seeded from its step index, so a stream is
the same whatever the number of workers, and a resumed run sees the batches it would have.
"""
import functools
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import SimpleITK as sitk
import torch
from monai.transforms import (Compose, RandAdjustContrastd, RandAffined, RandFlipd, RandGaussianNoised,
                              RandGaussianSmoothd, RandScaleIntensityd, RandShiftIntensityd,
                              RandSimulateLowResolutiond, RandZoomd)
from monai.utils import convert_to_tensor
from torch.utils.data import IterableDataset, get_worker_info

from ..core import grid
from ..core.errors import InputError
from ..core.labels import CANALS, COCHLEA, NUM_CLASSES, VESTIBULE

IMAGE_EXTS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
POSITIVE_FRACTION = 0.8  # patches centred near a labelled voxel; the rest anywhere in the volume
LABYRINTH_CROP_MARGIN_MM = 6.0  # around whole-labyrinth labels (single-ear crops): see load_volume
VALIDATION_SEED = 10 ** 9  # validation samples use seeds VALIDATION_SEED + i, never reached in training


def sample_seed(seed: int, step: int, batch: int, i: int) -> int:
    """Seed of sample ``i`` of training step ``step``: distinct per sample, reproducible on resume."""
    return seed * 1_000_003 + step * batch + i


# What a label's values mean, and for partial labels the structure classes each value stands for
# (value 0 is background): 0..3 per structure; 0/1 the whole labyrinth; 0/1/2 the cochlea and the
# rest (vestibule with the canals), as ``cochlea_split.split_labels`` cuts a whole-labyrinth label.
LABEL_GROUPS = {
    "structures": None,
    "labyrinth": ((COCHLEA, VESTIBULE, CANALS),),
    "split": ((COCHLEA,), (VESTIBULE, CANALS)),
}
LABEL_KINDS = tuple(LABEL_GROUPS)


def is_partial(kind: str) -> bool:
    """Labels that group the structures (trained with the marginal loss, loaded as fractions)."""
    return LABEL_GROUPS[kind] is not None


@dataclass
class Case:
    name: str
    image: Path
    label: Path
    kind: str = "structures"   # LABEL_KINDS: what the label's values mean

    @property
    def landmarks(self) -> Path:
        """``X_desc.json`` beside a flat-layout label: landmarks in RAS mm (optional)."""
        return self.label.with_name(self.name + "_desc.json")


def image_stem(path: Path):
    """The name without its image extension (``X.nii.gz`` -> ``X``); None if not an image file."""
    for ext in IMAGE_EXTS:
        if path.name.lower().endswith(ext):
            return path.name[:-len(ext)]
    return None


def _with_stem(folder: Path, stem: str):
    """The image file in ``folder`` called ``stem`` + a supported extension, or None."""
    if not folder.is_dir():
        return None
    return next((p for p in sorted(folder.iterdir()) if image_stem(p) == stem), None)


# The folder layouts of image/label pairs: (image folder, label folder, image name suffix, label
# name suffix, the label expected, for the error message); "." is the data folder itself.
LAYOUTS = (("imagesTr", "labelsTr", "_0000", "", "labelsTr/{name}.nii.gz or similar"),
           ("images", "labels", "", "", "labels/{name}.nrrd or similar"),
           (".", ".", "_image", "_label", "{name}_label.nii.gz or similar beside it"))


def find_cases(folders: Sequence, kind: str = "structures") -> List[Case]:
    """Image/label pairs in each folder, in either layout:

    nnU-Net: ``imagesTr/X_0000.ext`` with ``labelsTr/X.ext`` (other channels ``_0001``... ignored);
    flat: ``X_image.ext`` with ``X_label.ext``; paired folders: ``images/X.ext`` with ``labels/X.ext``
    (what ``innerear-seg synth`` writes). Extensions: .nii.gz, .nii, .nrrd, .nhdr, .mha, .mhd.
    An image without its label is an error; so is a folder with no pairs. ``kind``: what the
    labels hold (``LABEL_KINDS``).
    """
    cases = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise InputError(folder, "training data folder not found")
        found = [case for layout in LAYOUTS for case in _layout_cases(folder, *layout)]
        if not found:
            raise InputError(folder, "no training pairs found: expected imagesTr/X_0000.nii.gz with "
                                     "labelsTr/X.nii.gz, X_image.nii.gz with X_label.nii.gz, or images/X.nii.gz "
                                     "with labels/X.nii.gz (also .nrrd, .mha)")
        cases += found
    for case in cases:
        case.kind = kind
    return cases


def _layout_cases(folder: Path, images: str, labels: str, suffix: str, label_suffix: str, expected: str
                  ) -> List[Case]:
    """The pairs of one layout (``LAYOUTS``) in ``folder``: each image ``NAME + suffix`` in ``images``
    with its label ``NAME + label_suffix`` in ``labels``; an image without its label is an error."""
    if not (folder / images).is_dir():
        return []
    found = []
    for image in sorted((folder / images).iterdir()):
        stem = image_stem(image) or ""
        if not stem or not stem.endswith(suffix):
            continue
        name = stem[:len(stem) - len(suffix)]
        label = _with_stem(folder / labels, name + label_suffix)
        if label is None:
            raise InputError(image, f"no label found (expected {expected.format(name=name)})")
        found.append(Case(name, image, label))
    return found


def read_pair(case: Case):
    """Read one image and its label and check they belong together (same grid, label values of
    its kind: ``LABEL_GROUPS``)."""
    images = []
    for path in (case.image, case.label):
        try:
            images.append(sitk.ReadImage(str(path)))
        except RuntimeError as e:
            raise InputError(path, f"cannot read image ({str(e).strip().splitlines()[-1]})") from e
        if images[-1].GetDimension() != 3 or images[-1].GetNumberOfComponentsPerPixel() != 1:
            raise InputError(path, "not a 3D single-component image")
    image, label = images
    if image.GetSize() != label.GetSize():
        raise InputError(case.label, f"label size {label.GetSize()} differs from the image's {image.GetSize()} "
                                     f"({case.image.name})")
    for what, a, b in (("spacing", image.GetSpacing(), label.GetSpacing()),
                       ("origin", image.GetOrigin(), label.GetOrigin()),
                       ("direction", image.GetDirection(), label.GetDirection())):
        if not np.allclose(a, b, atol=1e-3, rtol=1e-4):
            raise InputError(case.label, f"label {what} {tuple(np.round(b, 4))} differs from the image's "
                                         f"{tuple(np.round(a, 4))} ({case.image.name})")
    values = sitk.GetArrayViewFromImage(label)
    top = len(LABEL_GROUPS[case.kind]) if is_partial(case.kind) else NUM_CLASSES - 1
    if values.min() < 0 or values.max() > top or np.any(values != np.round(values)):
        raise InputError(case.label, f"{case.kind} label values must be whole numbers 0..{top} "
                                     f"(found {values.min()}..{values.max()})")
    if values.max() == 0:
        raise InputError(case.label, "label has no labelled voxel")
    return image, label


@dataclass
class Volume:
    """One user case on the model grid, arrays in SimpleITK order (z, y, x)."""

    name: str
    image: np.ndarray       # float32, raw intensities (normalised per patch)
    label: np.ndarray       # uint8, 0..3 (segmenter) or 0/1 (localizer); partial kinds: float32 fractions
                            # of each label value beyond 0 (G, z, y, x)
    foreground: np.ndarray  # flat indices of labelled voxels, for positive patch centres
    kind: str = "structures"


def label_region_reference(label: sitk.Image, spacing: float, margin_mm: float) -> sitk.Image:
    """An identity-direction grid around the labelled voxels plus ``margin_mm``: the ears and
    their surroundings, not the whole head, so a 0.45 mm copy stays small."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(label != 0, sitk.sitkUInt8))
    x, y, z, sx, sy, sz = stats.GetBoundingBox(1)
    corners = [label.TransformIndexToPhysicalPoint((i, j, k)) for i in (x, x + sx - 1)
               for j in (y, y + sy - 1) for k in (z, z + sz - 1)]
    lo, hi = np.min(corners, 0) - margin_mm, np.max(corners, 0) + margin_mm
    return grid.canonical_reference((lo + hi) / 2, np.ceil((hi - lo) / spacing).astype(int) + 1, spacing)


def load_volume(case: Case, stage: str, spacing: float, patch_size: Sequence[int]) -> Volume:
    """Read, check and resample one case onto the model grid.

    Segmenter: the labelled region plus one patch of margin; localizer: the whole scan
    (it sees whole scans at inference), labels merged into one labyrinth class that marks
    every coarse voxel the labyrinth touches.
    """
    image, label = read_pair(case)
    if stage == "segmenter":
        # whole-labyrinth cases are single-ear crops: beyond a few mm there is only padding, and
        # validating on a volume mostly of padding normalised it unlike the pipeline's ear region
        margin = LABYRINTH_CROP_MARGIN_MM if is_partial(case.kind) else max(patch_size) * spacing
        reference = label_region_reference(label, spacing, margin)
    else:
        reference = grid.covering_reference(image, spacing)
    low = float(sitk.GetArrayViewFromImage(image).min())
    image_arr = sitk.GetArrayFromImage(grid.resample(image, reference, "bspline", default=low))
    if stage == "segmenter" and is_partial(case.kind):   # the fraction of each voxel: sub-voxel targets
        fractions = np.stack([sitk.GetArrayFromImage(grid.resample(sitk.Cast(label == value, sitk.sitkFloat32),
                                                                   reference, "linear"))
                              for value in range(1, len(LABEL_GROUPS[case.kind]) + 1)])
        return Volume(case.name, image_arr.astype(np.float32), fractions, np.flatnonzero(fractions.sum(0) >= 0.5),
                      case.kind)
    if stage == "segmenter":
        label_arr = sitk.GetArrayFromImage(grid.resample(label, reference, "nearest", pixel_type=sitk.sitkUInt8))
    else:  # 1 wherever labyrinth reaches a 2 mm voxel: nearest neighbour would drop the thin canals
        mask = grid.resample(sitk.Cast(label != 0, sitk.sitkFloat32), reference, "linear")
        label_arr = (sitk.GetArrayFromImage(mask) > 0.01).astype(np.uint8)
    return Volume(case.name, image_arr.astype(np.float32), label_arr, np.flatnonzero(label_arr))


def load_volumes(folders: Sequence, stage: str, spacing: float, patch_size: Sequence[int],
                 kind: str = "structures") -> List[Volume]:
    return [load_volume(c, stage, spacing, patch_size) for c in find_cases(folders, kind)] if folders else []


def load_shape(case: Case, spacing: float):
    """A real labyrinth label as a ``realshapes.Shape`` on an identity grid at ``spacing`` (margin
    4 mm; split labels keep their parts, so the samples teach the split too), with the internal
    auditory canal's axis when ``X_desc.json`` gives the basal-turn centre
    C and the helicotrema A (RAS mm): the canal continues the modiolar axis from A through C."""
    import json
    from ..synth.realshapes import Shape
    _, label = read_pair(case)
    reference = label_region_reference(label, spacing, 4.0)
    def fraction_of(mask):
        return sitk.GetArrayFromImage(grid.resample(sitk.Cast(mask, sitk.sitkFloat32), reference, "linear"))

    fraction = fraction_of(label != 0)
    parts = np.stack([fraction_of(label == value) for value in range(1, len(LABEL_GROUPS[case.kind]) + 1)]) \
        if case.kind == "split" else None
    iac = None
    if case.landmarks.is_file():
        marks = json.loads(case.landmarks.read_text())["LANDMARKS"]
        c, a = (np.asarray(marks[k], float) * [-1, -1, 1] for k in ("C", "A"))    # RAS -> LPS
        start = np.asarray(reference.TransformPhysicalPointToContinuousIndex(c.tolist()))[::-1]
        direction = (c - a)[::-1] / np.linalg.norm(c - a)
        iac = (start, direction)
    return Shape(fraction.astype(np.float32), iac, None if parts is None else parts.astype(np.float32))


def crop(array: np.ndarray, start: Sequence[int], size: Sequence[int], fill) -> np.ndarray:
    """The box ``start``..``start + size`` of ``array``'s last three axes; parts outside it are ``fill``."""
    lead = array.shape[:-3]
    out = np.full(lead + tuple(size), fill, array.dtype)
    src = tuple(slice(max(s, 0), min(s + n, d)) for s, n, d in zip(start, size, array.shape[-3:]))
    dst = tuple(slice(a.start - s, a.stop - s) for a, s in zip(src, start))
    out[(...,) + dst] = array[(...,) + src]
    return out


def sample_patch(volume: Volume, patch_size: Sequence[int], rng: np.random.Generator,
                 low: float = 0.5, high: float = 99.5):
    """A normalised (image, label) patch; near a labelled voxel with probability 0.8, with a
    random offset of up to a quarter patch so the anatomy is not always centred."""
    size = np.asarray(patch_size)
    if volume.foreground.size and rng.random() < POSITIVE_FRACTION:
        centre = np.array(np.unravel_index(volume.foreground[rng.integers(volume.foreground.size)],
                                           volume.label.shape[-3:]))
        centre += rng.integers(-(size // 4), size // 4 + 1)
    else:
        centre = rng.integers(0, volume.label.shape[-3:])
    start = centre - size // 2
    image = crop(volume.image, start, size, volume.image.min())
    return grid.normalise(image, low, high), crop(volume.label, start, size, 0)


ROTATE_DEG = 30.0       # head tilt: any axis
SCALE_RANGE = (0.77, 1.3)  # ear size: real labyrinths span about 150-300 mm3


def augmentation() -> Compose:
    """Random augmentation of a {"image" (1, z, y, x), "label" (C, z, y, x)} dict of patches.

    Only the x (left-right) flip: a mirrored right ear is a plausible left ear, but flipping
    up/down or front/back gives anatomy that never occurs in the canonical LPS model space.
    Rotations of up to ``ROTATE_DEG`` about every axis cover head tilt and an isotropic zoom in
    ``SCALE_RANGE`` ear size (a network trained without them lost half its Dice on real crops
    turned by 10-30 degrees or 10-40 % larger than the generator's ears); a further 5 % per
    axis covers shape. Blur and resolution loss cover scans coarser than the training crops.
    The intensity changes cover scanners, coils and bias fields. Targets
    are class fractions (C, z, y, x), interpolated linearly; where rotation or zoom pads with
    zeros they sum to 0: no cross-entropy there, and foreground predicted there counts as
    false in the Dice term.
    """
    keys = ("image", "label")
    return Compose([
        RandFlipd(keys, prob=0.5, spatial_axis=2),
        RandZoomd(keys, prob=0.7, min_zoom=SCALE_RANGE[0], max_zoom=SCALE_RANGE[1], mode=("trilinear", "trilinear"),
                  padding_mode=("edge", "constant"), keep_size=True),
        RandAffined(keys, prob=0.7, rotate_range=[np.deg2rad(ROTATE_DEG)] * 3, scale_range=[0.05] * 3,
                    mode=("bilinear", "bilinear"), padding_mode=("border", "zeros")),
        # a coarser scan: blur (anisotropic, up to about a 0.85 mm FWHM slice at 0.3 mm) and
        # resolution loss; clinical CT is 0.4 x 0.4 x 0.6 mm or coarser, the real training crops 0.16-0.2 mm
        RandGaussianSmoothd("image", sigma_x=(0.3, 1.2), sigma_y=(0.3, 1.2), sigma_z=(0.3, 1.2), prob=0.3),
        RandSimulateLowResolutiond("image", prob=0.25, zoom_range=(0.5, 1.0)),
        RandScaleIntensityd("image", factors=0.1, prob=0.5),
        RandShiftIntensityd("image", offsets=0.1, prob=0.5),
        RandAdjustContrastd("image", gamma=(0.7, 1.5), prob=0.3),
        RandGaussianNoised("image", std=0.03, prob=0.3),
    ])


def synthetic_sampler(stage: str, patch_size: Sequence[int], spacing: float, soft: bool = False,
                      contrast_weights: Optional[Sequence[float]] = None):
    """``seed -> (image, label)`` from the synthetic generator for one stage; ``soft``: the
    segmenter's labels are class fractions (C, z, y, x) instead of classes; ``contrast_weights``:
    shares of the generator's contrasts (mr, ct, cbct, random; default its own)."""
    from ..synth import generate  # imported late: training on user data alone does not need it
    weights = tuple(contrast_weights) if contrast_weights else None
    if stage == "segmenter":
        return functools.partial(generate.segmenter_sample, patch_size=tuple(patch_size), spacing=spacing,
                                 soft=soft, family_weights=weights)
    return functools.partial(generate.localizer_sample, shape=tuple(patch_size), spacing=spacing,
                             family_weights=weights)


def as_labels(label: np.ndarray) -> np.ndarray:
    """Classes (z, y, x) from classes or class fractions (C, z, y, x)."""
    return label.argmax(0).astype(np.uint8) if label.ndim == 4 else label


def group_fractions(fractions: np.ndarray, classes: int) -> np.ndarray:
    """Targets (C, z, y, x) for partial-label fractions (G, z, y, x): channel 0 the background, channels
    1..G the groups, the rest 0. Only meaningful with the marginal loss, which merges the structure
    channels into the same groups (``train.MarginalLoss``)."""
    out = np.zeros((classes,) + fractions.shape[1:], np.float32)
    out[0], out[1:len(fractions) + 1] = 1.0 - fractions.sum(0), fractions
    return out


def group_classes(fractions: np.ndarray) -> np.ndarray:
    """Label values (z, y, x) uint8 of partial-label fractions (G, z, y, x): the likeliest of
    background and the groups."""
    return np.concatenate([1.0 - fractions.sum(0, keepdims=True), fractions]).argmax(0).astype(np.uint8)


def as_fractions(label: np.ndarray, classes: int) -> np.ndarray:
    """Class fractions (C, z, y, x) float32 from classes (one-hot) or fractions (as they are)."""
    if label.ndim == 4:
        return np.asarray(label, np.float32)
    return (np.arange(classes)[:, None, None, None] == np.asarray(label)[None]).astype(np.float32)


def generator_version():
    try:
        from .. import synth
    except ImportError:
        return None
    return getattr(synth, "GENERATOR_VERSION", None)


class PatchStream(IterableDataset):
    """An endless stream of training batches ``(image (B,1,z,y,x), target (B,C,z,y,x), kind (B,))``.

    The target holds class fractions: one-hot for labelled classes, fractions where the
    sampler gives them (``generate.soft_labels``), so both kinds mix in one batch. ``kind`` is
    the index in ``LABEL_KINDS`` of each sample's target: partial labels (real whole-labyrinth
    or split labels, and real-shape samples, which are whole) are trained with the marginal loss.

    Each sample comes from one of three sources: the procedural generator (``sampler``, with
    probability ``synthetic_fraction``), real shapes (``shape_sampler``, ``shape_fraction``)
    or user patches (``volumes``, the rest); shares of absent sources go to the others.
    Seeds come from :func:`sample_seed`. DataLoader workers take every n-th step, so batches
    arrive in step order.
    """

    def __init__(self, volumes: List[Volume], sampler, patch_size: Sequence[int], batch: int, seed: int = 0,
                 start_step: int = 0, synthetic_fraction: float = 0.5, augment: bool = True,
                 normalisation=(0.5, 99.5), classes: int = NUM_CLASSES, shape_sampler=None,
                 shape_fraction: float = 0.0):
        super().__init__()
        if not volumes and sampler is None and shape_sampler is None:
            raise ValueError("no training data: give user volumes, a synthetic sampler, or both")
        self.volumes, self.sampler, self.shape_sampler = volumes, sampler, shape_sampler
        self.patch_size, self.batch_size, self.seed = tuple(patch_size), batch, seed
        self.start_step = start_step
        self.shares = source_shares(bool(volumes), sampler is not None, shape_sampler is not None,
                                    synthetic_fraction, shape_fraction)
        self.transform = augmentation() if augment else None
        self.normalisation = normalisation
        self.classes = classes

    def draw(self, seed: int, rng):
        """(image, class fractions (C, z, y, x), index of its label kind) from one source."""
        source = rng.choice(3, p=self.shares)
        if source == 1:
            image, label = self.sampler(seed)
            return image, as_fractions(label, self.classes), LABEL_KINDS.index("structures")
        if source == 2:
            image, fractions = self.shape_sampler(seed)
            kind = "labyrinth" if len(fractions) == 1 else "split"
            return image, group_fractions(fractions, self.classes), LABEL_KINDS.index(kind)
        volume = self.volumes[rng.integers(len(self.volumes))]
        image, label = sample_patch(volume, self.patch_size, rng, *self.normalisation)
        if is_partial(volume.kind):
            return image, group_fractions(label, self.classes), LABEL_KINDS.index(volume.kind)
        return image, as_fractions(label, self.classes), LABEL_KINDS.index(volume.kind)

    def sample(self, seed: int):
        rng = np.random.default_rng(seed)
        image, target, kind = self.draw(seed, rng)
        data = {"image": np.asarray(image, np.float32)[None], "label": target}
        if self.transform is not None:
            self.transform.set_random_state(seed=seed % 2 ** 32)
            data = self.transform(data)
        return (convert_to_tensor(data["image"], dtype=torch.float32),
                convert_to_tensor(data["label"], dtype=torch.float32), kind)

    def batch(self, step: int):
        samples = [self.sample(sample_seed(self.seed, step, self.batch_size, i)) for i in range(self.batch_size)]
        return (torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples]),
                torch.tensor([s[2] for s in samples]))

    def __iter__(self):
        info = get_worker_info()
        first, stride = (info.id, info.num_workers) if info else (0, 1)
        for step in itertools.count(self.start_step + first, stride):
            yield self.batch(step)


def source_shares(has_volumes: bool, has_synthetic: bool, has_shapes: bool, synthetic_fraction: float,
                  shape_fraction: float) -> np.ndarray:
    """Probabilities of (user volumes, procedural synthetic, real shapes); absent sources get 0
    and the present ones share their part (synthetic alone: 1)."""
    p = np.array([max(0.0, 1.0 - synthetic_fraction - shape_fraction) * has_volumes,
                  synthetic_fraction * has_synthetic, shape_fraction * has_shapes])
    if p.sum() <= 0:
        p = np.array([has_volumes, has_synthetic, has_shapes], float)
    return p / p.sum()
