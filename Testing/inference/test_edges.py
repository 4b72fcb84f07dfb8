"""edges.refine_labels: a prediction a little off a blurred ball moves onto the ball's edge, for a
bright lumen (T2 MRI) and a dark one (CT), and nothing beyond the band or without contrast moves."""
import numpy as np
import pytest
from scipy import ndimage

from InnerEarSegLib.inference import edges

SPACING = (0.2, 0.2, 0.2)


def ball(radius_mm, shape=(60, 60, 60), centre=(30, 30, 30)):
    z, y, x = np.indices(shape)
    return np.sqrt((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2) * SPACING[0] <= radius_mm


def scan(truth, lumen, around):
    """The truth painted ``lumen`` on ``around``, blurred by 0.6 mm FWHM, with a little noise."""
    image = np.where(truth, lumen, around).astype(np.float32)
    image = ndimage.gaussian_filter(image, 0.6 / 2.355 / SPACING[0])
    return image + np.random.default_rng(0).normal(0, 0.02 * abs(lumen - around), image.shape).astype(np.float32)


def dice(a, b):
    return 2 * np.count_nonzero(a & b) / (a.sum() + b.sum())


@pytest.mark.parametrize("lumen, around", [(1.0, 0.1), (-700.0, 1500.0)], ids=["bright lumen", "dark lumen"])
@pytest.mark.parametrize("predicted_mm", [2.6, 3.4])
def test_an_outline_0_4_mm_off_moves_onto_the_edge(lumen, around, predicted_mm):
    truth = ball(3.0)
    labels = ball(predicted_mm).astype(np.uint8)
    refined = edges.refine_labels(scan(truth, lumen, around), labels, SPACING)
    assert dice(labels > 0, truth) < 0.9
    assert dice(refined > 0, truth) > 0.95


def test_voxels_beyond_the_band_never_change():
    truth = ball(3.0)
    labels = ball(4.5).astype(np.uint8)         # 1.5 mm too large: more than the band
    refined = edges.refine_labels(scan(truth, 1.0, 0.1), labels, SPACING)
    far = ~ball(4.5 - edges.BAND_MM - 0.21) & ball(4.5)
    assert (refined[~ball(4.5 + edges.BAND_MM + 0.21)] == 0).all()
    assert (refined[ball(4.5 - edges.BAND_MM - 0.21)] == 1).all()
    assert (refined[far] == 0).any()            # inside the band it did move


def test_added_voxels_take_the_nearest_structure_and_inputs_are_kept():
    truth = ball(3.0)
    labels = ball(2.6).astype(np.uint8)
    labels[:, :, 30:][labels[:, :, 30:] > 0] = 3
    image = scan(truth, 1.0, 0.1)
    before_labels, before_image = labels.copy(), image.copy()
    refined = edges.refine_labels(image, labels, SPACING)
    assert np.array_equal(labels, before_labels) and np.array_equal(image, before_image)
    grown = (refined > 0) & (labels == 0)
    assert grown.any()
    assert set(np.unique(refined[grown])) == {1, 3}
    assert (refined[grown & (np.indices(truth.shape)[2] < 28)] == 1).all()
    assert (refined[grown & (np.indices(truth.shape)[2] > 32)] == 3).all()


def test_without_contrast_or_labels_nothing_changes():
    labels = ball(2.6).astype(np.uint8)
    flat = np.zeros(labels.shape, np.float32)
    assert np.array_equal(edges.refine_labels(flat, labels, SPACING), labels)
    empty = np.zeros_like(labels)
    assert np.array_equal(edges.refine_labels(scan(ball(3.0), 1.0, 0.1), empty, SPACING), empty)


def test_lumen_like_specks_apart_from_the_prediction_are_not_added():
    truth = ball(3.0)                           # x from 15 to 45
    speck = ball(0.2, centre=(30, 30, 48))      # a bright dot, one dark voxel (46) beyond the outline
    image = np.where(truth | speck, 1.0, 0.1).astype(np.float32)
    labels = truth.astype(np.uint8)
    refined = edges.refine_labels(image, labels, SPACING)
    assert not refined[speck].any()
    assert ndimage.label(refined > 0, np.ones((3, 3, 3)))[1] == 1
