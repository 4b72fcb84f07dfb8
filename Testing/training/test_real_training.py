"""Training on whole-labyrinth labels: the marginal loss, real-shape synthesis, mixed sources,
label kinds, and keeping the labyrinth's pieces near its largest one."""
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from InnerEarSegLib.core.errors import InputError
from InnerEarSegLib.inference import postprocess
from InnerEarSegLib.synth.realshapes import Shape, ShapeSampler
from InnerEarSegLib.training import datasets
from InnerEarSegLib.training import train as training


def one_hot_logits(labels: np.ndarray, classes=4) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.as_tensor(labels).long(), classes).permute(3, 0, 1, 2)[None].float() * 40


def ball(shape=(24, 24, 24), radius=6.0, centre=None) -> np.ndarray:
    centre = np.array(shape) / 2 if centre is None else np.asarray(centre)
    return (np.linalg.norm(np.indices(shape).transpose(1, 2, 3, 0) - centre, axis=-1) < radius)


# --- marginal loss ------------------------------------------------------------------------------

LABYRINTH, SPLIT, STRUCTURES = (datasets.LABEL_KINDS.index(k) for k in ("labyrinth", "split", "structures"))


def test_merged_logits_give_the_summed_structure_probability():
    logits = torch.randn(2, 4, 3, 3, 3)
    p = torch.softmax(logits, 1)
    merged = torch.softmax(training.merged_logits(logits, datasets.LABEL_GROUPS["labyrinth"]), 1)
    assert torch.allclose(merged[:, 1], p[:, 1:].sum(1), atol=1e-6)
    assert torch.allclose(merged[:, 0], p[:, 0], atol=1e-6)
    split = torch.softmax(training.merged_logits(logits, datasets.LABEL_GROUPS["split"]), 1)
    assert split.shape[1] == 3
    assert torch.allclose(split[:, 1], p[:, 1], atol=1e-6) and torch.allclose(split[:, 2], p[:, 2:].sum(1), atol=1e-6)


@pytest.mark.parametrize("name", ["dicece", "tverskyce", "ce"])
def test_whole_labyrinth_targets_do_not_care_which_structure_is_painted(name):
    mask = ball((8, 8, 8), 3)
    target = torch.as_tensor(datasets.group_fractions(mask[None].astype(np.float32), 4))[None]
    whole = torch.tensor([LABYRINTH])
    loss = training.make_loss(name)
    as_cochlea = loss(one_hot_logits(mask * 1), target, whole).item()
    as_canals = loss(one_hot_logits(mask * 3), target, whole).item()
    wrong = loss(one_hot_logits(~mask * 2), target, whole).item()
    assert as_cochlea == pytest.approx(as_canals, abs=1e-5) and as_cochlea < 1e-3
    assert wrong > 0.5
    # the same target read as structures (no flag) does care: channel 1 is the cochlea
    assert loss(one_hot_logits(mask * 3), target).item() > 0.5


@pytest.mark.parametrize("name", ["dicece", "ce"])
def test_split_targets_care_about_the_cochlea_but_not_vestibule_versus_canals(name):
    cochlea, rest = ball((8, 8, 8), 3, (4, 2, 4)), ball((8, 8, 8), 2, (4, 6, 4))
    target = torch.as_tensor(datasets.group_fractions(np.stack([cochlea, rest]).astype(np.float32), 4))[None]
    kind, loss = torch.tensor([SPLIT]), training.make_loss(name)
    as_vestibule = loss(one_hot_logits(cochlea * 1 + rest * 2), target, kind).item()
    as_canals = loss(one_hot_logits(cochlea * 1 + rest * 3), target, kind).item()
    swapped = loss(one_hot_logits(cochlea * 2 + rest * 1), target, kind).item()
    assert as_vestibule == pytest.approx(as_canals, abs=1e-5) and as_vestibule < 1e-3
    assert swapped > 0.5

def test_a_mixed_batch_weighs_each_part_by_its_share():
    mask = ball((8, 8, 8), 3)
    structures = torch.as_tensor(datasets.as_fractions(mask.astype(np.uint8) * 2, 4))
    whole = torch.as_tensor(datasets.group_fractions(mask[None].astype(np.float32), 4))
    logits = torch.cat([one_hot_logits(mask * 1), one_hot_logits(mask * 1)])   # cochlea painted in both
    loss = training.make_loss("dicece")
    mixed = loss(logits, torch.stack([structures, whole]), torch.tensor([STRUCTURES, LABYRINTH])).item()
    alone = loss(logits[:1], structures[None]).item()       # wrong structure: high
    assert mixed == pytest.approx(alone / 2, rel=1e-3)     # the whole-labyrinth half costs nothing


