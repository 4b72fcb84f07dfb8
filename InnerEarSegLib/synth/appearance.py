"""Image synthesis in the manner of SynthSeg: random intensities per tissue, then physics.

Contrast families: T2/CISS-like MRI (fluid bright, bone and air dark; the CSF of the
internal auditory canal and cistern as bright as the labyrinth), CT in HU (otic capsule
1500-2500, fluid 0-50, air -1000), CBCT (uncalibrated, noisier, streaks) and random
contrasts. Then a smooth bias field, blur and a random acquisition resolution, and
noise (Rician for MR, Gaussian for CT).
"""
import numpy as np
from scipy import ndimage

from .anatomy import FLUID, NUM_TISSUES

FAMILIES = ("mr", "ct", "cbct", "random")
FAMILY_WEIGHTS = (0.4, 0.25, 0.15, 0.2)


def pick_family(rng, family=None, weights=None):
    """``family``, else one drawn with ``weights`` (shares of FAMILIES; default FAMILY_WEIGHTS).
    The draw takes one number from ``rng`` whatever the weights, so they change nothing else."""
    if family:
        return family
    if weights is None:
        return str(rng.choice(FAMILIES, p=FAMILY_WEIGHTS))
    p = np.asarray(weights, float)
    return str(rng.choice(FAMILIES, p=p / p.sum()))


def tissue_means(rng, family):
    """Mean intensity and within-tissue spread for every tissue label."""
    u = rng.uniform
    m = np.zeros(NUM_TISSUES)
    sd = np.zeros(NUM_TISSUES)
    if family == "mr":
        fluid = u(0.7, 1.0)
        m[:] = u(0.15, 0.4)                          # soft tissue default
        m[[0, 11, 12]] = u(0.0, 0.04)                # air
        m[[10, 16, 18]] = u(0.0, 0.08)               # bone, ossified labyrinth
        m[[1, 2, 3]] = fluid * u(0.9, 1.0, 3)
        m[[4, 6, 17, 20]] = fluid * u(0.85, 1.1, 4)  # look-alike CSF, just as bright
        m[5] = u(0.1, 0.35)                          # nerves: dark lines
        m[[7, 8, 9]] = u(0.25, 0.5) + u(-0.05, 0.05, 3)
        m[[13, 14]] = u(0.0, 0.1, 2) if u() < 0.7 else u(0.5, 0.9, 2)   # flow void or bright
        m[15] = u(0.3, 0.8)
        m[19] = u(0.3, 0.55)
        m[21] = u(0.15, 0.45)
        sd[:] = u(0.01, 0.05)
    elif family in ("ct", "cbct"):
        m[:] = u(20, 60)
        m[[0, 11, 12]] = -1000
        m[10] = u(1500, 2500)
        m[16] = u(1000, 1800)
        m[18] = u(600, 2000)
        m[list(FLUID)] = u(0, 20) + u(-5, 5, len(FLUID))
        m[[1, 2, 3]] = u(0, 50)
        m[[7, 8, 9]] = u(28, 42)
        m[5] = u(25, 45)
        m[[13, 14]] = u(35, 60, 2)
        m[15] = u(-120, 40)
        m[19] = u(40, 70)
        sd[:] = u(3, 15)
        sd[[10, 16]] = u(50, 200)
        if family == "cbct":                         # uncalibrated gain and offset
            gain, offset = u(0.3, 2.0), u(-500, 1500)
            m, sd = m * gain + offset, sd * abs(gain)
    else:
        m[:] = u(0, 1, NUM_TISSUES)
        m[[1, 2, 3]] = u(0, 1) * u(0.9, 1.1, 3)
        if u() < 0.5:   # look-alikes share the labyrinth's intensity
            m[[4, 6, 20]] = m[1] * u(0.9, 1.1, 3)
        sd[:] = u(0.01, 0.06)
    return m, sd


def plain_context(rng, m, sd):
    """Means and spreads with the surroundings made plain: every non-labyrinth tissue (or a
    random half of them) takes the intensity of one tissue that stands out from the fluid.

    Why: with its neighbours always drawn (IAC, capsule, air cells) the network learned to find
    the labyrinth by its context. A labyrinth cast in a uniform block (a phantom) or surroundings
    unlike ours then gave almost no labels (``release/make_phantoms.py``); these samples make it
    read the labyrinth's own shape and contrast.
    """
    lab = m[[1, 2, 3]].mean()
    others = np.setdiff1d(np.arange(NUM_TISSUES), [1, 2, 3])
    donors = [t for t in others if abs(m[t] - lab) > 0.2 * np.ptp(m)]
    if not donors:
        return m, sd
    donor = int(rng.choice(donors))
    merged = others if rng.uniform() < 0.5 else others[rng.uniform(size=len(others)) < 0.5]
    m, sd = m.copy(), sd.copy()
    m[merged], sd[merged] = m[donor], sd[donor]
    return m, sd


