"""Running a network over a model-space array: sliding windows, optional TTA, device choice.

Windows are blended with Gaussian weights (MONAI) so patch borders leave no seams. Mixed
precision (bf16, else fp16) is used on CUDA, where it is fast and safe. On the CPU, bf16
autocast is used where the CPU computes bf16 in hardware (AVX512-BF16 or AMX;
``native_cpu_bf16``): the networks were trained under it, validation Dice is the same within
0.001, and it more than halves the segment stage; elsewhere it is emulated and may be slower,
so those CPUs run fp32. ``cpu_bf16`` True or False forces one or the other (docs/history.md, Speed).
A CUDA out-of-memory error is answered by a retry on the CPU, with a warning.
"""
import functools
import math
import os
import warnings
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference

from ..core.errors import InnerEarSegError

# Test-time augmentation: the region and its left/right mirror (x), which is anatomically
# plausible since the two ears are mirror images; dims index (batch, channel, z, y, x)
# tensors. Not upside down: with an x+z flip added the validation cochlea fell from 0.879 to
# 0.855, while the mirror alone raised the labyrinth from 0.867 to 0.878 (docs/history.md,
# Test-time augmentation).
TTA_FLIPS = ((), (4,))
OVERLAP = 0.25
# Test-time turns: each pass is also run with the region turned by this many degrees either way
# about each axis (the segmenter was trained with turns up to 30 degrees) and turned back: 7 x the
# passes. On the real validation ears and the real MRI every case gained (labyrinth DSC F03
# 0.778 -> 0.797, F06 0.881 -> 0.887, T03 0.850 -> 0.882, MRI 0.746 -> 0.771 with the real41 model;
# experiments/rotation_tta.py, docs/real_data.md).
TURN_DEG = 15.0


def rotation(axis: int, degrees: float) -> torch.Tensor:
    """The 3x3 rotation by ``degrees`` about grid axis ``axis`` (0 x, 1 y, 2 z)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    i, j = [k for k in range(3) if k != axis]
    R = torch.eye(3)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


TURNS = tuple(rotation(axis, d) for axis in range(3) for d in (TURN_DEG, -TURN_DEG))


def turned(t: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """``t`` (N, C, z, y, x) turned about its centre: sampled at ``R p`` (p in voxels from the centre),
    linearly, the border value outside. ``turned(turned(t, R), R.T)`` is ``t`` but for interpolation."""
    half = torch.tensor(t.shape[2:][::-1], dtype=torch.float32) / 2   # x, y, z
    theta = torch.cat([torch.diag(1 / half) @ R @ torch.diag(half), torch.zeros(3, 1)], 1)
    grid = F.affine_grid(theta[None].to(t), list(t.shape), align_corners=False)
    return F.grid_sample(t, grid, mode="bilinear", padding_mode="border", align_corners=False)


def pick_device(name="auto") -> torch.device:
    """``auto``: CUDA when available, else CPU; ``cuda`` without a GPU is an error, not a silent CPU run."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InnerEarSegError(f"device '{name}' was asked for but no CUDA GPU is available to PyTorch; "
                               "use 'cpu' or 'auto'")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise InnerEarSegError(f"unknown device '{name}'; use 'auto', 'cpu' or 'cuda'") from e


def configure_threads() -> None:
    """Use every core this process may run on, unless the user chose (OMP/MKL_NUM_THREADS)."""
    if not ("OMP_NUM_THREADS" in os.environ or "MKL_NUM_THREADS" in os.environ):
        torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())


@functools.lru_cache(maxsize=None)
def native_cpu_bf16() -> bool:
    """Whether PyTorch reports bf16 in hardware on this CPU (AVX512-BF16 or AMX tiles); asked
    once per process, as the CPU does not change.

    These ``torch.cpu`` helpers are private (present in torch 2.1-2.13), so any failure means
    no: fp32 is the safe answer."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except Exception:   # noqa: BLE001 - a missing private helper must not stop a segmentation
        return False


def _autocast_dtype(device: torch.device, amp: bool, cpu_bf16: Optional[bool]):
    """The autocast dtype for this device, or None for fp32; ``cpu_bf16`` None: automatic."""
    if device.type == "cuda" and amp:
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and (native_cpu_bf16() if cpu_bf16 is None else cpu_bf16):
        return torch.bfloat16
    return None


def _probabilities(net, x: torch.Tensor, roi_size, device: torch.device, amp: bool, cpu_bf16: Optional[bool]):
    dtype = _autocast_dtype(device, amp, cpu_bf16)
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        logits = sliding_window_inference(x, list(roi_size), 1, net, overlap=OVERLAP, mode="gaussian")
    return torch.softmax(logits.float(), dim=1)


def _run(net, x: torch.Tensor, roi_size, device: torch.device, tta: bool, amp: bool,
         cpu_bf16: Optional[bool], turns: bool = False) -> torch.Tensor:
    """The mean probabilities over the passes: the region (turned by each of ``TURNS`` too when
    ``turns``), and each of those mirrored too when ``tta``; every pass undone before averaging."""
    net.to(device)
    x = x.to(device)
    passes = [(R, dims) for R in ((None,) + TURNS if turns else (None,)) for dims in (TTA_FLIPS if tta else TTA_FLIPS[:1])]
    total = None
    for R, dims in passes:
        xi = x if R is None else turned(x, R)
        p = _probabilities(net, torch.flip(xi, dims) if dims else xi, roi_size, device, amp, cpu_bf16)
        p = torch.flip(p, dims) if dims else p
        p = p if R is None else turned(p, R.T)
        total = p if total is None else total + p
    return total / len(passes)


def predict_probabilities(net, array_zyx: np.ndarray, roi_size: Sequence[int], device="cpu",
                          tta: bool = False, amp: bool = True, cpu_bf16: Optional[bool] = None,
                          turns: bool = False) -> np.ndarray:
    """Class probabilities (C, z, y, x) float32 of ``net`` over a normalised (z, y, x) array.

    ``roi_size`` (z, y, x) is the sliding-window size; the array's sizes must be multiples of
    ``net.divisor`` (model-space grids are built so). The network is moved to ``device``.
    ``amp``: autocast on CUDA; ``cpu_bf16``: bf16 autocast on the CPU, None where native (module docstring).
    ``tta``: also the left/right mirror; ``turns``: also the region turned (``TURNS``).
    """
    device = torch.device(device)
    x = torch.from_numpy(np.ascontiguousarray(array_zyx, dtype=np.float32))[None, None]
    try:
        probs = _run(net, x, roi_size, device, tta, amp, cpu_bf16, turns)
    except torch.OutOfMemoryError:
        if device.type != "cuda":
            raise
        torch.cuda.empty_cache()
        warnings.warn("the GPU ran out of memory; running this region on the CPU instead (slower)")
        probs = _run(net, x, roi_size, torch.device("cpu"), tta, amp, cpu_bf16, turns)
    return probs[0].cpu().numpy().astype(np.float32, copy=False)
