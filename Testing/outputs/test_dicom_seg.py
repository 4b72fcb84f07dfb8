"""DICOM Segmentation output (``S.seg.dcm``) for DICOM-series inputs, read back with highdicom/pydicom:
each segment's frames land on the right source instances, the masks match the labels, and the
codes are those of the .seg.nrrd."""
import warnings

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import generate_uid

from InnerEarSegLib.core import labels as L
from InnerEarSegLib.core.errors import InputError
from InnerEarSegLib.core.read import read_image
from InnerEarSegLib.core.result import SegmentationResult
from InnerEarSegLib.outputs.write import write_outputs

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def write_ct_series(image: sitk.Image, folder, tilt_mm_per_slice=0.0, study_uid=None):
    """``image`` (Int16, LPS) as a CT Image Storage series of single-frame files with the
    attributes a DICOM Segmentation needs from its sources; files are named in reverse slice order,
    so that the slice order must come from the positions. ``tilt_mm_per_slice`` shifts each slice
    along the column direction, as a gantry tilt does. Returns {SOPInstanceUID: slice index}."""
    folder.mkdir(parents=True, exist_ok=True)
    d = np.array(image.GetDirection()).reshape(3, 3)
    array = sitk.GetArrayFromImage(image)
    study_uid, series_uid, frame_uid = study_uid or generate_uid(), generate_uid(), generate_uid()
    uids = {}
    for k in range(image.GetDepth()):
        ds = pydicom.Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, generate_uid()
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Ear", "IES-1", "19700101", "O"
        ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime, ds.StudyID = study_uid, "20260101", "120000", "1"
        ds.ReferringPhysicianName, ds.AccessionNumber = "", "A1"
        ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = "CT", series_uid, 3
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_uid, ""
        ds.Manufacturer, ds.InstanceNumber = "Test", k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        position = np.array(image.TransformIndexToPhysicalPoint((0, 0, k))) + k * tilt_mm_per_slice * d[:, 1]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*d[:, 0], *d[:, 1])]
        ds.PixelSpacing = [f"{image.GetSpacing()[1]:.6f}", f"{image.GetSpacing()[0]:.6f}"]  # row, column
        ds.SliceThickness = f"{image.GetSpacing()[2]:.6f}"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = array.shape[1], array.shape[2]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.KVP = "0", "1", "120"
        ds.PixelData = array[k].astype(np.int16).tobytes()
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = CT_IMAGE_STORAGE, ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        pydicom.dcmwrite(folder / f"img{image.GetDepth() - k:04d}.dcm", ds, enforce_file_format=True)
        uids[ds.SOPInstanceUID] = k
    return uids


def ct_scan(rotation, size=(20, 18, 10)):
    array = np.random.default_rng(3).integers(-1000, 2000, size[::-1]).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.4, 0.5, 0.8))
    image.SetOrigin((-30.0, 12.5, 40.0))
    image.SetDirection(rotation(10, 0, 25).ravel().tolist())
    return image


def fake_result(image: sitk.Image, source, sides_split=True):
    """Labels on ``image``'s grid: right cochlea and canals on some slices, a left vestibule."""
    nz, ny, nx = sitk.GetArrayViewFromImage(image).shape
    labels = np.zeros((nz, ny, nx), np.uint8)
    sides = np.zeros_like(labels)
    labels[2:5, 3:8, 2:6], sides[2:5, 3:8, 2:6] = L.COCHLEA, 1
    labels[6, 10:12, 3:5], sides[6, 10:12, 3:5] = L.CANALS, 1
    labels[3:8, 4:9, 12:17], sides[3:8, 4:9, 12:17] = L.VESTIBULE, 2
    if not sides_split:
        sides[:] = 0
    as_image = []
    for a in (labels, sides):
        out = sitk.GetImageFromArray(a)
        out.CopyInformation(image)
        as_image.append(out)
    return SegmentationResult(labels=as_image[0], sides=as_image[1], source=str(source),
                              model_name="InnerEarSeg-synthetic 0.1.0", modality="ct"), labels, sides


def source_uid(frame) -> str:
    return frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID


