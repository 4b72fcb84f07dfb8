"""Procedural temporal-bone anatomy: both labyrinths and their look-alike surroundings.

A :class:`Head` is a list of painted solids (later layers win) in head coordinates
(LPS millimetres, origin midway between the two vestibules), a random pose
(rotation, translation, scale) and a smooth elastic displacement. ``labels_at``
evaluates the tissue label at any physical points, so label maps can be computed
on any grid. Figures follow shared/ANATOMY.md; each ear is drawn in a local
frame (lateral, anterior, superior) that is mirrored for the other side.
"""
import numpy as np

from .shapes import Balls, Ellipsoid, HalfSpaceCut, Shell, Tube, arc, rotation, unit

# Tissue labels of the full synthetic map; 1..3 are the ground truth, the rest is context.
TISSUES = {
    0: "outside air", 1: "cochlea", 2: "vestibule", 3: "semicircular canals",
    4: "internal auditory canal CSF", 5: "nerves", 6: "cerebellopontine angle cistern",
    7: "brainstem", 8: "cerebellum", 9: "brain", 10: "petrous bone and otic capsule",
    11: "mastoid air cells", 12: "middle ear and other air", 13: "carotid artery",
    14: "sigmoid sinus and jugular bulb", 15: "skin and scalp", 16: "skull and clivus",
    17: "CSF", 18: "ossified or obliterated labyrinth", 19: "soft-tissue mass",
    20: "vestibular aqueduct and endolymphatic sac", 21: "soft tissue",
}
NUM_TISSUES = 22
CAPSULE_WALL_MM = 0.75   # otic-capsule bone around the labyrinth (times the ear's scale)
FLUID = (1, 2, 3, 4, 6, 17, 20)


def ground_truth(tissue: np.ndarray) -> np.ndarray:
    """Tissue map -> labels 0 background, 1 cochlea, 2 vestibule, 3 canals."""
    return np.where(tissue <= 3, tissue, 0).astype(np.uint8)


