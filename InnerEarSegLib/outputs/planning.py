"""Surgical-planning measures of each ear from its labels: cochlear axes and size, duct length,
turns, semicircular-canal planes; Slicer markups of the landmarks.

Every measure is a dict ``{"value", "unit", "status"}``; ``status`` is ``"ok"`` or says why the
value is missing (``"not computed: ..."``), so a table never shows a number the labels cannot
support. Points are LPS millimetres (SimpleITK); the ``_ras`` copies negate x and y (Slicer).
Definitions, formulas and their limits: ``docs/planning.md``.

Cochlea (label 1), in this order:
  modiolar axis   normal of the plane fitted to the basal turn (the outermost lumen at every angle
                  around the axis), through the apex cap (helicotrema); refined from the principal
                  axes until it settles.
  round window    the cochlear lumen farthest from the axis near the basal-turn plane: the start of
                  the basal turn (the A-value's definition of the round window).
  cochlear view   the plane through the round window perpendicular to the axis; x toward the round
                  window, z toward the apex.
  A, B, H         A: the lumen's extent along the line from the round window through the axis (round
                  window to the opposite lateral wall), B: across it through the axis, both in the
                  cochlear view (projection); H: the extent along the axis.
  turns, length   the lumen followed wedge by wedge around the axis from the round window until
                  it ends or passes the helicotrema (``track_spiral``): the swept angle over 360
                  degrees, and the lateral wall traced along the way.
Canals (label 3): three circles found one after another (RANSAC on three-point circles), each
refined to a plane and radius, named by position (lateral: plane nearest horizontal; superior:
the higher of the other two).
"""
import json
from typing import Dict, List, Optional

import numpy as np

from ..core import labels as L

OK = "ok"
MIN_COCHLEA_MM3 = 15.0          # a smaller cochlea label is a fragment, not a cochlea
MIN_CANAL_MM3 = 3.0
MAX_VOXEL_MM = 0.6              # coarser: the basal turn is 2-3 voxels across, A and the axis unreliable
MAX_VOXEL_MM_SPIRAL = 0.25      # coarser: neighbouring turns merge, turns and lateral wall unreliable
MAX_END_TO_APEX_MM = 2.0        # a traced spiral ending farther from the helicotrema broke off
CANAL_RADIUS_MM = (1.5, 4.5)    # arc radii accepted as a semicircular canal
MIN_ARC_DEG = 150               # a canal is an arc of about 240-270 degrees; less is a fragment
MIN_PLANE_DEG = 45              # canal planes are near right angles (about 70-110 degrees apart)
CANAL_NAMES = ("lateral", "superior", "posterior")
# Complete and two-turn duct lengths from A (Alexiades, Dhanasingh, Jolly, Otol Neurotol 2015;
# 36(5):904-907, extending Escude et al., Audiol Neurotol 2006; 11 Suppl 1:27-33): name -> (a, b): a*A + b
CDL_FORMULAS = {
    "cdl_organ_of_corti_mm": (4.16, -4.0),
    "cdl_lateral_wall_mm": (4.16, -2.7),
    "two_turn_length_organ_of_corti_mm": (3.65, -3.65),
    "two_turn_length_lateral_wall_mm": (3.65, -3.65 * 0.7),
}


def measure(value, unit: str, status: str = OK) -> dict:
    """One measure: the value only when ``status`` is ok."""
    if status != OK or value is None:
        return {"value": None, "unit": unit, "status": status if status != OK else "not computed"}
    value = [round(float(v), 4) for v in value] if np.ndim(value) else round(float(value), 4)
    return {"value": value, "unit": unit, "status": OK}


def missing(unit: str, why: str) -> dict:
    return measure(None, unit, f"not computed: {why}")


def to_ras(p):
    return [-float(p[0]), -float(p[1]), float(p[2])]


# ---------------------------------------------------------------- geometry helpers

