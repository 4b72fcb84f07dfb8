"""The pipeline's stages and API: ear finding, sides, clean-up, inference, progress, cancel, batch."""
import warnings

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage

from InnerEarSegLib.core.errors import Cancelled, InnerEarSegError, InputError
from InnerEarSegLib.core.grid import canonical_reference, center_of
from InnerEarSegLib.core.progress import CancelFlag
from InnerEarSegLib.inference import infer, localize, postprocess, preprocess
from InnerEarSegLib.pipeline import CaseReport, SegmentParameters, segment, segment_batch

RIGHT_EAR, LEFT_EAR = (-45.0, 5.0, 0.0), (45.0, 5.0, 0.0)


def threshold_predictor(net, array, roi):
    out = np.zeros((net.head.out_channels,) + array.shape, np.float32)
    out[0], out[1] = 1.0 - array, array
    return out


def two_ear_scan(volume, shift_x=0.0, radius=4.0):
    """A 120 x 40 x 30 mm scan at 1 mm with a bright sphere at each ear."""
    ears = [(np.add(e, (shift_x, 0, 0)), (radius,) * 3) for e in (RIGHT_EAR, LEFT_EAR)]
    return volume((120, 40, 30), (1.0, 1.0, 1.0), center_lps=(shift_x, 5.0, 0.0), blobs=ears)


# ---- localize -------------------------------------------------------------------------------

def blob_map(centres_lps, reference, radius=5.0):
    """A probability map on ``reference`` with 0.9 inside spheres at ``centres_lps``."""
    size = reference.GetSize()
    k, j, i = np.meshgrid(*[np.arange(n) for n in size[::-1]], indexing="ij")
    pts = np.stack([i, j, k], -1) * reference.GetSpacing()[0] + reference.GetOrigin()
    out = np.zeros(size[::-1], np.float32)
    for c in centres_lps:
        out[((pts - c) ** 2).sum(-1) <= radius ** 2] = 0.9
    return out


@pytest.mark.parametrize("shift", [0.0, 30.0])  # 30 mm: the head far off the scanner isocentre
def test_find_ears_gives_one_ear_per_side_around_the_midline(shift):
    reference = canonical_reference((shift, 0, 0), (80, 20, 20), 2.0)
    centres = [(-45 + shift, 0, 0), (45 + shift, 0, 0), (-38 + shift, 0, 0)]  # a third blob beside the right ear
    ears = localize.find_ears(blob_map(centres[:2], reference) + blob_map(centres[2:], reference, 3.0),
                              reference, 0.5)
    assert [e.side for e in ears] == ["right", "left"]
    assert np.allclose(ears[0].center_lps, centres[0], atol=1.0)
    assert np.allclose(ears[1].center_lps, centres[1], atol=1.0)
    assert ears[0].score == pytest.approx(0.9)


def test_find_ears_single_ear_side_from_isocentre_and_small_blobs_ignored():
    reference = canonical_reference((0, 0, 0), (80, 20, 20), 2.0)
    ears = localize.find_ears(blob_map([(20, 0, 0)], reference) + blob_map([(-50, 0, 0)], reference, 1.0),
                              reference, 0.5)
    assert [e.side for e in ears] == ["left"]
    assert localize.find_ears(np.zeros((20, 20, 80), np.float32), reference, 0.5) == []


def test_localizer_finds_both_ears_and_sides_follow_them(volume, tiny_model):
    image, truth = two_ear_scan(volume, shift_x=12.0)
    result = segment(image, tiny_model, SegmentParameters(surfaces=False), predictor=threshold_predictor)
    assert [e.side for e in result.ears] == ["right", "left"]
    labels, sides = sitk.GetArrayFromImage(result.labels), sitk.GetArrayFromImage(result.sides)
    found = labels > 0
    assert 2 * np.count_nonzero(found & truth) / (found.sum() + truth.sum()) > 0.9
    x = np.arange(labels.shape[2])[None, None, :] + image.GetOrigin()[0]  # identity grid: index -> LPS x
    assert np.all(sides[found & (x < 12)] == 1) and np.all(sides[found & (x > 12)] == 2)
    rows = {(r["structure"], r["side"]): r for r in result.stats}
    sphere = 4 / 3 * np.pi * 4 ** 3
    for side in ("right", "left"):
        assert rows[("labyrinth", side)]["volume_mm3"] == pytest.approx(sphere, rel=0.15)


def test_center_roi_splits_the_fixed_crop_into_right_and_left(volume, tiny_model):
    image, truth = two_ear_scan(volume, radius=8.0)  # big enough to set the crop's 99.5th percentile
    result = segment(image, tiny_model, SegmentParameters(roi="center", surfaces=False),
                     predictor=threshold_predictor,
                     locator=lambda *a: pytest.fail("the centre crop must not call the localizer"))
    sides = sitk.GetArrayFromImage(result.sides)
    found = sitk.GetArrayFromImage(result.labels) > 0
    assert 2 * np.count_nonzero(found & truth) / (found.sum() + truth.sum()) > 0.9
    assert np.all(sides[:, :, :60][found[:, :, :60]] == 1) and np.all(sides[:, :, 60:][found[:, :, 60:]] == 2)
    assert [e.side for e in result.ears] == ["right", "left"]