class Ear:
    """One labyrinth with its neighbours, built in the local frame and placed in the head."""

    def __init__(self, rng, side, vestibule_center, pathology=1.0, labyrinthectomy=None):
        """``pathology`` scales how often fluid is lost (canal, turn, vestibule and canals);
        ``labyrinthectomy`` scales the loss of vestibule and canals alone (default: ``pathology``)."""
        self.side = side
        lat = np.array([1.0 if side == "left" else -1.0, 0, 0])   # LPS: +x is the patient's left
        # local axes: lateral, anterior (-y in LPS), superior (+z); small random tilt
        basis = np.stack([lat, [0, -1.0, 0], [0, 0, 1.0]], axis=1)
        self.B = rotation(*rng.uniform(-0.12, 0.12, 3)) @ basis
        self.V = np.asarray(vestibule_center, float)
        self.rng = rng
        self.layers = []          # (tissue label, solid) in head coordinates
        self.pathology = pathology
        self.labyrinthectomy = pathology if labyrinthectomy is None else labyrinthectomy
        self._build(rng)
        self._build_bone_channels(rng)

    # local -> head coordinates
    def p(self, local):
        return self.V + np.asarray(local, float) @ self.B.T

    def d(self, local):
        return unit(np.asarray(local, float) @ self.B.T)

    def frame(self, *cols):
        """Rotation (columns) in head coordinates from local column vectors."""
        return self.B @ np.stack(cols, axis=1)

    def _build(self, rng):
        u = rng.uniform
        s = u(0.9, 1.1)                       # overall labyrinth scale
        self.scale = s
        # internal auditory canal from the fundus medially to the porus
        fundus = [-2.4 * s, 1.8 * s, -0.4 * s]
        iac_dir = unit([-1.0, u(-0.25, 0.05), u(-0.1, 0.1)])
        iac_len, iac_r = u(8, 10), u(2.0, 2.5)
        porus = np.asarray(fundus) + iac_dir * iac_len
        self.porus = self.p(porus)
        # surroundings, painted before the labyrinth
        L = self._bone_and_cistern(rng, porus, iac_dir)
        L += self._vessels_and_air(u, s)
        L += self._internal_auditory_canal(rng, fundus, porus, iac_dir, iac_len, iac_r)
        L += self._vestibular_aqueduct(u)
        self.layers.extend(L)
        self._context_end = len(self.layers)
        self._build_labyrinth(rng, s)

    def _bone_and_cistern(self, rng, porus, iac_dir):
        """The cistern medial to the porus, skull base, petrous bone, otic capsule and mastoid."""
        u = rng.uniform
        L = []
        # cerebellopontine angle cistern (CSF) medial to the porus
        L.append((6, Ellipsoid(self.p(porus + iac_dir * 5.5), [u(5, 8), u(7, 10), u(8, 12)], self.B)))
        # below the petrous bone: skull base bone over soft tissue (not brain)
        L.append((21, Ellipsoid(self.p([3, 0, -21]), [u(16, 20), u(18, 22), u(10, 13)], self.B)))
        L.append((16, Ellipsoid(self.p([-2, 2, -10]), [u(14, 18), u(16, 20), u(5, 7)], self.B)))
        # petrous bone along the petrous axis (medial-anterior) and the otic capsule
        pa = unit([-0.75, 0.62, u(-0.05, 0.1)])
        pb = unit(np.cross(pa, [0, 0, 1.0]))
        pc = np.cross(pa, pb)
        L.append((10, Ellipsoid(self.p([-7, 4, -1]), [u(22, 27), u(9, 11), u(8, 10)], self.frame(pa, pb, pc))))
        L.append((10, Ellipsoid(self.p([0.5, 1.5, 0]), [u(7, 9), u(10, 12), u(8, 10)], self.B)))
        # mastoid: bone with air cells (pneumatisation varies, sometimes sclerotic)
        m_center, m_semi = self.p([8, -13, -6]), np.array([u(10, 13), u(11, 14), u(12, 15)])
        L.append((10, Ellipsoid(m_center, m_semi, self.B)))
        if u() < 0.85:
            n = int(u(40, 120))
            c = rng.normal(size=(n, 3))
            c = c / np.linalg.norm(c, axis=1, keepdims=True) * (u(0, 1, (n, 1)) ** (1 / 3))
            L.append((11, Balls(m_center + (c * m_semi * 0.9) @ self.B.T, u(0.8, 3.0, n))))
        return L

    def _vessels_and_air(self, u, s):
        """Sigmoid sinus into the jugular bulb, the carotid artery in front, middle ear and external canal."""
        return [
            (14, Tube([self.p(q) for q in ([6, -26, 16], [5, -26, 2], [3, -19, -9], [0, -6, -11], [-2, -4, -24])],
                      u(3.0, 4.2))),
            (13, Tube([self.p(q) for q in ([-4, 9, -24], [-4, 9, -9], [-8, 11, -4], [-17, 19, -1])], u(2.4, 3.0))),
            (12, Ellipsoid(self.p([5.0 * s, 1.5, -1.0]), [u(1.8, 2.5), u(5, 6.5), u(5.5, 7)], self.B)),
            (12, Tube([self.p(q) for q in ([6, 0, -2], [16, -1, -3], [30, -3, -4])], u(3.0, 4.0))),
        ]

    def _internal_auditory_canal(self, rng, fundus, porus, iac_dir, iac_len, iac_r):
        """The internal auditory canal and its nerves (dark lines inside bright CSF on T2), rarely a
        vestibular schwannoma in it."""
        u = rng.uniform
        L = [(4, Tube([self.p(fundus), self.p(porus)], [iac_r * 0.8, iac_r]))]
        perp1 = unit(np.cross(iac_dir, [0, 0, 1.0]))
        perp2 = np.cross(iac_dir, perp1)
        for a, b in ((0.9, 0.8), (-0.9, 0.8), (0.9, -0.8), (-0.9, -0.8)):
            off = (a * perp1 + b * perp2) * iac_r * 0.45
            start = np.asarray(fundus) + off * 0.5
            end = porus + off * 0.3 + iac_dir * u(8, 12)
            L.append((5, Tube([self.p(start), self.p(end)], u(0.3, 0.5))))
        if u() < 0.04:   # vestibular schwannoma in the canal
            t0 = u(0.3, 0.7)
            cen = np.asarray(fundus) + iac_dir * iac_len * t0
            L.append((19, Ellipsoid(self.p(cen), [u(3, 6), iac_r * u(0.8, 1.0), iac_r * u(0.8, 1.0)],
                                    self.frame(iac_dir, perp1, perp2))))
        return L

    def _vestibular_aqueduct(self, u):
        """The vestibular aqueduct and endolymphatic sac (enlarged in some)."""
        eva = u() < 0.06
        va_r = u(0.9, 1.5) if eva else u(0.25, 0.4)
        L = [(20, Tube([self.p(q) for q in ([-1.0, -1.5, 0.0], [-3.5, -6.0, -0.8], [-5.5, -10.0, -2.5])], va_r))]
        if eva:
            L.append((20, Ellipsoid(self.p([-6.5, -12.0, -3.5]), [1.5, 4.0, 3.0], self.B)))
        return L

    def _build_labyrinth(self, rng, s):
        u = rng.uniform
        lab = self._cochlea(rng, s)
        n_cochlea = len(lab)              # the cochlea and its partial fluid loss
        canals, drilled = self._canals(rng, s)
        lab += canals
        # --- vestibule: ovoid chamber, painted last so duct and canal ends open into it
        vest = Ellipsoid(self.V, np.array([u(1.5, 1.9), u(2.5, 3.0), u(1.7, 2.1)]) * s, self.frame(
            *rotation(*rng.normal(0, 0.1, 3)).T))
        lab.append((2, vest))
        lab, cavity = self._labyrinthectomy(u, s, lab, n_cochlea, drilled, vest)
        # the otic capsule: dense bone around every fluid space, painted over mastoid cells,
        # middle-ear air and the fundus of the internal auditory canal. Without it (generator
        # <= 1.3) air came within 0.5 mm of a fifth of the canal voxels (experiments/capsule_check.py):
        # on CT those canals ran through air, which no real ear shows. Fixed thickness (no random
        # draw), so every other part of a head stays as it was.
        wall = CAPSULE_WALL_MM * s
        self.layers.extend(cavity + [(10, sh.grown(wall)) for _, sh in lab] + lab)
        self.ear_center = 0.5 * (self.V + self.cochlea_center)

    def _cochlea(self, rng, s):
        """The cochlear duct (label 1), a tapered spiral around the modiolar axis (apex forward,
        outward, down), and rarely a partial fluid loss of one turn (label 18)."""
        u = rng.uniform
        C = np.array([-2.4, 5.6, -2.0]) * s + rng.normal(0, 0.3, 3)
        a = unit(np.array([0.45, 0.75, -0.35]) + rng.normal(0, 0.08, 3))
        toward_v = -C - a * np.dot(-C, a)
        e1 = unit(toward_v)
        e2 = np.cross(a, e1)
        partition = u() < 0.05            # incomplete partition: fewer turns
        turns = u(1.25, 1.75) if partition else u(2.5, 2.75)
        tmax = 2 * np.pi * turns
        r0, r1 = u(3.4, 3.9) * s, u(0.9, 1.3) * s
        rho0, rho1 = u(0.95, 1.1) * s, u(0.5, 0.6) * s
        height = u(2.7, 3.4) * s
        t = np.linspace(0, tmax, int(turns * 90))
        f = t / tmax
        r = r0 * (r1 / r0) ** f
        pts = C + r[:, None] * (np.cos(t)[:, None] * e1 + np.sin(t)[:, None] * e2) + (height * f ** 0.85)[:, None] * a
        rho = rho0 + (rho1 - rho0) * f
        self.cochlea_center = self.p(C + a * height * 0.45)
        self._round_window = pts[0]           # basal end of the duct (local), for the cochlear aqueduct
        cochlea = [Tube([self.p(q) for q in pts], rho)]
        cochlea.append(Tube([self.p(pts[0]), self.p([-0.4, 1.6, -0.9])], rho0 * 0.9))
        lab = [(1, c) for c in cochlea]
        if u() < 0.05 * self.pathology:   # partial fluid loss (labyrinthitis ossificans) of the basal or apical turn
            k = len(pts)
            i0 = int(u(0, 0.6) * k)
            lab.append((18, Tube([self.p(q) for q in pts[i0:i0 + int(k * u(0.15, 0.35))]], rho[i0] * 1.05)))
        return lab

    def _canals(self, rng, s):
        """(layers, drilled): the semicircular canals, arcs of ~240-270 deg whose ends open into the
        vestibule (label 3; 18 for one lost to fluid loss) with the common crus, and each canal's
        plane filled out (what a labyrinthectomy drills away)."""
        u = rng.uniform
        rho_c = u(0.4, 0.5) * s
        crus = np.array([-0.3, -2.3, 2.3]) * s
        canals = {   # in-plane vectors (e1, e2), direction away from the vestibule (in e1,e2), radius
            "superior": (np.array([0, 0, 1.0]), unit([0.7, 0.7, 0]), unit([0.95, -0.3]), u(3.0, 3.4)),
            "posterior": (np.array([0, 0, 1.0]), unit([0.7, -0.7, 0]), unit([-0.25, 0.97]), u(2.9, 3.3)),
            "lateral": (np.array([1.0, 0, 0]), unit([0, np.cos(0.52), np.sin(0.52)]), unit([0.85, -0.5]), u(2.1, 2.5)),
        }
        lost = rng.choice(list(canals)) if u() < 0.08 * self.pathology else None
        canal_parts = []
        drilled = []
        for name, (c1, c2, away, R) in canals.items():
            parts, plane = self._canal(rng, s, name, c1, c2, away, R, rho_c, crus)
            canal_parts.append((18 if name == lost else 3, parts))
            drilled.append(plane)
        canal_parts.append((3, [Tube([self.p(crus), self.p(crus * 0.2)], rho_c * 1.25)]))
        return [(label, p) for label, parts in canal_parts for p in parts], drilled

    def _canal(self, rng, s, name, c1, c2, away, R, rho_c, crus):
        """(tubes, plane) of one canal: its arc, the end into the crus or the vestibule and the
        ampulla; its plane filled out as an ellipsoid."""
        u = rng.uniform
        J = rotation(*rng.normal(0, 0.06, 3))   # jitter, ~3.5 deg per axis
        c1, c2 = J @ c1, J @ c2
        R *= s
        dout = away[0] * c1 + away[1] * c2
        O = dout * (R + u(1.2, 1.7) * s)
        phi_v = np.arctan2(np.dot(-O, c2), np.dot(-O, c1))
        gap = np.deg2rad(u(95, 120))
        ends_angle = (phi_v + gap / 2, phi_v + 2 * np.pi - gap / 2)
        pts = arc(O, c1, c2, R, *ends_angle, n=80)
        if name == "superior":
            self._superior_arc = (O, unit(np.cross(c1, c2)))   # for the subarcuate canal
        ends = [pts[0], pts[-1]]
        parts = [Tube([self.p(q) for q in pts], rho_c)]
        if name in ("superior", "posterior"):
            near = int(np.linalg.norm(ends[1] - crus) < np.linalg.norm(ends[0] - crus))
            parts.append(Tube([self.p(ends[near]), self.p(crus)], rho_c))
            amp_end = ends[1 - near]
        else:
            amp_end = ends[0] if ends[0][1] > ends[1][1] else ends[1]   # anterior end
            parts.append(Tube([self.p(ends[0] if amp_end is ends[1] else ends[1]), self.p([0.6, -0.8, 0.2])], rho_c))
        amp_r = u(0.85, 1.05) * s
        parts.append(Tube([self.p(amp_end), self.p(amp_end * 0.35)], [amp_r, rho_c * 1.3]))
        plane = Ellipsoid(self.p(O), [R + 2 * rho_c, R + 2 * rho_c, 2 * rho_c], self.frame(c1, c2, unit(np.cross(c1, c2))))
        return parts, plane

    def _labyrinthectomy(self, u, s, lab, n_cochlea, drilled, vest):
        """(labyrinth layers, cavity layers): as they are, or, after a labyrinthectomy (drawn), the
        vestibule and canals gone (bone or soft tissue)."""
        cavity = []                       # a drilled labyrinthectomy: soft tissue, no capsule wall
        if u() < 0.04 * self.labyrinthectomy:
            if u() < 0.5:   # obliterated by bone: the shapes stay, as bone (invisible on CT too)
                lab = [(18 if lbl in (2, 3) else lbl, sh) for lbl, sh in lab]
            else:   # drilled out (1.7; open to the mastoid since 1.9), filled with soft tissue, the
                # cochlea kept. Up to 1.6 the soft tissue kept the exact canal and vestibule shapes:
                # on CT (soft tissue 40-70 HU, fluid 0-50) a normal labyrinth labelled absent.
                lab = lab[:n_cochlea]
                cavity = [(19, sh) for sh in drilled + [vest.grown(1.0 * s), self._mastoidectomy(s)]]
        return lab, cavity

    def _mastoidectomy(self, s):
        """The transmastoid route of a drilled labyrinthectomy: a bowl widening from the vestibule
        back and out through the mastoid to its cortex (generator 1.9). Before, the cavity was the
        canals' planes and a vestibule-shaped chamber closed in capsule bone, which on CT still
        reads as a vestibule; the surgeon's cavity is open to the mastoid. Fixed shape, no draws."""
        path = np.array([[0.0, -1.0, 0.0], [5.0, -6.0, -1.0], [11.0, -11.0, -3.0], [18.0, -13.0, -5.0]]) * s
        return Tube([self.p(q) for q in path], np.array([2.5, 4.0, 6.0, 7.0]) * s)

    def _build_bone_channels(self, rng):
        """Thin soft-tissue and CSF channels through the petrous bone that look like canals.

        On CT (and on random contrasts) the facial-nerve canal, the cochlear aqueduct and the
        subarcuate canal are dark tubes in bright bone beside the labyrinth, as the canals are;
        a model that never saw them marks them. Drawn last from the ear's own generator (nothing
        else about the head changes) and painted under the otic capsule, so the labyrinth and its
        wall stay exactly as before (generator 1.6).
        """
        u = rng.uniform
        s = self.scale
        ch = []
        # facial nerve: labyrinthine segment from the fundus over the cochlea to the geniculate
        # ganglion, tympanic segment back along the medial wall of the middle ear under the
        # lateral canal, mastoid segment down to the stylomastoid foramen (nerve tissue)
        r_f = u(0.5, 0.75) * s
        genu = np.array([0.8, 5.6, 1.9]) * s + rng.normal(0, 0.3, 3)
        path = [np.array([-2.4, 2.4, 0.5]) * s, genu, np.array([2.7, 2.4, 0.3]) * s,
                np.array([3.5, -1.5, -1.8]) * s, np.array([3.9, -4.5, -2.6]) * s,
                np.array([4.4 + u(-0.5, 0.5), -5.5 + u(-1, 1), -10.0]) * s, np.array([4.8, -6.0, -17.0]) * s]
        ch.append((5, Tube([self.p(q) for q in path], r_f)))
        ch.append((5, Ellipsoid(self.p(genu), np.array([1.2, 0.9, 0.9]) * s, self.B)))
        # cochlear aqueduct: from the basal turn medially and down to the jugular foramen, thin at
        # the cochlea, a funnel at its medial opening (CSF)
        if u() < 0.8:
            start = self._round_window + np.array([0.0, -0.6, -1.2]) * s
            end = start + np.array([u(-7, -5), u(-4, -2), u(-8, -6)]) * s
            ch.append((17, Tube([self.p(start), self.p(end)], [u(0.15, 0.3), u(0.6, 1.3)])))
        # subarcuate canal: from the posterior fossa through the superior canal's arc towards the
        # mastoid antrum (vessels in soft tissue; wide in children)
        if u() < 0.6:
            O, n = self._superior_arc
            O = O + np.array([0, 0, -0.8]) * s
            r_s = u(0.5, 0.8) if u() < 0.15 else u(0.2, 0.45)
            ch.append((21, Tube([self.p(O + n * u(5, 7)), self.p(O), self.p(O - n * u(4, 6) + [0, -2, 0])], r_s)))
        self.layers[self._context_end:self._context_end] = ch


