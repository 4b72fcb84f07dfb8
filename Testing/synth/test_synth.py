"""The synthetic generator: anatomy in millimetres on any grid, plausible sizes, determinism."""
import numpy as np
import pytest
import SimpleITK as sitk

from InnerEarSegLib.core.grid import canonical_reference
from InnerEarSegLib.synth.anatomy import Head, grid_points, ground_truth
from InnerEarSegLib.synth.generate import (generate_volume, localizer_sample, scan_grid_render, segmenter_sample,
                                           soft_labels)


def ear_grid(center, spacing_xyz, direction, extent_mm=34.0):
    D = np.asarray(direction, float)
    size = np.round(extent_mm / np.asarray(spacing_xyz)).astype(int)
    ref = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    ref.SetSpacing([float(s) for s in spacing_xyz])
    ref.SetDirection(D.flatten().tolist())
    ref.SetOrigin((np.asarray(center) - D @ ((size - 1) * np.asarray(spacing_xyz) / 2)).tolist())
    return ref


def structure_stats(head, ref):
    pts = grid_points(ref)
    lab = ground_truth(head.labels_at(pts))
    vox = float(np.prod(ref.GetSpacing()))
    return {v: (float((lab == v).sum() * vox), pts[lab == v].mean(0)) for v in (1, 2, 3)}


OBLIQUE_FLIPPED = np.array([[0.866, 0.0, -0.5], [0.25, -0.866, 0.433], [-0.433, -0.5, -0.75]])


@pytest.mark.parametrize("seed", [3])
def test_labels_sit_at_the_same_millimetres_on_any_grid(seed):
    head = Head(seed)
    center = head.ear_center("left")
    axial = structure_stats(head, ear_grid(center, (0.4, 0.4, 0.4), np.eye(3)))
    # orthonormal check of the test's own matrix, then an oblique, flipped, anisotropic grid
    assert np.allclose(OBLIQUE_FLIPPED @ OBLIQUE_FLIPPED.T, np.eye(3), atol=2e-3)
    oblique = structure_stats(head, ear_grid(center, (0.35, 0.5, 0.7), OBLIQUE_FLIPPED))
    for v in (1, 2, 3):
        vol_a, c_a = axial[v]
        vol_o, c_o = oblique[v]
        assert np.linalg.norm(c_a - c_o) < 0.5, f"label {v} centroid moved {c_a} -> {c_o}"
        assert abs(vol_a - vol_o) / vol_a < 0.15, f"label {v} volume {vol_a} vs {vol_o}"


def test_anatomy_sizes_and_positions_follow_anatomy_md():
    for seed in (0, 1):
        head = Head(seed)
        centroids = {}
        for side in ("left", "right"):
            stats = structure_stats(head, canonical_reference(head.ear_center(side), (80, 80, 80), 0.45))
            cochlea, vestibule, canals = (stats[v][0] for v in (1, 2, 3))
            total = cochlea + vestibule + canals
            assert 45 <= cochlea <= 130, cochlea
            assert 15 <= vestibule <= 60, vestibule
            assert 15 <= canals <= 80, canals
            assert 100 <= total <= 280, total
            centroids[side] = stats[2][1]
            # the cochlea lies in front of (smaller LPS y) and below-ish the vestibule
            assert stats[1][1][1] < stats[2][1][1]
        # LPS: the left ear has larger x; the two labyrinths are about 90 mm apart
        assert centroids["left"][0] > centroids["right"][0]
        assert 78 <= np.linalg.norm(centroids["left"] - centroids["right"]) <= 108


@pytest.mark.parametrize("seed", [3, 8])
def test_the_labyrinth_is_walled_in_bone_never_touching_air(seed):
    """Real canals run in otic-capsule bone; air cells or the middle ear next to the fluid would
    show, on CT, a canal crossing air."""
    from scipy import ndimage
    head = Head(seed)
    for side in ("right", "left"):
        ref = canonical_reference(head.ear_center(side), [96] * 3, 0.25)
        tissue = head.labels_at(grid_points(ref)).reshape(96, 96, 96)
        fluid = ndimage.binary_dilation((tissue >= 1) & (tissue <= 3), iterations=2)   # 0.5 mm around it
        assert fluid.sum() > 1000
        assert not np.isin(tissue[fluid], (0, 11, 12)).any()


