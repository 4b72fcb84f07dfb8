"""Measurements against hand-computed values: boxes of known size on known grids, a sphere's area."""
import numpy as np
import pytest
import SimpleITK as sitk

from InnerEarSegLib.outputs.measure import measure


def label_image(array, spacing, origin=(0.0, 0.0, 0.0), direction=np.eye(3)):
    image = sitk.GetImageFromArray(np.asarray(array, np.uint8))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(np.asarray(direction, float).ravel().tolist())
    return image


def rows_by_key(rows):
    return {(r["structure"], r["side"]): r for r in rows}


def test_boxes_volumes_centroids_bboxes_and_sides():
    # grid: spacing (x, y, z) = (0.5, 0.4, 1.2), origin (-10, 20, 5), identity direction
    labels = np.zeros((10, 12, 40), np.uint8)
    sides = np.zeros_like(labels)
    labels[2:5, 3:8, 4:8] = 1   # cochlea: x 4..7, y 3..7, z 2..4 -> 4 * 5 * 3 = 60 voxels
    sides[2:5, 3:8, 4:8] = 1    # right
    labels[6:8, 0:2, 30:32] = 2  # vestibule: x 30..31, y 0..1, z 6..7 -> 8 voxels
    sides[6:8, 0:2, 30:32] = 2   # left
    rows = rows_by_key(measure(label_image(labels, (0.5, 0.4, 1.2), (-10.0, 20.0, 5.0)),
                               label_image(sides, (0.5, 0.4, 1.2), (-10.0, 20.0, 5.0))))
    voxel = 0.5 * 0.4 * 1.2
    cochlea = rows[("cochlea", "right")]
    assert cochlea["label"] == 1 and cochlea["voxels"] == 60
    assert cochlea["volume_mm3"] == pytest.approx(60 * voxel)
    # centroid index (5.5, 5, 3) -> origin + index * spacing
    assert cochlea["centroid_lps"] == pytest.approx([-10 + 5.5 * 0.5, 20 + 5 * 0.4, 5 + 3 * 1.2])
    assert cochlea["centroid_ras"] == pytest.approx([10 - 5.5 * 0.5, -20 - 5 * 0.4, 5 + 3 * 1.2])
    assert cochlea["bbox_min_lps"] == pytest.approx([-10 + 4 * 0.5, 20 + 3 * 0.4, 5 + 2 * 1.2])
    assert cochlea["bbox_max_lps"] == pytest.approx([-10 + 7 * 0.5, 20 + 7 * 0.4, 5 + 4 * 1.2])
    vestibule = rows[("vestibule", "left")]
    assert vestibule["voxels"] == 8
    assert vestibule["centroid_lps"] == pytest.approx([-10 + 30.5 * 0.5, 20 + 0.5 * 0.4, 5 + 6.5 * 1.2])
    assert rows[("cochlea", "left")]["voxels"] == 0 and rows[("cochlea", "left")]["centroid_lps"] is None
    assert rows[("vestibule", "right")]["volume_mm3"] == 0
    assert rows[("labyrinth", "right")]["voxels"] == 60 and rows[("labyrinth", "left")]["voxels"] == 8
    total = rows[("labyrinth", "both")]
    assert total["voxels"] == 68 and total["label"] is None
    assert total["volume_mm3"] == pytest.approx(68 * voxel)
    assert len(rows) == 2 * 4 + 1


def test_centroid_and_bbox_follow_the_direction_cosines():
    direction = np.array([[-1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # flipped x, coronal
    labels = np.zeros((6, 6, 6), np.uint8)
    labels[1:3, 2:5, 3:4] = 3  # index x 3, y 2..4, z 1..2
    image = label_image(labels, (0.5, 0.6, 0.7), (1.0, 2.0, 3.0), direction)
    row = rows_by_key(measure(image))[("semicircular_canals", "both")]
    centre_index = np.array([3, 3, 1.5]) * (0.5, 0.6, 0.7)
    assert row["centroid_lps"] == pytest.approx((np.array([1.0, 2.0, 3.0]) + direction @ centre_index).tolist())
    corners = np.array([np.array([1.0, 2.0, 3.0]) + direction @ (np.array([3, j, k]) * (0.5, 0.6, 0.7))
                        for j in (2, 4) for k in (1, 2)])
    assert row["bbox_min_lps"] == pytest.approx(corners.min(0).tolist())
    assert row["bbox_max_lps"] == pytest.approx(corners.max(0).tolist())


def test_without_sides_rows_are_for_both_ears():
    labels = np.zeros((5, 5, 5), np.uint8)
    labels[1:3, 1:3, 1:3] = 2
    rows = measure(label_image(labels, (1.0, 1.0, 1.0)))
    assert [(r["structure"], r["side"]) for r in rows] == [
        ("cochlea", "both"), ("vestibule", "both"), ("semicircular_canals", "both"), ("labyrinth", "both")]
    assert rows[1]["voxels"] == 8 and rows[3]["voxels"] == 8 and rows[0]["voxels"] == 0


def test_sphere_surface_area_and_volume_on_an_anisotropic_grid():
    spacing, radius = (0.3, 0.3, 0.6), 4.0
    n = [int(12 / s) for s in spacing]
    z, y, x = np.meshgrid(*[(np.arange(k) - k / 2) * s for k, s in zip(n[::-1], spacing[::-1])], indexing="ij")
    labels = ((x ** 2 + y ** 2 + z ** 2) <= radius ** 2).astype(np.uint8)
    row = rows_by_key(measure(label_image(labels, spacing)))[("cochlea", "both")]
    assert row["surface_area_mm2"] == pytest.approx(4 * np.pi * radius ** 2, rel=0.03)
    assert row["volume_mm3"] == pytest.approx(4 / 3 * np.pi * radius ** 3, rel=0.03)


def test_empty_labels_give_zero_rows():
    rows = measure(label_image(np.zeros((4, 4, 4)), (1, 1, 1)), label_image(np.zeros((4, 4, 4)), (1, 1, 1)))
    assert len(rows) == 9 and all(r["voxels"] == 0 and r["bbox_min_lps"] is None for r in rows)
