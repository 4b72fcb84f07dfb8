"""Segmenting a stack with a stack model: normalise, rescale to the model's pixel size, sliding
windows of the training patch size with Gaussian-weighted overlap averaging (MONAI), softmax,
back to the input grid, argmax. A 2D model runs slice by slice, a 3D one on the whole stack."""
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

PERCENTILES = (0.5, 99.5)


def normalise(arr: np.ndarray, percentiles=PERCENTILES) -> np.ndarray:
    """Robust min-max: the given percentiles of the whole stack to 0 and 1 (float32), so that
    stacks of any bit depth and brightness look alike to the network."""
    arr = arr.astype(np.float32)
    lo, hi = np.percentile(arr, percentiles)
    if hi <= lo:
        return np.zeros_like(arr)
    return ((arr - lo) / (hi - lo)).astype(np.float32)


def scale_factor(card: dict, pixel_size_um: Optional[Tuple[float, float, float]]):
    """(z, y, x) zoom from the input grid to the model's grid: from the pixel sizes when both are
    known, else the zoom the model was trained with (the input is then taken to be like the
    training stacks). A 2D model never zooms z."""
    model_size = card.get("pixel_size_um")
    if model_size and pixel_size_um:
        zoom = [i / m for i, m in zip(pixel_size_um, model_size)]
    else:
        zoom = list(card.get("zoom", [1.0, 1.0, 1.0]))
    if card["architecture"]["spatial_dims"] == 2:
        zoom[0] = 1.0
    return tuple(float(z) for z in zoom)


def _resize(t: torch.Tensor, size, mode: str) -> torch.Tensor:
    if tuple(t.shape[2:]) == tuple(size):
        return t
    if mode == "nearest":
        return F.interpolate(t, size=size, mode="nearest")
    down = any(s < o for s, o in zip(size, t.shape[2:]))
    mode = "bilinear" if t.dim() == 4 else "trilinear"
    return F.interpolate(t, size=size, mode=mode, align_corners=False, antialias=down and t.dim() == 4)


def zoomed_size(shape, zoom):
    return tuple(max(1, int(round(s * z))) for s, z in zip(shape, zoom))


@torch.no_grad()
def window_probabilities(network, image: torch.Tensor, patch, overlap: float = 0.5, sw_batch: int = 4):
    """Class probabilities of a (N, 1, *spatial) image by Gaussian-weighted sliding windows."""
    from monai.inferers import sliding_window_inference
    logits = sliding_window_inference(image, roi_size=tuple(patch), sw_batch_size=sw_batch, predictor=network,
                                      overlap=overlap, mode="gaussian", padding_mode="reflect")
    return torch.softmax(logits, dim=1)


@torch.no_grad()
def flipped_probabilities(network, image: torch.Tensor, patch, overlap: float = 0.5, tta: bool = False):
    """Window probabilities, averaged over the in-plane mirror images when ``tta`` (test-time
    augmentation: the network was trained with flips, so each mirror is an equally good view)."""
    if not tta:
        return window_probabilities(network, image, patch, overlap)
    axes = (image.dim() - 2, image.dim() - 1)
    flips = [(), (axes[0],), (axes[1],), axes]
    total = sum(torch.flip(window_probabilities(network, torch.flip(image, f) if f else image, patch, overlap), f)
                if f else window_probabilities(network, image, patch, overlap) for f in flips)
    return total / len(flips)


@torch.no_grad()
def predict_probabilities(model, image_zyx: np.ndarray, pixel_size_um=None, overlap: float = 0.5,
                          device="cpu", normalised: bool = False, tta: bool = False) -> np.ndarray:
    """(classes, z, y, x) probabilities on the input grid."""
    card = model.card
    arr = image_zyx if normalised else normalise(image_zyx, card.get("normalisation", {}).get("percentiles", PERCENTILES))
    zoom = scale_factor(card, pixel_size_um)
    patch = card["patch_size"]
    net = model.network.to(device).eval()
    if model.spatial_dims == 2:
        out = []
        for z in range(arr.shape[0]):
            t = torch.from_numpy(np.ascontiguousarray(arr[z]))[None, None].to(device)
            small = _resize(t, zoomed_size(t.shape[2:], zoom[1:]), "linear")
            probs = flipped_probabilities(net, small, patch, overlap, tta)
            out.append(_resize(probs, t.shape[2:], "linear")[0].cpu())
        probs = torch.stack(out, dim=1)
    else:
        t = torch.from_numpy(np.ascontiguousarray(arr))[None, None].to(device)
        small = _resize(t, zoomed_size(t.shape[2:], zoom), "linear")
        probs = _resize(flipped_probabilities(net, small, patch, overlap, tta), t.shape[2:], "linear")[0].cpu()
    return probs.numpy()


def predict_labels(model, image_zyx: np.ndarray, pixel_size_um=None, **kwargs) -> np.ndarray:
    """(z, y, x) label values (the card's values; 0 background)."""
    probs = predict_probabilities(model, image_zyx, pixel_size_um, **kwargs)
    index = probs.argmax(axis=0)
    values = np.array([0] + [lab["value"] for lab in model.card["labels"]])
    return values[index].astype(np.uint8 if values.max() < 256 else np.uint16)