def test_model_without_localizer_warns_and_uses_the_scan_centre(volume, tiny_model_factory):
    from InnerEarSegLib.model.model_card import load_model
    model = load_model(tiny_model_factory(localizer=False))
    image, _ = volume((50, 50, 50), (0.5, 0.5, 0.5), center_lps=(20, 0, 0), blobs=[((20, 0, 0), (3, 3, 3))])
    with pytest.warns(UserWarning, match="no localizer"):
        result = segment(image, model, SegmentParameters(surfaces=False), predictor=threshold_predictor)
    assert any("no localizer" in w for w in result.warnings)
    assert [e.side for e in result.ears] == ["left"]
    assert np.allclose(result.ears[0].center_lps, (20, 0, 0), atol=0.3)


# ---- postprocess ----------------------------------------------------------------------------

def test_clean_labels_keeps_the_main_labyrinth_and_fills_holes():
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:12, 2:12, 2:12] = 1     # main labyrinth: cochlea ...
    labels[2:12, 12:16, 2:12] = 2    # ... touching the vestibule
    labels[6, 6, 6] = 0              # a hole in the cochlea
    labels[5, 5, 5] = 3              # a one-voxel canal fragment inside it
    labels[16:19, 16:19, 16:19] = 3  # a separate island
    before = labels.copy()
    out = postprocess.clean_labels(labels, (0.5, 0.5, 0.5))
    np.testing.assert_array_equal(labels, before)
    assert out[6, 6, 6] == 1 and out[5, 5, 5] == 1  # hole and fragment become cochlea
    assert not out[16:19, 16:19, 16:19].any()
    assert np.count_nonzero(out == 2) == 10 * 4 * 10
    raw = postprocess.clean_labels(labels, (0.5, 0.5, 0.5), keep_largest=False, fill_holes=False)
    np.testing.assert_array_equal(raw, labels)


def test_small_pieces_take_the_label_around_them_and_canal_pieces_stay():
    """A vestibule speck inside the cochlea (1 mm3: no real vestibule is that small) becomes
    cochlea, not background, so the labyrinth keeps its voxels; a 3.4 mm3 canal piece stays."""
    labels = np.zeros((24, 24, 24), np.uint8)
    labels[2:12, 2:12, 2:12] = 1       # cochlea, 125 mm3 at 0.5 mm
    labels[2:12, 12:18, 2:12] = 2      # vestibule, 75 mm3, touching it
    labels[4:6, 4:6, 4:6] = 2          # a vestibule speck of 8 voxels = 1 mm3 inside the cochlea
    labels[2:5, 18:21, 2:5] = 3        # a canal piece of 27 voxels = 3.4 mm3 on the vestibule
    out = postprocess.clean_labels(labels, (0.5, 0.5, 0.5))
    assert (out[4:6, 4:6, 4:6] == 1).all()
    assert np.array_equal(out > 0, labels > 0)
    assert (out == 2).sum() == 10 * 6 * 10 and (out == 3).sum() == 27
    labels[2:5, 18:21, 2:5] = 0
    labels[2, 18, 2] = 3               # a one-voxel canal piece (0.125 mm3) joins the vestibule
    assert postprocess.clean_labels(labels, (0.5, 0.5, 0.5))[2, 18, 2] == 2


@pytest.mark.parametrize("seed", range(4))
def test_clean_labels_in_the_bounding_box_equals_the_whole_region(seed):
    """The bounding-box shortcut changes nothing: same islands dropped, same holes filled, also
    for shapes at the region's edge and cups whose hollow opens at the box's border."""
    from scipy import ndimage
    rng = np.random.default_rng(seed)
    labels = np.zeros((40, 40, 40), np.uint8)
    blobs = ndimage.gaussian_filter(rng.random((3, 22, 22, 22)), 1.5)
    values = (blobs.argmax(0) + 1) * (blobs.max(0) > np.quantile(blobs.max(0), 0.6))
    at = (0, 9, 18) if seed % 2 else (9, 9, 9)                    # odd seeds: touching the edge
    labels[at[0]:at[0] + 22, at[1]:at[1] + 22, at[2]:at[2] + 22] = values
    labels[30:36, 30:36, 30:36] = 2
    labels[31:35, 31:35, 31:36] = 0                                # a cup open at the box's face
    labels[2, 38, 38] = 3                                          # a one-voxel island far away
    for keep, fill in ((True, True), (False, True), (True, False)):
        whole = postprocess._clean_box(labels.copy(), (0.3,) * 3, keep, fill, postprocess.MIN_PIECE_MM3)
        np.testing.assert_array_equal(postprocess.clean_labels(labels, (0.3,) * 3, keep, fill), whole)
    assert not postprocess.clean_labels(np.zeros((5, 5, 5), np.uint8), (1, 1, 1)).any()