class Head:
    """Both ears in a head, with a random pose and elastic deformation."""

    def __init__(self, seed, pathology=1.0, labyrinthectomy=None):
        """``pathology``, ``labyrinthectomy``: see ``Ear``; 1 (and None) give the rates of the test sets."""
        rng = np.random.default_rng(seed)
        self.seed = seed
        u = rng.uniform
        half = u(42, 50)  # vestibule distance from the midline, mm
        hs = u(0.92, 1.08)
        self.layers = []
        add = self.layers.append
        head = Ellipsoid([0, -5, 20], np.array([76, 96, 90]) * hs)
        skull = Ellipsoid([0, -5, 20], np.array([76, 96, 90]) * hs - u(4, 7))
        inner = Ellipsoid([0, -5, 20], np.array([76, 96, 90]) * hs - u(10, 13))
        brain = Ellipsoid([0, -5, 20], np.array([76, 96, 90]) * hs - u(12, 15))
        add((15, head))
        add((16, skull))
        add((17, inner))
        add((9, brain))
        add((21, HalfSpaceCut(skull, [0, 0, -u(22, 30)], [0, -0.3, -1.0])))
        for x in (-1, 1):
            add((8, Ellipsoid([x * u(24, 30), u(34, 42), -u(16, 24)], [u(26, 32), u(22, 28), u(18, 22)])))
        add((17, Ellipsoid([0, 12, -8], [u(18, 24), u(14, 18), u(26, 34)])))
        add((7, Ellipsoid([0, u(20, 24), -10], [u(11, 14), u(11, 14), 40])))
        add((17, Ellipsoid([0, 32, -12], [u(3, 6), u(3, 5), u(4, 7)])))
        add((16, Ellipsoid([0, -6, -12], [u(8, 11), u(6, 9), 22])))
        add((12, Ellipsoid([0, -u(28, 34), u(-4, 4)], [u(9, 14), u(8, 12), u(8, 12)])))
        self.ears = {}
        for side, sign in (("right", -1), ("left", 1)):
            vest = np.array([sign * (half + u(-1.5, 1.5)), u(-1.5, 1.5), u(-1.5, 1.5)])
            ear = Ear(np.random.default_rng(rng.integers(1 << 62)), side, vest, pathology, labyrinthectomy)
            self.ears[side] = ear
            self.layers.extend(ear.layers)
        # pose: small rotation, translation and global scale; elastic field of a few smooth modes
        self.R = rotation(*rng.normal(0, 0.08, 3))
        self.t = rng.uniform(-8, 8, 3)
        self.scale = u(0.94, 1.06)
        k = 4
        self.modes_w = rng.normal(size=(k, 3)) * (2 * np.pi / rng.uniform(40, 90, (k, 1)))
        self.modes_phase = rng.uniform(0, 2 * np.pi, k)
        self.modes_amp = rng.normal(size=(k, 3)) * rng.uniform(0.2, 0.8)

    # head <-> world (scanner LPS) coordinates
    def to_world(self, q):
        return (np.asarray(q, float) * self.scale) @ self.R.T + self.t

    def to_head(self, p):
        q = (np.asarray(p, float) - self.t) @ self.R / self.scale
        return q + np.sin(q @ self.modes_w.T + self.modes_phase) @ self.modes_amp

    def ear_center(self, side):
        """World position of an ear's centre (between vestibule and cochlea), for cropping."""
        return self.to_world(self.ears[side].ear_center)

    def labels_at(self, points, chunk=32768):
        """Tissue label (uint8) at world points (N, 3) in LPS mm.

        Works in small chunks: grid points in a chunk are close together, so most
        solids are skipped by a bounding-box test on the whole chunk.
        """
        points = np.asarray(points, float).reshape(-1, 3)
        out = np.empty(len(points), np.uint8)
        for i in range(0, len(points), chunk):
            out[i:i + chunk] = self._paint(self.to_head(points[i:i + chunk]))
        return out

    def _paint(self, q):
        lab = np.zeros(len(q), np.uint8)
        lo, hi = q.min(0), q.max(0)
        axes = [np.ascontiguousarray(q[:, i]) for i in range(3)]
        for label, solid in self.layers:
            if np.any(solid.hi < lo) or np.any(solid.lo > hi):
                continue
            idx = None   # narrow down axis by axis: cheaper than one (N, 3) box test
            for i in range(3):
                if solid.lo[i] <= lo[i] and solid.hi[i] >= hi[i]:
                    continue
                a = axes[i] if idx is None else axes[i][idx]
                keep = (a >= solid.lo[i]) & (a <= solid.hi[i])
                idx = np.flatnonzero(keep) if idx is None else idx[keep]
            if idx is None:
                lab[solid.contains(q)] = label
            elif idx.size:
                lab[idx[solid.contains(q[idx])]] = label
        return lab

    def ear_target_at(self, points):
        """Localiser target: 1 within the labyrinth's neighbourhood (balls on vestibule and cochlea)."""
        q = self.to_head(points)
        out = np.zeros(len(q), np.uint8)
        for ear in self.ears.values():
            for c, r in ((ear.V, 4.5 * ear.scale), (ear.cochlea_center, 4.0 * ear.scale)):
                out[np.einsum("ij,ij->i", q - c, q - c) <= r * r] = 1
        return out


def grid_points(image):
    """World (LPS) coordinates of every voxel of a SimpleITK image, in array (z, y, x) order."""
    size = image.GetSize()
    D = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
    i, j, k = (np.arange(n, dtype=float) for n in size)
    pts = (np.asarray(image.GetOrigin(), float) + k[:, None, None, None] * D[:, 2]
           + j[None, :, None, None] * D[:, 1] + i[None, None, :, None] * D[:, 0])
    return pts.reshape(-1, 3)
