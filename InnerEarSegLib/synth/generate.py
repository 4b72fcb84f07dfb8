"""Training samples and whole synthetic scans, deterministic from a seed.

- ``segmenter_sample``: an ear-centred patch on the model grid (LPS-aligned, 0.45 mm),
  as the pipeline would resample it from a scan of random resolution.
- ``localizer_sample``: a coarse (2 mm) field of view with the ear-neighbourhood target.
- ``generate_volume``: a whole scan in acquisition geometry (any spacing, orientation,
  field of view) with its label map on the same grid, for test sets, samples and benchmarks.
"""
from functools import lru_cache

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..core.grid import canonical_reference, center_of, normalise, resample
from .anatomy import Head, grid_points, ground_truth
from .appearance import pick_family, random_acquisition, render
from .shapes import rotation


# Segmenter training sees fluid loss (a lost canal, turn, or vestibule and canals) this many
# times as often as test scans do: the network must learn that no fluid means no label,
# not paint a labyrinth wherever the bone has the shape of one.
TRAINING_PATHOLOGY = 2.5
# ... and a labyrinthectomy (vestibule and canals gone) this many times as often (generator 1.8):
# 24 % of training ears instead of 10 %. With 10 %, half of them drilled cavities (1.7), 750
# steps left the segmenter painting a vestibule and canals into a drilled cavity on CT.
TRAINING_LABYRINTHECTOMY = 6.0
# Share of segmenter patches drawn from temporal-bone protocols (in-plane 0.2-0.6 mm, slices up
# to 0.7 mm, as the test sets); the rest covers 0.2-1.0 mm in plane and slices to 1.2 mm.
# Generator 1.1 drew all from the broad range, where canals are barely resolved and the small
# network spent much of its capacity.
FINE_SHARE = 0.6
# Share of segmenter patches rendered on a random scan grid (spacing, orientation, offset) and
# B-spline resampled onto the model grid, the way the pipeline reads a scan; the others are
# rendered on the model grid with the acquisition's blur. Scan-grid rendering samples tissue
# at the scan's voxel centres without averaging, so a 1 mm canal on 0.7 mm slices shows
# aliasing steps, as in whole synthetic scans (the test sets) and sharp-kernel real scans.
SCAN_GRID_SHARE = 0.3
# Share of training samples (segmenter and localiser) whose surroundings are plain
# (``appearance.plain_context``): the labyrinth must be found by its own shape, as in a phantom.
PLAIN_SHARE = 0.15
SCAN_GRID_MAX_VOXELS = 800_000    # finer scan grids are coarsened: generation must keep up with training


def _tissue_on(head, ref):
    size = ref.GetSize()
    return head.labels_at(grid_points(ref)).reshape(size[::-1])


def soft_labels(head, ref, labels, k=3, classes=4):
    """(classes, z, y, x) float32: the fraction of every voxel of ``ref`` each class fills.

    ``labels`` are the classes at the voxel centres. Only voxels with a different class
    within one voxel can be mixed; each of those is sampled at k^3 evenly spread points
    (a few thousand voxels per ear, so it is cheap). These are the targets a network needs
    to place boundaries finer than its grid: a 1 mm canal is two 0.45 mm voxels wide, and
    a perfect network with one-hot outputs still scores canal DSC 0.85 on the test set
    (``experiments/oracle_ceiling.py``).
    """
    out = np.zeros((classes,) + labels.shape, np.float32)
    np.put_along_axis(out, labels[None].astype(np.int64), 1.0, axis=0)
    mixed = ndimage.maximum_filter(labels, 3) != ndimage.minimum_filter(labels, 3)
    zyx = np.argwhere(mixed)
    if not len(zyx):
        return out
    D = np.array(ref.GetDirection()).reshape(3, 3) * np.array(ref.GetSpacing())
    centres = np.asarray(ref.GetOrigin(), float) + zyx[:, ::-1] @ D.T
    steps = (np.arange(k) + 0.5) / k - 0.5
    counts = np.zeros((classes, len(zyx)), np.float32)
    rows = np.arange(len(zyx))
    for a in steps:
        for b in steps:
            for c in steps:
                counts[ground_truth(head.labels_at(centres + D @ np.array([a, b, c]))), rows] += 1.0
    out[(slice(None),) + tuple(zyx.T)] = counts / k ** 3
    return out