def test_clean_probabilities_argmax_is_the_cleaned_labels():
    rng = np.random.default_rng(0)
    probs = rng.random((4, 12, 12, 12)).astype(np.float32)
    cleaned = postprocess.clean_probabilities(probs, (0.45,) * 3)
    expected = postprocess.clean_labels(probs.argmax(0).astype(np.uint8), (0.45,) * 3)
    np.testing.assert_array_equal(cleaned.argmax(0), expected)


def test_resampling_adds_no_structure_the_model_grid_lacks():
    """A cochlea (class 1 first, vestibule second) beside background (vestibule second): on a grid
    shifted by half a voxel, the linear mix makes the vestibule win between them unless the cleaned
    probabilities drop what the model grid did not hold."""
    probs = np.zeros((4, 8, 8, 8), np.float32)
    probs[:, :, :, :4] = np.array([0.1, 0.45, 0.4, 0.05])[:, None, None, None]
    probs[:, :, :, 4:] = np.array([0.45, 0.1, 0.4, 0.05])[:, None, None, None]
    reference = sitk.Image([8, 8, 8], sitk.sitkUInt8)
    image = sitk.Image([16, 16, 16], sitk.sitkFloat32)
    image.SetSpacing((0.5, 0.5, 0.5))
    image.SetOrigin((-0.25, -0.25, -0.25))
    mixed = postprocess.labels_on(image, reference, probs)
    assert (mixed == 2).any()                                           # the speck resampling makes
    assert not postprocess.clean_probabilities(probs, (1, 1, 1))[2].any()
    labels = sitk.GetArrayFromImage(postprocess.assemble(image, [("right", reference, probs)])[0])
    assert not (labels == 2).any() and (labels == 1).sum() >= (mixed == 1).sum()


# ---- infer ----------------------------------------------------------------------------------

class PointwiseNet(torch.nn.Module):
    """Logits [0, 8 (x - 0.5)] per voxel: a function of the voxel's own value only."""

    def forward(self, x):
        return torch.cat([torch.zeros_like(x), 8 * (x - 0.5)], 1)


def test_predict_probabilities_tta_flips_back(tiny_model):
    array = np.zeros((16, 16, 16), np.float32)
    array[2:6, 3:9, 1:4] = 1.0  # asymmetric, so a flip not undone would move it
    plain = infer.predict_probabilities(PointwiseNet(), array, (8, 8, 8), "cpu")
    tta = infer.predict_probabilities(PointwiseNet(), array, (8, 8, 8), "cpu", tta=True)
    assert plain.shape == (2, 16, 16, 16) and plain.dtype == np.float32
    np.testing.assert_allclose(tta, plain, atol=1e-5)
    np.testing.assert_array_equal(plain.argmax(0), array > 0.5)
    real = infer.predict_probabilities(tiny_model.segmenter, array, (16, 16, 16), "cpu")
    assert real.shape == (4, 16, 16, 16)
    np.testing.assert_allclose(real.sum(0), 1.0, atol=1e-5)


class RecordsDtype(torch.nn.Module):
    """A 1x1x1 convolution that notes the dtype autocast gave its output."""

    def __init__(self):
        super().__init__()
        self.conv, self.seen = torch.nn.Conv3d(1, 2, 1), []

    def forward(self, x):
        y = self.conv(x)
        self.seen.append(y.dtype)
        return y


@pytest.mark.parametrize("native", [False, True])
def test_cpu_bf16_where_native_unless_told(monkeypatch, native):
    """Automatic (None): bf16 autocast only where the CPU has native bf16; True and False force
    it. The probabilities come back as float32 summing to 1 either way."""
    monkeypatch.setattr(infer, "native_cpu_bf16", lambda: native)
    array = np.random.default_rng(0).random((8, 8, 8)).astype(np.float32)
    net = RecordsDtype()
    auto = infer.predict_probabilities(net, array, (8, 8, 8), "cpu")
    plain = infer.predict_probabilities(net, array, (8, 8, 8), "cpu", cpu_bf16=False)
    fast = infer.predict_probabilities(net, array, (8, 8, 8), "cpu", cpu_bf16=True)
    assert net.seen == [torch.bfloat16 if native else torch.float32, torch.float32, torch.bfloat16]
    assert auto.dtype == np.float32
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast.sum(0), 1.0, atol=1e-5)
    np.testing.assert_allclose(fast, plain, atol=0.02)   # bf16 keeps about 3 significant digits


def test_native_cpu_bf16_says_no_when_torch_cannot_tell(monkeypatch):
    """The torch helpers it reads are private: gone or failing means fp32, never an error."""
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    infer.native_cpu_bf16.cache_clear()
    assert infer.native_cpu_bf16() is False
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    infer.native_cpu_bf16.cache_clear()
    assert infer.native_cpu_bf16() is True
    infer.native_cpu_bf16.cache_clear()   # the next test asks the real CPU again