def unit_vector(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def orthonormal(axis, toward=None):
    """(e1, e2) completing ``axis`` to a right-handed frame; e1 along ``toward``'s part across the axis."""
    axis = unit_vector(axis)
    if toward is None or np.linalg.norm(np.cross(axis, toward)) < 1e-9:
        toward = [1.0, 0, 0] if abs(axis[0]) < 0.9 else [0, 1.0, 0]
    e1 = unit_vector(np.asarray(toward, float) - np.dot(toward, axis) * axis)
    return e1, np.cross(axis, e1)


def fit_plane(points):
    """(centroid, unit normal) of the least-squares plane through ``points`` (N, 3)."""
    c = points.mean(axis=0)
    return c, np.linalg.svd(points - c, full_matrices=False)[2][2]


def fit_circle(points):
    """(centre, unit normal, radius) of the least-squares circle through 3D ``points``:
    the best plane, then an algebraic (Kasa) circle in it."""
    c, n = fit_plane(points)
    e1, e2 = orthonormal(n)
    u, v = (points - c) @ e1, (points - c) @ e2
    A = np.c_[2 * u, 2 * v, np.ones(len(u))]
    (cu, cv, k), *_ = np.linalg.lstsq(A, u * u + v * v, rcond=None)
    return c + cu * e1 + cv * e2, n, float(np.sqrt(max(k + cu * cu + cv * cv, 0.0)))


def circle_through(p1, p2, p3):
    """(centre, normal, radius) of the circle through three points, or None when they are collinear."""
    a, b = p1 - p3, p2 - p3
    axb = np.cross(a, b)
    d = 2 * np.dot(axb, axb)
    if d < 1e-12:
        return None
    centre = p3 + np.cross(np.dot(a, a) * b - np.dot(b, b) * a, axb) / d
    return centre, axb / np.sqrt(d / 2), float(np.linalg.norm(p1 - centre))


def angle_deg(u, v, undirected=True) -> float:
    c = np.dot(unit_vector(u), unit_vector(v))
    return float(np.degrees(np.arccos(np.clip(abs(c) if undirected else c, -1, 1))))


def cylindrical(points, centre, axis, e1):
    """(h along the axis, r from it, angle from e1 around it in (-pi, pi])."""
    e1, e2 = orthonormal(axis, e1)
    q = points - centre
    h = q @ axis
    x, y = q @ e1, q @ e2
    return h, np.hypot(x, y), np.arctan2(y, x)


# ---------------------------------------------------------------- cochlea

def _basal_band(r, theta, width_mm=0.8, bins=36):
    """Lumen within ``width_mm`` of the outermost lumen at each angle: the basal turn, which is
    the outermost turn in every direction around the axis."""
    k = np.minimum(((theta + np.pi) / (2 * np.pi) * bins).astype(int), bins - 1)
    rmax = np.zeros(bins)
    np.maximum.at(rmax, k, r)
    return r >= rmax[k] - width_mm


def cochlea_axis(points, iterations=12):
    """(centre on the basal-turn plane, unit axis base->apex, apex point) of a cochlea's voxels.

    Starts from the principal axis of least spread (the cochlea is a flat cone), turned so that
    the lumen narrows toward the apex; then repeats: fit a plane to the basal turn (its normal is
    the axis), put the axis through the apex cap (the top 0.3 mm: the helicotrema lies on the
    modiolar axis) and meet the plane there.
    """
    c = points.mean(axis=0)
    axis = np.linalg.eigh(np.cov((points - c).T))[1][:, 0]
    h, r, _ = cylindrical(points, c, axis, None)
    if np.corrcoef(h, r)[0, 1] > 0:
        axis = -axis
    apex = c
    for _ in range(iterations):
        h, r, theta = cylindrical(points, c, axis, None)
        top = np.quantile(h, 0.999)
        apex = points[h >= top - 0.3].mean(axis=0)
        band = _basal_band(r, theta)
        plane_c, n = fit_plane(points[band])
        new_axis = n if np.dot(n, axis) > 0 else -n
        new_c = apex - np.dot(apex - plane_c, new_axis) * new_axis
        moved = angle_deg(new_axis, axis, undirected=False) + np.linalg.norm(new_c - c)
        axis, c = new_axis, new_c
        if moved < 1e-3:
            break
    return c, axis, apex


def round_window(points, centre, axis, slab_mm=1.0):
    """The lumen point farthest from the axis within ``slab_mm`` of the basal-turn plane."""
    h, r, _ = cylindrical(points, centre, axis, None)
    near = np.abs(h) <= slab_mm
    if not near.any():
        near = np.ones(len(h), bool)
    idx = np.flatnonzero(near)[np.argmax(r[near])]
    return points[idx]


def cochlear_frame(centre, axis, rw):
    """The cochlear view: origin on the axis at the round window's height, x toward the round
    window, z = axis (toward the apex), y = z x x."""
    origin = centre + np.dot(rw - centre, axis) * axis
    x, y = orthonormal(axis, rw - origin)
    return {"origin": origin, "x": x, "y": y, "z": axis}


def in_frame(points, frame):
    q = points - frame["origin"]
    return q @ frame["x"], q @ frame["y"], q @ frame["z"]


def a_b_h(points, frame, band_mm):
    """A, B and H (mm) and the end points (LPS) of the A and B lines, from the lumen's projection
    on the cochlear view: A along x (the round-window line), B along y, each over the lumen within
    ``band_mm`` of its line; H the extent along z (0.2 % trimmed for stray voxels)."""
    x, y, z = in_frame(points, frame)
    on_a, on_b = np.abs(y) <= band_mm, np.abs(x) <= band_mm
    if not on_a.any() or not on_b.any():
        return None
    o, ex, ey = frame["origin"], frame["x"], frame["y"]
    a_ends = (o + x[on_a].max() * ex, o + x[on_a].min() * ex)
    b_ends = (o + y[on_b].max() * ey, o + y[on_b].min() * ey)
    lo, hi = np.quantile(z, [0.002, 0.998])
    return {"A": float(x[on_a].max() - x[on_a].min()), "B": float(y[on_b].max() - y[on_b].min()),
            "H": float(hi - lo), "A_line": a_ends, "B_line": b_ends}


def track_spiral(x, y, z, sign, step_deg=5.0, window_mm=0.7, max_move_mm=0.15, max_turns=4.0):
    """Follow the lumen from the round window (angle 0, on +x) around the z axis in direction
    ``sign``, one ``step_deg`` wedge at a time: in each wedge the lumen within ``window_mm`` (in
    radius and height) of the last centre is this turn's cross-section, and the centre moves to its
    median by at most ``max_move_mm`` (a spiral changes slowly; a jump would be onto the next turn
    where turns touch), never outward (a cochlear spiral narrows toward the apex). The voxels a
    step takes are used up, so a later turn cannot run back into an earlier one. The path ends
    where a wedge holds under a quarter of the last half turn's median (the apex, or only an earlier
    turn's fringe left). Rows: (angle, centre r, z, lateral-wall r)."""
    r = np.hypot(x, y)
    phi = np.mod(sign * np.arctan2(y, x), 2 * np.pi)
    step = np.radians(step_deg)
    half = max(step, np.radians(4.0))
    start = (np.minimum(phi, 2 * np.pi - phi) <= half) & (np.abs(z) <= 1.0) & (r >= r.max() - 2.0)
    if not start.any():
        return np.zeros((0, 4))
    rc, zc = float(np.median(r[start])), float(np.median(z[start]))
    free = np.ones(len(r), bool)
    counts = []
    rows = [(0.0, rc, zc, float(r[start].max()))]
    t = 0.0
    while t < max_turns * 2 * np.pi and rc > 0.3:
        t += step
        d = np.abs(np.mod(phi - t + np.pi, 2 * np.pi) - np.pi)
        sel = free & (d <= half) & (((r - rc) / window_mm) ** 2 + ((z - zc) / window_mm) ** 2 <= 1.0)
        counts.append(int(sel.sum()))
        if counts[-1] < max(3, 0.25 * np.median(counts[-36:])):
            break   # the lumen ends here, or only the fringe of an earlier turn is left
        free &= ~sel
        rc = float(np.clip(np.median(r[sel]), rc - max_move_mm, rc))
        zc = float(np.clip(np.median(z[sel]), zc - max_move_mm, zc + max_move_mm))
        rows.append((t, rc, zc, float(np.quantile(r[sel], 0.95))))
    return np.array(rows)


def spiral_path(x, y, z, apex=None):
    """The longer of the two tracks (the spiral winds one way; the other way ends at once), as
    rows (angle, centre x, y, z, lateral-wall x, y, z) in the cochlear frame, cut where it passes
    closest to ``apex`` (x, y, z; the helicotrema) after its first half turn: where the turns
    touch, a track can run on past the apex along an earlier turn's fringe."""
    best, sign = max(((track_spiral(x, y, z, s), s) for s in (1, -1)), key=lambda ts: len(ts[0]))
    ang = sign * best[:, 0]
    c, s_ = np.cos(ang), np.sin(ang)
    path = np.c_[best[:, 0], best[:, 1] * c, best[:, 1] * s_, best[:, 2], best[:, 3] * c, best[:, 3] * s_, best[:, 2]]
    if apex is not None and len(path) and path[-1, 0] > np.pi:
        d = np.linalg.norm(path[:, 1:4] - np.asarray(apex), axis=1)
        d[path[:, 0] < np.pi] = np.inf
        path = path[:int(np.argmin(d)) + 1]
    return path


def _in(point, frame):
    return None if point is None else np.ravel(in_frame(np.asarray(point)[None], frame))


def polyline_length(p, smooth=5) -> float:
    """Length of a polyline after a running mean over ``smooth`` points (the wedge-by-wedge trace
    zigzags by a voxel, which would add length)."""
    from scipy.ndimage import uniform_filter1d
    if len(p) < 2:
        return 0.0
    p = uniform_filter1d(np.asarray(p, float), size=min(smooth, len(p)), axis=0, mode="nearest")
    return float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum())