@lru_cache(maxsize=4)
def _ear_tissue(head_seed, size_zyx, spacing):
    """(head, grid, tissue map) around a random ear of head ``head_seed``; cached so two samples share it."""
    rng = np.random.default_rng([head_seed, 1])
    head = Head(int(rng.integers(1 << 62)), TRAINING_PATHOLOGY, TRAINING_LABYRINTHECTOMY)
    side = "left" if rng.uniform() < 0.5 else "right"
    center = head.ear_center(side) + rng.normal(0, 3.0, 3)
    if rng.uniform() < 0.12:   # sometimes elsewhere nearby: look-alikes without a labyrinth
        center = center + rng.uniform(-25, 25, 3)
    ref = canonical_reference(center, list(size_zyx)[::-1], spacing)
    return head, ref, _tissue_on(head, ref)


def scan_grid(center, D, acq, size_of, max_voxels, phase=(0.0, 0.0, 0.0)) -> sitk.Image:
    """An empty scan grid centred on ``center`` (LPS) with direction ``D`` and voxels ``acq`` (x, y, z),
    coarsened in 10 % steps until it has at most ``max_voxels``; ``size_of(acq)`` gives its size,
    ``phase`` shifts it by that many voxels along its own axes."""
    acq = np.asarray(acq, float)
    size = size_of(acq)
    while np.prod(size) > max_voxels:
        acq = acq * 1.1
        size = size_of(acq)
    ref = sitk.Image([int(n) for n in size], sitk.sitkUInt8)
    ref.SetSpacing([float(a) for a in acq])
    ref.SetDirection(np.asarray(D, float).flatten().tolist())
    ref.SetOrigin((np.asarray(center, float) + D @ (np.asarray(phase) * acq) - D @ ((size - 1) * acq / 2.0)).tolist())
    return ref


def scan_grid_render(head, ref, rng, family, margin_mm=1.5):
    """An image (z, y, x) of ``ref``'s region (an identity-direction model grid) rendered on a
    random scan grid that covers it, then B-spline resampled onto ``ref``."""
    acq = random_acquisition(rng, fine=True)[::-1]                  # x, y, z
    D, _ = random_direction(rng)
    extent = np.array(ref.GetSize()) * np.array(ref.GetSpacing()) + 2 * margin_mm
    scan = scan_grid(center_of(ref), D, acq, lambda a: np.ceil(np.abs(D.T) @ extent / a).astype(int) + 1,
                     SCAN_GRID_MAX_VOXELS, phase=rng.uniform(-0.5, 0.5, 3))     # any sub-voxel phase
    image = sitk.GetImageFromArray(render(_tissue_on(head, scan), rng, family, float(np.mean(scan.GetSpacing())),
                                          plain=PLAIN_SHARE))
    image.CopyInformation(scan)
    low = float(np.percentile(sitk.GetArrayViewFromImage(image), 0.5))
    return sitk.GetArrayFromImage(resample(image, ref, "bspline", low))


