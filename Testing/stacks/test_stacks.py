"""Image stacks (InnerEarSegLib/stacks): TIFF/PNG reading and writing with the pixel size, a
few-step training on a small generated stack (the loss falls), segment-stack and evaluate-stack
end to end on a multi-page TIFF, the classical baseline, model-card checks and bad input."""
import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from InnerEarSegLib import cli
from InnerEarSegLib.core.errors import InputError, ModelError
from InnerEarSegLib.stacks import baseline, card, data, io, metrics, train


def blobs(seed, slices=3, size=64, radius=(4, 8)):
    """Dark discs on a bright noisy background (as organelles in EM): (image uint8, labels 0/1)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    lab = np.zeros((slices, size, size), np.uint8)
    for z in range(slices):
        for _ in range(5):
            cy, cx = rng.integers(8, size - 8, 2)
            r = rng.integers(*radius)
            lab[z][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    img = 180.0 - 100.0 * lab + rng.normal(0, 15, lab.shape)
    return np.clip(img, 0, 255).astype(np.uint8), lab


def slice_folders(root, cases=4):
    """images/<case><z>.tif and masks/<case><z>.png (0/255), one file per section, as EM sets come."""
    (root / "images").mkdir()
    (root / "masks").mkdir()
    for c in range(cases):
        img, lab = blobs(c)
        for z in range(img.shape[0]):
            tifffile.imwrite(root / "images" / f"{c}{z}.tif", img[z])
            Image.fromarray(lab[z] * 255).save(root / "masks" / f"{c}{z}.png")
    return root / "images", root / "masks"


def test_train_segment_evaluate_end_to_end(tmp_path, capsys):
    images, masks = slice_folders(tmp_path)
    card_path = tmp_path / "model" / "blobs.json"
    status = cli.main(["train-stack", "--images", str(images), "--labels", str(masks), "--label-names", "blob",
                       "--val", "30", "31", "32", "--patch-size", "32", "32", "--channels", "8", "16",
                       "--steps", "60", "--batch", "4", "--val-every", "30", "--pixel-size", "0.01", "0.01", "0.05",
                       "--seed", "1", "-o", str(card_path)])
    assert status == 0
    losses = [float(line.split(",")[1]) for line in (tmp_path / "model" / "history.csv").read_text().splitlines()[1:]]
    assert len(losses) == 60
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])
    model = card.load_model(card_path)
    assert [lab["name"] for lab in model.labels] == ["blob"]
    assert model.spatial_dims == 2  # 3 sections 5x thicker than the pixels
    assert model.card["validation"]["labels"]["blob"]["dice"] > 0

    new_img, new_lab = blobs(9)
    tifffile.imwrite(tmp_path / "new.tif", new_img, photometric="minisblack")  # no pixel size
    tifffile.imwrite(tmp_path / "new_ref.tif", new_lab, photometric="minisblack")
    out = tmp_path / "seg"
    assert cli.main(["segment-stack", str(tmp_path / "new.tif"), "--model", str(card_path), "-o", str(out),
                     "--pixel-size", "0.01", "0.01", "0.05"]) == 0
    folder = out / "new"
    labels = io.read_stack(folder / "new_labels.tif")
    assert labels.array.shape == new_img.shape
    assert labels.pixel_size_um == pytest.approx((0.05, 0.01, 0.01))
    nifti = io.read_stack(folder / "new_labels.nii.gz")
    assert nifti.pixel_size_um == pytest.approx((0.05, 0.01, 0.01))
    np.testing.assert_array_equal(nifti.array, labels.array)
    image = io.read_stack(folder / "new_image.nii.gz")  # the input, for Slicer, on the same grid
    np.testing.assert_array_equal(image.array, new_img)
    assert image.pixel_size_um == pytest.approx((0.05, 0.01, 0.01))
    import slicerio
    seg = slicerio.read_segmentation(str(folder / "new.seg.nrrd"))
    assert [s["name"] for s in seg["segments"]] == ["blob"]
    stats = json.loads((folder / "new_stats.json").read_text())["stats"][0]
    assert stats["pixels"] == int((labels.array == 1).sum())
    assert stats["objects"] >= 1 and stats["mean_object_pixels"] > 0
    assert (folder / "new_blob.stl").stat().st_size > 84

    assert cli.main(["evaluate-stack", "--pred", str(folder / "new_labels.tif"), "--ref", str(tmp_path / "new_ref.tif"),
                     "-o", str(tmp_path / "ev")]) == 0
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    c = metrics.counts(labels.array, new_lab, [1])[1]
    assert summary["pooled"]["blob"]["dice"] == pytest.approx(2 * c["tp"] / (2 * c["tp"] + c["fp"] + c["fn"]))
    assert summary["pooled"]["blob"]["dice"] > 0.5  # 60 steps learn most of these discs


def test_three_d_training_and_inference_run(tmp_path):
    img, lab = blobs(3, slices=16, size=32, radius=(3, 5))
    case = data.Case("c", img, lab, (1.0, 1.0, 1.0))
    assert train.choose_dims("auto", [case], patch_depth=16) == 3
    labels = data.label_list(["blob"])
    result = train.train([case], [case], labels, tmp_path / "m3.json", dims=3, patch=(16, 16, 16), channels=(4, 8),
                         steps=4, batch=2, val_every=4, log=lambda s: None)
    model = card.load_model(result["card"])
    assert model.spatial_dims == 3
    from InnerEarSegLib.stacks.infer import predict_labels
    assert predict_labels(model, img, (1.0, 1.0, 1.0)).shape == img.shape


def test_choose_dims_from_spacing():
    img = np.zeros((32, 8, 8))
    assert train.choose_dims("auto", [data.Case("a", img, img, (0.05, 0.0046, 0.0046))]) == 2
    assert train.choose_dims("auto", [data.Case("a", img, img, (0.3, 0.3, 0.3))]) == 3
    assert train.choose_dims("2", [data.Case("a", img, img, (0.3, 0.3, 0.3))]) == 2


@pytest.mark.parametrize("method", ["otsu", "region-growing", "watershed"])
def test_baseline_finds_dark_discs(tmp_path, method):
    img, lab = blobs(5)
    tifffile.imwrite(tmp_path / "s.tif", img, photometric="minisblack")
    assert cli.main(["baseline", str(tmp_path / "s.tif"), "--method", method, "--polarity", "dark",
                     "--label-name", "blob", "-o", str(tmp_path / "bl"), "--no-surfaces"]) == 0
    pred = io.read_stack(tmp_path / "bl" / "s" / "s_labels.tif").array
    scores = metrics.scores(metrics.counts(pred, lab, [1])[1])
    assert scores["dice"] > 0.9
    bright, _ = baseline.baseline(img, method, "bright")  # the wrong polarity takes the background
    assert metrics.scores(metrics.counts(bright, lab, [1])[1])["dice"] < 0.5


def test_threshold_method_needs_a_level_and_uses_it(tmp_path):
    img, lab = blobs(6, slices=1)
    mask, _ = baseline.baseline(img, "threshold", "dark", threshold=130, sigma=0)
    np.testing.assert_array_equal(mask, (img < 130).astype(np.uint8))
    tifffile.imwrite(tmp_path / "s.tif", img, photometric="minisblack")
    assert cli.main(["baseline", str(tmp_path / "s.tif"), "--method", "threshold", "-o", str(tmp_path / "o")]) == 1


def test_watershed_splits_touching_discs():
    yy, xx = np.mgrid[:40, :60]
    mask = ((yy - 20) ** 2 + (xx - 20) ** 2 <= 100) | ((yy - 20) ** 2 + (xx - 37) ** 2 <= 100)
    from scipy import ndimage
    assert ndimage.label(mask)[1] == 1
    assert baseline.split_touching(mask).max() == 2


def test_metrics_by_hand():
    pred = np.array([[0, 1, 1, 2]])
    ref = np.array([[0, 1, 0, 2]])
    c = metrics.counts(pred, ref, [1, 2])
    assert c[1] == {"tp": 1, "fp": 1, "fn": 0}
    assert metrics.scores(c[1]) == {"dice": pytest.approx(2 / 3), "iou": pytest.approx(1 / 2)}
    pooled = metrics.pooled([c, metrics.counts(ref, ref, [1, 2])])
    assert pooled[1]["tp"] == 2 and pooled[1]["dice"] == pytest.approx(4 / 5)


def test_tiff_pixel_size_round_trip(tmp_path):
    arr = np.arange(2 * 5 * 7, dtype=np.uint8).reshape(2, 5, 7)
    io.write_tiff(tmp_path / "a.tif", arr, (0.05, 0.0046, 0.0046))
    back = io.read_stack(tmp_path / "a.tif")
    np.testing.assert_array_equal(back.array, arr)
    assert back.pixel_size_um == pytest.approx((0.05, 0.0046, 0.0046))
    assert io.read_stack(tmp_path / "a.tif", [0.1, 0.2]).pixel_size_um == (0.1, 0.2, 0.1)


def test_bad_input_names_the_file_and_the_cause(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00 not really a tiff")
    with pytest.raises(InputError, match="broken.tif.*cannot read"):
        io.read_stack(bad)
    folder = tmp_path / "slices"
    folder.mkdir()
    tifffile.imwrite(folder / "0.tif", np.zeros((4, 4), np.uint8))
    tifffile.imwrite(folder / "1.tif", np.zeros((5, 4), np.uint8))
    with pytest.raises(InputError, match="slices.*different sizes"):
        io.read_stack(folder)
    with pytest.raises(InputError, match="m.png.*label values \\[7\\]"):
        io.to_label_values(np.array([[0, 7]]), [1, 2], tmp_path / "m.png")
    with pytest.raises(InputError, match="pixel-size"):
        io.pixel_size_from_arguments([0.1, -1])
    images, masks = slice_folders(tmp_path, cases=1)
    (masks / "02.png").unlink()
    with pytest.raises(InputError, match="no label stack for the case.*02"):
        data.pair_cases(images, masks)


def test_model_card_refuses_changed_weights(tmp_path):
    arch = card.architecture(2, 2, (4, 8))
    path = card.save_model(tmp_path / "m.json", card.build_network(arch),
                           {"architecture": arch, "labels": data.label_list(["x"]), "patch_size": [16, 16]})
    assert card.is_stack_card(path) and card.load_model(path).labels[0]["name"] == "x"
    with open(tmp_path / "m.pt", "ab") as f:
        f.write(b"0")
    with pytest.raises(ModelError, match="m.pt.*SHA-256"):
        card.load_model(path)


def test_dataset_json(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps({"channel_names": {"0": "EM"}, "file_ending": ".tif",
                                                       "labels": {"background": 0, "nucleus": 1, "cell body": 2}}))
    desc = data.read_dataset_json(tmp_path / "dataset.json")
    assert [(lab["name"], lab["value"]) for lab in desc["labels"]] == [("nucleus", 1), ("cell body", 2)]
    assert desc["channel_names"] == ["EM"] and desc["file_ending"] == ".tif"
    (tmp_path / "bad.json").write_text(json.dumps({"labels": {"a": "x"}}))
    with pytest.raises(InputError, match="bad.json.*integers"):
        data.read_dataset_json(tmp_path / "bad.json")


def test_learning_rate_reaches_zero_by_steps_or_time_limit():
    assert train.cosine(train.progress(0, 100, 0.0, None)) == 1.0
    assert train.cosine(train.progress(100, 100, 0.0, None)) == pytest.approx(0.0)
    assert train.progress(10, 100, 30.0, 1.0) == pytest.approx(0.5)  # half the minute gone, a tenth of the steps
    assert train.progress(10, 100, 90.0, 1.0) == 1.0


def test_mirror_averaging_is_mirror_equivariant():
    import torch
    from InnerEarSegLib.stacks.infer import flipped_probabilities
    torch.manual_seed(0)
    net = card.build_network(card.architecture(2, 2, (4, 8))).eval()
    image = torch.rand(1, 1, 32, 32)
    plain = flipped_probabilities(net, image, (16, 16))
    mirrored = flipped_probabilities(net, torch.flip(image, (3,)), (16, 16), tta=True)
    averaged = flipped_probabilities(net, image, (16, 16), tta=True)
    assert torch.allclose(torch.flip(mirrored, (3,)), averaged, atol=1e-5)  # the average is mirror-equivariant
    assert not torch.allclose(plain, averaged, atol=1e-5)


def test_segment_command_takes_a_stack_model(tmp_path):
    arch = card.architecture(2, 3, (4, 8))
    path = card.save_model(tmp_path / "m.json", card.build_network(arch),
                           {"architecture": arch, "labels": data.label_list(["nucleus", "cell body"]),
                            "patch_size": [16, 16], "zoom": [1.0, 1.0, 1.0], "pixel_size_um": [1.0, 0.5, 0.5]})
    img, _ = blobs(2, slices=2, size=24)
    io.write_tiff(tmp_path / "cells.tif", img, (1.0, 0.5, 0.5))
    assert cli.main(["segment", str(tmp_path / "cells.tif"), "--model", str(path), "-o", str(tmp_path / "o"),
                     "--no-tta"]) == 0
    stats = json.loads((tmp_path / "o" / "cells" / "cells_stats.json").read_text())
    assert [r["label"] for r in stats["stats"]] == ["nucleus", "cell body"]
    assert stats["pixel_size_um"] == pytest.approx([1.0, 0.5, 0.5])
    assert sum(r["pixels"] for r in stats["stats"]) <= img.size


def test_slicer_panel_lists_a_stack_cards_labels(tmp_path):
    pytest.importorskip("slicer")
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "InnerEarSeg"))
    from InnerEarSegSlicerLib import logic
    arch = card.architecture(2, 3, (4, 8))
    path = card.save_model(tmp_path / "cells.json", card.build_network(arch),
                           {"name": "cells", "architecture": arch, "labels": data.label_list(["nucleus", "cell body"]),
                            "training": {"cases": ["a", "b"], "steps": 7},
                            "validation": {"labels": {"nucleus": {"dice": 0.5, "iou": 0.33}}}})
    text = logic.model_card_summary(path)
    assert "labels: 1 nucleus, 2 cell body" in text
    assert "2 stacks, 7 steps" in text and "nucleus 0.500" in text


def test_basicunet_architecture_round_trips(tmp_path):
    arch = card.architecture(2, 2, (4, 8, 16, 32), kind="basicunet")
    assert arch["features"] == [4, 4, 8, 16, 32, 4]
    path = card.save_model(tmp_path / "b.json", card.build_network(arch),
                           {"architecture": arch, "labels": data.label_list(["x"]), "patch_size": [32, 32]})
    model = card.load_model(path)
    from InnerEarSegLib.stacks.infer import predict_labels
    assert predict_labels(model, np.random.default_rng(0).random((1, 40, 40))).shape == (1, 40, 40)
    with pytest.raises(ValueError, match="4 or 5"):
        card.architecture(2, 2, (4, 8), kind="basicunet")


def test_keep_last_ignores_the_validation_score(tmp_path):
    img, lab = blobs(4, slices=2, size=32)
    case = data.Case("c", img, lab, None)
    kept = {}
    for keep in ("best", "last"):
        result = train.train([case], [case], data.label_list(["blob"]), tmp_path / keep / "m.json", dims=2,
                             patch=(32, 32), channels=(4, 8), steps=6, batch=2, val_every=2, log=lambda s: None,
                             keep=keep)
        kept[keep] = card.load_model(result["card"]).card["training"]["steps"]
        scores = [v["mean_dice"] for v in result["validation"]]
        if keep == "best":
            assert kept[keep] == result["validation"][int(np.argmax(scores))]["step"]
    assert kept["last"] == 6


def test_tiff_pixel_size_in_centimetres_and_inches(tmp_path):
    arr = np.zeros((6, 8), np.uint8)
    tifffile.imwrite(tmp_path / "cm.tif", arr, resolution=(2500.0, 2000.0), resolutionunit="CENTIMETER")
    assert io.read_stack(tmp_path / "cm.tif").pixel_size_um == pytest.approx((4.0, 5.0, 4.0))
    tifffile.imwrite(tmp_path / "dpi.tif", arr, resolution=(72.0, 72.0), resolutionunit="INCH")
    assert io.read_stack(tmp_path / "dpi.tif").pixel_size_um is None


def test_segment_stack_goes_on_after_a_bad_input(tmp_path, capsys):
    arch = card.architecture(2, 2, (4, 8))
    model = card.save_model(tmp_path / "m.json", card.build_network(arch),
                            {"architecture": arch, "labels": data.label_list(["x"]), "patch_size": [16, 16],
                             "zoom": [1.0, 1.0, 1.0], "pixel_size_um": None})
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    tifffile.imwrite(tmp_path / "good.tif", np.zeros((1, 20, 20), np.uint8))
    status = cli.main(["segment-stack", str(tmp_path / "bad.tif"), str(tmp_path / "good.tif"), "--model", str(model),
                       "-o", str(tmp_path / "o")])
    assert status == 1
    assert "bad.tif: cannot read this image" in capsys.readouterr().err
    assert (tmp_path / "o" / "good" / "good_labels.tif").is_file() and not (tmp_path / "o" / "bad").exists()


def test_nnunet_layout_with_two_labels_of_any_values(tmp_path):
    """imagesTr/S_0000.nii.gz + labelsTr/S.nii.gz + dataset.json, label values 2 and 5."""
    import SimpleITK as sitk
    for folder in ("imagesTr", "labelsTr"):
        (tmp_path / folder).mkdir()
    for i in range(3):
        img, lab = blobs(20 + i, slices=2, size=32, radius=(3, 6))
        lab = lab * 2
        lab[:, :4, :4] = 5  # a second structure in a corner
        img[:, :4, :4] = 255
        image = sitk.GetImageFromArray(img)
        image.SetSpacing((0.0005, 0.0005, 0.005))  # mm: 0.5 um pixels, 5 um sections
        sitk.WriteImage(image, str(tmp_path / "imagesTr" / f"case{i}_0000.nii.gz"))
        labels = sitk.GetImageFromArray(lab)
        labels.CopyInformation(image)
        sitk.WriteImage(labels, str(tmp_path / "labelsTr" / f"case{i}.nii.gz"))
    (tmp_path / "dataset.json").write_text(json.dumps({"channel_names": {"0": "brightfield"}, "file_ending": ".nii.gz",
                                                       "labels": {"background": 0, "nucleus": 2, "corner": 5}}))
    card_path = tmp_path / "m" / "cells.json"
    assert cli.main(["train-stack", "--images", str(tmp_path / "imagesTr"), "--labels", str(tmp_path / "labelsTr"),
                     "--dataset", str(tmp_path / "dataset.json"), "--val", "case2", "--patch-size", "32", "32",
                     "--channels", "4", "8", "--steps", "4", "--val-every", "4", "-o", str(card_path)]) == 0
    model = card.load_model(card_path)
    assert [(lab["name"], lab["value"]) for lab in model.labels] == [("nucleus", 2), ("corner", 5)]
    assert model.card["pixel_size_um"] == pytest.approx([5.0, 0.5, 0.5])
    assert model.card["channel_names"] == ["brightfield"] and model.spatial_dims == 2
    assert set(model.card["validation"]["labels"]) == {"nucleus", "corner"}
    from InnerEarSegLib.stacks.infer import predict_labels
    assert set(np.unique(predict_labels(model, img, (5.0, 0.5, 0.5)))) <= {0, 2, 5}
