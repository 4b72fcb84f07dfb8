"""Training: loss, data folders, patch stream, train/resume/fine-tune runs on tiny networks."""
import argparse
import functools

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from torch.utils.data import DataLoader

from InnerEarSegLib.core.errors import InputError, ModelError
from InnerEarSegLib.model.model_card import default_card, load_model, save_model
from InnerEarSegLib.model.network import AttentionPyramidUNet
from InnerEarSegLib.training import datasets
from InnerEarSegLib.training import train as training

PATCH = (16, 16, 16)


def fake_sample(seed, patch_size=PATCH, spacing=0.45, binary=False):
    """Stand-in for the synthetic generator: a noisy ball split into three labelled parts."""
    rng = np.random.default_rng(seed)
    centre = np.array(patch_size) / 2 + rng.integers(-2, 3, 3)
    zyx = np.indices(patch_size).transpose(1, 2, 3, 0)
    r = np.linalg.norm(zyx - centre, axis=-1)
    label = np.zeros(patch_size, np.uint8)
    label[r < 5] = 2
    label[(r < 5) & (zyx[..., 2] < centre[2] - 1)] = 1
    label[(r >= 5) & (r < 6.5)] = 3
    if binary:
        label = (label > 0).astype(np.uint8)
    image = 0.2 + 0.2 * label + rng.normal(0, 0.05, patch_size)
    return np.clip(image, 0, 1).astype(np.float32), label


def fixed_sample(seed, **kw):
    return fake_sample(0, **kw)


@pytest.fixture
def fake_generator(monkeypatch):
    """Replace the synthetic generator; returns a switch to make every sample the same."""
    mode = {"fixed": False}

    def sampler(stage, patch_size, spacing, soft=False, contrast_weights=None):
        mode.setdefault("weights", []).append(contrast_weights)
        mode.setdefault("spacings", []).append(spacing)
        fn = fixed_sample if mode["fixed"] else fake_sample
        return functools.partial(fn, patch_size=tuple(patch_size), binary=stage == "localizer")
    monkeypatch.setattr(datasets, "synthetic_sampler", sampler)
    return mode


def tiny(tmp_path, name="model", **kw):
    base = dict(out=str(tmp_path / f"{name}.json"), patch_size=PATCH, channels=(4, 8), epochs=1, steps_per_epoch=3,
                val_samples=2, workers=0, amp=False, progress_bar=False, lr=1e-3)
    base.update(kw)
    return training.TrainConfig(**base)


# --- loss -----------------------------------------------------------------------------------------

def hard_logits(pred: np.ndarray, classes=4):
    """Logits that softmax to (almost exactly) the one-hot of ``pred``."""
    return torch.nn.functional.one_hot(torch.as_tensor(pred).long(), classes).permute(3, 0, 1, 2)[None].float() * 40


def test_tversky_weighs_false_negatives_07_and_false_positives_03():
    loss = training.make_loss("tversky")
    # A: 8 cochlea voxels, 4 found -> TP 4, FN 4.  B: 4 cochlea voxels, 8 predicted -> TP 4, FP 4.
    truth_a, pred_a = np.zeros((2, 2, 4), np.int64), np.zeros((2, 2, 4), np.int64)
    truth_a[:, :, :2] = 1
    pred_a[:, :, :1] = 1
    loss_fn_only = loss(hard_logits(pred_a), torch.as_tensor(truth_a)[None, None]).item()
    loss_fp_only = loss(hard_logits(truth_a), torch.as_tensor(pred_a)[None, None]).item()
    assert loss_fn_only > loss_fp_only
    # mean over the 3 foreground classes; the two absent classes score a perfect 0
    assert loss_fn_only == pytest.approx((1 - 4 / (4 + 0.7 * 4)) / 3, abs=1e-4)
    assert loss_fp_only == pytest.approx((1 - 4 / (4 + 0.3 * 4)) / 3, abs=1e-4)


@pytest.mark.parametrize("name", training.LOSSES)
def test_every_loss_is_zero_for_a_perfect_prediction_and_high_for_a_wrong_one(name):
    label = np.random.default_rng(1).integers(0, 4, (4, 4, 4))
    target = torch.as_tensor(label)[None, None]
    loss = training.make_loss(name)
    assert loss(hard_logits(label), target).item() < 1e-3
    assert loss(hard_logits((label + 1) % 4), target).item() > 0.5


