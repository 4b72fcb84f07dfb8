"""confirm.confirm_ears: candidates checked and centred by a (fake) segmenter that sees balls
at known physical places, so every expectation is a position in millimetres."""
import numpy as np
import pytest
import SimpleITK as sitk

from InnerEarSegLib.core.grid import center_of
from InnerEarSegLib.core.result import EarRegion
from InnerEarSegLib.inference import confirm, preprocess

PRE = {"spacing_mm": 1.0, "patch_size": [16, 16, 16], "ear_region_mm": [24.0, 24.0, 24.0]}
RADIUS = 4.0   # a 268 mm3 "labyrinth"


def head(width_mm=160.0):
    """An empty scan wide enough for both ears, centred on x = 0."""
    image = sitk.Image([int(width_mm), 60, 40], sitk.sitkFloat32)
    image.SetOrigin((-width_mm / 2, -30.0, -20.0))
    return image


class FakeSegmenter:
    """segment_region for balls of labyrinth (label 1) at ``ears`` (LPS); counts its passes.
    midline_x: ``midline`` (None: no mirror search)."""

    def __init__(self, ears, radius=RADIUS, radii=None, midline=None):
        self.ears, self.calls = [np.asarray(e, float) for e in ears], []
        self.radii = radii or [radius] * len(ears)
        self.midline = midline

    def midline_x(self):
        return self.midline

    def segment_region(self, center, region_mm=None):
        self.calls.append((tuple(center), region_mm))
        reference = preprocess.ear_reference(center, PRE, 1, region_mm)
        size = reference.GetSize()
        k, j, i = np.meshgrid(*[np.arange(n) for n in size[::-1]], indexing="ij")
        points = np.stack([i, j, k], -1) * reference.GetSpacing()[0] + reference.GetOrigin()
        inside = np.zeros(size[::-1], bool)
        for ear, radius in zip(self.ears, self.radii):
            inside |= ((points - ear) ** 2).sum(-1) <= radius ** 2
        probabilities = np.zeros((4,) + inside.shape, np.float32)
        probabilities[0], probabilities[1] = ~inside, inside
        return reference, probabilities


def centres(confirmed):
    return [np.asarray(ear.center_lps) for ear, _, _ in confirmed]


def test_an_off_centre_candidate_is_moved_onto_the_ear():
    ear = (-45.0, 3.0, -2.0)
    segmenter = FakeSegmenter([ear])
    confirmed = confirm.confirm_ears(head(), [EarRegion("right", (-37.0, 9.0, 2.0), 0.9)], segmenter)
    assert len(confirmed) == 1 and confirmed[0][0].side == "right"
    assert np.allclose(centres(confirmed)[0], ear, atol=0.5)
    reference = confirmed[0][1]   # the region kept is the one centred on the ear
    assert np.allclose(center_of(reference), ear, atol=confirm.RECENTER_MM)
    assert len(segmenter.calls) == 2


def test_a_centred_candidate_costs_one_pass():
    segmenter = FakeSegmenter([(44.0, 0.0, 0.0)])
    confirmed = confirm.confirm_ears(head(), [EarRegion("left", (45.0, 0.5, 0.0), 0.9)], segmenter)
    assert len(confirmed) == 1 and len(segmenter.calls) == 1


def test_a_look_alike_without_labyrinth_is_dropped_and_the_next_candidate_kept():
    ears = [(-46.0, 0.0, 0.0), (45.0, 2.0, 1.0)]
    candidates = [EarRegion("right", (-10.0, 0.0, 0.0), 1.0),   # the cistern: nothing there
                  EarRegion("right", (-46.0, 1.0, 0.0), 0.8), EarRegion("left", (44.0, 2.0, 0.0), 0.7)]
    confirmed = confirm.confirm_ears(head(), candidates, FakeSegmenter(ears))
    assert [e.side for e, _, _ in confirmed] == ["right", "left"]
    for found, truth in zip(centres(confirmed), ears):
        assert np.allclose(found, truth, atol=0.5)


@pytest.mark.parametrize("other, wide", [((44.0, -3.0, 8.0), False),     # head turned a little
                                         ((44.0, -20.0, 12.0), True)])   # 24 mm from the mirror image
def test_the_missed_ear_is_found_at_the_mirror_image(other, wide):
    ears = [(-46.0, 2.0, 3.0), other]
    segmenter = FakeSegmenter(ears, midline=0.0)
    confirmed = confirm.confirm_ears(head(), [EarRegion("right", ears[0], 1.0)], segmenter)
    assert [e.side for e, _, _ in confirmed] == ["right", "left"]
    assert np.allclose(centres(confirmed)[1], ears[1], atol=0.5)
    assert any(region == confirm.SEARCH_REGION_MM for _, region in segmenter.calls) == wide