def cochlea_measures(points, voxel_mm, voxel_mm3) -> dict:
    """Landmarks, A/B/H, duct lengths and turns of one cochlea from its voxel centres (LPS mm)."""
    units = {"A_mm": "mm", "B_mm": "mm", "H_mm": "mm", "turns": "turns", "lateral_wall_length_mm": "mm",
             **{k: "mm" for k in CDL_FORMULAS}}
    why = _cochlea_unmeasurable(points, voxel_mm, voxel_mm3)
    if why:
        return {"values": {k: missing(u, why) for k, u in units.items()}, "landmarks": {}, "lines": {}}
    centre, axis, apex = cochlea_axis(points)
    rw = round_window(points, centre, axis)
    frame = cochlear_frame(centre, axis, rw)
    abh = a_b_h(points, frame, band_mm=max(0.3, voxel_mm))
    if abh is None:
        why = "the lumen does not cross the round-window line"
        return {"values": {k: missing(u, why) for k, u in units.items()}, "landmarks": {}, "lines": {}}
    values = {"A_mm": measure(abh["A"], "mm"), "B_mm": measure(abh["B"], "mm"), "H_mm": measure(abh["H"], "mm")}
    for key, (a, b) in CDL_FORMULAS.items():
        values[key] = measure(a * abh["A"] + b, "mm")
    values["turns"], values["lateral_wall_length_mm"], path = _spiral_measures(points, frame, apex, voxel_mm)
    return _cochlea_result(values, frame, rw, apex, abh, path)