class SeesItsSide(torch.nn.Module):
    """Foreground probability rises along x (left/right) and along z (up/down): a net that knows
    which way the region faces, as the segmenter does."""

    def forward(self, x):
        z = torch.linspace(-1, 1, x.shape[2]).view(1, 1, -1, 1, 1)
        xs = torch.linspace(-1, 1, x.shape[4]).view(1, 1, 1, 1, -1)
        return torch.cat([torch.zeros_like(x), (z + 2 * xs).expand_as(x)], 1)


def test_tta_averages_the_left_right_mirror_only():
    array = np.zeros((8, 8, 8), np.float32)
    net = SeesItsSide()
    plain = infer.predict_probabilities(net, array, (8, 8, 8), "cpu")
    tta = infer.predict_probabilities(net, array, (8, 8, 8), "cpu", tta=True)
    mirrored = plain[:, :, :, ::-1]   # the mirror's prediction, flipped back
    np.testing.assert_allclose(tta, (plain + mirrored) / 2, atol=1e-5)
    assert tta[1, -1, 4, 4] > tta[1, 0, 4, 4] + 0.2   # up/down kept: never averaged with upside down


class CountsPasses(PointwiseNet):
    def __init__(self):
        super().__init__()
        self.passes = 0

    def forward(self, x):
        self.passes += 1
        return super().forward(x)


def test_turns_average_the_region_turned_and_turned_back():
    """Seven turns (none, +-15 degrees about each axis) of each mirror pass, each undone: a
    pointwise net gives the same probabilities back but for interpolation at edges."""
    z, y, x = np.mgrid[:16, :16, :16]
    array = np.exp(-((z - 8.0) ** 2 + (y - 7.0) ** 2 + (x - 9.0) ** 2) / 18).astype(np.float32)   # smooth blob
    net = CountsPasses()
    plain = infer.predict_probabilities(net, array, (16, 16, 16), "cpu", tta=True)
    turned = infer.predict_probabilities(net, array, (16, 16, 16), "cpu", tta=True, turns=True)
    assert net.passes == 2 + 14
    np.testing.assert_allclose(turned.sum(0), 1.0, atol=1e-5)
    inner = (slice(None),) + (slice(4, 12),) * 3
    np.testing.assert_allclose(turned[inner], plain[inner], atol=0.05)
    assert not np.allclose(turned, plain, atol=1e-4)   # the turns did run


def test_turned_back_is_the_identity_and_a_turn_moves_things():
    t = torch.zeros(1, 1, 20, 20, 20)
    t[0, 0, 10, 10, 14:17] = 1.0   # a bar along x, off centre
    R = infer.rotation(2, 15.0)     # about z: moves it in y
    once = infer.turned(t, R)
    assert (once - t).abs().max() > 0.3
    back = infer.turned(once, R.T)
    assert back[0, 0, 10, 10, 14:17].mean() > 0.5 and abs(float(back.sum() - t.sum())) < 0.5


def test_gpu_out_of_memory_retries_on_cpu(monkeypatch):
    calls = []
    real_run = infer._run

    def run(net, x, roi, device, tta, amp, cpu_bf16, turns):
        calls.append(device.type)
        if device.type == "cuda":
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real_run(net, x, roi, device, tta, amp, cpu_bf16, turns)

    monkeypatch.setattr(infer, "_run", run)
    with pytest.warns(UserWarning, match="out of memory"):
        out = infer.predict_probabilities(PointwiseNet(), np.zeros((8, 8, 8), np.float32), (8, 8, 8), "cuda")
    assert calls == ["cuda", "cpu"] and out.shape == (2, 8, 8, 8)


def test_pick_device():
    assert infer.pick_device("cpu").type == "cpu"
    assert infer.pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(InnerEarSegError, match="no CUDA"):
            infer.pick_device("cuda")


# ---- API ------------------------------------------------------------------------------------

def small_scan(volume):
    return volume((40, 40, 40), (0.5, 0.5, 0.5), center_lps=(-30, 0, 0), blobs=[((-30, 0, 0), (3, 3, 3))])


def test_progress_stages_timings_and_surface_builder(volume, tiny_model):
    image, _ = small_scan(volume)
    seen, built = [], []

    def builder(labels, sides, smoothing):
        built.append((labels.GetSize(), sides is not None, smoothing))
        return {"cochlea_right": "poly"}

    result = segment(image, tiny_model, SegmentParameters(smoothing=0.3), predictor=threshold_predictor,
                     progress=lambda s, f, m: seen.append((s, f)), surface_builder=builder)
    stages = ["read", "preprocess", "localize", "segment", "postprocess", "measure", "surface"]
    assert [s for s, f in seen if f == 0.0] == stages
    assert list(result.timings) == stages and all(t >= 0 for t in result.timings.values())
    assert built == [(image.GetSize(), True, 0.3)] and result.surfaces == {"cochlea_right": "poly"}
    result = segment(image, tiny_model, SegmentParameters(surfaces=False), predictor=threshold_predictor,
                     surface_builder=lambda *a: pytest.fail("surfaces were not asked for"))
    assert "surface" not in result.timings and result.surfaces == {}


