"""Analytic solids evaluated at arrays of physical points (N, 3) in millimetres.

Labels are painted from these, so a label map can be computed on any grid
(any spacing, origin, direction) and always sits at the same millimetres.
"""
import numpy as np
from scipy.spatial import cKDTree


def unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def rotation(ax, ay, az):
    """Rotation matrix from angles (radians) about x, then y, then z."""
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


class Ellipsoid:
    def __init__(self, center, semi_axes, rot=None):
        self.center = np.asarray(center, float)
        self.semi = np.asarray(semi_axes, float)
        self.rot = np.eye(3) if rot is None else np.asarray(rot, float)
        r = self.semi.max()
        self.lo, self.hi = self.center - r, self.center + r

    def grown(self, mm):
        """The ellipsoid with every semi-axis ``mm`` longer (a wall around it)."""
        return Ellipsoid(self.center, self.semi + mm, self.rot)

    def contains(self, p):
        q = (p - self.center) @ self.rot / self.semi
        return np.einsum("ij,ij->i", q, q) <= 1.0


class _Spheres:
    """Union of spheres (centres, radii) tested through a k-d tree of the centres."""

    k = 4  # neighbours checked per point: enough where spheres overlap densely along a tube

    def _index(self, centers, radii):
        self.centers = np.asarray(centers, float).reshape(-1, 3)
        self.radii = np.asarray(radii, float).reshape(-1)
        self.rmax = float(self.radii.max()) if len(self.radii) else 0.0
        self.lo = self.centers.min(0) - self.rmax if len(self.radii) else np.zeros(3)
        self.hi = self.centers.max(0) + self.rmax if len(self.radii) else np.zeros(3)
        self._tree = cKDTree(self.centers) if len(self.radii) else None

    def grown(self, mm):
        """The same spheres with radii ``mm`` larger (a wall around a tube)."""
        out = object.__new__(type(self))
        out._index(self.centers, self.radii + mm)
        return out

    def contains(self, p):
        inside = np.zeros(len(p), bool)
        if self._tree is None:
            return inside
        box = np.all((p >= self.lo) & (p <= self.hi), axis=1)
        if not box.any():
            return inside
        d, i = self._tree.query(p[box], k=self.k, distance_upper_bound=self.rmax)
        valid = np.isfinite(d)
        r = np.where(valid, self.radii[np.minimum(i, len(self.radii) - 1)], 0.0)
        inside[box] = np.any(valid & (d <= r), axis=1)
        return inside


class Tube(_Spheres):
    """A tube of varying radius around a polyline, sampled densely (spacing < smallest radius)."""

    def __init__(self, points, radii, step=0.12):
        points = np.asarray(points, float)
        radii = np.broadcast_to(np.asarray(radii, float), (len(points),))
        seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
        s = np.concatenate([[0], np.cumsum(seg)])
        n = max(int(s[-1] / step) + 1, 2)
        t = np.linspace(0, s[-1], n)
        self._index(np.stack([np.interp(t, s, points[:, i]) for i in range(3)], 1), np.interp(t, s, radii))


class Balls(_Spheres):
    """Many separate spheres (e.g. mastoid air cells)."""

    k = 3

    def __init__(self, centers, radii):
        self._index(centers, radii)


class Shell:
    """Points inside ``outer`` but not inside ``inner``."""

    def __init__(self, outer, inner):
        self.outer, self.inner = outer, inner
        self.lo, self.hi = outer.lo, outer.hi

    def contains(self, p):
        return self.outer.contains(p) & ~self.inner.contains(p)


class HalfSpaceCut:
    """A solid restricted to the side of a plane the normal points to."""

    def __init__(self, solid, point, normal):
        self.solid, self.point, self.normal = solid, np.asarray(point, float), unit(normal)
        self.lo, self.hi = solid.lo, solid.hi

    def contains(self, p):
        return self.solid.contains(p) & ((p - self.point) @ self.normal >= 0)


def arc(center, u, v, radius, start, stop, n=60):
    """Points of a circular arc in the plane spanned by unit vectors u, v (angles in radians)."""
    t = np.linspace(start, stop, n)
    return np.asarray(center) + radius * (np.cos(t)[:, None] * u + np.sin(t)[:, None] * v)