def test_a_second_ear_where_no_head_has_one_is_replaced_by_the_mirror_search():
    ears = [(-44.0, 6.0, -4.0), (45.0, 5.0, -16.0)]
    look_alike = (1.0, 72.0, 78.0)   # found by the segmenter too, but 66 mm behind and 82 mm above
    segmenter = FakeSegmenter(ears + [look_alike], midline=0.0)
    candidates = [EarRegion("right", ears[0], 1.0), EarRegion("left", look_alike, 1.0)]
    confirmed = confirm.confirm_ears(head(), candidates, segmenter)
    assert [e.side for e, _, _ in confirmed] == ["right", "left"]
    assert np.allclose(centres(confirmed)[1], ears[1], atol=0.5)


def test_a_confirmed_look_alike_from_the_localizer_does_not_block_the_ears():
    # the localiser's best candidate is a 92 mm3 look-alike near the midline (a fluid ball, the
    # cistern): the real ears, ranked after it, still make the pair
    ears = [(-47.0, 8.0, 5.0), (44.0, -6.0, -3.0)]
    segmenter = FakeSegmenter([(1.0, 0.0, 0.0)] + ears, radii=[2.8, RADIUS, RADIUS], midline=0.0)
    candidates = [EarRegion("left", (1.0, 0.0, 0.0), 1.0), EarRegion("right", ears[0], 0.8)]
    confirmed = confirm.confirm_ears(head(), candidates, segmenter)
    assert [e.side for e, _, _ in confirmed] == ["right", "left"]
    for found, truth in zip(centres(confirmed), ears):
        assert np.allclose(found, truth, atol=0.5)


def test_without_a_pair_the_localizers_best_finding_wins_over_a_larger_one():
    ear, look_alike = (-46.0, 0.0, 0.0), (-5.0, 40.0, 40.0)   # no head has ears like that
    segmenter = FakeSegmenter([ear, look_alike], radii=[RADIUS, RADIUS + 1.0], midline=0.0)
    candidates = [EarRegion("right", ear, 1.0), EarRegion("left", look_alike, 0.5)]
    confirmed = confirm.confirm_ears(head(), candidates, segmenter)
    assert len(confirmed) == 1 and np.allclose(centres(confirmed)[0], ear, atol=0.5)


def test_the_mirror_search_comes_before_weaker_candidates_use_up_the_passes():
    ears = [(-44.0, 6.0, -4.0), (45.0, 5.0, -16.0)]
    segmenter = FakeSegmenter(ears, midline=0.0)
    look_alikes = [EarRegion("left", (float(x), 60.0, 70.0), 0.9) for x in range(-60, 60, 6)]  # 20 empty ones
    candidates = [EarRegion("right", ears[0], 1.0)] + look_alikes
    confirmed = confirm.confirm_ears(head(), candidates, segmenter)
    assert [e.side for e, _, _ in confirmed] == ["right", "left"]
    assert np.allclose(centres(confirmed)[1], ears[1], atol=0.5)
    assert len(segmenter.calls) < confirm.MAX_PASSES   # the look-alikes were never needed


def test_no_mirror_search_outside_the_scan():
    segmenter = FakeSegmenter([(-46.0, 0.0, 0.0)], midline=0.0)
    image = head(width_mm=70.0)  # -35 .. 35 mm: the mirror image at +46 is outside
    image.SetOrigin((-80.0, -30.0, -20.0))
    confirmed = confirm.confirm_ears(image, [EarRegion("right", (-46.0, 0.0, 0.0), 1.0)], segmenter)
    assert len(confirmed) == 1 and len(segmenter.calls) == 1


def test_two_candidates_on_one_ear_give_one_ear():
    segmenter = FakeSegmenter([(45.0, 0.0, 0.0)])
    candidates = [EarRegion("left", (45.0, 0.0, 0.0), 1.0), EarRegion("left", (50.0, 8.0, 0.0), 0.9)]
    confirmed = confirm.confirm_ears(head(), candidates, segmenter)
    assert len(confirmed) == 1 and len(segmenter.calls) == 1


def test_a_small_finding_is_kept_when_nothing_is_confirmed():
    segmenter = FakeSegmenter([(45.0, 0.0, 0.0)], radius=1.5)   # 14 mm3, below MIN_LABYRINTH_MM3
    confirmed = confirm.confirm_ears(head(), [EarRegion("left", (45.0, 0.0, 0.0), 1.0)], segmenter)
    assert len(confirmed) == 1
    assert confirm.confirm_ears(head(), [EarRegion("left", (0.0, 0.0, 0.0), 1.0)], segmenter) == []


def test_passes_are_bounded():
    segmenter = FakeSegmenter([], midline=0.0)
    candidates = [EarRegion("left", (float(x), 0.0, 0.0), 1.0) for x in range(-70, 70, 5)]
    assert confirm.confirm_ears(head(), candidates, segmenter) == []
    assert len(segmenter.calls) == confirm.MAX_PASSES


@pytest.mark.parametrize("shift", [0.0, 25.0])
def test_head_midline_follows_the_head_not_the_scanner(shift):
    image = sitk.Image([200, 40, 40], sitk.sitkFloat32)
    image.SetOrigin((-100.0, -20.0, -20.0))
    array = np.zeros((40, 40, 200), np.float32)
    array[:, :, int(100 + shift - 70):int(100 + shift + 70)] = 100.0   # a 140 mm wide head
    head_image = sitk.GetImageFromArray(array)
    head_image.CopyInformation(image)
    midline = preprocess.head_midline_x(head_image, {"low": 0.5, "high": 99.5})
    assert midline == pytest.approx(shift, abs=4.0)


