"""release/make_default_model.py: assembling the bundled model, with averaged segmenter weights."""
import json

import pytest
import torch
from conftest import load_script

from InnerEarSegLib.model.model_card import default_card, load_model, save_model
from InnerEarSegLib.model.network import AttentionPyramidUNet


def run(tmp_path, name, seed, stage="segmenter", channels=(4, 8)):
    torch.manual_seed(seed)
    net = AttentionPyramidUNet(out_channels=4 if stage == "segmenter" else 2, channels=channels)
    card = default_card()
    card["training"] = {stage: {"steps": seed, "seed": seed}}
    return save_model(tmp_path / name / "model.json", {stage: net}, card), net


def assemble(tmp_path, segmenters, name="out"):
    """make_default_model with these segmenter runs and a fresh localiser run: (card path, localiser path)."""
    loc, _ = run(tmp_path, "loc", 3, stage="localizer", channels=(4, 8, 16))
    out = tmp_path / name / "model.json"
    load_script("make_default_model").main(["--segmenter", *map(str, segmenters), "--localizer", str(loc),
                                            "--out", str(out)])
    return out, loc


def assert_mean_of(path, *nets):
    for key, value in load_model(path).segmenter.state_dict().items():
        assert torch.allclose(value, sum(net.state_dict()[key] for net in nets) / len(nets), atol=1e-7), key


def test_average_is_the_mean_of_every_weight():
    script = load_script("make_default_model")
    torch.manual_seed(1)
    nets = [AttentionPyramidUNet(channels=(4, 8)) for _ in range(3)]
    mean = script.average_networks(nets)
    for key, value in mean.state_dict().items():
        expected = (nets[0].state_dict()[key] + nets[1].state_dict()[key] + nets[2].state_dict()[key]) / 3
        assert torch.allclose(value, expected, atol=1e-7), key
    assert mean(torch.rand(1, 1, 16, 16, 16)).shape == (1, 4, 16, 16, 16)


def test_networks_of_different_shapes_are_refused():
    script = load_script("make_default_model")
    with pytest.raises(ValueError, match="different architectures"):
        script.average_networks([AttentionPyramidUNet(channels=(4, 8)), AttentionPyramidUNet(channels=(4, 16))])


def test_several_segmenter_runs_make_one_averaged_model(tmp_path):
    a, net_a = run(tmp_path, "a", 1)
    b, net_b = run(tmp_path, "b", 2)
    out, loc = assemble(tmp_path, [a, b])
    assert_mean_of(out, net_a, net_b)
    card = json.loads(out.read_text())
    assert card["training"]["segmenter"]["averaged"] == [str(a), str(b)]
    assert [r["run"] for r in card["training_runs"]] == [str(a), str(b), str(loc)]   # every run behind it


def test_a_checkpoint_can_join_the_average_but_not_lead_it(tmp_path):
    script = load_script("make_default_model")
    a, net_a = run(tmp_path, "a", 1)
    torch.manual_seed(5)
    last = AttentionPyramidUNet(channels=(4, 8))
    ckpt = tmp_path / "b" / "model.ckpt.pt"   # the layout train.write_checkpoint saves
    ckpt.parent.mkdir()
    torch.save({"card": default_card(), "config": {"seed": 5, "lr": 1e-4, "init": None},
                "state": {"step": 30, "seconds": 12.0}, "networks": {"segmenter": {
        "arch": {"in_channels": 1, "out_channels": 4, "channels": [4, 8], "pyramid_levels": last.pyramid_levels,
                 "attention": last.attention}, "state": last.state_dict()}}}, ckpt)
    out, loc = assemble(tmp_path, [a, ckpt])
    assert_mean_of(out, net_a, last)
    entry = [r for r in json.loads(out.read_text())["training_runs"] if r["run"] == str(ckpt)]
    assert entry and entry[0]["checkpoint"] and entry[0]["steps"] == 30 and entry[0]["seed"] == 5
    with pytest.raises(SystemExit):
        script.main(["--segmenter", str(ckpt), str(a), "--localizer", str(loc), "--out", str(out)])


def test_one_segmenter_run_is_copied_unchanged(tmp_path):
    a, net_a = run(tmp_path, "a", 1)
    out, _ = assemble(tmp_path, [a])
    for key, value in load_model(out).segmenter.state_dict().items():
        assert torch.equal(value, net_a.state_dict()[key]), key
    assert "averaged" not in json.loads(out.read_text())["training"]["segmenter"]


