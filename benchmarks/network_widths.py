"""What a wider segmenter costs: one training step and one inference window per channel width.

    python benchmarks/network_widths.py [--widths 8,16,32,64 16,32,64,128] [--threads 2] [--repeats 4]

The bundled segmenter has 8-64 channels; the reference method (Vaidyanathan et al. 2021) used
16-128. For each width the script builds the product's network (``network.build_network``: attention
U-Net with input pyramid, 4 classes), then times a training step (batch 2, 80^3 patch, bf16
autocast on the CPU, Adam) and an inference pass over one 96^3 window (the bundled window), the
median of ``--repeats`` after one warm-up. Network time only: data generation and test-time
augmentation (14 passes per ear) come on top.
"""
import argparse
import statistics
import time

import torch

from InnerEarSegLib.model.network import build_network


def timed(fn, repeats: int) -> float:
    fn()   # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(channels, repeats: int, device: str):
    net = build_network({"in_channels": 1, "out_channels": 4, "channels": channels, "pyramid_levels": 3,
                         "attention": True}).to(device)
    optimiser = torch.optim.Adam(net.parameters(), 1e-4)
    patch = torch.randn(2, 1, 80, 80, 80, device=device)
    window = torch.randn(1, 1, 96, 96, 96, device=device)

    def step():
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = net(patch).float().mean()
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()

    def infer():
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
            net(window)

    net.train()
    train_s = timed(step, repeats)
    net.eval()
    return train_s, timed(infer, repeats), sum(p.numel() for p in net.parameters())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", nargs="+", default=["8,16,32,64", "16,32,64,128"],
                    help="channel widths per level, comma-separated, one per network")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"{'channels':16} {'parameters':>10} {'train step s':>12} {'96^3 window s':>13}   ({args.threads} threads)")
    for width in args.widths:
        channels = [int(c) for c in width.split(",")]
        train_s, infer_s, params = measure(channels, args.repeats, args.device)
        print(f"{width:16} {params:10,d} {train_s:12.2f} {infer_s:13.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
