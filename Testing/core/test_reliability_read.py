"""Corrupt or unsuitable inputs are refused with the true cause, naming the file (issue 24, items
3, 4, 6, 7, 9 and 11): truncated NIfTI, NaN/Inf in any format, fewer than 4 slices, sheared or
degenerate directions, zero spacing, absurd sizes, missing data files, DICOM gaps and ambiguous
series folders, and a case name for ``.``."""
import os

import numpy as np
import pytest
import SimpleITK as sitk

from InnerEarSegLib.core.errors import InputError
from InnerEarSegLib.core.read import case_name, read_image
from InnerEarSegLib.inference.preprocess import check_values
from test_read import write_dicom_series


def scan(size=(20, 20, 20), spacing=(0.5, 0.5, 0.5), dtype=np.float32):
    array = np.random.default_rng(0).normal(100, 10, size[::-1]).astype(dtype)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    return image


def write(image, path):
    sitk.WriteImage(image, str(path))
    return path


def refused(path, *causes, absent=()):
    with pytest.raises(InputError) as info:
        read_image(path)
    message, problem = str(info.value), info.value.problem  # the cause, without the path's own words
    assert str(path) in message, message
    for cause in causes:
        assert cause in problem, message
    for wrong in absent:
        assert wrong not in problem, message
    return message


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_truncated_nifti_is_refused(suffix, tmp_path):
    path = write(scan(), tmp_path / f"cut{suffix}")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    refused(path, "truncated")


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_voxels_are_refused_in_every_format(suffix, bad, tmp_path):
    image = scan()
    image[3, 4, 5] = float(bad)
    refused(write(image, tmp_path / f"values{suffix}"), "NaN or infinite")


def test_all_nan_is_not_called_constant(tmp_path):
    image = sitk.GetImageFromArray(np.full((20, 20, 20), np.nan, np.float32))
    refused(write(image, tmp_path / "allnan.nii.gz"), "NaN or infinite", absent=("constant",))


@pytest.mark.parametrize("size", [(20, 20, 2), (3, 20, 20), (20, 3, 20)])
def test_fewer_than_four_slices_on_an_axis_is_refused(size, tmp_path):
    refused(write(scan(size), tmp_path / "thin.nrrd"), "at least 4")
    with pytest.raises(InputError, match="at least 4"):
        check_values(scan(size), "thin")  # in-memory images (Slicer, the Python API) too


def nhdr_with(tmp_path, name, old, new):
    """A detached NRRD header whose line ``old`` is replaced by ``new`` (data file kept)."""
    write(scan(), tmp_path / "base.nhdr")
    text = (tmp_path / "base.nhdr").read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new))
    return path


DIRECTIONS = "space directions: (0.5,0,0) (0,0.5,0) (0,0,0.5)"


def test_sheared_directions_are_refused(tmp_path):
    path = nhdr_with(tmp_path, "shear.nhdr", DIRECTIONS, "space directions: (0.55,0,0) (0.3,0.55,0) (0,0,0.7)")
    refused(path, "shear")


def test_zero_spacing_is_named_not_called_truncation(tmp_path):
    path = nhdr_with(tmp_path, "flat.nhdr", DIRECTIONS, "space directions: (0.5,0,0) (0,0,0) (0,0,0.5)")
    refused(path, "spacing", absent=("truncated",))


def test_degenerate_directions_are_named_not_called_truncation(tmp_path):
    path = nhdr_with(tmp_path, "degenerate.nhdr", DIRECTIONS, "space directions: (0.5,0,0) (0.5,0,0) (0,0,0.5)")
    refused(path, "degenerate", absent=("truncated",))


def test_absurd_header_size_is_named_not_called_truncation(tmp_path):
    path = nhdr_with(tmp_path, "huge.nhdr", "sizes: 20 20 20", "sizes: 20000 20000 20000")
    refused(path, "header", absent=("truncated",))