# --- sources and label kinds --------------------------------------------------------------------

def test_source_shares():
    assert datasets.source_shares(True, True, True, 0.35, 0.35) == pytest.approx([0.3, 0.35, 0.35])
    assert datasets.source_shares(False, True, False, 0.5, 0.0) == pytest.approx([0, 1, 0])
    assert datasets.source_shares(True, False, False, 0.5, 0.0) == pytest.approx([1, 0, 0])
    assert datasets.source_shares(True, True, False, 0.5, 0.0) == pytest.approx([0.5, 0.5, 0])


def write_pair(folder, name, label, spacing=(0.3, 0.3, 0.3)):
    folder.mkdir(parents=True, exist_ok=True)
    for what, array in (("image", (label * 500.0 + 50).astype(np.float32)), ("label", label.astype(np.uint8))):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(spacing)
        sitk.WriteImage(image, str(folder / f"{name}_{what}.nii.gz"))


def test_labyrinth_labels_must_be_0_or_1(tmp_path):
    write_pair(tmp_path / "a", "x", ball().astype(np.uint8) * 2)
    case = datasets.find_cases([tmp_path / "a"], "labyrinth")[0]
    with pytest.raises(InputError, match="labyrinth label values must be whole numbers 0..1"):
        datasets.read_pair(case)
    assert datasets.read_pair(datasets.find_cases([tmp_path / "a"])[0])   # fine as structure labels


def test_labyrinth_volume_holds_fractions_and_its_patches_are_flagged(tmp_path):
    write_pair(tmp_path / "a", "x", ball((30, 30, 30), 8).astype(np.uint8), spacing=(0.2, 0.2, 0.2))
    [volume] = datasets.load_volumes([tmp_path / "a"], "segmenter", 0.3, (16, 16, 16), "labyrinth")
    assert volume.kind == "labyrinth" and volume.label.dtype == np.float32 and volume.label.shape[0] == 1
    assert 0 < volume.label.min() + 1 and ((volume.label > 0.01) & (volume.label < 0.99)).any()   # partial volume
    stream = datasets.PatchStream([volume], None, (16, 16, 16), batch=2, augment=False)
    image, target, kind = stream.batch(0)
    assert (kind == LABYRINTH).all() and target.shape == (2, 4, 16, 16, 16)
    assert torch.all(target[:, 2:] == 0) and torch.allclose(target[:, :2].sum(1), torch.ones(1))


def test_split_volume_holds_one_fraction_per_label_value(tmp_path):
    label = np.where(ball((30, 30, 30), 5, (15, 22, 15)), 2, ball((30, 30, 30), 8, (15, 10, 15)))
    write_pair(tmp_path / "a", "x", label, spacing=(0.2, 0.2, 0.2))
    with pytest.raises(InputError, match="labyrinth label values must be whole numbers 0..1"):
        datasets.load_volumes([tmp_path / "a"], "segmenter", 0.3, (16, 16, 16), "labyrinth")
    [volume] = datasets.load_volumes([tmp_path / "a"], "segmenter", 0.3, (16, 16, 16), "split")
    assert volume.label.shape[0] == 2
    volumes_mm3 = volume.label.sum((1, 2, 3)) * 0.3 ** 3
    assert volumes_mm3 == pytest.approx([(label == 1).sum() * 0.2 ** 3, (label == 2).sum() * 0.2 ** 3], rel=0.05)
    assert set(np.unique(datasets.group_classes(volume.label))) == {0, 1, 2}
    image, target, kind = datasets.PatchStream([volume], None, (16, 16, 16), batch=2, augment=False).batch(0)
    assert (kind == SPLIT).all() and torch.all(target[:, 3] == 0)
    assert torch.allclose(target.sum(1), torch.ones(1), atol=1e-5)