def tuned_from(init, path):
    """The card and weights a 7-step fine-tuning run from ``init`` writes (same weights here)."""
    tuned = json.loads(init.read_text())
    tuned["training"]["segmenter"] = {"steps": 7, "seconds": 1.0, "init": str(init)}
    del tuned["training_runs"]   # train leaves the init's history in the init's card
    tuned["weights"] = path.with_suffix(".pt").name
    path.write_text(json.dumps(tuned))
    path.with_suffix(".pt").write_bytes(init.with_suffix(".pt").read_bytes())
    return path


def test_a_model_tuned_from_an_average_lists_every_run_behind_it(tmp_path):
    a, _ = run(tmp_path, "a", 1)
    b, _ = run(tmp_path, "b", 2)
    avg, _ = assemble(tmp_path, [a, b], "avg")
    out, _ = assemble(tmp_path, [tuned_from(avg, tmp_path / "tuned.json")])
    card = json.loads(out.read_text())
    assert "averaged" not in card["training"]["segmenter"]   # the tuned weights are not the average
    runs = [r for r in card["training_runs"] if r["stage"] == "segmenter"]
    assert [r["run"] for r in runs] == [str(a), str(b), str(avg), str(tmp_path / "tuned.json")]
    assert runs[2]["averaged"] == [str(a), str(b)] and [r["steps"] for r in runs] == [1, 2, 0, 7]


def test_a_model_tuned_from_a_bundled_model_keeps_its_chain_without_the_old_run_folders(tmp_path):
    import shutil
    a, _ = run(tmp_path, "a", 1)
    shipped, _ = assemble(tmp_path, [a], "shipped")
    shutil.rmtree(tmp_path / "a")   # a fresh checkout: runs/ is gone, the bundled card is not
    out, _ = assemble(tmp_path, [tuned_from(shipped, tmp_path / "tuned.json")])
    runs = [r for r in json.loads(out.read_text())["training_runs"] if r["stage"] == "segmenter"]
    assert [r["run"] for r in runs] == [str(a), str(tmp_path / "tuned.json")]
    assert [r["steps"] for r in runs] == [1, 7]


def test_a_bundled_card_as_localiser_gives_only_its_localiser_record(tmp_path):
    a, _ = run(tmp_path, "a", 1)
    shipped, _ = assemble(tmp_path, [a], "shipped")
    tuned = tuned_from(shipped, tmp_path / "tuned.json")
    out = tmp_path / "out" / "model.json"
    load_script("make_default_model").main(["--segmenter", str(tuned), "--localizer", str(shipped), "--out", str(out)])
    training = json.loads(out.read_text())["training"]
    assert training["segmenter"]["steps"] == 7 and training["localizer"]["seed"] == 3


def test_a_respaced_copy_reads_at_the_new_spacing_with_the_same_weights(tmp_path):
    a, net = run(tmp_path, "a", 1)
    load_script("respaced_model").main([str(a), "0.4", str(tmp_path / "sp40")])
    copy = load_model(tmp_path / "sp40" / "model.json")
    assert copy.card["preprocessing"]["spacing_mm"] == 0.4
    assert load_model(a).card["preprocessing"]["spacing_mm"] == 0.45   # the original is untouched
    for key, value in copy.segmenter.state_dict().items():
        assert torch.equal(value, net.state_dict()[key]), key
    with pytest.raises(SystemExit):
        load_script("respaced_model").main([str(a), "0", str(tmp_path / "bad")])


def test_the_card_names_the_segmenter_spacing(tmp_path):
    a, net = run(tmp_path, "a", 1)
    card = json.loads(a.read_text())
    card["preprocessing"]["spacing_mm"] = 0.36   # as a run with --spacing 0.36 writes
    a.write_text(json.dumps(card))
    out = json.loads(assemble(tmp_path, [a])[0].read_text())
    assert "a 0.36 mm segmenter" in out["description"]
    assert any("works on a 0.36 mm grid" in text for text in out["limitations"])
    assert out["preprocessing"]["ear_region_mm"] == [round(0.36 * p, 4) for p in card["preprocessing"]["patch_size"]]


def test_real_metrics_are_the_mean_per_variant(tmp_path):
    table = tmp_path / "real.csv"
    table.write_text("case,variant,dsc,pred_mm3\nA,native,0.8,1\nB,native,0.9,1\nA,clinical,0.7,1\nB,clinical,0.6,1\n")
    metrics = load_script("make_default_model").real_metrics(table)
    assert metrics["labyrinth_dsc"] == {"native": 0.85, "clinical": 0.65}
    assert "A, B" in metrics["set"] and metrics["command"] == "python release/real_eval.py"