def test_missing_detached_data_file_is_named(tmp_path):
    path = nhdr_with(tmp_path, "nodata.nhdr", "data file: base.raw", "data file: gone.raw")
    refused(path, "gone.raw", "missing", absent=("not an image",))
    write(scan(), tmp_path / "m.mhd")
    mhd = tmp_path / "nodata.mhd"
    mhd.write_text((tmp_path / "m.mhd").read_text().replace("ElementDataFile = m.raw", "ElementDataFile = gone.raw"))
    refused(mhd, "gone.raw", "missing", absent=("not an image",))


def test_complex_metaimage_is_not_called_rgb_only(tmp_path):
    path = write(sitk.Image([8, 8, 8], sitk.sitkComplexFloat32), tmp_path / "kspace.mha")
    refused(path, "complex")  # MetaImage stores it as two float channels


DICOM_UID = "1.2.826.0.1.3680043.2.1125.1.{}"


def dicom_scan(depth=12):
    image = scan((16, 16, depth), (0.5, 0.5, 0.7), dtype=np.int16)
    return image


def test_dicom_series_with_a_missing_slice_is_refused(tmp_path):
    folder = tmp_path / "gap"
    write_dicom_series(dicom_scan(), folder, DICOM_UID.format(11))
    os.remove(folder / "s1_005.dcm")
    refused(folder, "missing slice")


def test_two_volume_series_in_one_folder_are_refused_naming_both(tmp_path):
    folder = tmp_path / "two"
    write_dicom_series(dicom_scan(12), folder, DICOM_UID.format(21), 1)
    write_dicom_series(dicom_scan(8), folder, DICOM_UID.format(22), 2)
    refused(folder, DICOM_UID.format(21), DICOM_UID.format(22))


def test_case_name_of_the_current_folder(tmp_path, monkeypatch):
    folder = tmp_path / "patient7"
    folder.mkdir()
    monkeypatch.chdir(folder)
    assert case_name(".") == "patient7"
    assert case_name(folder / ".") == "patient7"


def test_a_field_of_view_smaller_than_an_ear_carries_a_warning(tiny_model):
    from InnerEarSegLib.pipeline import SegmentParameters, segment

    def everything_is_cochlea(net, array, roi):
        out = np.zeros((net.head.out_channels,) + array.shape, np.float32)
        out[1] = 1.0
        return out

    noise = scan((16, 16, 16), (0.5, 0.5, 0.5))  # an 8 mm cube of noise
    with pytest.warns(UserWarning, match="field of view"):
        result = segment(noise, tiny_model, SegmentParameters(surfaces=False, roi="center"),
                         predictor=everything_is_cochlea, source="cube.nrrd")
    assert any("cube.nrrd" in w and "smaller than one inner ear" in w for w in result.warnings)


def test_the_thinnest_volume_accepted_gives_identical_results_on_every_run(tiny_model):
    from InnerEarSegLib.pipeline import SegmentParameters, segment
    image = scan((40, 36, 4), (0.5, 0.5, 2.0))  # 4 slices: the fewest accepted

    def bright_is_cochlea(net, array, roi):  # labels follow the resampled intensities exactly
        out = np.zeros((net.head.out_channels,) + array.shape, np.float32)
        out[1] = array > np.percentile(array, 90)
        out[0] = 1 - out[1]
        return out

    runs = [segment(image, tiny_model, SegmentParameters(surfaces=False, roi="center"), predictor=bright_is_cochlea)
            for _ in range(3)]
    first, *others = (sitk.GetArrayFromImage(r.labels) for r in runs)
    assert first.any() and all(np.array_equal(first, other) for other in others)


def test_a_real_single_ear_crop_is_not_called_too_small():
    """The real temporal-bone CT crops hold whole labyrinths in 13.2-24 mm a side: no warning."""
    import warnings as w
    from InnerEarSegLib.inference import preprocess
    crop = scan((120, 110, 85), (0.156, 0.156, 0.156))   # 13.3 x 17.2 x 18.7 mm
    with w.catch_warnings():
        w.simplefilter("error")
        preprocess.check_values(crop, "crop.nii.gz")