def test_reweight_moves_the_argmax_and_keeps_a_distribution():
    p = np.zeros((4, 2, 1, 1), np.float32)
    p[:, 0, 0, 0] = [0.6, 0.0, 0.0, 0.4]   # a thin canal's edge: background wins the plain argmax
    p[:, 1, 0, 0] = [0.8, 0.0, 0.0, 0.2]
    assert postprocess.reweight(p, None) is p
    out = postprocess.reweight(p, [1, 1, 1, 2])
    assert out.argmax(0).ravel().tolist() == [3, 0]   # 0.8 vs 0.6, then 0.8 vs 0.4
    assert np.allclose(out.sum(0), 1.0) and p[3, 0, 0, 0] == np.float32(0.4)   # input left alone


def canal_blob(share):
    """A predictor that calls the scan's bright blob canal with probability ``share``, else background."""
    def predictor(net, array, roi):
        out = np.zeros((4,) + array.shape, np.float32)
        out[3] = share * (array > 0.5)
        out[0] = 1.0 - out[3]
        return out
    return predictor


def test_class_weights_of_the_card_reach_the_labels(volume, tiny_model, monkeypatch):
    image, _ = small_scan(volume)
    faint_canals = canal_blob(0.4)
    params = SegmentParameters(surfaces=False)
    plain = segment(image, tiny_model, params, predictor=faint_canals)
    monkeypatch.setitem(tiny_model.card, "postprocessing", {"class_weights": [1.0, 1.0, 1.0, 2.0]})
    weighted = segment(image, tiny_model, params, predictor=faint_canals)
    assert not sitk.GetArrayViewFromImage(plain.labels).any()
    assert (sitk.GetArrayViewFromImage(weighted.labels) == 3).sum() > 100


def test_class_weights_of_the_scans_modality_win(volume, tiny_model, monkeypatch):
    image, _ = small_scan(volume)
    even_canals = canal_blob(0.5)
    monkeypatch.setitem(tiny_model.card, "postprocessing", {"class_weights": [1.0, 1.0, 1.0, 2.0],
                                                            "class_weights_by_modality": {"ct": [3.0, 1.0, 1.0, 2.0]}})
    found = {}
    for modality in ("mr", "ct"):
        params = SegmentParameters(surfaces=False, modality=modality)
        found[modality] = (sitk.GetArrayViewFromImage(segment(image, tiny_model, params,
                                                              predictor=even_canals).labels) == 3).sum()
    assert found["mr"] > 100 and found["ct"] == 0


def test_inside_mask_follows_the_scans_field_of_view_for_any_direction():
    from InnerEarSegLib.core.grid import inside_mask
    image = sitk.Image([30, 20, 12], sitk.sitkUInt8)
    image.SetSpacing((0.4, 0.7, 1.1))
    oblique_flipped = np.array([[0.866, 0.0, -0.5], [0.25, -0.866, 0.433], [-0.433, -0.5, -0.75]])
    image.SetDirection(oblique_flipped.flatten().tolist())
    image.SetOrigin((3.0, -2.0, 5.0))
    reference = canonical_reference(center_of(image), (24, 24, 24), 0.9)   # larger than the scan
    mask = inside_mask(image, reference)
    expected = np.zeros(mask.shape, bool)
    limit = np.array(image.GetSize()) - 0.5
    for k in range(24):
        for j in range(24):
            for i in range(24):
                index = image.TransformPhysicalPointToContinuousIndex(
                    reference.TransformIndexToPhysicalPoint((i, j, k)))
                expected[k, j, i] = np.all(np.asarray(index) >= -0.5) and np.all(np.asarray(index) <= limit)
    assert 0 < expected.sum() < expected.size
    assert np.array_equal(mask, expected)



def _block_with_ball(radius, noise=20.0, seed=0):
    """A noisy uniform block (-1000) with a bright ball (150) blurred at its rim, as a cast phantom."""
    z, y, x = np.mgrid[:64, :64, :64] - 31.5
    ball = (np.sqrt(x * x + y * y + z * z) <= radius).astype(np.float32)
    rim = ndimage.gaussian_filter(ball, 1.0)
    image = -1000.0 + 1150.0 * rim + noise * np.random.default_rng(seed).normal(size=ball.shape)
    return image, ball > 0, rim


@pytest.mark.parametrize("radius", [4, 6.6])   # 0.1 % of the voxels; 0.45 %: the 99.5th percentile on the rim
def test_normalise_keeps_a_small_bright_object_and_its_rim_apart_from_the_block(radius):
    from InnerEarSegLib.core.grid import normalise
    image, ball, rim = _block_with_ball(radius)
    assert ball.mean() < 0.005
    out = normalise(image)
    half = (rim > 0.3) & (rim < 0.7)                          # the blurred rim, half way in intensity
    block = ~ndimage.binary_dilation(rim > 0.01, iterations=2)
    assert np.median(out[block]) < 0.1                       # the block stays dark, not noise stretched to 0..1
    assert 0.3 < np.median(out[half]) < 0.8                   # the rim is not clipped to 1 with the object
    assert np.median(out[rim > 0.95]) > 0.85


