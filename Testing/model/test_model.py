"""The network: shapes, the input pyramid, attention gates, He initialisation, size checks."""
import numpy as np
import pytest
import torch

from InnerEarSegLib.model.network import AttentionPyramidUNet, build_network, widened


@pytest.mark.parametrize("channels,size,out", [((4, 8), (2, 1, 8, 12, 16), 4),
                                               ((4, 8, 16), (1, 1, 16, 8, 24), 2),
                                               ((2, 4, 8, 16), (1, 1, 16, 16, 32), 4)])
def test_output_shape_follows_the_input(channels, size, out):
    net = AttentionPyramidUNet(out_channels=out, channels=channels)
    with torch.no_grad():
        y = net(torch.rand(size))
    assert y.shape == (size[0], out) + size[2:]
    assert net.divisor == 2 ** (len(channels) - 1)


def test_size_not_a_multiple_is_refused():
    net = AttentionPyramidUNet(channels=(4, 8, 16))
    with pytest.raises(ValueError, match="not a multiple of 4"):
        net(torch.rand(1, 1, 16, 16, 18))


def test_pyramid_feeds_the_pooled_image_to_levels_1_and_2():
    torch.manual_seed(0)
    net = AttentionPyramidUNet(channels=(4, 8, 16, 32)).eval()
    assert len(net.pyramid) == 2  # levels 1 and 2; level 3 has none
    x = torch.rand(1, 1, 16, 16, 16)
    seen = []
    hooks = [m.register_forward_hook(lambda m, inp, out: seen.append(inp[0])) for m in net.pyramid]
    with torch.no_grad():
        y = net(x)
    for h in hooks:
        h.remove()
    assert torch.allclose(seen[0], torch.nn.functional.avg_pool3d(x, 2))
    assert torch.allclose(seen[1], torch.nn.functional.avg_pool3d(x, 4))
    for level in range(2):  # silencing either pyramid branch changes the output
        hook = net.pyramid[level].register_forward_hook(lambda m, inp, out: torch.zeros_like(out))
        with torch.no_grad():
            assert not torch.allclose(net(x), y, atol=1e-4)
        hook.remove()


def test_attention_maps_are_in_0_1_with_the_skips_size():
    net = AttentionPyramidUNet(channels=(4, 8, 16))
    with torch.no_grad():
        net(torch.randn(2, 1, 16, 24, 32))
    # gates run from the coarsest skip (level 1) to the finest (level 0)
    for gate, level in zip(net.gates, (1, 0)):
        a = gate.last_map
        assert a.shape == (2, 1, 16 >> level, 24 >> level, 32 >> level)
        assert a.min() >= 0 and a.max() <= 1 and a.std() > 0


def test_no_attention_builds_no_gates():
    net = AttentionPyramidUNet(channels=(4, 8), attention=False)
    assert all(isinstance(g, torch.nn.Identity) for g in net.gates)
    assert net(torch.rand(1, 1, 8, 8, 8)).shape == (1, 4, 8, 8, 8)


def test_he_initialisation():
    net = AttentionPyramidUNet(channels=(16, 32))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d) and m.weight.numel() > 5000]
    assert convs
    for conv in convs:
        fan_in = conv.weight[0].numel()
        std = conv.weight.std().item()
        assert std == pytest.approx(np.sqrt(2.0 / fan_in), rel=0.05)
        assert abs(conv.weight.mean().item()) < 0.1 * std
        assert conv.bias is None or torch.count_nonzero(conv.bias) == 0


def test_build_network_from_a_card_entry():
    arch = {"name": "AttentionPyramidUNet", "in_channels": 1, "out_channels": 2, "channels": [4, 8],
            "pyramid_levels": 2, "attention": False}
    net = build_network(arch)
    assert net.channels == (4, 8) and net.head.out_channels == 2 and not net.attention
    with pytest.raises(ValueError, match="unknown architecture keys"):
        build_network({**arch, "depth": 3})


def test_widened_network_computes_the_same_function():
    torch.manual_seed(0)
    net = AttentionPyramidUNet(channels=(4, 8, 16)).eval()
    for m in net.modules():  # non-zero biases, so copying them is checked too
        if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)) and m.bias is not None:
            torch.nn.init.normal_(m.bias, std=0.1)
    wide = widened(net, (8, 16, 32), noise=0).eval()
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        before, after = net(x), wide(x)
    assert wide.channels == (8, 16, 32) and wide.encoders[1][0].conv.in_channels == 8 + 16 // 2
    assert torch.allclose(before, after, atol=1e-4)
    noisy = widened(net, (8, 16, 32), noise=0.01, seed=1)
    assert not torch.equal(noisy.head.weight[:, 0], noisy.head.weight[:, 1])  # twins differ


def test_widening_only_doubles():
    with pytest.raises(ValueError, match="only double"):
        widened(AttentionPyramidUNet(channels=(4, 8)), (8, 12))
