"""The cochlea cut from a whole-labyrinth label by geometry alone.

Real references often label the labyrinth as one structure (the real CT ears of Wimmer et al.,
Data in Brief 2019, doi:10.5281/zenodo.3355272, CC BY 4.0). Training and validation split them
into the cochlea and the rest (vestibule with the canals) by this rule, which uses no landmark,
so it applies to any whole-labyrinth label. On those 11 ears its cochlea gives the modiolar
axis, round window and A-value of the authors' landmarks (docs/planning.md,
``release/planning_validation.py real``).
"""
import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..outputs import planning as P

COCHLEA_RADIUS_MM = 6.5        # around the modiolar axis: the basal turn is about 9-10 mm across
BELOW_BASAL_TURN_MM = 1.2      # below the basal-turn plane (the hook)
ABOVE_APEX_MM = 0.5
COIL_FROM_VESTIBULE_MM = 3.5   # the coil's densest lumen lies farther than this from the vestibule


def voxel_points(mask_zyx: np.ndarray, image: sitk.Image) -> np.ndarray:
    """LPS centres of the voxels in ``mask_zyx`` of ``image``'s grid."""
    k, j, i = np.nonzero(mask_zyx)
    M = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
    return np.c_[i, j, k] @ M.T + np.array(image.GetOrigin())


def cochlea_mask(mask_zyx: np.ndarray, image: sitk.Image) -> np.ndarray:
    """The cochlea (bool, z y x) within the whole-labyrinth ``mask_zyx`` on ``image``'s grid.

    1. vestibule: the largest inscribed ball's centre V and radius rv (the vestibule is the widest
       chamber), grown back from the core where the lumen is at least 0.8 rv deep, plus 0.8 rv + 0.5 mm;
    2. cochlea seed: the densest lumen (Gaussian 1 mm) more than 3.5 mm from V (the coil);
    3. axis: ``planning.cochlea_axis`` of the lumen within 5 mm of the seed and outside V's ball;
    4. cochlea: lumen outside the vestibule, within 6.5 mm of that axis, from 1.2 mm below its
       basal-turn plane to 0.5 mm above the seed region's top, and beyond V's inscribed ball
       toward the axis (beyond distance rv from V along V->axis), more than max(2.5, 1.7 rv) from V.
    """
    mask_zyx = np.asarray(mask_zyx, bool)
    sp = np.array(image.GetSpacing())[::-1]
    edt = ndi.distance_transform_edt(mask_zyx, sampling=sp)
    pts, depth = voxel_points(mask_zyx, image), edt[mask_zyx]
    v, rv = pts[depth.argmax()], float(depth.max())
    core, _ = ndi.label(edt >= 0.8 * rv)
    core = core == core[np.unravel_index(edt.argmax(), edt.shape)]
    vestibule = (ndi.distance_transform_edt(~core, sampling=sp) <= 0.8 * rv + 0.5)[mask_zyx]
    blur = ndi.gaussian_filter(mask_zyx.astype(float), 1.0 / sp)[mask_zyx]
    dv = np.linalg.norm(pts - v, axis=1)
    far = dv > COIL_FROM_VESTIBULE_MM
    seed = pts[far][blur[far].argmax()]
    near = (np.linalg.norm(pts - seed, axis=1) < 5) & (dv > rv + 1.0)
    c, axis, _ = P.cochlea_axis(pts[near])
    h, r, _ = P.cylindrical(pts, c, axis, None)
    toward = P.unit_vector(c - v)
    keep = (~vestibule & (r <= COCHLEA_RADIUS_MM) & (h >= -BELOW_BASAL_TURN_MM)
            & (h <= h[near].max() + ABOVE_APEX_MM)
            & ((pts - v) @ toward >= rv) & (dv >= max(2.5, 1.7 * rv)))
    out = np.zeros(mask_zyx.shape, bool)
    out[mask_zyx] = keep
    return out


def split_labels(label: sitk.Image) -> sitk.Image:
    """A whole-labyrinth label (non-zero = labyrinth) as 0 background, 1 cochlea, 2 the rest
    (vestibule with the canals, not split): the ``split`` label kind of training."""
    mask = sitk.GetArrayFromImage(label) != 0
    out = np.where(mask, 2, 0).astype(np.uint8)
    out[cochlea_mask(mask, label)] = 1
    image = sitk.GetImageFromArray(out)
    image.CopyInformation(label)
    return image