@pytest.mark.parametrize("seed", [1, 777])
def test_bone_channels_run_beside_the_labyrinth_and_leave_its_labels_alone(seed, monkeypatch):
    """Facial-nerve canal, cochlear aqueduct and subarcuate canal (generator 1.6): present near the
    labyrinth, never touching its fluid (the capsule wall stays), and nothing else changes."""
    from scipy import ndimage
    from InnerEarSegLib.synth import anatomy
    with_channels = Head(seed)
    monkeypatch.setattr(anatomy.Ear, "_build_bone_channels", lambda self, rng: None)
    without = Head(seed)
    for side in ("right", "left"):
        ref = canonical_reference(with_channels.ear_center(side), [100] * 3, 0.3)
        pts = grid_points(ref)
        a, b = with_channels.labels_at(pts).reshape(100, 100, 100), without.labels_at(pts).reshape(100, 100, 100)
        assert np.array_equal(ground_truth(a), ground_truth(b))
        changed = a != b
        assert (changed & (a == 5)).sum() * 0.027 > 10, "facial-nerve canal missing"   # mm3
        assert set(np.unique(a[changed])) <= {5, 17, 21}
        fluid = ndimage.binary_dilation((a >= 1) & (a <= 3), iterations=1)   # 0.3 mm around the labyrinth
        assert not (changed & fluid).any()


def test_pathology_rate_removes_fluid_labels_and_keeps_the_ears_in_place():
    normal, damaged = Head(0), Head(0, pathology=25.0)   # 25 x 4 %: every ear loses its vestibule
    for side in ("left", "right"):
        ref = canonical_reference(normal.ear_center(side), (60, 60, 60), 0.5)
        before, after = structure_stats(normal, ref), structure_stats(damaged, ref)
        assert before[2][0] > 15 and before[3][0] > 15
        assert after[2][0] == 0 and after[3][0] == 0
        assert np.allclose(normal.ear_center(side), damaged.ear_center(side))


def test_labyrinthectomy_rate_alone_changes_only_the_vestibule_and_canals():
    """Training's extra labyrinthectomies (generator 1.8) remove vestibule and canals and leave
    the cochlea, the other pathologies and the ears' places as the test rate draws them."""
    normal, operated = Head(0), Head(0, labyrinthectomy=25.0)   # 25 x 4 %: every ear
    for side in ("left", "right"):
        ref = canonical_reference(normal.ear_center(side), (60, 60, 60), 0.5)
        before, after = structure_stats(normal, ref), structure_stats(operated, ref)
        assert before[2][0] > 15 and after[2][0] == 0 and after[3][0] == 0
        assert after[1][0] == pytest.approx(before[1][0], rel=0.05)
        assert np.allclose(normal.ear_center(side), operated.ear_center(side))


def test_a_drilled_labyrinthectomy_leaves_a_cavity_open_to_the_mastoid():
    """Generator 1.7: soft tissue in the exact canal shapes reads as fluid on CT, so a labyrinthectomy
    filled with soft tissue is one cavity over the canals' planes and the vestibule (normal
    vestibule and canals: 54-144 mm3 here); the cochlea stays. 1.9: the cavity runs out through the
    mastoid (a closed chamber reaches at most ~10 mm from the vestibule)."""
    from scipy import ndimage
    found = 0
    for seed in range(6):
        head = Head(seed, pathology=25.0)   # every ear operated, half of them drilled
        for side, ear in head.ears.items():
            if not any(lbl == 19 for lbl, _ in ear.layers[ear._context_end:]):
                continue
            found += 1
            ref = canonical_reference(head.to_world(ear.V), [100] * 3, 0.4)   # centred on the vestibule
            points = grid_points(ref)
            tissue = head.labels_at(points).reshape(100, 100, 100)
            assert not np.isin(tissue, (2, 3)).any()
            assert (tissue == 1).sum() * 0.064 > 40                       # the cochlea, mm3
            components, _ = ndimage.label(tissue == 19)
            cavity = components == components[50, 50, 50]
            assert tissue[50, 50, 50] == 19 and cavity.sum() * 0.064 > 150
            lateral = (head.to_head(points[cavity.ravel()]) - ear.V) @ ear.B[:, 0]
            assert lateral.max() > 15
    assert found >= 2


