"""Geometry is sacred: a bright ellipsoid at a known LPS place comes back on the same voxels,
through the whole ``segment`` path, for any orientation and spacing of the input grid.

The network is replaced by a predictor that thresholds the normalised intensity at 0.5 and
the localizer by a stub, so only resampling and mapping back are under test.
"""
import numpy as np
import pytest
import SimpleITK as sitk

from InnerEarSegLib.core.result import EarRegion
from InnerEarSegLib.pipeline import SegmentParameters, segment

CENTER = (31.0, -12.0, 7.0)  # LPS mm: x > 0 is the patient's left
RADII = (3.0, 4.0, 5.0)

GRIDS = {
    "axial": (np.eye(3), (0.4, 0.4, 0.4)),
    "anisotropic": (np.eye(3), (0.3, 0.3, 0.9)),
    "coronal": ([[1, 0, 0], [0, 0, -1], [0, 1, 0]], (0.35, 0.35, 0.7)),
    "oblique": ("rot", (0.3, 0.3, 0.9)),
    "flipped": (np.diag([-1.0, 1.0, -1.0]), (0.4, 0.5, 0.6)),
    "mirrored": (np.diag([-1.0, 1.0, 1.0]), (0.4, 0.4, 0.8)),  # left-handed, as some files are
}


def threshold_predictor(net, array, roi):
    """Probabilities [1 - a, a, 0, ...] of the normalised intensity a: argmax thresholds at 0.5."""
    out = np.zeros((net.head.out_channels,) + array.shape, np.float32)
    out[0], out[1] = 1.0 - array, array
    return out


def stub_locator(image, model, predictor):
    return [EarRegion("left", (CENTER[0] + 1.0, CENTER[1] - 1.5, CENTER[2] + 0.5), 1.0)]


@pytest.mark.parametrize("name", list(GRIDS))
def test_ellipsoid_comes_back_on_the_same_voxels(name, volume, rotation, tiny_model):
    direction, spacing = GRIDS[name]
    direction = rotation(30, 0, 30) if isinstance(direction, str) else np.asarray(direction, float)
    size = [int(round(20 / s)) for s in spacing]  # a 20 mm field of view
    image, truth = volume(size, spacing, direction, center_lps=np.add(CENTER, (1.5, -1.0, 0.8)),
                          blobs=[(CENTER, RADII)])
    before = sitk.GetArrayFromImage(image).copy()

    result = segment(image, tiny_model, SegmentParameters(surfaces=False), predictor=threshold_predictor,
                     locator=stub_locator)

    for out in (result.labels, result.sides):
        assert out.GetSize() == image.GetSize()
        assert out.GetSpacing() == image.GetSpacing()
        assert out.GetOrigin() == image.GetOrigin()
        assert out.GetDirection() == image.GetDirection()
        assert out.GetPixelID() == sitk.sitkUInt8
    found = sitk.GetArrayFromImage(result.labels) > 0
    dsc = 2 * np.count_nonzero(found & truth) / (found.sum() + truth.sum())
    assert dsc >= 0.9, f"{name}: DSC {dsc:.3f}"
    total = [r for r in result.stats if r["structure"] == "labyrinth" and r["side"] == "both"][0]
    assert np.linalg.norm(np.subtract(total["centroid_lps"], CENTER)) <= max(spacing)
    sides = sitk.GetArrayFromImage(result.sides)
    assert np.all(sides[found] == 2) and not sides[~found].any()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), before)  # input untouched


@pytest.mark.parametrize("noise", [0.0, 20.0])
def test_a_small_object_in_a_uniform_block_comes_back_at_its_size(noise, volume, tiny_model):
    """A small ellipsoid (0.3 % of the region) in a block, as a phantom: the 0.5-99.5
    percentiles both fall in the block, and the object used to vanish (flat block) or come
    back blown up by its clipped rim (noisy block)."""
    radii = (1.2, 1.5, 1.8)
    image, truth = volume([50, 50, 50], (0.4, 0.4, 0.4), center_lps=CENTER, blobs=[(CENTER, radii)],
                          noise=noise, seed=3)
    result = segment(image, tiny_model, SegmentParameters(surfaces=False), predictor=threshold_predictor,
                     locator=stub_locator)
    found = sitk.GetArrayFromImage(result.labels) > 0
    assert 0.85 <= found.sum() / truth.sum() <= 1.15
    assert 2 * np.count_nonzero(found & truth) / (found.sum() + truth.sum()) >= 0.85
