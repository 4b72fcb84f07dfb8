"""Stack models: a weights file (``.pt``) and a JSON model card beside it, like the bundled model.

The card names the architecture (a MONAI ``UNet``, 2D or 3D), the labels (name, value, colour),
the input channel, the pixel size the network works at, the patch size, the normalisation, the
training data and the validation figures, and carries the weights' SHA-256, checked on load.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import torch

from ..core.errors import ModelError, brief
from ..model.model_card import sha256_of

CARD_FORMAT = "InnerEarSeg stack model card 1"
# label colours (RGB 0-1) for label values 1, 2, ... when the dataset gives none
PALETTE = [(0.89, 0.10, 0.11), (0.22, 0.49, 0.72), (0.30, 0.69, 0.29), (0.60, 0.31, 0.64),
           (1.00, 0.50, 0.00), (1.00, 1.00, 0.20), (0.65, 0.34, 0.16), (0.97, 0.51, 0.75)]


def colour(value: int):
    return PALETTE[(int(value) - 1) % len(PALETTE)]


def build_network(arch: dict) -> torch.nn.Module:
    """The network a card's ``architecture`` names: ``monai.networks.nets.UNet`` (residual units,
    strided convolutions: its first layer already halves the resolution, cheap) or ``BasicUNet``
    (two full-resolution convolutions before the first pooling: finer boundaries, slower)."""
    from monai.networks.nets import BasicUNet, UNet
    if arch.get("type") == "monai.BasicUNet":
        return BasicUNet(spatial_dims=arch["spatial_dims"], in_channels=arch["in_channels"],
                         out_channels=arch["out_channels"], features=tuple(arch["features"]),
                         norm=("instance", {"affine": True}))
    if arch.get("type") != "monai.UNet":
        raise ValueError(f"unknown architecture type {arch.get('type')!r}")
    return UNet(spatial_dims=arch["spatial_dims"], in_channels=arch["in_channels"],
                out_channels=arch["out_channels"], channels=tuple(arch["channels"]),
                strides=tuple(arch["strides"]), num_res_units=arch.get("num_res_units", 2),
                norm=arch.get("norm", "instance"))


def architecture(spatial_dims: int, out_channels: int, channels, in_channels: int = 1, kind: str = "unet") -> dict:
    """A card's ``architecture`` block; for ``basicunet`` the encoder takes 5 widths (4 given:
    the first is repeated) and the last decoder level the first width."""
    if kind == "basicunet":
        c = [int(x) for x in channels]
        c = [c[0]] + c if len(c) == 4 else c
        if len(c) != 5:
            raise ValueError(f"basicunet takes 4 or 5 channel widths, not {len(c)}")
        return {"type": "monai.BasicUNet", "spatial_dims": int(spatial_dims), "in_channels": int(in_channels),
                "out_channels": int(out_channels), "features": c + [c[0]]}
    return {"type": "monai.UNet", "spatial_dims": int(spatial_dims), "in_channels": int(in_channels),
            "out_channels": int(out_channels), "channels": [int(c) for c in channels],
            "strides": [2] * (len(channels) - 1), "num_res_units": 2, "norm": "instance"}


@dataclass
class StackModel:
    card: dict
    network: torch.nn.Module
    card_path: Optional[Path] = None

    @property
    def labels(self) -> List[dict]:
        """The foreground labels: ``{"name", "value", "color"}``."""
        return self.card["labels"]

    @property
    def spatial_dims(self) -> int:
        return self.card["architecture"]["spatial_dims"]


def is_stack_card(path) -> bool:
    """Whether ``path`` (a card or its weights) is a stack model card."""
    p = Path(path)
    p = p if p.suffix == ".json" else p.with_suffix(".json")
    try:
        return json.loads(p.read_text()).get("format") == CARD_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def save_model(card_path, network: torch.nn.Module, card: dict) -> Path:
    """Write the weights (``<card>.pt``) and the card with their SHA-256."""
    card_path = Path(card_path)
    card_path.parent.mkdir(parents=True, exist_ok=True)
    weights = card_path.with_suffix(".pt")
    torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, weights)
    card = dict(card, format=CARD_FORMAT, weights=weights.name, sha256=sha256_of(weights))
    tmp = card_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(card, indent=2))
    tmp.replace(card_path)
    return card_path


def load_model(path, device="cpu") -> StackModel:
    """Load a card (or its ``.pt``), check the weights' hash, build the network; errors name the file."""
    p = Path(path)
    card_path = p if p.suffix == ".json" else p.with_suffix(".json")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(card_path, f"cannot read the model card ({brief(e)})") from e
    if card.get("format") != CARD_FORMAT:
        raise ModelError(card_path, f"not a stack model card (format {card.get('format')!r}, expected {CARD_FORMAT!r})")
    weights = card_path.parent / card.get("weights", "")
    if not weights.is_file():
        raise ModelError(weights, "the weights named by the card are missing")
    if sha256_of(weights) != card.get("sha256"):
        raise ModelError(weights, "the weights do not match the card's SHA-256 (corrupt or replaced)")
    try:
        net = build_network(card["architecture"])
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as e:
        raise ModelError(weights, f"the weights do not fit the card's architecture ({brief(e)})") from e
    return StackModel(card, net.to(device).eval(), card_path)