def segmenter_sample(seed, patch_size=(64, 64, 64), spacing=0.45, family=None, soft=False, family_weights=None):
    """(image float32 (z,y,x) in [0,1], label) around a random ear.

    label: uint8 (z,y,x) 0..3 sampled at voxel centres, or with ``soft`` float32 (4,z,y,x)
    class fractions (``soft_labels``). Seeds 2k and 2k+1 share one anatomy (the slowest
    part) and differ in crop offset (up to 8 voxels) and appearance.
    """
    rng = np.random.default_rng([seed, 11])
    head, big_ref, big = _ear_tissue(seed // 2, tuple(int(p) + 8 for p in patch_size), float(spacing))
    off = rng.integers(0, 9, 3)
    tissue = big[tuple(slice(o, o + p) for o, p in zip(off, patch_size))]
    fam = pick_family(rng, family, family_weights)
    patch_ref = sitk.RegionOfInterest(big_ref, [int(p) for p in patch_size[::-1]], [int(o) for o in off[::-1]])
    if rng.uniform() < SCAN_GRID_SHARE:
        img = scan_grid_render(head, patch_ref, rng, fam)
    else:
        img = render(tissue, rng, fam, spacing, random_acquisition(rng, fine=rng.uniform() < FINE_SHARE),
                     plain=PLAIN_SHARE)
    label = ground_truth(tissue)
    if soft:
        label = soft_labels(head, patch_ref, label)
    image = normalise(img)
    if rng.uniform() < 0.1:    # the scan's field of view ends inside the patch
        axis = int(rng.integers(3))
        cut = int(rng.integers(patch_size[axis] // 4, 3 * patch_size[axis] // 4))
        sl = [slice(None)] * 3
        sl[axis] = slice(cut, None) if rng.uniform() < 0.5 else slice(0, cut)
        image[tuple(sl)] = 0
        if soft:
            label[(slice(None),) + tuple(sl)] = np.array([1, 0, 0, 0], np.float32)[:, None, None, None]
        else:
            label[tuple(sl)] = 0
    return image, label


@lru_cache(maxsize=2)
def _head_tissue(head_seed, spacing):
    """Tissue map and ear target of a whole head at the localiser's spacing (cached)."""
    rng = np.random.default_rng([head_seed, 2])
    head = Head(int(rng.integers(1 << 62)))
    size = np.ceil(np.array([190.0, 230.0, 210.0]) / spacing).astype(int)   # x, y, z
    ref = canonical_reference(head.to_world([0, -5, 10]), size, spacing)
    pts = grid_points(ref)
    return (head.labels_at(pts).reshape(size[::-1]), head.ear_target_at(pts).reshape(size[::-1]))


def localizer_sample(seed, shape=(48, 80, 80), spacing=2.0, family=None, family_weights=None):
    """(image float32 (z,y,x) in [0,1], target uint8 0/1) for a random field of view at 2 mm.

    Sixteen consecutive seeds share one head (cached: the whole head costs seconds) and differ in crop, field of view and
    appearance. The crop is centred near the ears' level, offset by up to ~40 mm.
    """
    rng = np.random.default_rng([seed, 2])
    tissue_all, target_all = _head_tissue(seed // 16, float(spacing))
    full = np.array(tissue_all.shape)
    shape = np.array(shape)
    # head frame: ears near (x 0, y -5+5, z 10-10) of the grid centre; jitter the crop around it
    centre = full / 2 + np.array([-10.0 / spacing, 0, 0]) + rng.uniform(-40, 40, 3) / spacing
    start = np.clip(np.round(centre - shape / 2).astype(int), 0, np.maximum(full - shape, 0))
    sl = tuple(slice(a, a + n) for a, n in zip(start, shape))
    tissue = _fit(tissue_all[sl], shape, 0)
    target = _fit(target_all[sl], shape, 0)
    fam = pick_family(rng, family, family_weights)
    img = render(tissue, rng, fam, spacing, plain=PLAIN_SHARE)
    inside = np.ones(tuple(shape), bool)
    if rng.uniform() < 0.6:    # limited field of view: a box, possibly a thin slab or one ear
        lo = [int(rng.integers(0, n // 2)) for n in shape]
        hi = [int(rng.integers(l + max(6, n // 5), n + 1)) for l, n in zip(lo, shape)]
        inside[:] = False
        inside[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    image = np.where(inside, normalise(img, mask=inside), 0).astype(np.float32)
    return image, (target * inside).astype(np.uint8)


def _fit(a, shape, fill):
    pad = [(0, int(s) - n) for s, n in zip(shape, a.shape)]
    return np.pad(a, pad, constant_values=fill) if any(p[1] for p in pad) else a


def random_direction(rng, kind=None):
    """Direction cosines: axial, coronal, sagittal or oblique, with random axis flips."""
    kind = kind or str(rng.choice(["axial", "coronal", "sagittal", "oblique"], p=[0.4, 0.2, 0.1, 0.3]))
    perm = {"axial": [0, 1, 2], "coronal": [0, 2, 1], "sagittal": [1, 2, 0], "oblique": [0, 1, 2]}[kind]
    D = np.eye(3)[:, perm]
    D = D * np.where(rng.uniform(size=3) < 0.3, -1, 1)
    if kind == "oblique":
        D = rotation(*rng.uniform(-0.5, 0.5, 3)) @ D
    return D, kind


def _volume_stream(seed):
    """The random stream of ``generate_volume(seed)`` and the head drawn first from it."""
    rng = np.random.default_rng([seed, 3])
    return rng, Head(int(rng.integers(1 << 62)))


def volume_head(seed) -> Head:
    """The anatomy of ``generate_volume(seed)`` (e.g. a test scan's, from its ``cases.json`` seed)."""
    return _volume_stream(seed)[1]


def generate_volume(seed, family=None, spacing_xyz=None, fov=None, direction=None, max_voxels=12_000_000):
    """A synthetic scan and its labels on the same grid; returns (image, labels, info).

    fov: "ear" (one ear, ~40 mm), "slab" (both ears, 40-60 slices) or "head" (whole head).
    Intensities: HU for CT (int16), arbitrary scale for MR and CBCT (float32).
    """
    rng, head = _volume_stream(seed)
    fam = pick_family(rng, family)
    acq = np.asarray(spacing_xyz, float) if spacing_xyz is not None else random_acquisition(rng, fine=True)[::-1]
    fov = fov or str(rng.choice(["ear", "slab", "head"], p=[0.4, 0.45, 0.15]))
    D, kind = (np.asarray(direction, float), "given") if direction is not None else random_direction(rng)
    side = "left" if rng.uniform() < 0.5 else "right"
    mid = 0.5 * (head.ear_center("left") + head.ear_center("right"))
    if fov == "ear":
        center, extent = head.ear_center(side) + rng.uniform(-4, 4, 3), np.array([40.0, 40.0, 40.0])
    elif fov == "slab":
        center, extent = mid + rng.uniform(-6, 6, 3), np.array([rng.uniform(130, 170), rng.uniform(90, 130),
                                                                  rng.uniform(25, 40)])
    else:
        center, extent = head.to_world([0, -5, 10]), np.array([170.0, 210.0, 190.0])
    # extent is given in patient axes (x, y, z); express it along the image axes
    extent_img = np.abs(D.T) @ extent
    ref = scan_grid(center, D, acq, lambda a: np.maximum(np.round(extent_img / a).astype(int), 8), max_voxels)
    acq, size = np.array(ref.GetSpacing()), ref.GetSize()
    tissue = _tissue_on(head, ref)
    img = render(tissue, rng, fam, float(np.mean(acq)), acquisition=None)
    if fam == "ct":
        arr = np.clip(np.round(img), -1024, 3071).astype(np.int16)
    else:
        arr = (img - img.min()) * rng.uniform(200, 3000) / (np.ptp(img) + 1e-6)
        arr = arr.astype(np.float32)
    image = sitk.GetImageFromArray(arr)
    image.CopyInformation(ref)
    labels = sitk.GetImageFromArray(ground_truth(tissue))
    labels.CopyInformation(ref)
    info = {"seed": int(seed), "family": fam, "fov": fov, "orientation": kind,
            "spacing": [float(a) for a in acq], "size": [int(s) for s in size]}
    return image, labels, info
