"""Training samples drawn from real labyrinth label maps, in the manner of SynthSeg.

The procedural anatomy (``anatomy``) is a smooth cartoon: real labyrinths are larger, their
cochlea a compact stack of turns, their vestibule flatter and irregular. Here the shapes are
real ones (whole-labyrinth labels, e.g. the micro-CT references of the Wimmer et al. 2019
temporal-bone CT set), deformed and rendered with random contrasts:

- geometry: rotation up to ``rotate_deg`` about every axis, an overall scale in ``scale``
  times a per-axis scale of +-``axis_scale``, a smooth elastic displacement of up to
  ``elastic_mm``, and a random offset of the labyrinth in the patch;
- tissues: the labyrinth (its fraction of each voxel: partial volume), a bony capsule
  around it of random thickness, optionally an internal-auditory-canal-like tube along the
  modiolar axis, medial to the cochlea (bright like fluid on T2 MRI, and not labyrinth),
  and random blobs of background tissue;
- look: a random intensity for each tissue (one of MR-like, CT-fluid, CT-air or random
  contrasts), texture inside tissues, a bias field, blur of ``blur_fwhm_mm``, and noise
  that is spatially correlated like real reconstructions.

The target is the labyrinth as a whole (the labels have no cochlea/vestibule/canal split);
training treats it with the marginal loss (``train.make_loss``).
"""
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from ..core.grid import normalise
from .appearance import smooth_field
from .shapes import rotation

CONTRASTS = ("mr", "ct_fluid", "ct_air", "random")


@dataclass
class Shape:
    """One real labyrinth on an identity-direction grid at the model spacing (arrays z, y, x)."""

    label: np.ndarray                       # float32 0..1: labyrinth fraction of each voxel
    iac: Optional[Tuple[np.ndarray, np.ndarray]] = None  # (start, unit direction) in voxel (z, y, x)
    parts: Optional[np.ndarray] = None      # float32 (G, z, y, x): fraction of each label value (split labels)

    def __post_init__(self):
        inside = self.label >= 0.5
        self.outside_mm = ndimage.distance_transform_edt(~inside).astype(np.float32)
        self.centre = np.array(ndimage.center_of_mass(inside))


