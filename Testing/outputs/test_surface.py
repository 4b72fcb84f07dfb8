"""Surfaces: closed, right volume, right place in LPS, outward normals, for any grid orientation."""
import numpy as np
import pytest
import SimpleITK as sitk
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkFiltersCore import vtkFeatureEdges

from InnerEarSegLib.outputs import surface


def rotation(axis, degrees):
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    m = np.eye(3)
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


GRIDS = {
    "axial": np.eye(3),
    "oblique_flipped": rotation("x", 30) @ rotation("z", 25) @ np.diag([1, -1, 1]),
    "coronal_flipped": np.array([[-1, 0, 0], [0, 0, 1], [0, -1, 0]], float),
}


def spheres_on_grid(direction, centres, radius, spacing=(0.3, 0.35, 0.7), size=(64, 48, 28)):
    """Labels 1 (cochlea) and sides for balls at ``centres`` (LPS mm), on an anisotropic grid."""
    image = sitk.Image(list(size), sitk.sitkUInt8)
    image.SetSpacing(spacing)
    image.SetDirection(np.asarray(direction, float).ravel().tolist())
    image.SetOrigin([12.0, -20.0, 5.0])
    matrix = surface.index_to_lps(image)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), -1).reshape(-1, 3)
    points = ijk @ matrix[:3, :3].T + matrix[:3, 3]
    labels = np.zeros(len(points), np.uint8)
    sides = np.zeros(len(points), np.uint8)
    for centre, side_code in centres:
        inside = np.linalg.norm(points - centre, axis=1) <= radius
        labels[inside] = 1
        sides[inside] = side_code
    def to_image(values):
        out = sitk.GetImageFromArray(values.reshape(size).transpose(2, 1, 0).copy())
        out.CopyInformation(image)
        return out
    return to_image(labels), to_image(sides), matrix


@pytest.mark.parametrize("grid", sorted(GRIDS))
@pytest.mark.parametrize("smoothing", [0.0, 0.5])
def test_sphere_volume_centre_and_normals(grid, smoothing):
    size = (64, 48, 28)
    tmp = sitk.Image(list(size), sitk.sitkUInt8)
    tmp.SetSpacing((0.3, 0.35, 0.7))
    tmp.SetDirection(GRIDS[grid].ravel().tolist())
    tmp.SetOrigin([12.0, -20.0, 5.0])
    centre = np.array(tmp.TransformContinuousIndexToPhysicalPoint([31.6, 23.3, 13.8]))
    radius = 4.0
    labels, sides, _ = spheres_on_grid(GRIDS[grid], [(centre, 2)], radius, size=size)

    surfaces = surface.build_surfaces(labels, sides, smoothing=smoothing)

    assert set(surfaces) == {"cochlea_left"}
    poly = surfaces["cochlea_left"]
    edges = vtkFeatureEdges()
    edges.SetInputData(poly)
    edges.BoundaryEdgesOn()
    edges.NonManifoldEdgesOff()
    edges.FeatureEdgesOff()
    edges.ManifoldEdgesOff()
    edges.Update()
    assert edges.GetOutput().GetNumberOfCells() == 0, "surface is not closed"
    analytic = 4.0 / 3.0 * np.pi * radius ** 3
    assert surface.polydata_volume(poly) == pytest.approx(analytic, rel=0.04)
    points = vtk_to_numpy(poly.GetPoints().GetData())
    np.testing.assert_allclose(points.mean(axis=0), centre, atol=0.15)
    assert np.linalg.norm(points - centre, axis=1).max() < radius + 0.8
    normals = vtk_to_numpy(poly.GetPointData().GetNormals())
    assert np.mean(np.sum(normals * (points - centre), axis=1) > 0) > 0.99, "normals point inwards"


def test_sides_split_and_empty():
    direction = GRIDS["oblique_flipped"]
    tmp = sitk.Image([64, 48, 28], sitk.sitkUInt8)
    tmp.SetSpacing((0.3, 0.35, 0.7))
    tmp.SetDirection(direction.ravel().tolist())
    tmp.SetOrigin([12.0, -20.0, 5.0])
    a = np.array(tmp.TransformContinuousIndexToPhysicalPoint([16, 24, 14]))
    b = np.array(tmp.TransformContinuousIndexToPhysicalPoint([48, 24, 14]))
    labels, sides, _ = spheres_on_grid(direction, [(a, 1), (b, 2)], 2.5)

    surfaces = surface.build_surfaces(labels, sides, smoothing=0.5)

    assert set(surfaces) == {"cochlea_right", "cochlea_left"}
    right = vtk_to_numpy(surfaces["cochlea_right"].GetPoints().GetData()).mean(axis=0)
    np.testing.assert_allclose(right, a, atol=0.15)
    empty = sitk.Image(labels.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(labels)
    assert surface.build_surfaces(empty, empty) == {}


def test_decimation_keeps_volume_and_bad_smoothing_refused():
    centre = np.array([12.0 + 9.6, -20.0 + 8.4, 5.0 + 9.8])
    labels, sides, _ = spheres_on_grid(np.eye(3), [(centre, 1)], 3.5)
    full = surface.build_surfaces(labels, sides)["cochlea_right"]
    light = surface.build_surfaces(labels, sides, decimation=0.5)["cochlea_right"]
    assert light.GetNumberOfCells() < 0.6 * full.GetNumberOfCells()
    assert surface.polydata_volume(light) == pytest.approx(surface.polydata_volume(full), rel=0.02)
    with pytest.raises(ValueError, match="smoothing"):
        surface.build_surfaces(labels, sides, smoothing=1.5)
