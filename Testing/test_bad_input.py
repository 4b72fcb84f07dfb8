"""Bad input at the library level: each refusal names the file and the cause; odd but usable
input runs (with warnings where results may disappoint); the input file is never changed."""
import hashlib
import json

import numpy as np
import pytest
import SimpleITK as sitk

from InnerEarSegLib.core.errors import InputError, ModelError
from InnerEarSegLib.core.read import read_image
from InnerEarSegLib.pipeline import SegmentParameters, segment, segment_file

NO_SURFACES = SegmentParameters(surfaces=False)


def write(image, path):
    sitk.WriteImage(image, str(path))
    return path


def scan(size=(40, 40, 40), spacing=(0.5, 0.5, 0.5), value=None):
    rng = np.random.default_rng(0)
    array = rng.normal(100, 10, size[::-1]).astype(np.float32) if value is None \
        else np.full(size[::-1], value, np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    return image


def labels_writer(result, out_dir, name, input_image):
    path = out_dir / f"{name}_labels.nii.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(result.labels, str(path))
    return [path]


def refused(path, *causes):
    with pytest.raises(InputError) as info:
        read_image(path)
    message = str(info.value)
    assert path.name in message, message
    for cause in causes:  # in the cause itself: the path holds the test's name, which may hold the word
        assert cause in info.value.problem, message


def test_missing_file(tmp_path):
    refused(tmp_path / "nowhere.nii.gz", "not found")


def test_not_an_image(tmp_path):
    path = tmp_path / "report.nii.gz"
    path.write_text("this is a text file, not a scan")
    refused(path, "not an image")
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.txt").write_text("x")
    refused(folder, "no DICOM series")


def test_truncated_file(tmp_path):
    path = write(scan(), tmp_path / "cut.nrrd")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    refused(path, "cannot read")


def test_2d_images(tmp_path):
    refused(write(sitk.Image(32, 32, sitk.sitkFloat32), tmp_path / "slice.nrrd"), "2D")
    refused(write(sitk.Image(32, 32, 1, sitk.sitkFloat32), tmp_path / "one_slice.nii.gz"), "2D")


def test_4d_image(tmp_path):
    series = sitk.JoinSeries([scan((8, 8, 8)), scan((8, 8, 8))])
    refused(write(series, tmp_path / "fmri.nii.gz"), "4D")


def test_vector_image(tmp_path):
    rgb = sitk.Image([8, 8, 8], sitk.sitkVectorUInt8, 3)
    refused(write(rgb, tmp_path / "colour.nrrd"), "components")


def test_complex_image(tmp_path):
    path = write(sitk.Image([8, 8, 8], sitk.sitkComplexFloat32), tmp_path / "kspace.mha")
    refused(path, "complex")


@pytest.mark.parametrize("bad, cause", [(None, "constant volume"), (np.nan, "NaN or infinite"),
                                        (np.inf, "NaN or infinite")])
def test_unusable_values(bad, cause, tmp_path, tiny_model):
    image = scan(value=5.0) if bad is None else scan()
    if bad is not None:
        image[3, 4, 5] = float(bad)
    path = write(image, tmp_path / "values.nrrd")
    with pytest.raises(InputError) as info:
        segment_file(path, tmp_path / "out", tiny_model, NO_SURFACES, writer=labels_writer)
    assert "values.nrrd" in str(info.value) and cause in str(info.value)
    assert not (tmp_path / "out").exists()


def test_thick_slices_run_with_a_warning(volume, tiny_model):
    image, truth = volume((60, 60, 8), (0.4, 0.4, 5.0), blobs=[((0, 0, 0), (4.0, 4.0, 6.0))])
    with pytest.warns(UserWarning, match="5 mm"):
        result = segment(image, tiny_model, NO_SURFACES, source="thick.nrrd")
    assert any("thick.nrrd" in w and "5 mm" in w for w in result.warnings)
    assert result.labels.GetSize() == image.GetSize() and result.labels.GetSpacing() == image.GetSpacing()


def test_volume_smaller_than_the_patch_runs(tiny_model):
    image = scan((10, 9, 4), (0.5, 0.5, 0.5))  # 5 x 4.5 x 2 mm, less than one 16 mm patch
    image.SetOrigin((3.0, -2.0, 1.0))
    result = segment(image, tiny_model, NO_SURFACES)  # the real (random) network, end to end
    assert result.labels.GetSize() == image.GetSize() and result.labels.GetOrigin() == image.GetOrigin()
    assert len(result.ears) == 1


def test_field_of_view_without_an_ear_gives_empty_labels_and_a_warning(volume, tiny_model):
    image, _ = volume((60, 60, 40), (1.0, 1.0, 1.0), noise=10.0)

    def nothing_there(net, array, roi):
        out = np.zeros((net.head.out_channels,) + array.shape, np.float32)
        out[0] = 1.0
        return out

    with pytest.warns(UserWarning, match="no inner ear"):
        result = segment(image, tiny_model, NO_SURFACES, predictor=nothing_there)
    assert result.ears == [] and not sitk.GetArrayFromImage(result.labels).any()
    assert result.labels.GetSize() == image.GetSize()
    assert all(r["voxels"] == 0 for r in result.stats)


def test_corrupt_weights(tiny_model_factory):
    card = tiny_model_factory("corrupt")
    weights = card.with_suffix(".pt")
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelError) as info:
        segment(scan(), card, NO_SURFACES)
    assert "corrupt.pt" in str(info.value) and "SHA-256" in str(info.value)


def test_weights_not_matching_the_card(tiny_model_factory):
    card = tiny_model_factory("mismatch")
    text = json.loads(card.read_text())
    text["networks"]["segmenter"]["channels"] = [8, 16]
    card.write_text(json.dumps(text))
    with pytest.raises(ModelError) as info:
        segment(scan(), card, NO_SURFACES)
    assert "mismatch.pt" in str(info.value) and "do not match" in str(info.value)


def test_input_file_is_byte_identical_after_a_run(tmp_path, tiny_model_path, volume):
    image, _ = volume((40, 40, 30), (0.5, 0.5, 0.6), blobs=[((0, 0, 0), (3, 3, 3))])
    path = write(image, tmp_path / "case.nii.gz")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    result = segment_file(path, tmp_path / "out", tiny_model_path, NO_SURFACES, writer=labels_writer)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert (tmp_path / "out" / "case_labels.nii.gz").is_file() and result.source == str(path)


def test_small_crop_where_the_localizer_sees_nothing_is_segmented_as_one_ear(volume, tiny_model):
    # 45 mm: larger than one ear region (so the localizer runs), small enough to be an ear crop
    image, _ = volume((90, 90, 90), (0.5, 0.5, 0.5), noise=10.0)

    def localizer_blind(net, array, roi):
        out = np.zeros((net.head.out_channels,) + array.shape, np.float32)
        out[0] = 1.0
        if net is tiny_model.segmenter:   # the segmenter finds a small cochlea-labelled blob
            c = [s // 2 for s in array.shape]
            out[0, c[0] - 3:c[0] + 3, c[1] - 3:c[1] + 3, c[2] - 3:c[2] + 3] = 0.0
            out[1, c[0] - 3:c[0] + 3, c[1] - 3:c[1] + 3, c[2] - 3:c[2] + 3] = 1.0
        return out

    with pytest.warns(UserWarning, match="crop around one ear"):
        result = segment(image, tiny_model, NO_SURFACES, predictor=localizer_blind)
    assert len(result.ears) == 1
    assert (sitk.GetArrayFromImage(result.labels) == 1).sum() > 0