def test_normalise_is_the_plain_percentile_window_when_the_object_is_large_enough():
    from InnerEarSegLib.core.grid import normalise
    image, ball, _ = _block_with_ball(radius=12)             # ~3 % of the voxels
    lo, hi = np.percentile(image, [0.5, 99.5])
    np.testing.assert_allclose(normalise(image), np.clip((image - lo) / (hi - lo), 0, 1), atol=1e-5)


def test_the_segmenter_output_outside_the_scan_is_background(volume, tiny_model, monkeypatch):
    """A region past the scan's edge: what the segmenter paints in the padding is not a finding."""
    from InnerEarSegLib.core.grid import inside_mask
    from InnerEarSegLib.core.result import EarRegion
    from InnerEarSegLib.inference import confirm
    image, _ = small_scan(volume)   # x from -40 to -20 mm
    seen = []

    def all_cochlea(net, array, roi):
        out = np.zeros((4,) + array.shape, np.float32)
        out[1] = 1.0
        return out

    def spy_confirm(image, candidates, segmenter, *args, **kwargs):
        seen.append(segmenter.segment_region((-20.0, 0.0, 0.0)))   # a region on the scan's edge
        return []

    monkeypatch.setattr(confirm, "confirm_ears", spy_confirm)
    segment(image, tiny_model, SegmentParameters(surfaces=False), predictor=all_cochlea,
            locator=lambda *a: [EarRegion("right", (-20.0, 0.0, 0.0), 1.0)])
    reference, probabilities = seen[0]
    inside = inside_mask(image, reference)
    assert 0 < inside.sum() < inside.size
    assert np.array_equal(probabilities.argmax(0) == 1, inside)


def test_cancel_stops_at_the_next_stage(volume, tiny_model):
    image, _ = small_scan(volume)
    flag, seen = CancelFlag(), []

    def progress(stage, fraction, message):
        seen.append(stage)
        if stage == "localize":
            flag.cancel()

    with pytest.raises(Cancelled):
        segment(image, tiny_model, SegmentParameters(surfaces=False), progress, flag, predictor=threshold_predictor)
    assert "segment" not in seen and "postprocess" not in seen


def test_numpy_input_matches_sitk_input(volume, rotation, tiny_model):
    image, _ = small_scan(volume)
    image.SetDirection(rotation(0, 0, 20).ravel().tolist())
    params = SegmentParameters(surfaces=False)
    a = segment(image, tiny_model, params, predictor=threshold_predictor)
    b = segment(sitk.GetArrayFromImage(image), tiny_model, params, predictor=threshold_predictor,
                spacing=image.GetSpacing(), origin=image.GetOrigin(), direction=image.GetDirection())
    assert b.labels.GetDirection() == image.GetDirection() and b.labels.GetOrigin() == image.GetOrigin()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a.labels), sitk.GetArrayFromImage(b.labels))
    with pytest.raises(InputError, match="spacing"):
        segment(sitk.GetArrayFromImage(image), tiny_model, params, predictor=threshold_predictor)


def test_split_sides_off_gives_both_rows_and_no_sides(volume, tiny_model):
    image, _ = small_scan(volume)
    result = segment(image, tiny_model, SegmentParameters(split_sides=False, surfaces=False),
                     predictor=threshold_predictor)
    assert not sitk.GetArrayFromImage(result.sides).any()
    assert {r["side"] for r in result.stats} == {"both"}
    assert [r for r in result.stats if r["structure"] == "cochlea"][0]["voxels"] > 0


def test_parameters_are_validated(tiny_model, volume):
    assert SegmentParameters().isValid() == (True, "")
    for bad in (dict(device="gpu"), dict(modality="pet"), dict(roi="whole"), dict(smoothing=2.0)):
        ok, message = SegmentParameters(**bad).isValid()
        assert not ok and str(list(bad.values())[0]) in message
    with pytest.raises(ValueError, match="roi"):
        segment(small_scan(volume)[0], tiny_model, SegmentParameters(roi="whole"))


def test_batch_goes_on_past_a_bad_file(volume, tiny_model, tmp_path):
    image, _ = volume((30, 30, 30), (0.5, 0.5, 0.5), blobs=[((0, 0, 0), (3, 3, 3))])  # one region: fast
    good = [tmp_path / "a.nii.gz", tmp_path / "c.nrrd"]
    for p in good:
        sitk.WriteImage(image, str(p))
    bad = tmp_path / "b.nii.gz"
    bad.write_bytes(b"not an image at all")
    written = []

    def writer(result, out_dir, name, input_image):
        path = out_dir / name / f"{name}_labels.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(result.labels, str(path))
        written.append(name)
        return [path]

    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reports = segment_batch([tmp_path], out, tiny_model, SegmentParameters(surfaces=False), writer=writer)
    assert all(isinstance(r, CaseReport) for r in reports)
    assert [(r.name, r.ok) for r in reports] == [("a", True), ("b", False), ("c", True)]
    assert written == ["a", "c"]
    assert "b.nii.gz" in reports[1].error and "not an image" in reports[1].error
    assert reports[0].outputs == [out / "a" / "a_labels.nii.gz"] and reports[0].outputs[0].is_file()
    assert reports[0].seconds > 0 and reports[0].stats


