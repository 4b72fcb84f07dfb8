"""Metrics against hand-computed values on tiny volumes with anisotropic spacing."""
import math

import numpy as np
import pytest
import SimpleITK as sitk

from InnerEarSegLib.core.errors import InputError
from InnerEarSegLib.evaluation.metrics import compute_metrics, midline_x

SPACING = (0.5, 0.7, 1.3)  # x, y, z in mm
VOXEL = 0.5 * 0.7 * 1.3


def image(arr, spacing=SPACING, origin=(10.0, 0.0, 0.0), direction=None):
    img = sitk.GetImageFromArray(np.asarray(arr, np.uint8))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(direction)
    return img


def row(rows, structure, side="both"):
    (r,) = [r for r in rows if r["structure"] == structure and r["side"] == side]
    return r


def test_overlapping_cubes():
    pred, ref = np.zeros((2, 12, 12, 12), np.uint8)  # z, y, x
    pred[2:8, 2:8, 2:8] = 1          # 216 voxels
    ref[2:8, 2:8, 4:10] = 1          # shifted 2 voxels in x: overlap 6 * 6 * 4 = 144
    rows = compute_metrics(image(pred), image(ref))
    r = row(rows, "cochlea")
    assert r["dsc"] == pytest.approx(2 * 144 / (216 + 216))
    assert r["tpr"] == pytest.approx(144 / 216)
    assert r["fnr"] == pytest.approx(72 / 216)
    assert r["fdr"] == pytest.approx(72 / 216)
    assert r["fpr"] == pytest.approx(72 / (12 ** 3 - 216))
    assert r["tp_mm3"] == pytest.approx(144 * VOXEL)
    assert r["fp_mm3"] == pytest.approx(72 * VOXEL)
    assert r["fn_mm3"] == pytest.approx(72 * VOXEL)
    assert r["pred_mm3"] == pytest.approx(216 * VOXEL) and r["ref_mm3"] == pytest.approx(216 * VOXEL)
    assert r["hd95_mm"] == pytest.approx(2 * 0.5)
    quick = row(compute_metrics(image(pred), image(ref), distances=False), "cochlea")
    assert math.isnan(quick["hd95_mm"]) and math.isnan(quick["assd_mm"]) and quick["dsc"] == r["dsc"]
    # The labyrinth row equals the cochlea row here; the origin puts everything on the left.
    assert row(rows, "labyrinth")["dsc"] == pytest.approx(r["dsc"])
    assert row(rows, "cochlea", "left")["dsc"] == pytest.approx(r["dsc"])
    assert row(rows, "vestibule")["dsc"] == 1.0  # both empty
    right = row(rows, "cochlea", "right")
    assert right["dsc"] == 1.0 and right["tp_mm3"] == 0 and math.isnan(right["hd95_mm"])


@pytest.mark.parametrize("axis, k, mm", [(2, 3, 3 * 0.5), (1, 2, 2 * 0.7), (0, 2, 2 * 1.3)])
def test_shift_gives_hausdorff_in_mm(axis, k, mm):
    """A cube shifted k voxels: every voxel of its leading face is k voxels from the other surface."""
    ref = np.zeros((16, 16, 16), np.uint8)
    ref[3:11, 3:11, 3:11] = 3
    pred = np.roll(ref, k, axis=axis)
    r = row(compute_metrics(image(pred), image(ref)), "semicircular_canals")
    assert r["hd95_mm"] == pytest.approx(mm)
    assert 0 < r["assd_mm"] < mm


def test_shifted_plate_surface_distance():
    """A one-voxel plate shifted 2 slices: every surface voxel is exactly 2 * 1.3 mm away."""
    ref = np.zeros((8, 10, 10), np.uint8)
    ref[2, 2:8, 2:8] = 2
    pred = np.roll(ref, 2, axis=0)
    r = row(compute_metrics(image(pred), image(ref)), "vestibule")
    assert r["dsc"] == 0.0
    assert r["hd95_mm"] == pytest.approx(2.6) and r["assd_mm"] == pytest.approx(2.6)


def test_empty_prediction():
    ref = np.zeros((8, 8, 8), np.uint8)
    ref[2:5, 2:5, 2:5] = 1
    r = row(compute_metrics(image(np.zeros_like(ref)), image(ref)), "cochlea")
    assert r["dsc"] == 0.0 and r["tpr"] == 0.0 and r["fnr"] == 1.0 and r["fpr"] == 0.0
    assert math.isnan(r["fdr"]) and math.isnan(r["hd95_mm"]) and math.isnan(r["assd_mm"])
    assert r["fn_mm3"] == pytest.approx(27 * VOXEL) and r["pred_mm3"] == 0


