"""Shared fixtures: small synthetic volumes at known physical places, and a tiny random model.

Fixtures return factories so each test chooses its own geometry:
``volume(size_xyz, spacing, direction=..., ...)`` draws bright ellipsoids at LPS positions;
``rotation(ax_deg, ay_deg, az_deg)`` gives direction cosines; ``tiny_model_path`` is a card
(channels (4, 8), 0.5 mm, 32-voxel patches, 16 mm ear regions) saved with ``save_model``.
"""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from InnerEarSegLib.model.model_card import default_card, load_model, save_model
from InnerEarSegLib.model.network import AttentionPyramidUNet

SCRIPT_FOLDERS = ("release", "experiments")
TINY_PREPROCESSING = {"spacing_mm": 0.5, "patch_size": [32, 32, 32], "ear_region_mm": [16.0, 16.0, 16.0],
                      "localizer_spacing_mm": 2.0, "localizer_patch_size": [32, 32, 32]}


def rotation_matrix(ax_deg=0.0, ay_deg=0.0, az_deg=0.0) -> np.ndarray:
    """Rotation about x, then y, then z (degrees), as a 3x3 direction-cosine matrix."""
    a, b, c = np.radians([ax_deg, ay_deg, az_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def physical_points(image: sitk.Image) -> np.ndarray:
    """LPS coordinates (z, y, x, 3) of every voxel centre, for any direction cosines."""
    size = image.GetSize()
    k, j, i = np.meshgrid(*[np.arange(n) for n in size[::-1]], indexing="ij")
    index = np.stack([i, j, k], -1) * np.array(image.GetSpacing())
    direction = np.array(image.GetDirection()).reshape(3, 3)
    return index @ direction.T + np.array(image.GetOrigin())


def empty_image(size_xyz, spacing, direction=np.eye(3), center_lps=(0.0, 0.0, 0.0)) -> sitk.Image:
    """A float image with the given grid, placed so that its centre is at ``center_lps``."""
    image = sitk.Image([int(s) for s in size_xyz], sitk.sitkFloat32)
    image.SetSpacing([float(s) for s in spacing])
    direction = np.asarray(direction, float)
    image.SetDirection(direction.ravel().tolist())
    half = (np.asarray(size_xyz) - 1) / 2.0 * np.asarray(spacing)
    image.SetOrigin((np.asarray(center_lps, float) - direction @ half).tolist())
    return image


def ellipsoid_mask(image: sitk.Image, center_lps, radii_mm) -> np.ndarray:
    """Voxels (z, y, x) whose centre lies inside an axis-aligned (LPS) ellipsoid."""
    d = (physical_points(image) - np.asarray(center_lps)) / np.asarray(radii_mm, float)
    return (d ** 2).sum(-1) <= 1.0


def make_volume(size_xyz, spacing, direction=np.eye(3), center_lps=(0.0, 0.0, 0.0), blobs=(),
                background=100.0, bright=1000.0, noise=0.0, seed=0):
    """A scan with bright ellipsoids ``blobs`` = [(center_lps, radii_mm), ...] on a flat background.

    Returns (image, mask) where mask (z, y, x) is the analytic union of the blobs on the grid.
    """
    image = empty_image(size_xyz, spacing, direction, center_lps)
    mask = np.zeros(image.GetSize()[::-1], bool)
    for center, radii in blobs:
        mask |= ellipsoid_mask(image, center, radii)
    array = np.where(mask, bright, background).astype(np.float32)
    if noise:
        array += np.random.default_rng(seed).normal(0, noise, array.shape).astype(np.float32)
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    return out, mask


def load_script(name: str):
    """A script from ``release/`` or ``experiments/`` (not a package), loaded as ``python release/NAME.py``
    would run it (its folder on ``sys.path``, so sibling imports work), e.g.
    ``load_script("perturb_set").main([...])``."""
    root = Path(__file__).resolve().parents[1]
    path = next(p for p in (root / d / f"{name}.py" for d in SCRIPT_FOLDERS) if p.is_file())
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def save_tiny_model(card_path, localizer=True, seed=0, **preprocessing):
    """Save a random (4, 8)-channel model with the small test preprocessing; returns the card path."""
    torch.manual_seed(seed)
    networks = {"segmenter": AttentionPyramidUNet(1, 4, (4, 8))}
    if localizer:
        networks["localizer"] = AttentionPyramidUNet(1, 2, (4, 8))
    card = default_card()
    card["preprocessing"].update(TINY_PREPROCESSING, **preprocessing)
    return save_model(card_path, networks, card)


@pytest.fixture
def rotation():
    return rotation_matrix


@pytest.fixture
def volume():
    return make_volume


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny.json")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path):
    return load_model(tiny_model_path, "cpu")


@pytest.fixture
def tiny_model_factory(tmp_path):
    """``factory(name="m", localizer=True, **preprocessing) -> card path`` in this test's tmp_path."""
    return lambda name="m", **kw: save_tiny_model(tmp_path / f"{name}.json", **kw)