def test_detect_modality_and_warning_for_a_modality_the_model_never_saw(tiny_model_factory):
    from InnerEarSegLib.inference.preprocess import detect_modality
    from InnerEarSegLib.model.model_card import load_model
    rng = np.random.default_rng(0)
    mr = rng.normal(300, 50, (20, 30, 30)).clip(0)
    ct = np.full((20, 30, 30), -1000.0)  # air around a head of soft tissue with some bone
    ct[:, 5:25, 5:25] = 40
    ct[8:12, 10:14, 10:14] = 1800
    ct_no_air = ct[:, 8:22, 8:22].copy()
    ct_no_air[0, 0, 0] = -990  # a cropped temporal bone: little air, but dense bone
    kinds = [detect_modality(sitk.GetImageFromArray(a)) for a in (mr, ct, ct_no_air, mr - 1000)]
    assert kinds == ["mr", "ct", "ct", "mr"]

    model = load_model(tiny_model_factory())
    model.card["modalities"] = ["mr"]
    image = sitk.GetImageFromArray(ct.astype(np.float32))
    with pytest.warns(UserWarning, match="looks like CT"):
        result = segment(image, model, SegmentParameters(surfaces=False), predictor=threshold_predictor)
    assert any("trained on MR only" in w for w in result.warnings) and result.modality == "ct"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        given = segment(image, model, SegmentParameters(modality="mr", surfaces=False), predictor=threshold_predictor)
    assert given.modality == "mr"  # the user's choice is what the result reports


