"""Attention 3D U-Net with an input image pyramid (after Vaidyanathan et al., Sci Rep 2021).

Encoder: at each level two 3x3x3 conv + instance norm + ReLU blocks, then max-pool.
Input pyramid: levels 1 and 2 also receive the input image average-pooled to their scale
(3 scales in all), passed through a conv block and concatenated, so coarse levels see
raw intensities as well as learned features. Decoder: transposed-conv upsampling; every
skip connection passes an attention gate driven by the coarser decoder features, which
lets the network suppress look-alike bright structures (internal auditory canal, cistern).
He (Kaiming) initialisation. Built from ``monai.networks.blocks.Convolution``.
Spatial sizes must be multiples of ``2 ** (len(channels) - 1)``.
"""
from typing import Sequence

import torch
from monai.networks.blocks import Convolution
from torch import nn


def conv_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """Two 3x3x3 convolutions, each with instance norm and ReLU."""
    def one(i, o):
        return Convolution(3, i, o, kernel_size=3, norm="instance", act="relu")
    return nn.Sequential(one(in_ch, out_ch), one(out_ch, out_ch))


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018): weights skip features x by a map from g.

    The gate signal g comes from the coarser level, already upsampled to x's size.
    No normalisation on the 1-channel map, so the gate is the same in train and eval.
    """

    def __init__(self, g_ch: int, x_ch: int, inter_ch: int):
        super().__init__()
        self.w_g = nn.Conv3d(g_ch, inter_ch, 1)
        self.w_x = nn.Conv3d(x_ch, inter_ch, 1, bias=False)
        self.psi = nn.Conv3d(inter_ch, 1, 1)
        self.last_map = None  # the latest attention map, kept for inspection and tests

    def forward(self, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        a = torch.sigmoid(self.psi(torch.relu(self.w_g(g) + self.w_x(x))))
        self.last_map = a.detach()
        return x * a


class AttentionPyramidUNet(nn.Module):
    def __init__(self, in_channels: int = 1, out_channels: int = 4,
                 channels: Sequence[int] = (16, 32, 64, 128), pyramid_levels: int = 3,
                 attention: bool = True):
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        self.pyramid_levels = int(pyramid_levels)
        self.attention = bool(attention)
        n = len(self.channels)
        if n < 2:
            raise ValueError("channels needs at least two levels")
        self.encoders = nn.ModuleList()
        self.pyramid = nn.ModuleList()
        prev = in_channels
        for level, ch in enumerate(self.channels):
            extra = 0
            if 0 < level < self.pyramid_levels:
                # the image at this scale, lifted to half this level's width
                self.pyramid.append(Convolution(3, in_channels, ch // 2, kernel_size=3,
                                                norm="instance", act="relu"))
                extra = ch // 2
            self.encoders.append(conv_block(prev + extra, ch))
            prev = ch
        self.pool = nn.MaxPool3d(2)
        self.ups = nn.ModuleList()
        self.gates = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in range(n - 2, -1, -1):
            coarse, fine = self.channels[level + 1], self.channels[level]
            self.ups.append(nn.ConvTranspose3d(coarse, fine, kernel_size=2, stride=2))
            self.gates.append(AttentionGate(fine, fine, max(fine // 2, 1)) if self.attention
                              else nn.Identity())
            self.decoders.append(conv_block(2 * fine, fine))
        self.head = nn.Conv3d(self.channels[0], out_channels, 1)
        self.reset_parameters()

    @property
    def divisor(self) -> int:
        return 2 ** (len(self.channels) - 1)

    def reset_parameters(self) -> None:
        """He initialisation for every convolution, zero biases."""
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(s % self.divisor for s in x.shape[2:]):
            raise ValueError(f"input size {tuple(x.shape[2:])} is not a multiple of {self.divisor}")
        skips = []
        h = x
        image = x
        for level, enc in enumerate(self.encoders):
            if level > 0:
                h = self.pool(h)
                if level < self.pyramid_levels:
                    image = nn.functional.avg_pool3d(image, 2)
                    h = torch.cat([h, self.pyramid[level - 1](image)], dim=1)
            h = enc(h)
            skips.append(h)
        h = skips.pop()
        for up, gate, dec in zip(self.ups, self.gates, self.decoders):
            h = up(h)
            skip = skips.pop()
            skip = gate(h, skip) if self.attention else skip
            h = dec(torch.cat([h, skip], dim=1))
        return self.head(h)


def build_network(arch: dict) -> AttentionPyramidUNet:
    """Build from a model card's ``architecture`` entry (unknown keys are an error)."""
    known = {"in_channels", "out_channels", "channels", "pyramid_levels", "attention"}
    extra = set(arch) - known - {"name"}
    if extra:
        raise ValueError(f"unknown architecture keys: {sorted(extra)}")
    return AttentionPyramidUNet(**{k: v for k, v in arch.items() if k in known})


def widened(net: AttentionPyramidUNet, channels: Sequence[int], noise: float = 0.01,
            seed: int = 0) -> AttentionPyramidUNet:
    """A copy of ``net`` with every level's channels doubled that computes the same function (Net2Net).

    Lets a model trained small on a CPU continue at the reference width (16-128) without
    starting over. Each old channel k becomes new channels 2k and 2k+1 (so concatenated
    skips and pyramid features stay in order); a layer reading doubled inputs gets its
    weights halved, so sums are unchanged; instance norm sees two identical channels. The
    image input, the attention maps and the class outputs keep their size. Relative noise
    ``noise`` on the new weights breaks the symmetry between twins, or they would learn alike.
    """
    channels = tuple(int(c) for c in channels)
    if len(channels) != len(net.channels) or any(c != 2 * o for c, o in zip(channels, net.channels)):
        raise ValueError(f"can only double every level's channels: {net.channels} -> "
                         f"{tuple(2 * c for c in net.channels)}, not {channels}")
    wide = AttentionPyramidUNet(in_channels=net.encoders[0][0].conv.in_channels,
                                out_channels=net.head.out_channels, channels=channels,
                                pyramid_levels=net.pyramid_levels, attention=net.attention)
    generator = torch.Generator().manual_seed(seed)
    old_modules = dict(net.named_modules())
    with torch.no_grad():
        for name, new in wide.named_modules():
            if not isinstance(new, (nn.Conv3d, nn.ConvTranspose3d)):
                continue
            old = old_modules[name]
            out_dim, in_dim = (1, 0) if isinstance(new, nn.ConvTranspose3d) else (0, 1)
            w = old.weight
            for dim in (out_dim, in_dim):
                if new.weight.shape[dim] != w.shape[dim]:
                    w = w.repeat_interleave(2, dim=dim)
            if new.weight.shape[in_dim] != old.weight.shape[in_dim]:
                w = w / 2
            w = w + noise * w.std() * torch.randn(w.shape, generator=generator)
            new.weight.copy_(w)
            if new.bias is not None:
                b = old.bias
                new.bias.copy_(b.repeat_interleave(2) if new.bias.shape != b.shape else b)
    return wide
