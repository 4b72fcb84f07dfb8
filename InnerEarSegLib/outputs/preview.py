"""A PNG to check a result at a glance: per ear, three planes through its centre, a 3D view and the
cochlear view with the A and B lines (``planning``).

Planes are resampled onto LPS-aligned grids (``grid.canonical_reference``), so axial, coronal,
oblique and flipped scans all look the same way up. Radiological convention: the patient's right
is on the image's left in the axial and coronal planes, anterior is up in axial and on the left in
sagittal; each panel is lettered. Structures are outlined in their ``labels`` colours.
Uses matplotlib's object API (no pyplot), so it never touches a GUI or the global backend.
"""
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from ..core import grid
from ..core import labels as L
from .surface import SIDE_CODES

FIELD_MM = 24.0  # side of each plane around an ear's centre
MAX_TRIANGLES = 3000  # per surface in the 3D view
# plane: (reference size as a function of n, how to take the 2D array, image origin, edge letters l/r/t/b)
PLANES = {
    "axial": (lambda n: [n, n, 1], lambda a: a[0], "upper", "RLAP"),
    "coronal": (lambda n: [n, 1, n], lambda a: a[:, 0, :], "lower", "RLSI"),
    "sagittal": (lambda n: [1, n, n], lambda a: a[:, :, 0], "lower", "APSI"),
}


def ear_centres(result) -> dict:
    """Side -> centroid (LPS mm) of that side's labelled voxels. Without a side split the voxels
    are split at the midline between the two located ears, or kept as one ``both`` group."""
    from .surface import index_to_lps
    k, j, i = np.nonzero(sitk.GetArrayViewFromImage(result.labels))
    if len(i) == 0:
        return {}
    matrix = index_to_lps(result.labels)
    points = np.c_[i, j, k] @ matrix[:3, :3].T + matrix[:3, 3]
    codes = (sitk.GetArrayViewFromImage(result.sides)[k, j, i] if result.sides is not None
             else np.zeros(len(i), np.uint8))
    if not codes.any() and len(result.ears) == 2:
        midline = np.mean([e.center_lps[0] for e in result.ears])
        codes = np.array([SIDE_CODES[L.side_of_x(x, midline)] for x in points[:, 0]])
    groups = {"right": codes == 1, "left": codes == 2} if codes.any() else {"both": codes == 0}
    return {side: points[mask].mean(axis=0) for side, mask in groups.items() if mask.any()}


def plane(image, centre, name, spacing, interpolation, pixel_type):
    size, take, _, _ = PLANES[name]
    n = int(round(FIELD_MM / spacing))
    ref = grid.canonical_reference(centre, size(n), spacing)
    return take(sitk.GetArrayFromImage(grid.resample(image, ref, interpolation, 0, pixel_type)))


def draw_plane(ax, input_image, labels, centre, name, spacing):
    _, _, origin, letters = PLANES[name]
    if input_image is not None:
        pixels = plane(input_image, centre, name, spacing, "linear", sitk.sitkFloat32)
        lo, hi = np.percentile(pixels, [1, 99])
        ax.imshow(pixels, cmap="gray", origin=origin, vmin=lo, vmax=hi if hi > lo else lo + 1)
    label_plane = plane(labels, centre, name, spacing, "nearest", sitk.sitkUInt8)
    if input_image is None:
        ax.imshow(np.zeros_like(label_plane), cmap="gray", origin=origin)
    for s in L.STRUCTURES:
        mask = label_plane == s.value
        if mask.any():
            ax.contour(mask.astype(float), levels=[0.5], colors=[s.color], linewidths=1.2)
    for text, xy, align in zip(letters, [(0.02, 0.5), (0.98, 0.5), (0.5, 0.98), (0.5, 0.02)],
                               [("left", "center"), ("right", "center"), ("center", "top"), ("center", "bottom")]):
        ax.text(*xy, text, color="yellow", transform=ax.transAxes, ha=align[0], va=align[1], fontsize=9)
    ax.set_title(name, fontsize=9)
    ax.set_axis_off()