class ShapeSampler:
    """``seed -> (image (z, y, x) in [0, 1], fractions (G, z, y, x))`` from real shapes: G = 1, the
    labyrinth; or the shape's ``parts`` (the label values of split labels), drawn the same way.

    Every knob of the draw is an argument, so an experiment changes one number here.
    """

    def __init__(self, shapes: Sequence[Shape], patch_size, spacing: float, scale=(0.75, 1.3),
                 axis_scale=0.08, rotate_deg=30.0, elastic_mm=0.6, offset_mm=3.0, blur_fwhm_mm=(0.6, 1.2),
                 contrast_weights=(0.4, 0.2, 0.15, 0.25), iac_share=0.6):
        if not shapes:
            raise ValueError("no real shapes to sample from")
        self.shapes, self.patch, self.spacing = list(shapes), tuple(int(p) for p in patch_size), float(spacing)
        self.scale, self.axis_scale, self.rotate = scale, axis_scale, np.deg2rad(rotate_deg)
        self.elastic_mm, self.offset_mm, self.blur = elastic_mm, offset_mm, blur_fwhm_mm
        self.contrast_weights = np.asarray(contrast_weights, float) / np.sum(contrast_weights)
        self.iac_share = iac_share

    def __call__(self, seed):
        rng = np.random.default_rng([seed, 29])
        shape = self.shapes[int(rng.integers(len(self.shapes)))]
        coords = self._source_coordinates(shape, rng)
        label = ndimage.map_coordinates(shape.label, coords, order=1, mode="constant", cval=0.0)
        outside = ndimage.map_coordinates(shape.outside_mm, coords, order=1, mode="nearest") * self.spacing
        iac = self._iac(shape, coords, rng) if shape.iac is not None and rng.uniform() < self.iac_share \
            else np.zeros(self.patch, np.float32)
        image = self._render(label, outside, iac, rng)
        parts = label[None] if shape.parts is None else np.stack(
            [ndimage.map_coordinates(part, coords, order=1, mode="constant", cval=0.0) for part in shape.parts])
        return normalise(image), parts.astype(np.float32)

    def _source_coordinates(self, shape: Shape, rng) -> np.ndarray:
        """(3, z, y, x) voxel coordinates in the shape's grid for every patch voxel."""
        scale = rng.uniform(*self.scale) * rng.uniform(1 - self.axis_scale, 1 + self.axis_scale, 3)
        A = rotation(*rng.uniform(-self.rotate, self.rotate, 3)) / scale[:, None]   # patch -> source, per voxel
        half = (np.asarray(self.patch) - 1) / 2.0
        offset = rng.uniform(-self.offset_mm, self.offset_mm, 3) / self.spacing
        grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) - h for n, h in zip(self.patch, half)],
                                    indexing="ij")).reshape(3, -1)
        coords = A @ grid + (shape.centre + offset)[:, None]
        coords = coords.reshape((3,) + self.patch)
        for axis in range(3):
            coords[axis] += smooth_field(rng, self.patch, self.spacing, 4.0,
                                         rng.uniform(0, self.elastic_mm) / self.spacing)
        return coords

    def _iac(self, shape: Shape, coords, rng) -> np.ndarray:
        """Soft tube of radius 1.5-2.5 mm from just medial of the cochlea, along the modiolar axis."""
        start, direction = shape.iac
        start = start + direction * rng.uniform(0.5, 2.0) / self.spacing
        rel = coords.reshape(3, -1) - start[:, None]
        along = direction @ rel
        radial = np.linalg.norm(rel - np.outer(direction, along), axis=0) * self.spacing
        radius = rng.uniform(1.5, 2.5)
        tube = np.clip(radius - radial + 0.5, 0, 1) * (along > 0)
        return tube.reshape(self.patch).astype(np.float32)

    def _render(self, label, outside_mm, iac, rng) -> np.ndarray:
        u = rng.uniform
        contrast = CONTRASTS[int(rng.choice(len(CONTRASTS), p=self.contrast_weights))]
        lab, capsule, iac_value, tissues = self._intensities(contrast, rng)
        n = len(tissues)
        blobs = smooth_field(rng, self.patch, self.spacing, u(3, 10), 1.0)
        edges = np.quantile(blobs, np.sort(u(0, 1, n - 1)))
        background = tissues[np.digitize(blobs, edges)]
        capsule_mask = np.clip(u(0.8, 3.0) - outside_mm, 0, 1)
        image = background * (1 - capsule_mask) + capsule * capsule_mask
        image = image * (1 - iac) + iac_value * iac
        image = image * (1 - label) + lab * label
        span = np.ptp([lab, capsule, iac_value, *tissues]) + 0.1
        image += smooth_field(rng, self.patch, self.spacing, u(1.0, 3.0), u(0, 0.08) * span)   # texture
        image *= np.exp(smooth_field(rng, self.patch, self.spacing, 40.0, u(0, 0.3)))          # bias field
        fwhm = u(*self.blur) * u(0.8, 1.2, 3)
        image = ndimage.gaussian_filter(image, fwhm / 2.355 / self.spacing)
        noise = ndimage.gaussian_filter(rng.normal(size=self.patch), u(0.5, 1.5))
        image += noise / (noise.std() + 1e-6) * u(0.01, 0.08) * span
        return image.astype(np.float32)

    @staticmethod
    def _intensities(contrast, rng):
        """(labyrinth, capsule, IAC, background tissues) intensities for one contrast."""
        u = rng.uniform
        n = int(rng.integers(2, 6))
        if contrast == "mr":            # fluid bright, bone dark, CSF of the IAC as bright as fluid
            lab = u(0.7, 1.0)
            return lab, u(0.0, 0.12), lab * u(0.85, 1.1), u(0.0, 0.5, n)
        if contrast == "ct_fluid":      # capsule bright, fluid like soft tissue
            lab = u(0.25, 0.4)
            return lab, u(0.8, 1.0), u(0.25, 0.4), np.append(u(0.2, 0.45, n - 1), u(0.0, 0.6))
        if contrast == "ct_air":        # air-filled lumen (dried specimens)
            lab = u(0.0, 0.15)
            return lab, u(0.8, 1.0), u(0.0, 0.4), np.append(u(0.2, 0.45, n - 1), u(0.0, 0.8))
        lab = u(0, 1)
        capsule = (lab + u(0.25, 0.75)) % 1.0     # the capsule always stands out from the lumen
        return lab, capsule, u(0, 1), u(0, 1, n)