def test_fraction_targets_are_best_met_by_those_fractions():
    """With soft targets the loss prefers the fractions themselves to the nearest one-hot guess."""
    rng = np.random.default_rng(2)
    fractions = torch.as_tensor(rng.dirichlet(np.ones(4) * 0.5, (4, 4, 4))).permute(3, 0, 1, 2)[None].float()
    exact = torch.log(fractions.clamp_min(1e-6))
    rounded = hard_logits(fractions[0].argmax(0).numpy())
    for name in ("ce", "dicece", "tverskyce"):
        loss = training.make_loss(name)
        assert loss(exact, fractions).item() < loss(rounded, fractions).item(), name
    labels = fractions.argmax(1, keepdim=True)
    assert training.make_loss("dice")(rounded, labels).item() == pytest.approx(
        training.make_loss("dice")(rounded, torch.nn.functional.one_hot(labels[:, 0], 4).permute(0, 4, 1, 2, 3)).item())


# --- user data ------------------------------------------------------------------------------------

def write(array, path, spacing=(0.5, 0.5, 0.5), direction=None):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    if direction is not None:
        image.SetDirection(direction)
    sitk.WriteImage(image, str(path))


def labelled_pair(shape=(20, 20, 20)):
    label = np.zeros(shape, np.uint8)
    label[6:14, 6:14, 4:10] = 1
    label[6:14, 6:14, 10:16] = 2
    image = (label * 100.0 + 10.0).astype(np.float32)
    return image, label


def test_both_folder_layouts_are_found(tmp_path):
    image, label = labelled_pair()
    (tmp_path / "nn" / "imagesTr").mkdir(parents=True)
    (tmp_path / "nn" / "labelsTr").mkdir()
    write(image, tmp_path / "nn" / "imagesTr" / "ear1_0000.nii.gz")
    write(label, tmp_path / "nn" / "labelsTr" / "ear1.nii.gz")
    (tmp_path / "flat").mkdir()
    write(image, tmp_path / "flat" / "ear2_image.nrrd")
    write(label, tmp_path / "flat" / "ear2_label.mha")
    write(image, tmp_path / "flat" / "notes_other.nrrd")  # neither an image nor a label by name
    cases = datasets.find_cases([tmp_path / "nn", tmp_path / "flat"])
    assert [(c.name, c.image.name, c.label.name) for c in cases] == [
        ("ear1", "ear1_0000.nii.gz", "ear1.nii.gz"), ("ear2", "ear2_image.nrrd", "ear2_label.mha")]


def test_missing_label_names_the_image(tmp_path):
    image, _ = labelled_pair()
    write(image, tmp_path / "ear3_image.nii.gz")
    with pytest.raises(InputError, match="ear3_image.nii.gz.*no label found"):
        datasets.find_cases([tmp_path])
    (tmp_path / "imagesTr").mkdir()
    write(image, tmp_path / "imagesTr" / "ear4_0000.nii.gz")
    with pytest.raises(InputError, match="ear4_0000.nii.gz.*labelsTr/ear4"):
        datasets.find_cases([tmp_path])


def test_folder_without_pairs_is_an_error(tmp_path):
    with pytest.raises(InputError, match="no training pairs found"):
        datasets.find_cases([tmp_path])
    with pytest.raises(InputError, match="not found"):
        datasets.find_cases([tmp_path / "absent"])


def test_mismatched_or_bad_label_names_the_label(tmp_path):
    image, label = labelled_pair()
    write(image, tmp_path / "a_image.nii.gz")
    write(label[:-2], tmp_path / "a_label.nii.gz")
    with pytest.raises(InputError, match="a_label.nii.gz.*size"):
        datasets.read_pair(datasets.find_cases([tmp_path])[0])
    write(label, tmp_path / "a_label.nii.gz", spacing=(0.5, 0.5, 1.0))
    with pytest.raises(InputError, match="a_label.nii.gz.*spacing"):
        datasets.read_pair(datasets.find_cases([tmp_path])[0])
    write(label * 3, tmp_path / "a_label.nii.gz")
    with pytest.raises(InputError, match="a_label.nii.gz.*0..3"):
        datasets.read_pair(datasets.find_cases([tmp_path])[0])