def _cochlea_unmeasurable(points, voxel_mm, voxel_mm3) -> Optional[str]:
    """Why no cochlea measure can be computed from these voxels, or None."""
    if len(points) == 0:
        return "no cochlea labelled"
    if len(points) * voxel_mm3 < MIN_COCHLEA_MM3:
        return f"cochlea label too small ({len(points) * voxel_mm3:.1f} mm3 < {MIN_COCHLEA_MM3:g}: a fragment)"
    if voxel_mm > MAX_VOXEL_MM:
        return f"scan too coarse (voxel {voxel_mm:.2f} mm > {MAX_VOXEL_MM} mm)"
    return None


def _spiral_measures(points, frame, apex, voxel_mm):
    """(turns, lateral wall length, the traced path (N, 7) in the cochlear frame) of one cochlea."""
    if voxel_mm > MAX_VOXEL_MM_SPIRAL:
        why = f"scan too coarse for the spiral (voxel {voxel_mm:.2f} mm > {MAX_VOXEL_MM_SPIRAL} mm: turns merge)"
        return missing("turns", why), missing("mm", why), np.zeros((0, 7))
    apex_in_frame = _in(apex, frame)
    path = spiral_path(*in_frame(points, frame), apex_in_frame)
    why = _spiral_failure(path, apex_in_frame)
    if why:
        return measure(None, "turns", why), measure(None, "mm", why), path
    return measure(path[-1, 0] / (2 * np.pi), "turns"), measure(polyline_length(path[:, 4:7]), "mm"), path


