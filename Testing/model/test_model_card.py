"""Model files: save/load round trip and every way a model file can be wrong."""
import json

import pytest
import torch

from InnerEarSegLib.core.errors import ModelError
from InnerEarSegLib.model.model_card import default_card, load_model, save_model
from InnerEarSegLib.model.network import AttentionPyramidUNet


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    nets = {"segmenter": AttentionPyramidUNet(channels=(4, 8)),
            "localizer": AttentionPyramidUNet(out_channels=2, channels=(4, 8, 16))}
    card = default_card()
    card["name"] = "round-trip"
    return save_model(tmp_path / "m.json", nets, card), nets


def test_round_trip_keeps_weights_and_card(saved):
    path, nets = saved
    for source in (path, path.with_suffix(".pt")):  # the card or its weights
        model = load_model(source)
        assert model.card["name"] == "round-trip" and model.card_path == path
        assert model.card["networks"]["localizer"]["channels"] == [4, 8, 16]
        assert not model.segmenter.training
        for name, net in nets.items():
            for a, b in zip(net.state_dict().values(), model.networks[name].state_dict().values()):
                assert torch.equal(a, b)
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.json", "m.pt"]  # no temporary left


def test_changed_weights_fail_the_hash(saved):
    path, _ = saved
    weights = path.with_suffix(".pt")
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"m\.pt.*SHA-256 mismatch") as e:
        load_model(path)
    assert e.value.path == str(weights)


def test_wrong_architecture_names_the_file(saved):
    path, _ = saved
    card = json.loads(path.read_text())
    card["networks"]["segmenter"]["channels"] = [8, 16]
    path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"m\.pt.*do not match the card's architecture for 'segmenter'"):
        load_model(path)
    card["networks"]["segmenter"]["depth"] = 3
    path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"m\.json.*bad architecture"):
        load_model(path)


def test_missing_card_or_weights(saved, tmp_path):
    with pytest.raises(ModelError, match=r"absent\.json.*model card not found"):
        load_model(tmp_path / "absent.json")
    path, _ = saved
    path.with_suffix(".pt").unlink()
    with pytest.raises(ModelError, match=r"m\.pt.*weights file named by the model card not found"):
        load_model(path)


@pytest.mark.parametrize("text,problem", [("{", "not valid JSON"), ('{"format": "other"}', "not an InnerEarSeg"),
                                          ("[1, 2", "not valid JSON")])
def test_bad_card_text(tmp_path, text, problem):
    (tmp_path / "bad.json").write_text(text)
    with pytest.raises(ModelError, match=rf"bad\.json.*{problem}"):
        load_model(tmp_path / "bad.json")


def test_card_without_a_segmenter_is_refused(tmp_path):
    path = save_model(tmp_path / "loc.json", {"localizer": AttentionPyramidUNet(out_channels=2, channels=(4, 8))},
                      default_card())
    with pytest.raises(ModelError, match="no 'segmenter'"):
        load_model(path)


@pytest.mark.parametrize("weights", [[1, 1, 2], [1, 1, 1, 0], [1, 1, 1, "2"], "1 1 1 2", [1, 1, 1, True]])
def test_bad_class_weights_name_the_card(saved, weights):
    path, _ = saved
    card = json.loads(path.read_text())
    card["postprocessing"] = {"class_weights": weights}
    path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"m\.json.*class_weights must be 4 numbers"):
        load_model(path)
    card["postprocessing"] = [1, 1, 1, 2]
    path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"m\.json.*'postprocessing' entry must be an object"):
        load_model(path)
    card["postprocessing"] = {"class_weights": [1, 1, 1, 1.5]}
    path.write_text(json.dumps(card))
    assert load_model(path).card["postprocessing"]["class_weights"][3] == 1.5


def test_class_weights_per_modality_are_checked_and_chosen(saved):
    from InnerEarSegLib.model.model_card import class_weights
    path, _ = saved
    card = json.loads(path.read_text())
    card["postprocessing"] = {"class_weights": [1, 1, 1, 2], "class_weights_by_modality": {"ct": [1, 1, 2]}}
    path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"m\.json.*class_weights_by_modality\.ct must be 4 numbers"):
        load_model(path)
    card["postprocessing"]["class_weights_by_modality"] = [2, 1, 1, 2]
    path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"m\.json.*class_weights_by_modality must be an object"):
        load_model(path)
    card["postprocessing"]["class_weights_by_modality"] = {"ct": [2, 1, 1, 2]}
    path.write_text(json.dumps(card))
    loaded = load_model(path).card
    assert class_weights(loaded, "ct") == [2, 1, 1, 2]
    assert class_weights(loaded, "mr") == [1, 1, 1, 2]
    assert class_weights(loaded) == [1, 1, 1, 2]
    assert class_weights({}, "ct") is None