def test_user_volume_is_resampled_in_physical_space(tmp_path):
    """A flipped, anisotropic scan: labelled volumes in mm3 survive the move to the model grid."""
    image, label = labelled_pair((20, 24, 24))
    flipped = (-1.0, 0, 0, 0, 1.0, 0, 0, 0, -1.0)
    write(image, tmp_path / "b_image.nii.gz", spacing=(0.4, 0.5, 0.9), direction=flipped)
    write(label, tmp_path / "b_label.nii.gz", spacing=(0.4, 0.5, 0.9), direction=flipped)
    case = datasets.find_cases([tmp_path])[0]
    volume = datasets.load_volume(case, "segmenter", 0.3, PATCH)
    for value in (1, 2):
        expected = (label == value).sum() * 0.4 * 0.5 * 0.9
        assert (volume.label == value).sum() * 0.3 ** 3 == pytest.approx(expected, rel=0.1)
    # the x axis was flipped: label 1 (low array x) lies at larger LPS x than label 2
    x = np.arange(volume.label.shape[2])
    assert x[np.any(volume.label == 1, axis=(0, 1))].mean() > x[np.any(volume.label == 2, axis=(0, 1))].mean()
    assert volume.image[volume.label == 2].mean() > volume.image[volume.label == 0].mean() + 100
    assert min(volume.label.shape) >= 16  # a patch of margin around the labels
    localizer = datasets.load_volume(case, "localizer", 2.0, PATCH)
    assert set(np.unique(localizer.label)) <= {0, 1} and localizer.label.any()


def test_patches_are_mostly_near_labels_and_normalised():
    label = np.zeros((64, 64, 64), np.uint8)
    label[30:33, 30:33, 30:33] = 3
    volume = datasets.Volume("v", label * 50.0 + np.random.default_rng(0).normal(0, 1, label.shape), label,
                             np.flatnonzero(label))
    rng = np.random.default_rng(0)
    patches = [datasets.sample_patch(volume, (8, 8, 8), rng) for _ in range(300)]
    near = np.mean([p[1].any() for p in patches])
    assert 0.7 < near < 0.9
    assert all(p[0].min() >= 0 and p[0].max() <= 1 for p in patches)


def test_crop_pads_outside_the_volume():
    array = np.arange(27).reshape(3, 3, 3)
    out = datasets.crop(array, (-1, 1, 2), (3, 3, 3), -5)
    assert out[0].tolist() == [[-5] * 3] * 3
    assert out[1, 0, 0] == array[0, 1, 2] and out[1, 0, 1] == -5 and out[1, 2, 0] == -5


def test_stream_is_the_same_whatever_the_workers(fake_generator):
    stream = datasets.PatchStream([], functools.partial(fake_sample, patch_size=PATCH), PATCH, batch=2, seed=3,
                                  start_step=5)
    expected = [stream.batch(step) for step in (5, 6, 7)]
    loader = iter(DataLoader(stream, batch_size=None, num_workers=2))
    for (image, label, _), (want_image, want_label, _) in zip([next(loader) for _ in range(3)], expected):
        assert torch.equal(image, want_image) and torch.equal(label, want_label)
    assert image.shape == (2, 1) + PATCH and label.shape == (2, 4) + PATCH and label.dtype == torch.float32
    assert not torch.equal(expected[0][0], expected[1][0])  # steps differ
    plain = datasets.PatchStream([], functools.partial(fake_sample, patch_size=PATCH), PATCH, batch=2, seed=3,
                                 augment=False)
    assert not torch.equal(plain.batch(5)[0], expected[0][0])  # augmentation changed something
    _, target, whole = plain.batch(5)  # without augmentation the targets are exactly one-hot labels
    want = fake_sample(datasets.sample_seed(3, 5, 2, 0))[1]
    assert torch.equal(target[0].argmax(0), torch.as_tensor(want).long()) and torch.all(target.sum(1) == 1)
    assert not whole.any()   # structure labels, not whole-labyrinth ones


