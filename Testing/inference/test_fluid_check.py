"""The fluid check: a vestibule and canals with no fluid in the image are removed, real ones kept."""
import warnings

import numpy as np
import pytest
import SimpleITK as sitk

from InnerEarSegLib.core.result import EarRegion
from InnerEarSegLib.inference import fluid_check
from InnerEarSegLib.pipeline import SegmentParameters, segment

COCHLEA, VESTIBULE, CANAL = (0.0, -2.5, 0.0), (0.0, 1.0, 0.0), (0.0, 4.5, 0.0)   # mm from the region centre


def balls(shape, spacing, centres, radius):
    """Boolean (z, y, x) masks of balls at LPS ``centres`` on a grid centred at 0 with identity direction."""
    k, j, i = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    pts = (np.stack([i, j, k], -1) - (np.array(shape[::-1]) - 1) / 2.0) * spacing
    return [((pts - c) ** 2).sum(-1) <= radius ** 2 for c in centres]


def ear_labels(shape=(32, 32, 32)):
    cochlea, vestibule, canal = balls(shape, 0.5, [COCHLEA, VESTIBULE, CANAL], 2.0)
    labels = np.zeros(shape, np.uint8)
    labels[cochlea], labels[vestibule], labels[canal & ~vestibule] = 1, 2, 3
    return labels


def image_with(labels, capsule=0.1, fluid=0.9, vestibule=None):
    image = np.full(labels.shape, capsule, np.float32)
    image[labels > 0] = fluid
    if vestibule is not None:
        image[labels >= 2] = vestibule
    return image


def one_hot(labels):
    return np.stack([(labels == c).astype(np.float32) for c in range(4)])


def test_the_vestibule_of_the_cochleas_fluid_is_kept_on_either_contrast():
    labels = ear_labels()
    for capsule, fluid in ((0.1, 0.9), (0.9, 0.1)):          # T2 (fluid bright) and CT (fluid dark)
        probabilities = one_hot(labels)
        kept, ratio, wall = fluid_check.drop_unfilled(image_with(labels, capsule, fluid), probabilities, (0.5,) * 3)
        assert ratio == pytest.approx(1.0) and wall == pytest.approx(1.0)
        assert kept is probabilities


@pytest.mark.parametrize("vestibule", [0.1, 0.3, -0.5])   # bone fill, tissue darker than fluid, a brighter mass
def test_a_vestibule_unlike_the_cochlea_is_moved_to_background_with_its_canals(vestibule):
    labels = ear_labels()
    image = image_with(labels, vestibule=vestibule if vestibule >= 0 else None)
    if vestibule < 0:   # vestibule 0.5 brighter than the capsule than the cochlea is, on the other side
        image = image_with(labels, capsule=0.5, fluid=0.6, vestibule=0.0)
    probabilities = one_hot(labels)
    before = probabilities.copy()
    checked, ratio, _ = fluid_check.drop_unfilled(image, probabilities, (0.5,) * 3)
    assert not 0.5 <= ratio <= 2.0
    np.testing.assert_array_equal(probabilities, before)                 # input untouched
    out = checked.argmax(0)
    assert not np.isin(out, [2, 3]).any()
    np.testing.assert_array_equal(out == 1, labels == 1)                  # the cochlea stays
    np.testing.assert_allclose(checked.sum(0), 1.0)


def test_no_decision_without_a_cochlea_that_stands_out():
    labels = ear_labels()
    no_cochlea = np.where(labels == 1, 0, labels)
    walls = fluid_check.shells(no_cochlea, (0.5,) * 3)
    assert fluid_check.vestibule_ratio(image_with(labels, vestibule=0.1), no_cochlea, walls) is None
    flat = image_with(labels, capsule=0.5, fluid=0.55, vestibule=0.9)     # cochlea barely differs from the capsule
    probabilities = one_hot(labels)
    kept, ratio, _ = fluid_check.drop_unfilled(flat, probabilities, (0.5,) * 3)
    assert kept is probabilities and ratio is None


def test_a_vestibule_painted_into_a_fluid_like_cavity_is_caught_by_its_wall():
    """CT: bone 0.9, fluid 0.1, and a drilled cavity of soft tissue (0.15, as dark as fluid) around
    the vestibule and canal: the cochlea ratio cannot tell (both dark), the vestibule's own wall can."""
    labels = ear_labels()
    cavity, = balls(labels.shape, 0.5, [VESTIBULE], 3.0)                 # 1 mm beyond the vestibule
    image = image_with(labels, capsule=0.9, fluid=0.1)
    image[cavity & (labels == 0)] = 0.15
    probabilities = one_hot(labels)
    checked, ratio, wall = fluid_check.drop_unfilled(image, probabilities, (0.5,) * 3)
    assert 0.5 <= ratio <= 2.0 and wall < fluid_check.WALL_LIMIT
    out = checked.argmax(0)
    assert not np.isin(out, [2, 3]).any() and np.array_equal(out == 1, labels == 1)


@pytest.mark.parametrize("spacing, inner, outer", [(0.3, 1, 3), (0.15, 2, 6), (0.45, 1, 2)])
def test_the_capsule_sample_lies_the_same_millimetres_out_on_any_grid(spacing, inner, outer):
    labels = np.zeros((21, 21, 21), np.uint8)
    labels[10, 10, 10] = 1
    near, capsule, n = fluid_check.shells(labels, (spacing,) * 3)
    assert n == outer
    assert [int(k) for k in np.flatnonzero(capsule[10, 10, 10:])] == list(range(inner + 1, outer + 1))


def painting_predictor(net, array, roi):
    """Paints a cochlea, a vestibule and a canal at fixed places of any region with signal,
    whatever the image shows there (a network with too strong a shape prior)."""
    return one_hot(ear_labels(array.shape) if array.max() > 0 else np.zeros(array.shape, np.uint8))


@pytest.mark.parametrize("fluid_in_vestibule, check, kept", [(True, True, True), (False, True, False),
                                                             (False, False, True)])
def test_the_pipeline_removes_a_painted_vestibule_without_fluid_and_says_so(fluid_in_vestibule, check, kept,
                                                                          tiny_model):
    shape = (32, 32, 32)
    cochlea, vestibule, canal = balls(shape, 0.5, [COCHLEA, VESTIBULE, CANAL], 2.0)
    fluid = cochlea | ((vestibule | canal) if fluid_in_vestibule else False)
    image = sitk.GetImageFromArray(np.where(fluid, 1000.0, 100.0).astype(np.float32))
    image.SetSpacing((0.5, 0.5, 0.5))
    image.SetOrigin([-(n - 1) / 2 * 0.5 for n in shape])
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        result = segment(image, tiny_model, SegmentParameters(surfaces=False, fluid_check=check),
                         predictor=painting_predictor,
                         locator=lambda *args: [EarRegion("right", (0.0, 0.0, 0.0), 0.9)])
    labels = sitk.GetArrayFromImage(result.labels)
    assert (labels == 1).sum() > 0.9 * cochlea.sum()
    assert ((labels == 2).sum() > 0.9 * vestibule.sum()) == kept
    assert ((labels == 3).any()) == kept
    assert any("right ear" in w and "fluid" in w for w in result.warnings) == (not kept)
    ratio, wall = result.ears[0].fluid_ratio, result.ears[0].wall_ratio
    if check:
        assert (ratio == pytest.approx(1.0, abs=0.1)) == fluid_in_vestibule and (ratio < 0.5) != fluid_in_vestibule
        assert (wall == pytest.approx(1.0, abs=0.1)) if fluid_in_vestibule else wall is None   # no contrast
    else:
        assert ratio is None and wall is None