def draw_surfaces(ax, surfaces, side, centre):
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from .surface import decimate
    half = FIELD_MM / 3
    for s in L.STRUCTURES:
        poly = surfaces.get(L.segment_id(s.key, side), surfaces.get(L.segment_id(s.key, "both")))
        if poly is None or poly.GetNumberOfCells() == 0:
            continue
        if poly.GetNumberOfCells() > MAX_TRIANGLES:
            poly = decimate(poly, 1.0 - MAX_TRIANGLES / poly.GetNumberOfCells())
        points = vtk_to_numpy(poly.GetPoints().GetData())
        triangles = points[vtk_to_numpy(poly.GetPolys().GetConnectivityArray()).reshape(-1, 3)]
        in_view = np.all(np.abs(triangles.mean(axis=1) - centre) < half, axis=1)  # mplot3d does not clip
        if in_view.any():
            ax.add_collection3d(Poly3DCollection(triangles[in_view], facecolors=s.color, linewidths=0,
                                                 shade=True))
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_zlim(centre[2] - half, centre[2] + half)
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(elev=15, azim=180 if side == "right" else 0)  # seen from the patient's side
    ax.set_xlabel("x (L) mm", fontsize=7)
    ax.set_ylabel("y (P) mm", fontsize=7)
    ax.set_zlabel("z (S) mm", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.set_title("3D, lateral view", fontsize=9)


COCHLEAR_FIELD_MM = 14.0  # side of the cochlear view


def draw_cochlear_view(ax, input_image, labels, ear: dict, spacing: float) -> None:
    """The cochlear view (the plane across the modiolar axis through the round window, x toward
    the round window) with the A (red) and B (blue) lines of ``planning``, or why it is missing."""
    ax.set_axis_off()
    ax.set_title("cochlear view, A and B", fontsize=9)
    axes = ear.get("axes") or {}
    if not axes:
        status = ear.get("values", {}).get("A_mm", {}).get("status", "not computed")
        ax.text(0.5, 0.5, status.replace(": ", ":\n", 1), ha="center", va="center", fontsize=7, wrap=True,
                transform=ax.transAxes)
        return
    o, ex, ey, ez = (np.asarray(axes[k], float) for k in ("cochlear_view_origin", "cochlear_view_x",
                                                           "cochlear_view_y", "modiolar_axis"))
    n = int(round(COCHLEAR_FIELD_MM / spacing))
    ref = sitk.Image([n, n, 1], sitk.sitkUInt8)
    ref.SetSpacing([spacing] * 3)
    ref.SetDirection(np.c_[ex, ey, ez].ravel().tolist())
    ref.SetOrigin((o - (n - 1) / 2 * spacing * (ex + ey)).tolist())
    extent = [-(n - 1) / 2 * spacing, (n - 1) / 2 * spacing] * 2
    if input_image is not None:
        pixels = sitk.GetArrayFromImage(grid.resample(input_image, ref, "linear", 0, sitk.sitkFloat32))[0]
        lo, hi = np.percentile(pixels, [1, 99])
        ax.imshow(pixels, cmap="gray", origin="lower", extent=extent, vmin=lo, vmax=hi if hi > lo else lo + 1)
    cochlea = sitk.GetArrayFromImage(grid.resample(labels, ref, "nearest", 0, sitk.sitkUInt8))[0] == L.COCHLEA
    if cochlea.any():
        ax.contour(cochlea.astype(float), levels=[0.5], colors=[L.BY_VALUE[L.COCHLEA].color], linewidths=1.0,
                   extent=extent)
    for name, colour in (("A", "red"), ("B", "deepskyblue")):
        ends = ear.get("lines", {}).get(name)
        if ends is not None:
            uv = np.array([[np.dot(p - o, ex), np.dot(p - o, ey)] for p in ends])
            value = ear["values"][f"{name}_mm"]["value"]
            ax.plot(uv[:, 0], uv[:, 1], color=colour, linewidth=1.5, label=f"{name} {value:.1f} mm")
    ax.plot([0], [0], "+", color="yellow", markersize=8)   # the modiolar axis
    ax.legend(loc="lower left", fontsize=7, framealpha=0.6)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])


def render_preview(input_image, result, path, measures=None) -> Path:
    """Draw the preview of ``result`` (over ``input_image`` when given) into the PNG ``path``;
    ``measures`` as in ``preview_figure``."""
    preview_figure(input_image, result, measures).savefig(path, format="png", dpi="figure")
    return Path(path)


def preview_figure(input_image, result, measures=None) -> Figure:
    """The preview of ``result``: a row per ear, or the scan saying that no inner ear was found.

    measures: the ears' planning measures (``planning.measures_for_result``, as the writer has
    them: ``planning.measure_into``), drawn in the cochlear views; None: measured here. A failure
    in measuring leaves the cochlear views saying so; the preview is still drawn."""
    centres = ear_centres(result)
    spacing = float(np.clip(min(result.labels.GetSpacing()), 0.15, 0.5))
    title = (f"{Path(result.source).name if result.source else 'InnerEarSeg'}: radiological convention "
             "(patient right on image left), LPS-aligned planes")
    if not centres:
        return nothing_found_figure(input_image, spacing, title)
    surfaces = result.surfaces
    if not surfaces:
        from .surface import build_surfaces
        surfaces = build_surfaces(result.labels, result.sides, 0.5)
    if measures is None:
        from .planning import measures_for_result
        try:
            measures = measures_for_result(result)
        except Exception:  # noqa: BLE001 - the measures report their own failure in the stats; the preview goes on
            measures = {}
    fig = Figure(figsize=(16, 3.4 * len(centres)), dpi=90)
    for row, (side, centre) in enumerate(centres.items()):
        draw_cochlear_view(fig.add_subplot(len(centres), 5, 5 * row + 5), input_image, result.labels,
                           measures.get(side, {}), spacing)
        for col, name in enumerate(PLANES):
            ax = fig.add_subplot(len(centres), 5, 5 * row + col + 1)
            draw_plane(ax, input_image, result.labels, centre, name, spacing)
            if col == 0:
                ax.text(-0.05, 0.5, f"{side} ear", rotation=90, transform=ax.transAxes, ha="right",
                        va="center", fontsize=10)
        draw_surfaces(fig.add_subplot(len(centres), 5, 5 * row + 4, projection="3d"), surfaces, side, centre)
    fig.legend(handles=[Patch(color=s.color, label=s.name) for s in L.STRUCTURES], loc="lower center",
               ncol=len(L.STRUCTURES), fontsize=9)
    fig.suptitle(title, fontsize=10)
    return fig


def nothing_found_figure(input_image, spacing: float, title: str) -> Figure:
    """The scan (when given) with "no inner ear found" across it."""
    fig = Figure(figsize=(6, 6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    if input_image is not None:
        lo, hi = grid.physical_bounds(input_image)
        field = float(min(np.max(hi - lo), 200.0))
        step = max(field / 256, spacing)
        ref = grid.canonical_reference((lo + hi) / 2, [int(field / step) + 1] * 2 + [1], step)
        pixels = sitk.GetArrayFromImage(grid.resample(input_image, ref))[0]
        ax.imshow(pixels, cmap="gray")
    ax.text(0.5, 0.5, "no inner ear found", color="red", fontsize=16, ha="center", va="center",
            transform=ax.transAxes)
    ax.set_axis_off()
    fig.suptitle(title, fontsize=9)
    return fig