def test_soft_and_hard_samples_mix_in_one_batch():
    def soft_or_hard(seed):
        image, label = fake_sample(seed)
        return image, (datasets.as_fractions(label, 4) * 0.5 + 0.125 if seed % 2 else label)
    stream = datasets.PatchStream([], soft_or_hard, PATCH, batch=4, seed=1, augment=False)
    _, target, _ = stream.batch(0)
    assert target.shape == (4, 4) + PATCH and torch.allclose(target.sum(1), torch.ones(()))
    assert sorted(float(t.max()) for t in target) == [0.625, 0.625, 1.0, 1.0]


# --- training runs ----------------------------------------------------------------------------------

def test_short_run_learns_and_writes_a_loadable_model(tmp_path, fake_generator):
    fake_generator["fixed"] = True
    config = tiny(tmp_path, channels=(8, 16), steps_per_epoch=30, lr=3e-3, augment=False, loss="dicece")
    result = training.train(config)
    losses = result["losses"]
    assert len(losses) == 30 and np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])
    model = load_model(tmp_path / "model.json")
    facts = model.card["training"]["segmenter"]
    assert facts["steps"] == 30 and facts["batch"] == 2 and facts["loss"] == "dicece"
    assert set(facts["validation"]["synthetic"]) == {"cochlea", "vestibule", "semicircular_canals",
                                                      "labyrinth", "mean"}
    assert model.card["preprocessing"]["patch_size"] == list(PATCH)
    assert result["checkpoint"].is_file() and not list(tmp_path.glob("*.tmp"))
    for a, b in zip(model.segmenter.state_dict().values(), torch.load(result["checkpoint"], weights_only=False)[
            "networks"]["segmenter"]["state"].values()):
        assert torch.equal(a, b)  # one epoch: the best model is the last


def test_resume_continues_where_it_stopped(tmp_path, fake_generator):
    whole = training.train(tiny(tmp_path, "whole", epochs=2))
    first = training.train(tiny(tmp_path, "split", epochs=1))
    second = training.train(tiny(tmp_path, "split", epochs=2, resume=True))
    assert first["step"] == 3 and second["step"] == 6 and len(second["losses"]) == 3
    np.testing.assert_allclose(first["losses"] + second["losses"], whole["losses"], rtol=1e-5)
    assert [h["epoch"] for h in second["history"]] == [1, 2]


def test_resume_without_checkpoint_is_an_error(tmp_path, fake_generator):
    with pytest.raises(Exception, match="no checkpoint"):
        training.train(tiny(tmp_path, resume=True))


def saved_segmenter(tmp_path, averaged=False):
    net = AttentionPyramidUNet(channels=(4, 8))
    card = default_card()
    card["name"] = "shipped"
    card["postprocessing"] = {"class_weights": [1, 1, 1, 2]}   # as the bundled card
    card["training_runs"] = [{"stage": "segmenter", "run": "runs/a/model.json", "steps": 5}]
    card["test_metrics"] = {"summary": []}
    if averaged:   # as make_default_model writes a weight average
        card["training"] = {"segmenter": {"averaged": ["a.json", "b.json"], "steps": 0, "seconds": 0}}
    return save_model(tmp_path / "shipped.json", {"segmenter": net}, card), net


def test_fine_tuning_starts_from_the_saved_weights(tmp_path, fake_generator):
    fake_generator["fixed"] = True
    init, _ = saved_segmenter(tmp_path, averaged=True)
    config = tiny(tmp_path, "tuned", init=str(init), augment=False, steps_per_epoch=1, channels=None)
    result = training.train(config)
    batch = datasets.PatchStream([], functools.partial(fixed_sample, patch_size=PATCH), PATCH, 2,
                                 augment=False).batch(0)
    shipped = load_model(init).segmenter.train()
    with torch.no_grad():
        expected = training.make_loss("tversky")(shipped(batch[0]), batch[1]).item()
    assert result["losses"][0] == pytest.approx(expected, rel=1e-5)
    tuned = load_model(tmp_path / "tuned.json")
    assert tuned.card["name"] == "shipped" and tuned.segmenter.channels == (4, 8)  # the init's width
    assert "postprocessing" not in tuned.card   # chosen for the init's segmenter, not the tuned one
    assert "test_metrics" not in tuned.card     # measured with the init's weights
    assert "training_runs" not in tuned.card    # the init's history: its card (training.segmenter.init) has it
    assert "averaged" not in tuned.card["training"]["segmenter"]   # the init was an average; these weights are not


