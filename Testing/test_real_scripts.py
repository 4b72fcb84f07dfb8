"""The real-data scripts: turned and scaled variants keep the anatomy on its label; the clinical-like copy;
the MRI reference region."""
import numpy as np
import SimpleITK as sitk
from conftest import load_script

real_eval = load_script("real_eval")
real_ct = load_script("real_ct")
real_mri = load_script("real_mri")


def oblique_image(value_at=(3, 5, 7)):
    image = sitk.Image([10, 12, 14], sitk.sitkInt16)
    image.SetSpacing((0.2, 0.3, 0.4))
    image.SetOrigin((5.0, -3.0, 20.0))
    image.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))
    image.SetPixel(value_at, 100)
    return image


def test_turned_rotates_about_the_centre_and_keeps_the_voxels():
    image = oblique_image()
    out = real_eval.turned(image, "Z", 90.0)
    assert np.array_equal(sitk.GetArrayFromImage(out), sitk.GetArrayFromImage(image))
    centre = np.asarray(real_eval.grid.center_of(image))
    assert np.allclose(real_eval.grid.center_of(out), centre)
    before = np.subtract(image.TransformIndexToPhysicalPoint((3, 5, 7)), centre)
    after = np.subtract(out.TransformIndexToPhysicalPoint((3, 5, 7)), centre)
    assert np.allclose(after, [-before[1], before[0], before[2]], atol=1e-6)   # +90 degrees about z


def test_scaled_grows_the_anatomy_about_the_centre():
    image = oblique_image()
    out = real_eval.scaled(image, 1.25)
    centre = np.asarray(real_eval.grid.center_of(image))
    assert np.allclose(real_eval.grid.center_of(out), centre)
    before = np.subtract(image.TransformIndexToPhysicalPoint((3, 5, 7)), centre)
    after = np.subtract(out.TransformIndexToPhysicalPoint((3, 5, 7)), centre)
    assert np.allclose(after, 1.25 * before)


def test_clinical_like_copy_has_the_clinical_grid_and_the_same_place():
    image = sitk.GetImageFromArray(np.full((50, 60, 60), -1000, np.int16))
    image.SetSpacing((0.156, 0.156, 0.2))
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    out = real_ct.clinical_like(image)
    assert np.allclose(out.GetSpacing(), real_ct.CLINICAL_SPACING)
    assert np.allclose(real_eval.grid.center_of(out), real_eval.grid.center_of(image), atol=0.3)
    assert out.GetPixelID() == sitk.sitkInt16 and sitk.GetArrayViewFromImage(out).max() == -1000


def test_mri_reference_region_leaves_out_the_internal_auditory_canal():
    region = real_mri.region_mask((100, 150, 200))
    x, y, z = real_mri.REGION["fundus"]
    d = np.asarray(real_mri.REGION["iac_direction"], float)
    d /= np.linalg.norm(d)
    inside = [np.round(np.array([x, y, z]) + t * d).astype(int) for t in (3, 8, 20)]
    assert not any(region[k, j, i] for i, j, k in inside)              # along the canal: out
    assert region[z, y, x - 10] and region[40, 90, 100]                 # lateral of the fundus, the cochlea: in
