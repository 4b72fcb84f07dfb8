"""Training data for stack models: pairing images with label stacks, the dataset description
(nnU-Net's ``dataset.json`` convention: ``channel_names``, ``labels`` {name: value},
``file_ending``), and random augmented patches."""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..core.errors import InputError
from . import io
from .card import colour

CHANNEL_SUFFIX = "_0000"  # nnU-Net names the first channel of case S "S_0000"


@dataclass
class Case:
    name: str
    image: np.ndarray          # (z, y, x) as read
    labels: np.ndarray         # (z, y, x) label values
    pixel_size_um: Optional[tuple]


def read_dataset_json(path) -> dict:
    """``{"labels": [{"name", "value", "color"}], "channel_names": [...], "file_ending": str|None}``."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise InputError(p, f"cannot read the dataset description ({e})") from e
    labels = doc.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise InputError(p, "no 'labels' object ({\"background\": 0, \"name\": 1, ...})")
    try:
        items = sorted((int(v), str(k)) for k, v in labels.items())
    except (TypeError, ValueError) as e:
        raise InputError(p, f"label values must be integers ({e})") from e
    channels = doc.get("channel_names", {"0": "image"})
    if len(channels) != 1:
        raise InputError(p, f"{len(channels)} channels; stack models take one channel")
    return {"labels": label_list([name for value, name in items if value != 0], [v for v, _ in items if v != 0]),
            "channel_names": [str(c) for c in channels.values()], "file_ending": doc.get("file_ending")}


def label_list(names: Sequence[str], values: Optional[Sequence[int]] = None) -> List[dict]:
    """Foreground labels as the card stores them; values 1, 2, ... unless given."""
    values = list(values) if values is not None else list(range(1, len(names) + 1))
    return [{"name": n, "value": int(v), "color": list(colour(v))} for n, v in zip(names, values)]


def _entries(path, file_ending: Optional[str]) -> Dict[str, Path]:
    """Case name -> file or slice folder: a stack file alone, or every stack file and slice
    subfolder inside a folder (nnU-Net's channel suffix ``_0000`` dropped from the name)."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such file or folder")
    items = [p] if p.is_file() else _stacks_in(p, file_ending)
    out = {}
    for f in items:
        name = io.case_name(f)
        name = name[:-len(CHANNEL_SUFFIX)] if name.endswith(CHANNEL_SUFFIX) else name
        if name in out:
            raise InputError(f, f"two images for case {name!r}: {out[name].name} and {f.name}")
        out[name] = f
    return out


def _stacks_in(folder: Path, file_ending: Optional[str]) -> List[Path]:
    """The stack files (ending in ``file_ending`` when given) and slice subfolders in ``folder``, sorted."""
    items = sorted(f for f in folder.iterdir() if not f.name.startswith(".")
                   and ((f.is_file() and io.ending(f)) or (f.is_dir() and io.slice_files(f))))
    if file_ending:
        items = [f for f in items if f.is_dir() or f.name.endswith(file_ending)]
    return items


def pair_cases(images, labels, file_ending: Optional[str] = None) -> List[tuple]:
    """[(name, image path, label path)], matched by case name; an image without labels is an error."""
    imgs, labs = _entries(images, file_ending), _entries(labels, None)
    if Path(images).is_file() and Path(labels).is_file():
        return [(io.case_name(images), Path(images), Path(labels))]
    if not imgs:
        raise InputError(images, "no image stacks found here")
    missing = [n for n in imgs if n not in labs]
    if missing:
        raise InputError(labels, f"no label stack for the case(s) {', '.join(missing[:5])}"
                                 f"{' ...' if len(missing) > 5 else ''} (matched by name without the ending)")
    return [(n, imgs[n], labs[n]) for n in imgs]


def load_case(name, image_path, label_path, values, pixel_size_um=None, threshold=None) -> Case:
    """Read one pair and check that image and labels have the same shape."""
    img = io.read_stack(image_path, pixel_size_um)
    lab = io.read_stack(label_path)
    if img.array.shape != lab.array.shape:
        raise InputError(label_path, f"labels {lab.array.shape} do not match the image {img.path.name} "
                                     f"{img.array.shape} (z, y, x)")
    labels = io.to_label_values(lab.array, values, label_path, threshold)
    return Case(name, img.array, labels, img.pixel_size_um)


def class_indices(labels: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """Label values -> contiguous class indices (0 background, then the values in card order)."""
    lut = np.zeros(int(max(values)) + 1, dtype=np.int64)
    for i, v in enumerate(values, start=1):
        lut[v] = i
    return lut[labels]


def random_crop(shape, patch, rng, centre=None):
    """Start indices of a patch inside ``shape`` (padded when larger), around ``centre`` if given."""
    starts = []
    for i, (s, p) in enumerate(zip(shape, patch)):
        if s <= p:
            starts.append(0)
        elif centre is None:
            starts.append(int(rng.integers(0, s - p + 1)))
        else:
            starts.append(int(np.clip(centre[i] - p // 2 + rng.integers(-p // 4, p // 4 + 1), 0, s - p)))
    return starts


def pad_to(arr: np.ndarray, patch) -> np.ndarray:
    """Reflect-pad the trailing spatial axes of ``arr`` up to at least ``patch``."""
    pads = [(0, 0)] * (arr.ndim - len(patch)) + [(0, max(0, p - s)) for s, p in zip(arr.shape[-len(patch):], patch)]
    if any(p[1] for p in pads):
        mode = "reflect" if all(s > p[1] for s, p in zip(arr.shape, pads)) else "edge"
        arr = np.pad(arr, pads, mode=mode)
    return arr


def augmentation(spatial_dims: int, elastic: bool = True):
    """MONAI dictionary transforms: flips, 90-degree rotations (in-plane), elastic deformation,
    intensity scale, shift, gamma and noise. Geometry goes to image and labels alike."""
    from monai import transforms as T
    keys = ["image", "label"]
    ops = [T.RandFlipd(keys, prob=0.5, spatial_axis=a) for a in range(spatial_dims)]
    ops.append(T.RandRotate90d(keys, prob=0.5, max_k=3, spatial_axes=(spatial_dims - 2, spatial_dims - 1)))
    if elastic and spatial_dims == 2:
        ops.append(T.Rand2DElasticd(keys, prob=0.3, spacing=(32, 32), magnitude_range=(1, 2),
                                    rotate_range=0.3, scale_range=0.15, mode=("bilinear", "nearest"),
                                    padding_mode="reflection"))
    elif elastic:
        ops.append(T.RandAffined(keys, prob=0.3, rotate_range=(0.2, 0.2, 0.2), scale_range=0.1,
                                 mode=("bilinear", "nearest"), padding_mode="reflection"))
    ops += [T.RandScaleIntensityd("image", factors=0.2, prob=0.5),
            T.RandShiftIntensityd("image", offsets=0.1, prob=0.5),
            T.RandAdjustContrastd("image", gamma=(0.7, 1.5), prob=0.3),
            T.RandGaussianNoised("image", std=0.03, prob=0.3)]
    return T.Compose(ops)


class PatchSampler:
    """Random patches from prepared cases (image float32 and class indices on the model's grid);
    half of them centred near a foreground voxel, so sparse structures are seen."""

    def __init__(self, images, classes, patch, spatial_dims, seed=0, augment=True, foreground_share=0.5):
        self.images, self.classes, self.patch = images, classes, tuple(patch)
        self.dims, self.share = spatial_dims, foreground_share
        self.rng = np.random.default_rng(seed)
        self.augment = augmentation(spatial_dims) if augment else None
        if self.augment is not None:
            self.augment.set_random_state(seed=seed)
        self.fg = [np.argwhere(c > 0) for c in classes]

    def one(self):
        i = int(self.rng.integers(len(self.images)))
        img, cls, fg = self.images[i], self.classes[i], self.fg[i]
        centre = fg[self.rng.integers(len(fg))] if len(fg) and self.rng.random() < self.share else None
        if self.dims == 2:
            z = int(centre[0]) if centre is not None else int(self.rng.integers(img.shape[0]))
            img, cls = img[z], cls[z]
            centre = centre[1:] if centre is not None else None
        img, cls = pad_to(img, self.patch), pad_to(cls, self.patch)
        start = random_crop(img.shape, self.patch, self.rng, centre)
        sl = tuple(slice(s, s + p) for s, p in zip(start, self.patch))
        sample = {"image": img[sl][None].astype(np.float32), "label": cls[sl][None].astype(np.float32)}
        if self.augment is not None:
            sample = self.augment(sample)
        return np.asarray(sample["image"], dtype=np.float32), np.asarray(sample["label"]).round().astype(np.int64)

    def batch(self, n):
        items = [self.one() for _ in range(n)]
        return np.stack([a for a, _ in items]), np.stack([b for _, b in items])