def test_init_with_twice_the_channels_continues_a_widened_copy(tmp_path, fake_generator):
    fake_generator["fixed"] = True
    init, _ = saved_segmenter(tmp_path)
    result = training.train(tiny(tmp_path, "wide", init=str(init), augment=False, steps_per_epoch=1,
                                 channels=(8, 16)))
    batch = datasets.PatchStream([], functools.partial(fixed_sample, patch_size=PATCH), PATCH, 2,
                                 augment=False).batch(0)
    shipped = load_model(init).segmenter.train()
    with torch.no_grad():
        expected = training.make_loss("tversky")(shipped(batch[0]), batch[1]).item()
    assert result["losses"][0] == pytest.approx(expected, rel=0.05)  # same function, up to the twin noise
    assert load_model(tmp_path / "wide.json").segmenter.channels == (8, 16)


def test_init_with_other_channels_names_the_model(tmp_path, fake_generator):
    init, _ = saved_segmenter(tmp_path)
    with pytest.raises(ModelError, match=r"shipped\.json.*cannot start --channels 6 8"):
        training.train(tiny(tmp_path, "odd", init=str(init), channels=(6, 8)))


def test_localizer_run_keeps_the_segmenter_of_its_init(tmp_path, fake_generator):
    init, segmenter = saved_segmenter(tmp_path)
    training.train(tiny(tmp_path, "both", stage="localizer", init=str(init)))
    model = load_model(tmp_path / "both.json")
    assert model.localizer.head.out_channels == 2 and set(model.card["training"]) == {"localizer"}
    assert model.card["postprocessing"] == {"class_weights": [1, 1, 1, 2]}   # the segmenter is unchanged
    for a, b in zip(model.segmenter.state_dict().values(), segmenter.state_dict().values()):
        assert torch.equal(a, b)


def test_a_localizer_only_model_can_be_trained_further(tmp_path, fake_generator):
    first = training.train(tiny(tmp_path, "loc", stage="localizer"))
    assert first["best"] == first["best"]   # a validation score was computed
    with pytest.raises(ModelError, match="no 'segmenter'"):
        load_model(tmp_path / "loc.json")   # cannot segment with it ...
    training.train(tiny(tmp_path, "loc2", stage="localizer", init=str(tmp_path / "loc.json")))   # ... but can go on
    model = load_model(tmp_path / "loc2.json", require_segmenter=False)
    assert set(model.networks) == {"localizer"} and model.card["training"]["localizer"]["init"].endswith("loc.json")


def test_time_limit_stops_and_saves(tmp_path, fake_generator):
    result = training.train(tiny(tmp_path, epochs=5, steps_per_epoch=10, time_limit_min=1e-9))
    assert result["stopped"] == "time limit" and result["step"] == 1
    assert load_model(result["model"]).card["training"]["segmenter"]["steps"] == 1


def test_early_stopping_after_patience_epochs_without_gain(tmp_path, fake_generator, monkeypatch):
    scores = iter([0.5, 0.6, 0.6, 0.55, 0.9])
    monkeypatch.setattr(training, "validate", lambda *a, **k: {"synthetic": {"mean": next(scores)}})
    result = training.train(tiny(tmp_path, epochs=5, steps_per_epoch=1, patience=2))
    assert result["stopped"] == "early stopping" and result["epoch"] == 4
    assert result["best"] == 0.6 and result["best_epoch"] == 2


def test_user_data_trains_and_validates(tmp_path, fake_generator):
    image, label = labelled_pair()
    (tmp_path / "data").mkdir()
    write(image, tmp_path / "data" / "c_image.nii.gz")
    write(label, tmp_path / "data" / "c_label.nii.gz")
    result = training.train(tiny(tmp_path, synthetic=False, val_samples=0, data=[str(tmp_path / "data")],
                                 val_data=[str(tmp_path / "data")]))
    validation = result["history"][0]
    assert "user" in validation and "synthetic" not in validation and 0 <= validation["user"]["mean"] <= 1
    facts = load_model(result["model"]).card["training"]["segmenter"]
    assert facts["cases"] == 1 and facts["synthetic_fraction"] == 0.0


