"""Closed surfaces of each structure and side, in LPS millimetres, as Slicer would build them.

Each segment is contoured on a small sub-volume cropped around it (padded by one empty voxel
so every surface is closed) in voxel index space, smoothed and decimated there, and only then
mapped to physical space with the image's full index-to-LPS matrix (origin, spacing and
direction cosines), so any scan orientation, flipped axes included, gives the right surface.

Smoothing follows Slicer's binary-labelmap-to-closed-surface rule: a windowed-sinc low-pass
filter, 20 iterations, passband ``10 ** (-4 * smoothing)``: smoothing 0 means none, 0.25 gives
passband 0.1, 0.5 gives 0.01 (Slicer's default), 1 gives 0.0001.
"""
from typing import Dict, Optional

import numpy as np
import SimpleITK as sitk
from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPolyData
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkCommonTransforms import vtkTransform
from vtkmodules.vtkFiltersCore import (vtkMassProperties, vtkPolyDataNormals, vtkQuadricDecimation,
                                       vtkReverseSense, vtkTriangleFilter, vtkWindowedSincPolyDataFilter)
from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges3D, vtkTransformPolyDataFilter

from ..core import labels as L

SIDE_CODES = {"right": 1, "left": 2}  # values of ``SegmentationResult.sides``


def index_to_lps(image: sitk.Image) -> np.ndarray:
    """4x4 matrix from continuous voxel index (i, j, k) to LPS mm: origin + direction @ diag(spacing)."""
    m = np.eye(4)
    direction = np.array(image.GetDirection(), float).reshape(3, 3)
    m[:3, :3] = direction @ np.diag(image.GetSpacing())
    m[:3, 3] = image.GetOrigin()
    return m


def _apply(algorithm, poly: vtkPolyData) -> vtkPolyData:
    algorithm.SetInputData(poly)
    algorithm.Update()
    out = vtkPolyData()
    out.ShallowCopy(algorithm.GetOutput())
    return out


def _contour(mask_zyx: np.ndarray, start_ijk) -> vtkPolyData:
    """Surface of a binary mask in voxel index space; ``start_ijk`` is the index of mask[0, 0, 0]."""
    padded = np.pad(mask_zyx.astype(np.uint8), 1)
    image = vtkImageData()
    image.SetDimensions(padded.shape[2], padded.shape[1], padded.shape[0])  # x fastest, as numpy C order
    image.SetOrigin([float(s) - 1.0 for s in start_ijk])
    image.GetPointData().SetScalars(numpy_to_vtk(padded.ravel(), deep=True))
    contour = vtkDiscreteFlyingEdges3D()
    contour.SetInputData(image)
    contour.SetValue(0, 1)
    contour.ComputeNormalsOff()
    contour.ComputeGradientsOff()
    contour.ComputeScalarsOff()
    contour.Update()
    out = vtkPolyData()
    out.ShallowCopy(contour.GetOutput())
    return out


def _smooth(poly: vtkPolyData, smoothing: float) -> vtkPolyData:
    if smoothing <= 0:
        return poly
    smoother = vtkWindowedSincPolyDataFilter()
    smoother.SetNumberOfIterations(20)
    smoother.SetPassBand(10.0 ** (-4.0 * smoothing))
    smoother.BoundarySmoothingOff()
    smoother.FeatureEdgeSmoothingOff()
    smoother.NonManifoldSmoothingOn()
    smoother.NormalizeCoordinatesOn()
    return _apply(smoother, poly)


def decimate(poly: vtkPolyData, reduction: float) -> vtkPolyData:
    """Remove about ``reduction`` (0..1) of the triangles, preserving volume (quadric decimation)."""
    if reduction <= 0:
        return poly
    decimator = vtkQuadricDecimation()
    decimator.SetTargetReduction(reduction)
    decimator.VolumePreservationOn()
    return _apply(decimator, _apply(vtkTriangleFilter(), poly))


def _to_lps(poly: vtkPolyData, matrix: np.ndarray) -> vtkPolyData:
    """Map index-space points to LPS; a mirroring matrix would turn the triangles inside out, so undo that."""
    vtk_matrix = vtkMatrix4x4()
    vtk_matrix.DeepCopy(matrix.ravel().tolist())
    transform = vtkTransform()
    transform.SetMatrix(vtk_matrix)
    mapper = vtkTransformPolyDataFilter()
    mapper.SetTransform(transform)
    poly = _apply(mapper, poly)
    if np.linalg.det(matrix[:3, :3]) < 0:
        poly = _apply(vtkReverseSense(), poly)
    normals = vtkPolyDataNormals()
    normals.SplittingOff()
    normals.ConsistencyOn()
    normals.AutoOrientNormalsOff()
    return _apply(normals, poly)


def surface_from_mask(mask_zyx: np.ndarray, reference: sitk.Image, smoothing: float = 0.5,
                      decimation: float = 0.0) -> vtkPolyData:
    """Closed surface (LPS mm, outward normals) of a boolean mask laid on ``reference``'s grid."""
    nonzero = np.nonzero(mask_zyx)
    if len(nonzero[0]) == 0:
        return vtkPolyData()
    lo = [int(a.min()) for a in nonzero]
    hi = [int(a.max()) + 1 for a in nonzero]
    crop = mask_zyx[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    poly = _contour(crop, (lo[2], lo[1], lo[0]))
    poly = decimate(_smooth(poly, smoothing), decimation)
    return _to_lps(poly, index_to_lps(reference))


def side_groups(labels_zyx: np.ndarray, sides_zyx=None):
    """(side, mask of its labelled voxels) per side: ``right``/``left`` from the sides array, or a
    single ``both`` group when there is no side information (the pipeline's ``split_sides=False``)."""
    found = labels_zyx > 0
    if sides_zyx is not None:
        groups = [(side, found & (sides_zyx == code)) for side, code in SIDE_CODES.items()]
        groups = [(side, mask) for side, mask in groups if mask.any()]
        if groups:
            return groups
    return [("both", found)] if found.any() else []


def build_surfaces(labels: sitk.Image, sides: Optional[sitk.Image] = None, smoothing: float = 0.5,
                   decimation: float = 0.0) -> Dict[str, vtkPolyData]:
    """One closed surface per structure and side present: ``segment_id`` -> vtkPolyData in LPS mm.

    Without ``sides`` (or with no side set) the ids end in ``_both``. ``smoothing`` is Slicer's
    smoothing factor (0..1, see the module docstring); ``decimation`` is the fraction of
    triangles removed (0 keeps all; quadric decimation preserving volume).
    """
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"smoothing must be in [0, 1], got {smoothing}")
    label_array = sitk.GetArrayViewFromImage(labels)
    side_array = sitk.GetArrayViewFromImage(sides) if sides is not None else None
    surfaces = {}
    for side, on_side in side_groups(label_array, side_array):
        for structure in L.STRUCTURES:
            mask = on_side & (label_array == structure.value)
            if mask.any():
                surfaces[L.segment_id(structure.key, side)] = surface_from_mask(mask, labels, smoothing, decimation)
    return surfaces


def polydata_volume(poly: vtkPolyData) -> float:
    """Enclosed volume (mm3) of a closed triangle surface."""
    if poly.GetNumberOfCells() == 0:
        return 0.0
    props = vtkMassProperties()
    props.SetInputData(_apply(vtkTriangleFilter(), poly))
    props.Update()
    return props.GetVolume()