def test_with_nothing_where_the_localizer_pointed_the_segmenter_sweeps_the_scan():
    ears = [(-47.0, 8.0, 5.0), (44.0, -6.0, -3.0)]
    segmenter = FakeSegmenter(ears, midline=0.0)
    with pytest.warns(UserWarning, match="searching the whole scan"):
        confirmed = confirm.confirm_ears(head(), [EarRegion("right", (0.0, 0.0, 0.0), 0.9)], segmenter,
                                         sweep_mm=PRE["ear_region_mm"])
    assert [e.side for e, _, _ in confirmed] == ["right", "left"]
    for found, truth in zip(centres(confirmed), ears):
        assert np.allclose(found, truth, atol=0.5)
    assert len(segmenter.calls) <= 1 + confirm.SWEEP_PASSES


def test_a_small_finding_where_the_localizer_pointed_does_not_stop_the_sweep():
    ears = [(-47.0, 8.0, 5.0), (44.0, -6.0, -3.0)]
    speck = (2.0, 20.0, 12.0)   # 14 mm3, below MIN_LABYRINTH_MM3: the only thing the localiser saw
    segmenter = FakeSegmenter([speck] + ears, radii=[1.5, RADIUS, RADIUS], midline=0.0)
    with pytest.warns(UserWarning, match="searching the whole scan"):
        confirmed = confirm.confirm_ears(head(), [EarRegion("left", speck, 0.9)], segmenter,
                                         sweep_mm=PRE["ear_region_mm"])
    assert len(confirmed) == 2
    for found, truth in zip(centres(confirmed), ears):
        assert np.allclose(found, truth, atol=0.5)


@pytest.mark.parametrize("ears", [[(-47.0, 8.0, 5.0), (44.0, -6.0, -3.0)], [(44.0, -6.0, -3.0)]])
def test_a_sweep_finding_near_the_midline_does_not_block_the_ears(ears):
    # a 92 mm3 look-alike where the sweep starts, 45 mm from each ear: no head has an ear pair like that
    segmenter = FakeSegmenter([(1.0, 0.0, 0.0)] + ears, radii=[2.8] + [RADIUS] * len(ears), midline=0.0)
    with pytest.warns(UserWarning, match="searching the whole scan"):
        confirmed = confirm.confirm_ears(head(), [], segmenter,
                                         sweep_mm=PRE["ear_region_mm"])
    assert len(confirmed) == len(ears)
    for found, truth in zip(centres(confirmed), ears):
        assert np.allclose(found, truth, atol=0.5)


def test_a_sweep_of_a_one_ear_crop_stops_at_its_first_finding():
    segmenter = FakeSegmenter([(3.0, 2.0, 0.0)], midline=10.0)
    with pytest.warns(UserWarning, match="searching the whole scan"):
        confirmed = confirm.confirm_ears(head(50.0), [], segmenter,
                                         sweep_mm=PRE["ear_region_mm"])
    assert np.allclose(centres(confirmed)[0], (3.0, 2.0, 0.0), atol=0.5)
    assert confirmed[0][0].side == "left"   # x > 0: the crop's own middle (10 mm) does not decide
    assert len(segmenter.calls) <= 1 + confirm.MAX_MOVES   # no partner fits in 50 mm: nothing more to sweep


def test_no_sweep_when_an_ear_was_confirmed_or_none_was_asked_for():
    segmenter = FakeSegmenter([(-45.0, 0.0, 0.0)])
    confirm.confirm_ears(head(), [EarRegion("right", (-45.0, 0.0, 0.0), 0.9)], segmenter, sweep_mm=[24.0] * 3)
    assert len(segmenter.calls) == 1
    empty = FakeSegmenter([])
    assert confirm.confirm_ears(head(), [EarRegion("right", (0.0, 0.0, 0.0), 0.9)], empty) == []
    assert len(empty.calls) == 1


def test_sweep_centres_cover_the_scan_nearest_the_centre_first():
    image = head(160.0)   # 160 x 60 x 40 mm
    centres_ = np.array(confirm.sweep_centres(image, [24.0] * 3))
    lo, hi = np.array([-80.0, -30.0, -20.0]), np.array([79.0, 29.0, 19.0])
    grid = np.stack(np.meshgrid(*[np.arange(a, b + 1, 3.0) for a, b in zip(lo, hi)],
                                 indexing="ij"), -1).reshape(-1, 3)
    nearest = np.abs(grid[:, None, :] - centres_[None, :, :]).max(-1).min(1)
    assert nearest.max() <= 12.0                         # every point of the scan lies in some region
    d = np.linalg.norm(centres_ - (lo + hi) / 2, axis=1)
    assert np.all(np.diff(d) >= -1e-9)