def _spiral_failure(path, apex_in_frame) -> Optional[str]:
    """Why the traced ``path`` gives no turns or length (too short, or stopping short of the apex), or None."""
    short = np.linalg.norm(path[-1, 1:4] - apex_in_frame) if len(path) else np.inf
    if len(path) < 36:
        return "not computed: the lumen does not follow a spiral for half a turn"
    if short > MAX_END_TO_APEX_MM:
        return (f"not computed: the traced lumen ends {path[-1, 0] / (2 * np.pi):.2f} turns from the round "
                f"window, {short:.1f} mm short of the helicotrema (a blocked, missing or merged turn?)")
    return None


def _cochlea_result(values: dict, frame: dict, rw, apex, abh: dict, path) -> dict:
    """``cochlea_measures``' result: the values with the landmarks, lines and axes they were measured on."""
    o, ex, ey, ez = frame["origin"], frame["x"], frame["y"], frame["z"]
    landmarks = {"round_window": rw, "basal_turn_centre": frame["origin"], "helicotrema": apex,
                 "modiolar_axis_apex_end": o + ez * max(np.dot(apex - o, ez), 1.0)}
    lines = {"A": abh["A_line"], "B": abh["B_line"], "modiolar_axis": (o, landmarks["modiolar_axis_apex_end"])}
    if values["lateral_wall_length_mm"]["status"] == OK:
        lines["lateral_wall"] = tuple(o + p[0] * ex + p[1] * ey + p[2] * ez for p in path[:, 4:7])
    axes = {"modiolar_axis": ez, "cochlear_view_x": ex, "cochlear_view_y": ey, "cochlear_view_origin": o}
    return {"values": values, "landmarks": landmarks, "lines": lines, "axes": axes}


# ---------------------------------------------------------------- canals

def ransac_circles(points, count=3, tol_mm=0.35, trials=400, seed=0, min_share=0.08):
    """Up to ``count`` circles (centre, normal, radius, inlier mask) found one after another: the
    three-point circle (radius within ``CANAL_RADIUS_MM``) with the most points within ``tol_mm``
    of it, refitted to those points, which are then set aside."""
    rng = np.random.default_rng(seed)
    left = np.ones(len(points), bool)
    found = []
    for _ in range(count):
        idx = np.flatnonzero(left)
        if len(idx) < max(30, min_share * len(points)):
            break
        best = (0, None)
        for _ in range(trials):
            c = circle_through(*points[rng.choice(idx, 3, replace=False)])
            if c is None or not CANAL_RADIUS_MM[0] <= c[2] <= CANAL_RADIUS_MM[1]:
                continue
            hit = _circle_distance(points[idx], *c) <= tol_mm
            if hit.sum() > best[0]:
                best = (int(hit.sum()), c)
        if best[1] is None or best[0] < min_share * len(points):
            break
        inl = idx[_circle_distance(points[idx], *best[1]) <= tol_mm]
        for _ in range(3):   # refit, then take the points near the refitted circle
            circle = fit_circle(points[inl])
            inl = idx[_circle_distance(points[idx], *circle) <= tol_mm]
        mask = np.zeros(len(points), bool)
        mask[inl] = True
        found.append((*circle, mask))
        left &= ~mask
    return found


def _arc_degrees(points, centre, normal, radius, bins=24):
    """How far around its circle an arc's points reach: occupied 15-degree sectors, in degrees."""
    e1, e2 = orthonormal(normal)
    q = points - centre
    k = ((np.arctan2(q @ e2, q @ e1) + np.pi) / (2 * np.pi) * bins).astype(int) % bins
    return 360.0 * len(np.unique(k)) / bins


def _circle_distance(points, centre, normal, radius):
    q = points - centre
    h = q @ normal
    return np.hypot(np.linalg.norm(q - np.outer(h, normal), axis=1) - radius, h)


