"""Model files: a weights file (``.pt``) plus a JSON model card beside it.

The card says what the weights are (architecture, input spacing, patch size,
normalisation, labels, training data, metrics) and carries the weights' SHA-256.
Loading verifies the hash and builds the architecture the card names, and fails
with a :class:`ModelError` naming the file and the cause otherwise.

A model has two networks (both :class:`AttentionPyramidUNet`):
``localizer`` (coarse, whole field of view, 2 classes: background / labyrinth)
and ``segmenter`` (fine, ear region, 4 classes, see ``labels``).
"""
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import torch

from ..core.errors import ModelError
from ..core.labels import NUM_CLASSES
from ..core.resources import default_model
from .network import AttentionPyramidUNet, build_network

CARD_FORMAT = "InnerEarSeg model card 1"
DEFAULT_MODEL = default_model()


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class LoadedModel:
    card: dict
    networks: Dict[str, AttentionPyramidUNet]
    card_path: Optional[Path] = None

    @property
    def segmenter(self) -> AttentionPyramidUNet:
        return self.networks["segmenter"]

    @property
    def localizer(self) -> Optional[AttentionPyramidUNet]:
        return self.networks.get("localizer")

    @property
    def name(self) -> str:
        return f"{self.card.get('name', '?')} {self.card.get('version', '')}".strip()


def card_path_for(path) -> Path:
    """Accept a card (``.json``) or its weights (``.pt``); return the card's path."""
    p = Path(path)
    return p if p.suffix == ".json" else p.with_suffix(".json")


def read_card(path) -> dict:
    cpath = card_path_for(path)
    if not cpath.is_file():
        raise ModelError(cpath, "model card not found (expected a .json card beside the .pt weights)")
    try:
        card = json.loads(cpath.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(cpath, f"model card is not valid JSON ({e})") from e
    if card.get("format") != CARD_FORMAT:
        raise ModelError(cpath, f"not an InnerEarSeg model card (format {card.get('format')!r}, expected {CARD_FORMAT!r})")
    for key in ("weights", "sha256", "networks", "preprocessing"):
        if key not in card:
            raise ModelError(cpath, f"model card lacks the '{key}' entry")
    post = card.get("postprocessing", {})
    if not isinstance(post, dict):
        raise ModelError(cpath, f"the card's 'postprocessing' entry must be an object, not {post!r}")
    _check_weights(cpath, "postprocessing.class_weights", post.get("class_weights"))
    by_modality = post.get("class_weights_by_modality", {})
    if not isinstance(by_modality, dict):
        raise ModelError(cpath, f"postprocessing.class_weights_by_modality must be an object (modality -> "
                                f"weights), not {by_modality!r}")
    for modality, weights in by_modality.items():
        _check_weights(cpath, f"postprocessing.class_weights_by_modality.{modality}", weights)
    return card


def _check_weights(cpath: Path, where: str, weights) -> None:
    if weights is not None and not (isinstance(weights, list) and len(weights) == NUM_CLASSES and all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and 0 < w < 100 for w in weights)):
        raise ModelError(cpath, f"{where} must be {NUM_CLASSES} numbers between 0 and 100 "
                                f"(one per class, background first), not {weights!r}")


def class_weights(card: dict, modality: Optional[str] = None) -> Optional[list]:
    """The segmenter's class weights for a scan of ``modality`` (``postprocess.reweight``): the
    card's ``postprocessing.class_weights_by_modality[modality]`` where it has one, else
    ``postprocessing.class_weights``, else None (no reweighting)."""
    post = card.get("postprocessing", {})
    return post.get("class_weights_by_modality", {}).get(modality) or post.get("class_weights")


def load_model(path=None, device="cpu", require_segmenter: bool = True) -> LoadedModel:
    """Load and verify a model; ``path`` is a card or weights file, None for the bundled one.

    ``require_segmenter=False`` accepts a card with a localiser only (a localiser training run
    to continue); segmenting needs the segmenter."""
    cpath = card_path_for(path or DEFAULT_MODEL)
    card = read_card(cpath)
    wpath = cpath.parent / card["weights"]
    if not wpath.is_file():
        raise ModelError(wpath, "weights file named by the model card not found")
    digest = sha256_of(wpath)
    if digest != card["sha256"]:
        raise ModelError(wpath, f"SHA-256 mismatch: the card expects {card['sha256'][:16]}..., "
                                f"the file has {digest[:16]}...; the file is corrupt or not the one the card describes")
    try:
        state = torch.load(wpath, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file
        raise ModelError(wpath, f"cannot read weights ({e})") from e
    networks = {}
    for name, arch in card["networks"].items():
        try:
            net = build_network(arch)
        except (TypeError, ValueError) as e:
            raise ModelError(cpath, f"bad architecture for network '{name}': {e}") from e
        if name not in state:
            raise ModelError(wpath, f"weights lack the network '{name}' named in the card")
        try:
            net.load_state_dict(state[name], strict=True)
        except RuntimeError as e:
            first = str(e).splitlines()
            raise ModelError(wpath, f"weights do not match the card's architecture for '{name}': "
                                    + " ".join(first[:3])[:400]) from e
        networks[name] = net.to(device).eval()
    if require_segmenter and "segmenter" not in networks:
        raise ModelError(cpath, "model card names no 'segmenter' network")
    return LoadedModel(card=card, networks=networks, card_path=cpath)


def network_arch(net: AttentionPyramidUNet, out_channels: int) -> dict:
    return {"in_channels": 1, "out_channels": out_channels, "channels": list(net.channels),
            "pyramid_levels": net.pyramid_levels, "attention": net.attention}


def save_model(card_path, networks: Dict[str, AttentionPyramidUNet], card: dict) -> Path:
    """Write weights and card atomically; fills ``format``, ``weights``, ``sha256``, ``networks``."""
    cpath = card_path_for(card_path)
    cpath.parent.mkdir(parents=True, exist_ok=True)
    wpath = cpath.with_suffix(".pt")
    tmp = wpath.with_name(wpath.name + ".tmp")
    torch.save({k: {n: t.detach().cpu() for n, t in v.state_dict().items()} for k, v in networks.items()}, tmp)
    card = dict(card)
    card["format"] = CARD_FORMAT
    card["weights"] = wpath.name
    card["sha256"] = sha256_of(tmp)
    card["networks"] = {k: network_arch(v, v.head.out_channels) for k, v in networks.items()}
    ctmp = cpath.with_name(cpath.name + ".tmp")
    ctmp.write_text(json.dumps(card, indent=2))
    tmp.replace(wpath)
    ctmp.replace(cpath)
    return cpath


def default_card() -> dict:
    """Card fields every model needs besides the networks; training overwrites what it knows."""
    from .. import __version__
    from ..core.labels import STRUCTURES
    return {
        "name": "InnerEarSeg",
        "version": "0.1.0",
        "library_version": __version__,
        "preprocessing": {
            "spacing_mm": 0.45,               # segmenter input spacing, isotropic
            "interpolation": "bspline",
            "normalisation": {"method": "percentile", "low": 0.5, "high": 99.5},
            "patch_size": [64, 64, 64],       # training patch = sliding-window ROI at inference (z, y, x)
            "ear_region_mm": [28.8, 28.8, 28.8],  # region segmented around each located ear (x, y, z): one window
            "localizer_spacing_mm": 2.0,
            "localizer_threshold": 0.5,
        },
        "labels": [{"value": 0, "key": "background", "name": "Background"}] + [
            {"value": s.value, "key": s.key, "name": s.name, "color": list(s.color),
             "code": list(s.code)} for s in STRUCTURES],
    }