def test_samples_are_deterministic_and_well_formed():
    a_img, a_lab = segmenter_sample(5, patch_size=(32, 48, 40))
    b_img, b_lab = segmenter_sample(5, patch_size=(32, 48, 40))
    assert a_img.shape == a_lab.shape == (32, 48, 40)
    assert a_img.dtype == np.float32 and a_lab.dtype == np.uint8
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    assert 0.0 <= a_img.min() and a_img.max() <= 1.0
    assert set(np.unique(a_lab)) <= {0, 1, 2, 3}
    c_img, _ = segmenter_sample(6, patch_size=(32, 48, 40))
    assert not np.array_equal(a_img, c_img)


class Ball:
    """A stand-in anatomy: a canal-sized ball (class 3) around a known point, for exact volumes."""

    def __init__(self, center, radius):
        self.center, self.radius = np.asarray(center, float), radius

    def labels_at(self, points):
        return np.where(np.linalg.norm(points - self.center, axis=1) < self.radius, 3, 0).astype(np.uint8)


@pytest.mark.parametrize("direction", [np.eye(3), np.diag([-1.0, 1, -1])[:, [2, 0, 1]]])
def test_soft_labels_hold_the_volume_between_voxel_centres(direction):
    ref = ear_grid([3.1, -2.2, 7.3], [0.45, 0.45, 0.45], direction, extent_mm=6.0)
    ball = Ball([3.2, -2.0, 7.1], 0.9)          # 1.8 mm across: four voxels
    hard = ground_truth(ball.labels_at(grid_points(ref)).reshape(ref.GetSize()[::-1]))
    soft = soft_labels(ball, ref, hard, k=5)
    assert soft.shape == (4,) + hard.shape and np.allclose(soft.sum(0), 1)
    truth = 4 / 3 * np.pi * 0.9 ** 3
    voxel = 0.45 ** 3
    assert abs(soft[3].sum() * voxel - truth) < 0.05 * truth    # the hard count misses by up to ~20 %
    assert abs(soft[3].sum() * voxel - truth) < abs(np.sum(hard == 3) * voxel - truth)
    mixed = (soft.max(0) < 1)
    assert mixed.any() and np.all(soft[1:3] == 0)
    far = np.linalg.norm(grid_points(ref) - ball.center, axis=1).reshape(hard.shape) > 0.9 + 0.45 * 1.8
    assert np.all(soft[0][far] == 1)          # far from the surface nothing is mixed


def test_soft_samples_match_the_hard_ones():
    image, soft = segmenter_sample(12, patch_size=(32, 32, 32), soft=True)
    same_image, hard = segmenter_sample(12, patch_size=(32, 32, 32))
    assert np.array_equal(image, same_image) and soft.shape == (4, 32, 32, 32)
    assert np.allclose(soft.sum(0), 1) and np.count_nonzero(hard) > 500
    changed = soft.argmax(0) != hard          # only mixed voxels can change class, and few do
    mixed = soft.max(0) < 1
    assert mixed.sum() > 500 and not np.any(changed & ~mixed) and changed.sum() < 0.1 * mixed.sum()


def test_scan_grid_rendering_lands_on_the_model_grid():
    """An MR patch rendered on a random (oblique, anisotropic) scan grid and resampled onto the
    model grid shows the labyrinth where the model-grid labels put it."""
    head = Head(5)
    ref = canonical_reference(head.ear_center("left"), (48, 48, 48), 0.45)
    fluid = np.isin(head.labels_at(grid_points(ref)).reshape(48, 48, 48), [1, 2, 3, 4, 6, 17, 20]).ravel()

    def match(image, mask):
        return np.corrcoef(image.ravel(), mask)[0, 1]
    for seed in range(3):
        image = scan_grid_render(head, ref, np.random.default_rng(seed), "mr")
        assert image.shape == (48, 48, 48) and np.isfinite(image).all()
        assert match(image, fluid) > 0.25, seed          # fluid bright where the anatomy has it ...
        for axis in range(3):                            # ... and not 1.35 mm off along any axis
            off = np.roll(fluid.reshape(48, 48, 48), 3, axis).ravel()
            assert match(image, fluid) > match(image, off) + 0.1, (seed, axis)


def test_localizer_target_marks_the_ears():
    found = 0
    for seed in range(4):   # 4 mm keeps the whole-head tissue map cheap; same 96x160x160 mm view
        img, target = localizer_sample(seed, shape=(24, 40, 40), spacing=4.0)
        assert img.shape == target.shape == (24, 40, 40)
        assert set(np.unique(target)) <= {0, 1}
        found += int(target.any())
    assert found >= 1