def canal_measures(points, voxel_mm, voxel_mm3, whole_head: bool) -> dict:
    """Plane, arc radius and angles of the three semicircular canals from their voxel centres.
    The tube's voxels stand in for its centreline: the plane and circle fits average across the
    tube. Naming assumes LPS patient axes (z superior)."""
    keys = [f"{n}_canal_radius_mm" for n in CANAL_NAMES] + ["angle_lateral_superior_deg",
                                                            "angle_lateral_posterior_deg",
                                                            "angle_superior_posterior_deg",
                                                            "lateral_canal_to_axial_deg"]
    unit_of = lambda k: "deg" if k.endswith("deg") else "mm"  # noqa: E731
    why = _canals_unmeasurable(points, voxel_mm, voxel_mm3)
    circles = []
    if why is None:
        circles, why = _canal_circles(points, voxel_mm)
    if why:
        return {"values": {k: missing(unit_of(k), why) for k in keys}, "planes": {}}
    named = _named_canals(circles[:3])
    values = {f"{n}_canal_radius_mm": measure(named[n][2], "mm") for n in CANAL_NAMES}
    for a, b in (("lateral", "superior"), ("lateral", "posterior"), ("superior", "posterior")):
        values[f"angle_{a}_{b}_deg"] = measure(angle_deg(named[a][1], named[b][1]), "deg")
    values["lateral_canal_to_axial_deg"] = (
        measure(angle_deg(named["lateral"][1], [0, 0, 1.0]), "deg") if whole_head else
        missing("deg", "the scan is not a whole head (the axial plane is the head's only when both ears are in it)"))
    planes = {n: {"centre": c, "normal": nrm, "radius": rad} for n, (c, nrm, rad, _) in named.items()}
    return {"values": values, "planes": planes}


def _canals_unmeasurable(points, voxel_mm, voxel_mm3) -> Optional[str]:
    """Why no canal measure can be computed from these voxels before any fit, or None."""
    if len(points) == 0:
        return "no semicircular canals labelled"
    if len(points) * voxel_mm3 < MIN_CANAL_MM3:
        return "semicircular canals missing or nearly so (labyrinthectomy or fluid loss?)"
    if voxel_mm > MAX_VOXEL_MM:
        return f"scan too coarse (voxel {voxel_mm:.2f} mm > {MAX_VOXEL_MM} mm)"
    return None


def _canal_circles(points, voxel_mm):
    """(circles fitted to the canal voxels (at most 6000 of them), None), or (circles, why they are
    not three canals: fewer than three arcs, an arc too short, or two arcs in one plane)."""
    sub = points
    if len(points) > 6000:
        sub = points[np.random.default_rng(1).choice(len(points), 6000, replace=False)]
    circles = ransac_circles(sub, tol_mm=max(0.5, voxel_mm))
    if len(circles) < 3:
        return circles, f"only {len(circles)} of the three canals found as arcs"
    if min(_arc_degrees(sub[c[3]], *c[:3]) for c in circles[:3]) < MIN_ARC_DEG:
        return circles, f"an arc found spans under {MIN_ARC_DEG} degrees: not a semicircular canal"
    if min(angle_deg(a[1], b[1]) for i, a in enumerate(circles[:3]) for b in circles[i + 1:3]) < MIN_PLANE_DEG:
        return circles, (f"two of the arcs found lie within {MIN_PLANE_DEG} degrees of one plane: not three canals "
                         "(the canal label may hold other structures)")
    return circles, None


def _named_canals(circles) -> dict:
    """{lateral, superior, posterior: circle} of three circles (centre, normal, radius, mask): the
    lateral canal's plane is the most axial, the superior's centre the highest of the other two."""
    lateral = int(np.argmax([abs(n[2]) for _, n, _, _ in circles]))
    rest = [i for i in range(3) if i != lateral]
    superior = max(rest, key=lambda i: circles[i][0][2])
    posterior = [i for i in rest if i != superior][0]
    return {"lateral": circles[lateral], "superior": circles[superior], "posterior": circles[posterior]}


# ---------------------------------------------------------------- one ear, one result

def ear_measures(points_by_label: Dict[int, np.ndarray], spacing, whole_head: bool) -> dict:
    """All measures of one ear from ``points_by_label`` (label value -> (N, 3) LPS voxel centres)."""
    voxel_mm, voxel_mm3 = float(max(spacing)), float(np.prod(spacing))
    empty = np.zeros((0, 3))
    cochlea = cochlea_measures(points_by_label.get(L.COCHLEA, empty), voxel_mm, voxel_mm3)
    canals = canal_measures(points_by_label.get(L.CANALS, empty), voxel_mm, voxel_mm3, whole_head)
    counts = {k: len(points_by_label.get(k, empty)) for k in (L.COCHLEA, L.VESTIBULE, L.CANALS)}
    total = sum(counts.values())
    shares = {f"{name}_share_of_labyrinth": (measure(counts[v] / total, "fraction") if counts[v] else
                                             missing("fraction", f"no {name} labelled"))
              for name, v in (("cochlea", L.COCHLEA), ("vestibule", L.VESTIBULE))}
    return {"values": {**cochlea["values"], **canals["values"], **shares},
            "landmarks": cochlea["landmarks"], "lines": cochlea["lines"], "axes": cochlea.get("axes", {}),
            "canal_planes": canals["planes"]}