def test_threads_follow_the_user_setting(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    infer.configure_threads()
    assert calls == []
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    infer.configure_threads()
    assert calls and calls[0] >= 1


@pytest.mark.parametrize("peak, found", [(0.35, True), (0.1, True), (0.015, False)])
def test_an_unsure_localizer_hands_on_weaker_candidates(peak, found, volume, tiny_model):
    """Above 0.2, or above half the map's peak (0.1: as on phantoms); nothing below 0.02."""
    image, _ = volume((120, 40, 40), (1.0, 1.0, 1.0), noise=10.0)

    def unsure(net, array, roi):   # a faint blob around the left ear only
        reference = canonical_reference(localize.scan_center(image), array.shape[::-1], 2.0)
        p = blob_map([LEFT_EAR], reference) / 0.9 * peak
        return np.stack([1 - p, p])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ears = localize.locate_ears(image, tiny_model, unsure)
    assert bool(ears) == found and any("unsure" in str(w.message) for w in caught) == found
    if found:
        assert [e.side for e in ears] == ["left"] and np.allclose(ears[0].center_lps, LEFT_EAR, atol=2.0)
        assert ears[0].score == pytest.approx(peak, rel=1e-5)


def test_a_card_threshold_below_the_weak_one_still_gets_the_relative_tier(volume, tiny_model, monkeypatch):
    monkeypatch.setitem(tiny_model.card["preprocessing"], "localizer_threshold", 0.15)
    image, _ = volume((120, 40, 40), (1.0, 1.0, 1.0), noise=10.0)

    def faint(net, array, roi):
        reference = canonical_reference(localize.scan_center(image), array.shape[::-1], 2.0)
        p = blob_map([LEFT_EAR], reference) / 0.9 * 0.1
        return np.stack([1 - p, p])

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        ears = localize.locate_ears(image, tiny_model, faint)
    assert [e.side for e in ears] == ["left"]


def test_a_small_scan_keeps_its_centre_as_the_last_candidate(volume, tiny_model):
    image, _ = volume((40, 40, 40), (1.0, 1.0, 1.0), center_lps=(45.0, 0.0, 0.0), noise=10.0)

    def off_centre(net, array, roi):   # a confident blob 12 mm from the centre (a look-alike, maybe)
        reference = canonical_reference(localize.scan_center(image), array.shape[::-1], 2.0)
        p = blob_map([(57.0, 0.0, 0.0)], reference, radius=4.0)
        return np.stack([1 - p, p])

    ears = localize.locate_ears(image, tiny_model, off_centre)
    assert len(ears) == 2 and np.allclose(ears[0].center_lps, (57.0, 0.0, 0.0), atol=2.0)
    assert np.allclose(ears[1].center_lps, localize.scan_center(image)) and ears[1].score == 0.0


@pytest.mark.parametrize("width_mm, windows", [(76.0, "one"), (120.0, "several")])
def test_localizer_window_covers_a_slightly_larger_scan_at_once(width_mm, windows, volume, tiny_model):
    image, _ = volume((int(width_mm), 40, 40), (1.0, 1.0, 1.0), noise=10.0)   # tiny model: 32-voxel patches at 2 mm
    seen = []

    def spy(net, array, roi):
        seen.append((array.shape, tuple(roi)))
        return np.stack([np.ones_like(array), np.zeros_like(array)])

    localize.locate_ears(image, tiny_model, spy)
    (shape, roi), = seen
    assert roi[0] == shape[0]                       # 40 mm deep: within 1.25 x 32 voxels of 2 mm
    assert (roi[2] == shape[2]) == (windows == "one"), (shape, roi)
    if windows == "several":
        assert roi[2] == tiny_model.card["preprocessing"]["localizer_patch_size"][2]


@pytest.mark.parametrize("cpu_bf16", [None, False, True])
def test_tta_applies_to_the_segmenter_not_the_localizer(volume, tiny_model, monkeypatch, cpu_bf16):
    """TTA only for the segmenter; ``cpu_bf16`` reaches every network pass."""
    image, _ = volume((90, 40, 40), (1.0, 1.0, 1.0), blobs=[((20, 0, 0), (8, 8, 8))])
    calls = []

    def spy(net, array, roi, device="cpu", tta=False, amp=True, cpu_bf16=None, turns=False):
        calls.append((net is tiny_model.localizer, tta, turns, cpu_bf16))
        return threshold_predictor(net, array, roi)

    monkeypatch.setattr(infer, "predict_probabilities", spy)
    segment(image, tiny_model, SegmentParameters(surfaces=False, cpu_bf16=cpu_bf16))   # TTA on by default
    assert set(calls) == {(True, False, False, cpu_bf16), (False, True, True, cpu_bf16)}
    calls.clear()
    segment(image, tiny_model, SegmentParameters(surfaces=False, cpu_bf16=cpu_bf16, tta_turns=False))
    assert set(calls) == {(True, False, False, cpu_bf16), (False, True, False, cpu_bf16)}


@pytest.mark.parametrize("spacing, voxels", [(0.45, [256, 256, 64]), (0.36, [320, 320, 80])])
def test_center_crop_keeps_the_reference_field_in_millimetres(spacing, voxels):
    image = sitk.Image([100, 120, 40], sitk.sitkFloat32)
    image.SetSpacing([0.5, 0.5, 1.0])
    ref = preprocess.center_reference(image, {"spacing_mm": spacing}, 8)
    assert list(ref.GetSize()) == voxels   # 115.2 x 115.2 x 28.8 mm whatever the model grid
    assert ref.GetSpacing() == pytest.approx((spacing,) * 3)


def test_no_whole_scan_sweep_on_voxels_too_coarse_for_the_canals(tiny_model):
    """A 5 mm volume where the localiser finds nothing: no sweep (it only ever found nothing, slowly)."""
    image = sitk.GetImageFromArray(np.random.default_rng(0).normal(100, 10, (30, 40, 40)).astype(np.float32))
    image.SetSpacing((5.0, 5.0, 5.0))
    calls = []

    def counting(net, array, roi):
        calls.append(array.shape)
        return np.eye(net.head.out_channels, dtype=np.float32)[0][:, None, None, None] * np.ones(array.shape)

    with pytest.warns(UserWarning, match="no inner ear found"):
        segment(image, tiny_model, SegmentParameters(surfaces=False), predictor=counting,
                locator=lambda image, model, predictor: [])
    assert calls == []
    image.SetSpacing((1.0, 1.0, 1.0))    # fine enough: the sweep runs
    with pytest.warns(UserWarning, match="searching the whole scan"):
        segment(image, tiny_model, SegmentParameters(surfaces=False), predictor=counting,
                locator=lambda image, model, predictor: [])
    assert calls


def test_batch_refuses_inputs_that_share_a_case_name(tmp_path, tiny_model):
    from InnerEarSegLib.core.errors import InputError
    from InnerEarSegLib.pipeline import segment_batch
    for folder in ("p1", "p2"):
        (tmp_path / folder).mkdir()
        sitk.WriteImage(sitk.Image([8, 8, 8], sitk.sitkFloat32), str(tmp_path / folder / "scan.nii.gz"))
    with pytest.raises(InputError, match="scan"):
        segment_batch([tmp_path / "p1" / "scan.nii.gz", tmp_path / "p2" / "scan.nii.gz"], tmp_path / "out",
                      tiny_model)
    assert not (tmp_path / "out").exists()


def test_an_implausibly_large_labyrinth_carries_a_warning(volume, tiny_model):
    params = SegmentParameters(roi="center", surfaces=False)
    image, _ = two_ear_scan(volume, radius=8.0)          # two balls of 2,100 mm3
    large = segment(image, tiny_model, params, predictor=threshold_predictor)
    assert sum("outside 40-450 mm3" in w for w in large.warnings) == 2, large.warnings
    image, _ = two_ear_scan(volume, radius=3.5)          # 180 mm3 each: like real labyrinths
    plain = segment(image, tiny_model, params, predictor=threshold_predictor)
    assert not any("outside 40-450 mm3" in w for w in plain.warnings), plain.warnings