def test_shape_sampler_is_reproducible_and_scales_the_shape():
    label = ball((40, 40, 40), 9).astype(np.float32)
    iac = (np.array([20.0, 20.0, 30.0]), np.array([0.0, 0.0, 1.0]))
    sampler = ShapeSampler([Shape(label, iac)], (32, 32, 32), 0.3, iac_share=1.0)
    a, b = sampler(5), sampler(5)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[0].min() >= 0 and a[0].max() <= 1 and 0 <= a[1].min() and a[1].max() <= 1
    small = ShapeSampler([Shape(label)], (32, 32, 32), 0.3, scale=(0.7, 0.7), axis_scale=0, elastic_mm=0)
    large = ShapeSampler([Shape(label)], (32, 32, 32), 0.3, scale=(1.2, 1.2), axis_scale=0, elastic_mm=0)
    ratio = large(1)[1].sum() / small(1)[1].sum()
    assert ratio == pytest.approx((1.2 / 0.7) ** 3, rel=0.1)


def test_shape_sampler_draws_every_contrast():
    sampler = ShapeSampler([Shape(ball((40, 40, 40), 9).astype(np.float32))], (24, 24, 24), 0.3,
                           offset_mm=0, elastic_mm=0, scale=(1, 1), rotate_deg=0)
    inside, outside = [], []
    for seed in range(30):
        image, [fraction] = sampler(seed)
        inside.append(image[fraction > 0.9].mean())
        outside.append(image[(fraction == 0)].mean())
    brighter = np.greater(inside, outside)
    assert brighter.any() and (~brighter).any()   # fluid bright (MR-like) and dark (CT-like) both occur


def test_split_shapes_give_each_part_and_their_samples_are_split_targets(tmp_path):
    label = np.where(ball((30, 30, 30), 5, (15, 21, 15)), 2, ball((30, 30, 30), 7, (15, 11, 15))).astype(np.uint8)
    write_pair(tmp_path / "a", "x", label)
    [case] = datasets.find_cases([tmp_path / "a"], "split")
    shape = datasets.load_shape(case, 0.3)
    assert shape.parts.shape == (2,) + shape.label.shape
    np.testing.assert_allclose(shape.parts.sum(0), shape.label, atol=1e-5)
    sampler = ShapeSampler([shape], (24, 24, 24), 0.3, offset_mm=0)
    image, parts = sampler(3)
    assert parts.shape == (2, 24, 24, 24) and parts[0].sum() > 0 and parts[1].sum() > 0
    stream = datasets.PatchStream([], None, (24, 24, 24), batch=1, augment=False, shape_sampler=sampler,
                                  shape_fraction=1.0)
    _, target, kind = stream.batch(0)
    assert (kind == SPLIT).all() and torch.allclose(target.sum(1), torch.ones(1), atol=1e-5)
    whole = datasets.load_shape(datasets.find_cases([tmp_path / "a"], "structures")[0], 0.3)
    assert whole.parts is None and ShapeSampler([whole], (24, 24, 24), 0.3)(3)[1].shape == (1, 24, 24, 24)


def one_epoch_on_user_labels(folder, label_kind) -> dict:
    """The history entry of one short epoch of a tiny segmenter trained on ``folder``/train (real
    shapes, no synthetic ears) and validated on ``folder``/val with labels of ``label_kind``."""
    config = training.TrainConfig(out=str(folder / "m.json"), data=[str(folder / "train")],
                                  val_data=[str(folder / "val")], label_kind=label_kind, synthetic=False,
                                  shape_fraction=0.5, synthetic_fraction=0.0, patch_size=(16, 16, 16),
                                  channels=(4, 8), epochs=1, steps_per_epoch=2, val_samples=0, workers=0,
                                  amp=False, progress_bar=False, spacing=0.3)
    assert config.isValid(), config.problems()
    [epoch] = training.train(config)["history"]
    return epoch


def test_training_on_labyrinth_labels_validates_the_labyrinth(tmp_path):
    for i in range(2):
        write_pair(tmp_path / "train", f"t{i}", ball((24, 24, 24), 6 + i).astype(np.uint8))
    write_pair(tmp_path / "val", "v", ball((24, 24, 24), 7).astype(np.uint8))
    epoch = one_epoch_on_user_labels(tmp_path, "labyrinth")
    assert set(epoch["user_labyrinth"]) == {"labyrinth", "mean"}
    assert epoch["user_labyrinth"]["mean"] == epoch["user_labyrinth"]["labyrinth"]