def labelled_voxels(result):
    """(LPS centres, label values, side codes) of every labelled voxel of ``result``: one pass over
    the (possibly whole-head) grid; side codes 1 right, 2 left, 0 none."""
    import SimpleITK as sitk
    from .surface import index_to_lps
    lab = sitk.GetArrayViewFromImage(result.labels)
    k, j, i = np.nonzero(lab)
    values = np.asarray(lab[k, j, i])
    sides = (np.asarray(sitk.GetArrayViewFromImage(result.sides)[k, j, i]) if result.sides is not None
             else np.zeros(len(k), np.uint8))
    matrix = index_to_lps(result.labels)
    return np.c_[i, j, k] @ matrix[:3, :3].T + matrix[:3, 3], values, sides


def measures_for_result(result) -> Dict[str, dict]:
    """side (``right``/``left``, or ``both`` without a side split) -> that ear's measures, for
    every side holding labels (the sides ``surface.side_groups`` finds)."""
    points, values, sides = labelled_voxels(result)
    groups = {side: sides == code for side, code in (("right", 1), ("left", 2)) if (sides == code).any()}
    if not groups and len(points):
        groups = {"both": np.ones(len(points), bool)}
    out = {}
    for side, on_side in groups.items():
        by_label = {s.value: points[on_side & (values == s.value)] for s in L.STRUCTURES}
        out[side] = ear_measures(by_label, result.labels.GetSpacing(), whole_head=len(groups) == 2)
    return out


# ---------------------------------------------------------------- outputs

def document(per_side: Dict[str, dict]) -> dict:
    """The ``measures`` block of ``S_stats.json``: per side, values with status, landmarks and
    line end points in LPS and RAS, the axes, and the canal planes."""
    out = {"coordinate_note": "points *_lps in LPS mm (ITK), *_ras in RAS mm (Slicer)",
           "method": "docs/planning.md", "ears": {}}
    for side, m in per_side.items():
        out["ears"][side] = _ear_document(m)
    return out


def _lps(p) -> List[float]:
    return [float(v) for v in p]


def _ear_document(m: dict) -> dict:
    """One ear's entry of ``document``."""
    ear = {"values": m["values"], "landmarks": {}, "lines": {}, "canal_planes": {}}
    for name, p in m["landmarks"].items():
        ear["landmarks"][name] = {"lps": _lps(p), "ras": to_ras(p)}
    for name, pts in m["lines"].items():
        ear["lines"][name] = {"lps": [_lps(p) for p in pts], "ras": [to_ras(p) for p in pts]}
    if m.get("axes"):
        ax = m["axes"]
        ear["modiolar_axis_lps"] = _lps(ax["modiolar_axis"])
        ear["modiolar_axis_ras"] = to_ras(ax["modiolar_axis"])
        ear["cochlear_view"] = {   # the basal-turn plane through the round window
            "origin_lps": _lps(ax["cochlear_view_origin"]), "origin_ras": to_ras(ax["cochlear_view_origin"]),
            "normal_lps": _lps(ax["modiolar_axis"]), "normal_ras": to_ras(ax["modiolar_axis"]),
            "x_toward_round_window_lps": _lps(ax["cochlear_view_x"]),
            "x_toward_round_window_ras": to_ras(ax["cochlear_view_x"])}
    for name, pl in m["canal_planes"].items():
        ear["canal_planes"][name] = {"centre_lps": _lps(pl["centre"]), "normal_lps": _lps(pl["normal"]),
                                     "radius_mm": round(float(pl["radius"]), 4)}
    return ear