def test_config_problems_are_reported():
    assert training.TrainConfig(out="m.json").isValid()
    bad = training.TrainConfig(out="m.pt", stage="cochlea", synthetic=False, patch_size=(30, 32, 32), lr=0,
                               seed=999,
                               epochs=1000, steps_per_epoch=1000)
    text = " ".join(bad.problems())
    for word in ("--out", "--stage", "no training data", "--patch-size", "--lr", "--seed"):
        assert word in text


def test_command_line(tmp_path, fake_generator, capsys):
    parser = argparse.ArgumentParser()
    training.add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path / "cli.json"), "--channels", "4", "8", "--patch-size", "16",
                              "16", "16", "--epochs", "1", "--steps-per-epoch", "2", "--val-samples", "1",
                              "--workers", "0", "--no-amp", "--loss", "dice"])
    assert training.run(args) == 0
    assert load_model(tmp_path / "cli.json").card["training"]["segmenter"]["loss"] == "dice"
    assert training.run(parser.parse_args(["--out", "x.json", "--lr", "-1"])) == 2
    assert "--lr" in capsys.readouterr().err


def test_contrast_weights_reach_the_training_samples_only(tmp_path, fake_generator):
    training.train(tiny(tmp_path, "ct", contrast_weights=(0.1, 0.5, 0.3, 0.1)))
    assert fake_generator["weights"] == [None, (0.1, 0.5, 0.3, 0.1)]   # validation, then training
    card = load_model(tmp_path / "ct.json").card
    assert card["training"]["segmenter"]["contrast_weights"] == [0.1, 0.5, 0.3, 0.1]


def test_spacing_reaches_the_samples_and_the_card(tmp_path, fake_generator):
    training.train(tiny(tmp_path, "fine", spacing=0.36))
    assert set(fake_generator["spacings"]) == {0.36}   # the samples of training and validation
    card = load_model(tmp_path / "fine.json").card
    assert card["preprocessing"]["spacing_mm"] == 0.36 and card["training"]["segmenter"]["spacing_mm"] == 0.36
    training.train(tiny(tmp_path, "tuned", init=str(tmp_path / "fine.json"), channels=None))
    assert load_model(tmp_path / "tuned.json").card["preprocessing"]["spacing_mm"] == 0.36   # kept from --init
    assert any("--spacing" in p for p in tiny(tmp_path, spacing=0).problems())


@pytest.mark.parametrize("weights", [(1, 1, 1), (1, -1, 1, 1), (0, 0, 0, 0)])
def test_bad_contrast_weights_are_refused(tmp_path, weights):
    assert any("--contrast-weights" in p for p in tiny(tmp_path, contrast_weights=weights).problems())


def test_cosine_schedule_falls_from_lr_to_zero():
    config = training.TrainConfig(out="m.json", lr=1e-3, epochs=2, steps_per_epoch=50, lr_schedule="cosine")
    rates = [training.learning_rate(config, step) for step in (0, 50, 100, 150)]
    np.testing.assert_allclose(rates, [1e-3, 5e-4, 0.0, 0.0], atol=1e-12)
    assert all(a > b for a, b in zip([training.learning_rate(config, s) for s in range(100)],
                                     [training.learning_rate(config, s) for s in range(1, 101)]))
    config.lr_schedule = "constant"
    assert {training.learning_rate(config, s) for s in (0, 77, 500)} == {1e-3}
    config.lr_schedule = "step"
    assert any("--lr-schedule" in p for p in config.problems())


def test_cosine_run_resumes_on_its_schedule_and_says_so(tmp_path, fake_generator):
    whole = training.train(tiny(tmp_path, "whole", epochs=2, lr_schedule="cosine"))
    training.train(tiny(tmp_path, "split", epochs=2, lr_schedule="cosine", time_limit_min=1e-9))
    second = training.train(tiny(tmp_path, "split", epochs=2, lr_schedule="cosine", resume=True))
    np.testing.assert_allclose(second["losses"], whole["losses"][1:4], rtol=1e-5)  # steps 1-3, same rates
    ckpt = torch.load(tmp_path / "whole.ckpt.pt", weights_only=False)
    last = training.learning_rate(tiny(tmp_path, epochs=2, lr_schedule="cosine"), ckpt["state"]["step"] - 1)
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(last)
    assert load_model(tmp_path / "whole.json").card["training"]["segmenter"]["lr_schedule"] == "cosine"