def test_training_on_split_labels_validates_cochlea_and_rest(tmp_path):
    for i, folder in enumerate(("train", "train", "val")):
        label = np.where(ball((24, 24, 24), 4 + i % 2, (12, 16, 12)), 2, ball((24, 24, 24), 5, (12, 8, 12)))
        write_pair(tmp_path / folder, f"c{i}", label)
    scores = one_epoch_on_user_labels(tmp_path, "split")["user_split"]
    assert set(scores) == {"labyrinth", "cochlea", "vestibule_canals", "mean"}
    assert scores["mean"] == pytest.approx((scores["cochlea"] + scores["vestibule_canals"]) / 2)


def test_predicted_structures_become_label_values_of_each_kind():
    pred = torch.tensor([0, 1, 2, 3])
    assert training.to_label_values(pred, "split").tolist() == [0, 1, 2, 2]
    assert training.to_label_values(pred, "labyrinth").tolist() == [0, 1, 1, 1]
    assert training.to_label_values(pred, "structures").tolist() == [0, 1, 2, 3]


def test_shape_fraction_needs_labyrinth_labels(tmp_path):
    config = training.TrainConfig(out=str(tmp_path / "m.json"), data=["x"], shape_fraction=0.3)
    assert any("--shape-fraction needs" in p for p in config.problems())


# --- the labyrinth's pieces -----------------------------------------------------------------------

def test_large_pieces_near_the_largest_are_kept_specks_and_far_ones_dropped():
    shape = (60, 60, 60)
    mask = ball(shape, 12, (30, 18, 30))                # 250 mm3 at 0.3 mm
    near = ball(shape, 6, (30, 38, 30))                 # 4 voxels (1.2 mm) away, 24 mm3: a detached canal
    speck = ball(shape, 2, (30, 18, 45))                # 3 voxels (0.9 mm) away, 0.7 mm3
    far = ball(shape, 6, (30, 18, 54))                  # 7 voxels (2.1 mm) away
    keep = postprocess.labyrinth_pieces(mask | near | speck | far, (0.3, 0.3, 0.3), near_mm=1.5)
    assert keep[mask].all() and keep[near].all()
    assert not keep[speck].any() and not keep[far].any()
    assert not postprocess.labyrinth_pieces(mask | near, (0.3, 0.3, 0.3), near_mm=0.0)[near].any()


def test_mr_renders_of_the_validation_shapes_are_scored_and_share_the_selection(tmp_path):
    for i, folder in enumerate(("train", "train", "val")):
        label = np.where(ball((24, 24, 24), 4 + i % 2, (12, 16, 12)), 2, ball((24, 24, 24), 5, (12, 8, 12)))
        write_pair(tmp_path / folder, f"c{i}", label)
    config = training.TrainConfig(out=str(tmp_path / "m.json"), data=[str(tmp_path / "train")],
                                  val_data=[str(tmp_path / "val")], label_kind="split", synthetic=False,
                                  shape_fraction=0.5, synthetic_fraction=0.0, patch_size=(16, 16, 16),
                                  channels=(4, 8), epochs=1, steps_per_epoch=2, val_samples=0, val_shape_samples=2,
                                  workers=0, amp=False, progress_bar=False, spacing=0.3)
    assert config.isValid(), config.problems()
    [epoch] = training.train(config)["history"]
    assert set(epoch[training.MR_SHAPES_SET]) == {"labyrinth", "cochlea", "vestibule_canals", "mean"}
    expected = (epoch["user_split"]["mean"] + epoch[training.MR_SHAPES_SET]["labyrinth"]) / 2
    assert training.selection_score(epoch) == pytest.approx(expected)


def test_selection_uses_whichever_of_user_and_mr_shape_scores_exists():
    user, mr = {"user_split": {"mean": 0.8}}, {training.MR_SHAPES_SET: {"mean": 0.5, "labyrinth": 0.6}}
    assert training.selection_score(user) == 0.8
    assert training.selection_score(mr) == 0.6
    assert training.selection_score({**user, **mr}) == pytest.approx(0.7)


def test_mr_shape_validation_needs_partial_validation_labels(tmp_path):
    config = training.TrainConfig(out=str(tmp_path / "m.json"), val_shape_samples=4)
    assert any("--val-shape-samples needs" in p for p in config.problems())