def test_generate_volume_geometry_and_labels():
    direction = np.diag([1.0, -1.0, -1.0])   # flipped axes
    image, labels, info = generate_volume(11, family="ct", spacing_xyz=(0.5, 0.5, 0.8), fov="ear",
                                          direction=direction)
    assert image.GetSize() == labels.GetSize()
    assert np.allclose(image.GetSpacing(), (0.5, 0.5, 0.8))
    assert np.allclose(np.array(image.GetDirection()).reshape(3, 3), direction)
    assert image.GetPixelID() == sitk.sitkInt16          # CT in HU
    arr, lab = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(labels)
    assert arr.min() <= -900 and arr.max() >= 1000        # air and otic capsule
    assert (lab > 0).sum() * 0.5 * 0.5 * 0.8 > 60         # a labyrinth is in the crop
    # fluid is dark inside bright bone on CT
    assert np.median(arr[lab > 0]) < 400


def test_a_given_family_keeps_anatomy_and_grid_so_contrasts_compare_like_for_like():
    """experiments/contrast_pairs.py relies on it: only the image changes with the family."""
    scans = [generate_volume(12, family=f, spacing_xyz=(0.9, 0.9, 0.9), fov="ear") for f in ("mr", "ct")]
    (mr, mr_labels, mr_info), (ct, ct_labels, ct_info) = scans
    assert mr_info["fov"] == ct_info["fov"] and mr_info["orientation"] == ct_info["orientation"]
    for a, b in ((mr, ct), (mr_labels, ct_labels)):
        assert a.GetSize() == b.GetSize() and a.GetOrigin() == b.GetOrigin() and a.GetDirection() == b.GetDirection()
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(mr_labels), sitk.GetArrayViewFromImage(ct_labels))
    assert (sitk.GetArrayViewFromImage(mr_labels) > 0).any()
    fluid = sitk.GetArrayViewFromImage(mr_labels) > 0
    # the fluid is bright in MR and dark in CT: the images do differ
    assert np.median(sitk.GetArrayViewFromImage(mr)[fluid]) > np.median(sitk.GetArrayViewFromImage(mr))
    assert np.median(sitk.GetArrayViewFromImage(ct)[fluid]) < 400


@pytest.mark.parametrize("family", ["mr", "ct", "cbct", "random"])
def test_plain_context_gives_the_surroundings_one_intensity_apart_from_the_fluid(family):
    from InnerEarSegLib.synth.appearance import plain_context, tissue_means
    modes = set()
    for seed in range(12):
        m, sd = tissue_means(np.random.default_rng(seed), family)
        pm, psd = plain_context(np.random.default_rng([seed, 1]), m, sd)
        np.testing.assert_array_equal(pm[[1, 2, 3]], m[[1, 2, 3]])          # the labyrinth keeps its look
        np.testing.assert_array_equal(m, tissue_means(np.random.default_rng(seed), family)[0])  # input untouched
        changed = np.flatnonzero(pm != m)
        if not len(changed):
            continue
        assert not {1, 2, 3} & set(changed.tolist())
        value = pm[changed[0]]
        assert np.all(pm[changed] == value) and np.all(psd[changed] == psd[changed[0]])
        assert abs(value - m[[1, 2, 3]].mean()) > 0.2 * np.ptp(m)        # the fluid stands out from the block
        modes.add(int(np.sum(pm[np.setdiff1d(np.arange(len(m)), [1, 2, 3])] == value)) == len(m) - 3)
    assert modes == {True, False}, "both the whole-block and the half-merged surroundings occur"


def test_contrast_weights_pick_the_family_and_leave_the_stream_alone():
    from InnerEarSegLib.synth.appearance import FAMILIES, pick_family
    draws = []
    for weights in (None, (0.0, 1.0, 0.0, 0.0)):
        rng = np.random.default_rng(5)
        families = [pick_family(rng, None, weights) for _ in range(20)]
        draws.append(rng.uniform())
        if weights:
            assert set(families) == {"ct"}
        else:
            assert len(set(families)) > 1 and set(families) <= set(FAMILIES)
    assert draws[0] == draws[1]   # one number taken per draw, whatever the weights
    assert pick_family(np.random.default_rng(0), "mr", (0, 1, 0, 0)) == "mr"