def test_dicom_input_gets_a_seg_whose_frames_land_on_their_source_slices(tmp_path, rotation):
    import highdicom as hd
    image = ct_scan(rotation)
    folder = tmp_path / "patient1"
    slice_of = write_ct_series(image, folder)
    read = read_image(folder)
    result, labels, sides = fake_result(read, folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outputs = write_outputs(result, tmp_path / "out", "patient1", read)
    path = tmp_path / "out" / "patient1" / "patient1.seg.dcm"
    assert path in outputs and path.is_file()

    seg = hd.seg.segread(path)
    source = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True)
    assert seg.StudyInstanceUID == source.StudyInstanceUID and seg.PatientID == source.PatientID
    assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert {s.SeriesInstanceUID for s in seg.ReferencedSeriesSequence} == {source.SeriesInstanceUID}

    expected = [(side, s) for side in L.SIDES for s in L.STRUCTURES]
    assert [d.SegmentLabel for d in seg.SegmentSequence] == [L.segment_name(s.key, side) for side, s in expected]
    for d, (side, s) in zip(seg.SegmentSequence, expected):
        assert tuple(d.SegmentedPropertyTypeCodeSequence[0][t].value for t in
                     ("CodingSchemeDesignator", "CodeValue", "CodeMeaning")) == s.code
        assert d.SegmentedPropertyCategoryCodeSequence[0].CodeValue == L.ANATOMIC_CATEGORY[1]
        region = d.AnatomicRegionSequence[0]
        assert region.CodeValue == L.INNER_EAR[1]
        assert region.AnatomicRegionModifierSequence[0].CodeValue == L.SIDE_CODES[side][1]
        algorithm = d.SegmentationAlgorithmIdentificationSequence[0]
        assert algorithm.AlgorithmName == "InnerEarSeg" and algorithm.AlgorithmVersion
        assert "InnerEarSeg-synthetic 0.1.0" in algorithm.AlgorithmParameters
    assert "InnerEarSeg" in {c.CodingSchemeDesignator for c in seg.CodingSchemeIdentificationSequence}

    frames = seg.pixel_array  # (frames, rows, columns)
    seen = set()
    for f, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        number = frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        side, structure = expected[number - 1]
        k = slice_of[source_uid(frame)]
        want = (labels[k] == structure.value) & (sides[k] == (1 if side == "right" else 2))
        np.testing.assert_array_equal(frames[f].astype(bool), want)
        position = frame.PlanePositionSequence[0].ImagePositionPatient
        np.testing.assert_allclose([float(v) for v in position], image.TransformIndexToPhysicalPoint((0, 0, k)),
                                   atol=1e-4)
        seen.add((number, k))
    # every non-empty (segment, slice) pair has its frame
    for number, (side, structure) in enumerate(expected, 1):
        for k in range(labels.shape[0]):
            if ((labels[k] == structure.value) & (sides[k] == (1 if side == "right" else 2))).any():
                assert (number, k) in seen


def test_sides_not_split_give_segments_without_laterality(tmp_path, rotation):
    import highdicom as hd
    image = ct_scan(rotation)
    folder = tmp_path / "p2"
    write_ct_series(image, folder)
    read = read_image(folder)
    result, labels, _ = fake_result(read, folder, sides_split=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_outputs(result, tmp_path / "out", "p2", read)
    seg = hd.seg.segread(tmp_path / "out" / "p2" / "p2.seg.dcm")
    assert [d.SegmentLabel for d in seg.SegmentSequence] == [s.name for s in L.STRUCTURES]
    assert not any("AnatomicRegionModifierSequence" in d.AnatomicRegionSequence[0] for d in seg.SegmentSequence)
    mask = seg.get_volume(combine_segments=True, relabel=False).array  # labels in (slice, row, column)
    assert mask.sum() > 0


def test_non_dicom_input_gets_no_dicom_seg(tmp_path, rotation):
    image = ct_scan(rotation)
    path = tmp_path / "scan.nrrd"
    sitk.WriteImage(image, str(path))
    result, _, _ = fake_result(image, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outputs = write_outputs(result, tmp_path / "out", "scan", image)
    assert not any(p.name.endswith(".seg.dcm") for p in outputs)
    assert not (tmp_path / "out" / "scan" / "scan.seg.dcm").exists()


def test_a_gantry_tilted_series_is_refused_naming_the_tilt(tmp_path, rotation):
    image = ct_scan(rotation)
    folder = tmp_path / "tilted"
    write_ct_series(image, folder, tilt_mm_per_slice=0.2)  # 14 degrees at 0.8 mm slices
    with pytest.raises(InputError, match="gantry tilt") as caught:
        read_image(folder)
    assert "tilted" in str(caught.value) and "degrees" in str(caught.value)


def test_a_series_that_cannot_carry_a_seg_gets_the_other_outputs_and_a_warning(tmp_path, rotation):
    import json

    from InnerEarSegLib import cohort
    from test_read import write_dicom_series
    image = ct_scan(rotation)
    folder = tmp_path / "odd"
    write_dicom_series(image, folder, "1.2.826.0.1.3680043.2.1125.1.99")  # a new study UID in every file
    read = read_image(folder)
    result, _, _ = fake_result(read, folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outputs = write_outputs(result, tmp_path / "out", "odd", read)
    names = {p.name for p in outputs}
    assert {"odd.seg.nrrd", "odd_labels.nii.gz", "odd_stats.json"} <= names and "odd.seg.dcm" not in names
    stored = json.loads((tmp_path / "out" / "odd" / "odd_stats.json").read_text())["warnings"]
    assert any(w.startswith("no DICOM SEG") and "cannot carry" in w for w in stored)
    assert cohort.is_complete(tmp_path / "out", folder)  # resume does not redo it for ever
