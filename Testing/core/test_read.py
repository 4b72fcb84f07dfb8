"""Reading every supported format with its geometry intact; case names; expanding input folders."""
import numpy as np
import pytest
import SimpleITK as sitk

from InnerEarSegLib.core.read import case_name, list_inputs, read_image


def sample(rotation, size=(12, 10, 8)):
    array = np.random.default_rng(1).integers(0, 1000, size[::-1]).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.3, 0.4, 0.9))
    image.SetOrigin((-12.5, 30.25, 7.0))
    image.SetDirection(rotation(20, 0, 10).ravel().tolist())
    return image


def write_dicom_series(image, folder, series_uid, number=1):
    """Write ``image`` as a DICOM series of 2D slices, with positions and orientation per slice."""
    folder.mkdir(parents=True, exist_ok=True)
    d = image.GetDirection()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        s = image[:, :, k]
        tags = {"0008|0060": "MR", "0020|000e": series_uid, "0020|0011": str(number), "0020|0013": str(k + 1),
                "0020|0037": "\\".join(f"{v:.6f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
                "0020|0032": "\\".join(f"{v:.6f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))),
                "0018|0050": str(image.GetSpacing()[2]), "0008|0008": "ORIGINAL\\PRIMARY\\AXIAL"}
        for tag, value in tags.items():
            s.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"s{number}_{k:03d}.dcm"))
        writer.Execute(s)


def same_geometry(a, b, tol=1e-5):
    return (a.GetSize() == b.GetSize() and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tol)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tol)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=tol))


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"])
def test_files_read_back_with_their_geometry(suffix, tmp_path, rotation):
    image = sample(rotation)
    path = tmp_path / f"scan{suffix}"
    sitk.WriteImage(image, str(path))
    out = read_image(path)
    assert same_geometry(out, image)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(out), sitk.GetArrayFromImage(image))


def test_dicom_folder_reads_its_largest_series(tmp_path, rotation):
    image = sample(rotation)
    write_dicom_series(image, tmp_path / "case7", "1.2.826.0.1.3680043.2.1125.1.1", 1)
    write_dicom_series(sample(rotation, (12, 10, 3)), tmp_path / "case7", "1.2.826.0.1.3680043.2.1125.1.2", 2)
    out = read_image(tmp_path / "case7")
    assert same_geometry(out, image, tol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(out), sitk.GetArrayFromImage(image))
    assert case_name(tmp_path / "case7") == "case7"


def test_case_names(tmp_path):
    assert case_name("a/b/patient1.nii.gz") == "patient1"
    assert case_name("scan.v2.NII.GZ") == "scan.v2"
    assert case_name("x.nrrd") == "x" and case_name("x.nhdr") == "x" and case_name("y.mha") == "y"
    assert case_name("z.dcm") == "z"


def test_list_inputs_expands_folders(tmp_path, rotation):
    image = sample(rotation)
    for name in ("b.nii.gz", "a.mha"):
        sitk.WriteImage(image, str(tmp_path / name))
    (tmp_path / "notes.txt").write_text("not a scan")
    write_dicom_series(image, tmp_path / "dicom1", "1.2.826.0.1.3680043.2.1125.1.3")
    (tmp_path / "empty").mkdir()
    found = list_inputs([tmp_path])
    assert found == [tmp_path / "a.mha", tmp_path / "b.nii.gz", tmp_path / "dicom1"]
    # a DICOM folder is one input; files and missing paths are passed on for the batch to report
    assert list_inputs([tmp_path / "dicom1", tmp_path / "notes.txt", tmp_path / "gone.nii"]) == [
        tmp_path / "dicom1", tmp_path / "notes.txt", tmp_path / "gone.nii"]
    assert list_inputs([tmp_path / "empty"]) == [tmp_path / "empty"]