def test_empty_reference():
    pred = np.zeros((8, 8, 8), np.uint8)
    pred[2:5, 2:5, 2:5] = 1
    r = row(compute_metrics(image(pred), image(np.zeros_like(pred))), "cochlea")
    assert r["dsc"] == 0.0 and r["fdr"] == 1.0 and math.isnan(r["tpr"]) and math.isnan(r["hd95_mm"])
    assert r["fpr"] == pytest.approx(27 / 8 ** 3) and r["fp_mm3"] == pytest.approx(27 * VOXEL)


def test_both_empty():
    empty = np.zeros((6, 6, 6), np.uint8)
    rows = compute_metrics(image(empty), image(empty))
    assert len(rows) == 4 * 3
    for r in rows:
        assert r["dsc"] == 1.0 and r["pred_mm3"] == 0 and r["ref_mm3"] == 0
        assert math.isnan(r["hd95_mm"]) and math.isnan(r["assd_mm"]) and math.isnan(r["tpr"])


@pytest.mark.parametrize("flip", [False, True])
def test_sides_split_by_physical_x(flip):
    """Two ears 90 mm apart around a midline at x = +45 mm; index order flipped or not."""
    nx, sx = 60, 2.0
    ref = np.zeros((6, 6, nx), np.uint8)
    pred = ref.copy()
    i_right, i_left = 7, 52                     # x = -15 + 2 i: centroids 0 and +90 mm -> midline +45 mm
    ref[1:4, 1:4, i_right:i_right + 2] = 1      # 18 voxels per ear
    ref[1:4, 1:4, i_left:i_left + 2] = 1
    pred[1:4, 1:4, i_right:i_right + 2] = 1     # right found ...
    pred[1:3, 1:3, i_right + 6] = 1             # ... plus 4 false positive voxels near the right ear
    # left missed entirely
    if flip:  # same anatomy stored with x index running right-to-left
        ref, pred = ref[:, :, ::-1].copy(), pred[:, :, ::-1].copy()
        origin, direction = (-15.0 + sx * (nx - 1), 0, 0), (-1, 0, 0, 0, 1, 0, 0, 0, 1)
    else:
        origin, direction = (-15.0, 0, 0), None
    spacing = (sx, 1.0, 1.0)
    ref_img = image(ref, spacing, origin, direction)
    assert midline_x(ref_img) == pytest.approx(((-15 + 2 * 7.5) + (-15 + 2 * 52.5)) / 2)
    rows = compute_metrics(image(pred, spacing, origin, direction), ref_img)
    right, left = row(rows, "cochlea", "right"), row(rows, "cochlea", "left")
    assert right["dsc"] == pytest.approx(2 * 18 / (22 + 18)) and right["fp_mm3"] == pytest.approx(4 * 2.0)
    assert left["dsc"] == 0.0 and left["fn_mm3"] == pytest.approx(18 * 2.0) and left["fp_mm3"] == 0
    assert row(rows, "cochlea")["dsc"] == pytest.approx(2 * 18 / (22 + 36))


def test_grid_mismatch_names_both_files():
    a = np.zeros((6, 6, 6), np.uint8)
    with pytest.raises(InputError) as e:
        compute_metrics(image(a, spacing=(1, 1, 1)), image(a), pred_name="p.nii.gz", ref_name="r.nii.gz")
    assert "p.nii.gz" in str(e.value) and "r.nii.gz" in str(e.value) and "grid" in str(e.value)


def test_resample_to_reference_uses_physical_space():
    """The prediction's grid is one voxel off; after nearest resampling the cube lines up exactly."""
    ref = np.zeros((8, 8, 8), np.uint8)
    ref[2:5, 2:5, 3:6] = 1
    pred = np.zeros((8, 8, 8), np.uint8)
    pred[2:5, 2:5, 2:5] = 1                     # index 2 on a grid starting one voxel (0.5 mm) later
    pred_img = image(pred, origin=(10.5, 0, 0))
    r = row(compute_metrics(pred_img, image(ref), resample_to_reference=True), "cochlea")
    assert r["dsc"] == pytest.approx(1.0)


def test_bad_label_values_are_rejected():
    a = np.zeros((4, 4, 4), np.uint8)
    b = a.copy()
    b[1, 1, 1] = 7
    with pytest.raises(InputError, match="bad.nii.gz.*0..3"):
        compute_metrics(image(b), image(a), pred_name="bad.nii.gz")