def smooth_field(rng, shape, spacing, scale_mm, amplitude):
    """Smooth random field: coarse Gaussian noise upsampled (cheap), zero mean, given amplitude."""
    coarse = np.maximum(2, (np.array(shape) * spacing / scale_mm).astype(int) + 2)
    f = rng.normal(size=coarse)
    f = ndimage.zoom(f, np.array(shape) / coarse, order=1, mode="nearest")[tuple(slice(0, s) for s in shape)]
    return amplitude * f / (np.abs(f).max() + 1e-6)


def render(tissue, rng, family, spacing, acquisition=None, plain=0.0):
    """Synthesise an image (float32, same grid) from a tissue map on an isotropic grid.

    ``plain``: the probability of plain surroundings (``plain_context``); 0 draws nothing,
    so whole scans stay as they were.

    ``acquisition`` is the simulated voxel size (mm) along (z, y, x); the image is blurred
    and resampled to it and back, as a scan of that resolution resampled onto this grid.
    """
    m, sd = tissue_means(rng, family)
    if plain and rng.uniform() < plain:
        m, sd = plain_context(rng, m, sd)
    shape = tissue.shape
    img = m[tissue] + sd[tissue] * rng.normal(size=shape)
    # texture: smooth multiplicative variation inside tissues
    span = np.ptp(m) + 1e-6
    img += smooth_field(rng, shape, spacing, 6.0, rng.uniform(0.0, 0.05) * span)
    if family in ("mr", "random"):
        img *= np.exp(smooth_field(rng, shape, spacing, 60.0, rng.uniform(0, 0.35)))
    elif family == "cbct":
        img += smooth_field(rng, shape, spacing, 40.0, rng.uniform(0, 0.1) * span)
        img += streaks(rng, shape, rng.uniform(0, 0.08) * span)
    acq = np.asarray(acquisition if acquisition is not None else [spacing] * 3, float)
    sigma = 0.42 * np.sqrt(np.maximum(acq ** 2 - spacing ** 2, 0)) / spacing + rng.uniform(0.3, 0.6)
    img = ndimage.gaussian_filter(img, sigma)
    factor = spacing / acq
    if np.any(factor < 0.95):
        low = ndimage.zoom(img, factor, order=1)
        img = ndimage.zoom(low, np.array(shape) / np.array(low.shape), order=1)
        img = fit_shape(img, shape)
    if family == "mr":
        s = rng.uniform(0.005, 0.05) * span
        img = np.sqrt((img + s * rng.normal(size=shape)) ** 2 + (s * rng.normal(size=shape)) ** 2)
    else:
        s = (rng.uniform(5, 40) if family == "ct" else rng.uniform(0.01, 0.08) * span)
        img = img + s * rng.normal(size=shape)
    return img.astype(np.float32)


def streaks(rng, shape, amplitude):
    """CBCT-like streaks: a few thin planar waves in random directions."""
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    out = np.zeros(shape)
    for _ in range(int(rng.integers(1, 4))):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        out += np.cos((zz * d[0] + yy * d[1] + xx * d[2]) * rng.uniform(0.3, 1.2) + rng.uniform(0, 6.3))
    return amplitude * out / 3


def fit_shape(a, shape):
    """Crop or edge-pad an array to ``shape`` (zoom can be off by one voxel)."""
    a = a[tuple(slice(0, s) for s in shape)]
    pad = [(0, s - n) for s, n in zip(shape, a.shape)]
    return np.pad(a, pad, mode="edge") if any(p[1] for p in pad) else a


def random_acquisition(rng, fine=False):
    """A random voxel size (z, y, x) in mm: in-plane 0.2-0.8 (to 1.0), slices to 1.2, any slice axis."""
    inplane = rng.uniform(0.2, 0.6) if fine else rng.uniform(0.2, 1.0)
    slice_ = inplane if rng.uniform() < 0.3 else rng.uniform(inplane, 0.7 if fine else 1.2)
    acq = np.full(3, inplane)
    acq[rng.choice(3, p=[0.6, 0.25, 0.15])] = slice_
    return acq