def csv_rows(per_side: Dict[str, dict]) -> List[dict]:
    """One row per ear: side, then each measure's value and status."""
    rows = []
    for side, m in per_side.items():
        row = {"side": side}
        for key, v in m["values"].items():
            row[key] = v["value"]
            row[f"{key}_status"] = v["status"]
        rows.append(row)
    return rows


def write_csv(path, per_side: Dict[str, dict]) -> None:
    import csv
    rows = csv_rows(per_side)
    columns = list(dict.fromkeys(k for row in rows for k in row)) or ["side"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


MARKUPS_SCHEMA = "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#"
_COLOURS = {"landmarks": [1.0, 0.9, 0.2], "A": [1.0, 0.3, 0.3], "B": [0.3, 0.6, 1.0],
            "modiolar_axis": [0.9, 0.9, 0.9], "lateral_wall": [0.95, 0.62, 0.22]}


def _markup(kind, name, points, labels, colour, locked=True) -> dict:
    return {
        "type": kind, "name": name, "coordinateSystem": "LPS", "coordinateUnits": "mm", "locked": locked,
        "controlPoints": [{"id": str(i + 1), "label": lab, "position": [float(v) for v in p],
                           "orientation": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
                           "selected": False, "locked": locked, "visibility": True, "positionStatus": "defined"}
                          for i, (p, lab) in enumerate(zip(points, labels))],
        "measurements": [],
        "display": {"visibility": True, "opacity": 1.0, "color": colour, "selectedColor": colour,
                    "propertiesLabelVisibility": True, "pointLabelsVisibility": kind == "Fiducial",
                    "textScale": 3.0, "glyphScale": 1.5},
    }


def markups_document(per_side: Dict[str, dict]) -> dict:
    """Slicer markups (``.mrk.json``, schema v1.0.3, LPS): per ear a point list of the landmarks,
    lines A and B, the modiolar axis and the lateral-wall curve. Empty when nothing was found."""
    markups = []
    for side, m in per_side.items():
        tag = "" if side == "both" else f" {side}"
        if m["landmarks"]:
            names = list(m["landmarks"])
            markups.append(_markup("Fiducial", f"Cochlea landmarks{tag}", [m["landmarks"][n] for n in names],
                                   [f"{n.replace('_', ' ')}{tag}" for n in names], _COLOURS["landmarks"]))
        for line in ("A", "B", "modiolar_axis"):
            if line in m["lines"]:
                label = f"{line.replace('_', ' ')}{tag}"
                markups.append(_markup("Line", label, m["lines"][line], [f"{label} 1", f"{label} 2"], _COLOURS[line]))
        if "lateral_wall" in m["lines"]:
            pts = m["lines"]["lateral_wall"]
            markups.append(_markup("Curve", f"Lateral wall{tag}", pts, [""] * len(pts), _COLOURS["lateral_wall"]))
    return {"@schema": MARKUPS_SCHEMA, "markups": markups}


def write_markups(path, per_side: Dict[str, dict]) -> None:
    with open(path, "w") as f:
        json.dump(markups_document(per_side), f, indent=1)


def output_names(name: str) -> List[str]:
    """The files ``output_jobs`` adds to a case's outputs."""
    return [f"{name}_measures.csv", f"{name}_measures.mrk.json"]


def measure_into(result, stats_doc: dict) -> Dict[str, dict]:
    """Measure every ear of ``result`` (``measures_for_result``), put the ``measures`` block into
    ``stats_doc`` and return the measures per side, for ``output_jobs`` and the preview.

    A failure inside the measures is recorded in the block (and the measures are ``{}``) instead of
    failing the case: the segmentation's own files matter more than its planning measures.
    """
    try:
        per_side = measures_for_result(result)
        stats_doc["measures"] = document(per_side)
    except Exception as e:  # noqa: BLE001 - reported in the output, never silently
        per_side = {}
        stats_doc["measures"] = {"error": f"not computed: {type(e).__name__}: {e}", "ears": {}}
    return per_side


def output_jobs(per_side: Dict[str, dict], name: str) -> list:
    """The (file name, writer) jobs of ``NAME_measures.csv`` and ``NAME_measures.mrk.json`` (empty
    when the measures failed: ``measure_into``)."""
    return [(f"{name}_measures.csv", lambda p: write_csv(p, per_side)),
            (f"{name}_measures.mrk.json", lambda p: write_markups(p, per_side))]
