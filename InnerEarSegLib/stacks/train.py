"""``innerear-seg train-stack``: train a 2D or 3D U-Net on labelled image stacks of any label set.

Patches of the stacks (rescaled by ``--zoom``, normalised to the 0.5/99.5 percentiles), half
centred near foreground, augmented (flips, 90-degree rotations, elastic, intensity); DiceCE loss,
Adam with a cosine schedule; every ``--val-every`` steps the validation stacks are segmented whole
(Gaussian-weighted sliding windows, as ``segment-stack`` does) and the per-label Dice and IoU
decide which weights are kept. Output: a model card + weights (``card.py``) and ``history.csv``.
"""
import argparse
import csv
import math
import time
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch

from ..core.errors import InputError
from . import data, infer, metrics
from .card import StackModel, architecture, build_network, save_model

ANISOTROPY_FOR_2D = 2.5  # sections this many times thicker than the pixels: train in 2D


def choose_dims(option: str, cases: Sequence[data.Case], patch_depth: int = 16) -> int:
    """2 or 3: as asked, else 2D for thick sections (z pixel size >= 2.5 x the in-plane one) or
    stacks too thin for a 3D patch, 3D otherwise."""
    if option in ("2", "3"):
        return int(option)
    for c in cases:
        if c.image.shape[0] < patch_depth:
            return 2
        if c.pixel_size_um and c.pixel_size_um[0] >= ANISOTROPY_FOR_2D * c.pixel_size_um[2]:
            return 2
    return 3


def prepare(case: data.Case, values, zoom, dims: int):
    """(normalised image, class indices) of a case on the model's grid (zoomed)."""
    img = torch.from_numpy(infer.normalise(case.image))
    cls = torch.from_numpy(data.class_indices(case.labels, values).astype(np.float32))
    if dims == 2:
        size = infer.zoomed_size(img.shape[1:], zoom[1:])
        img = infer._resize(img[:, None], size, "linear")[:, 0]
        cls = infer._resize(cls[:, None], size, "nearest")[:, 0]
    else:
        size = infer.zoomed_size(img.shape, zoom)
        img = infer._resize(img[None, None], size, "linear")[0, 0]
        cls = infer._resize(cls[None, None], size, "nearest")[0, 0]
    return img.numpy(), cls.numpy().astype(np.int64)


def validate(model: StackModel, cases: Sequence[data.Case]) -> dict:
    """Pooled per-label Dice/IoU of the validation cases, segmented whole; key 'mean_dice' too."""
    values = [lab["value"] for lab in model.card["labels"]]
    per_case = [metrics.counts(infer.predict_labels(model, c.image, c.pixel_size_um), c.labels, values)
                for c in cases]
    pooled = metrics.pooled(per_case)
    by_name = {lab["name"]: {k: round(float(pooled[lab["value"]][k]), 4) for k in ("dice", "iou")}
               for lab in model.card["labels"]}
    return {"labels": by_name, "mean_dice": float(np.mean([v["dice"] for v in by_name.values()]))}


def split_cases(names: List[str], val_names: Optional[Sequence[str]], val_fraction: float, seed: int):
    """(training names, validation names): the given validation cases, else the last
    ``val_fraction`` of a seeded shuffle (at least one when there are two cases or more)."""
    if val_names:
        unknown = [v for v in val_names if v not in names]
        if unknown:
            raise InputError(", ".join(unknown), f"--val names case(s) not found among {', '.join(names[:10])}")
        return [n for n in names if n not in val_names], list(val_names)
    order = list(np.random.default_rng(seed).permutation(names))
    n_val = int(round(len(names) * val_fraction)) if len(names) > 1 else 0
    n_val = max(n_val, 1) if len(names) > 1 and val_fraction > 0 else n_val
    return sorted(order[n_val:]), sorted(order[:n_val])


def train(cases: Sequence[data.Case], val_cases: Sequence[data.Case], labels: List[dict], out: Path, *,
          dims: int, patch, channels=(16, 32, 64, 128), zoom: float = 1.0, steps: int = 2000, batch: int = 4,
          lr: float = 1e-3, val_every: int = 250, seed: int = 0, augment: bool = True,
          time_limit_min: Optional[float] = None, channel_names=("image",), log=print, extra_card=None,
          arch: str = "unet", keep: str = "best") -> dict:
    """Train and write the card at ``out``: the weights with the best validation Dice, or the last
    ones when there is no validation or ``keep="last"`` (validation then only logged: a held-back
    test set can be watched without choosing the weights by it).
    Returns {"history": [(step, loss)], "validation": [...], "card": path, "seconds": s}."""
    torch.manual_seed(seed)
    values = [lab["value"] for lab in labels]
    zooms = [1.0 if dims == 2 else zoom, zoom, zoom]
    prepared = [prepare(c, values, zooms, dims) for c in cases]
    patch = tuple(int(p) for p in patch)[-dims:]
    sampler = data.PatchSampler([p[0] for p in prepared], [p[1] for p in prepared], patch, dims, seed, augment)
    arch = architecture(dims, len(labels) + 1, channels, kind=arch)
    net = build_network(arch)
    card = _new_card(out, arch, labels, channel_names, patch, zooms, cases[0].pixel_size_um, extra_card)
    model = StackModel(card, net)
    from monai.losses import DiceCELoss
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    history, validation, best = [], [], -1.0
    start = time.monotonic()
    out.parent.mkdir(parents=True, exist_ok=True)
    step = 0
    for step in range(1, steps + 1):
        rate = lr * cosine(progress(step - 1, steps, time.monotonic() - start, time_limit_min))
        history.append((step, _optimise(net, opt, loss_fn, sampler.batch(batch), rate)))
        over = time_limit_min is not None and time.monotonic() - start > time_limit_min * 60
        if over or _validation_due(step, steps, val_every):
            entry = _validation_entry(model, val_cases, history[-val_every:], step, time.monotonic() - start)
            validation.append(entry)
            log(_validation_line(entry, bool(val_cases)))
            score = _selection_score(entry, step, keep)
            if score > best:
                best = score
                card.update(training=_training_block(cases, val_cases, step, batch, lr, seed, augment, entry),
                            validation=entry if val_cases else None)
                save_model(out, net, card)
        if over:
            log(f"time limit reached after {step} steps")
            break
    seconds = time.monotonic() - start
    _write_history(out.parent / "history.csv", history)
    return {"history": history, "validation": validation, "card": out, "seconds": seconds, "steps": step}


def _new_card(out: Path, arch: dict, labels: List[dict], channel_names, patch, zooms, size, extra_card) -> dict:
    """The card of a new stack model (``extra_card`` entries first); ``size``: the cases' pixel size (µm)."""
    return dict(extra_card or {}, name=out.stem, version="1", architecture=arch, labels=labels,
                channel_names=list(channel_names), patch_size=list(patch), zoom=zooms,
                pixel_size_um=[s / z for s, z in zip(size, zooms)] if size else None,
                normalisation={"percentiles": list(infer.PERCENTILES)})


def _optimise(net, opt, loss_fn, batch, lr: float) -> float:
    """One optimizer step at learning rate ``lr`` on ``batch`` (images, labels); the loss."""
    net.train()
    for group in opt.param_groups:
        group["lr"] = lr
    x, y = batch
    loss = loss_fn(net(torch.from_numpy(x)), torch.from_numpy(y))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


def _validation_due(step: int, steps: int, val_every: int) -> bool:
    """Validation every ``val_every`` steps and after the last."""
    return step % max(1, val_every) == 0 or step == steps


def _selection_score(entry: dict, step: int, keep: str) -> float:
    """What picks the weights kept, higher better: the validation Dice (the step when there is no
    validation), or the step itself for ``keep="last"``."""
    return entry.get("mean_dice", step) if keep == "best" else step


def _validation_entry(model: StackModel, val_cases, recent, step: int, seconds: float) -> dict:
    """Step, mean loss over ``recent`` (step, loss) pairs, time, and the validation Dice when there are cases."""
    entry = {"step": step, "loss": float(np.mean([h[1] for h in recent])), "seconds": round(seconds, 1)}
    if val_cases:
        model.network.eval()
        entry.update(validate(model, val_cases))
    return entry


def _validation_line(entry: dict, validated: bool) -> str:
    dice = (f", validation Dice {entry['mean_dice']:.4f} "
            f"{ {k: v['dice'] for k, v in entry['labels'].items()} }" if validated else "")
    return f"step {entry['step']}: loss {entry['loss']:.4f}" + dice + f" ({entry['seconds']:.0f} s)"


def progress(step: int, steps: int, seconds: float, time_limit_min: Optional[float]) -> float:
    """How far training is, 0..1: by steps, or by time when a time limit comes first, so that
    the learning rate is annealed to zero by whichever ends the run."""
    done = step / steps
    if time_limit_min:
        done = max(done, seconds / (time_limit_min * 60))
    return min(done, 1.0)


def cosine(fraction: float) -> float:
    return 0.5 * (1 + math.cos(math.pi * fraction))


def _training_block(cases, val_cases, step, batch, lr, seed, augment, entry) -> dict:
    return {"cases": [c.name for c in cases], "validation_cases": [c.name for c in val_cases],
            "steps": step, "batch": batch, "lr": lr, "seed": seed, "augment": augment,
            "loss": "DiceCE", "optimiser": "Adam, cosine to 0 (by steps or time limit)", "seconds": entry["seconds"],
            "device": "cpu", "threads": torch.get_num_threads()}


def _write_history(path: Path, history) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "loss"])
        w.writerows(history)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", required=True, metavar="PATH",
                   help="folder of image stacks (files or slice folders), or one stack file")
    p.add_argument("--labels", required=True, metavar="PATH", help="the label stacks, matched by name")
    p.add_argument("--dataset", metavar="JSON", help="nnU-Net style dataset.json (labels, channel_names, file_ending)")
    p.add_argument("--label-names", nargs="+", metavar="NAME", help="names of label values 1, 2, ... (without --dataset)")
    p.add_argument("--mask-threshold", type=float, metavar="T", help="grey-level masks: label 1 where mask >= T")
    p.add_argument("--pixel-size", nargs="+", type=float, metavar="UM", help="x y [z] in micrometres (TIFF/PNG lack it)")
    p.add_argument("--val", nargs="+", metavar="CASE", help="validation cases by name (default: --val-fraction)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of the cases for validation (0: none)")
    p.add_argument("--exclude", nargs="+", metavar="CASE", default=[],
                   help="cases not to read at all (held back for a final test)")
    p.add_argument("--dims", default="auto", choices=["auto", "2", "3"], help="2D or 3D network (auto: from spacing)")
    p.add_argument("--zoom", type=float, default=1.0, help="rescale stacks by this (0.5: half resolution)")
    p.add_argument("--patch-size", nargs="+", type=int, default=[256, 256], metavar="N")
    p.add_argument("--channels", nargs="+", type=int, default=[16, 32, 64, 128])
    p.add_argument("--arch", default="unet", choices=["unet", "basicunet"],
                   help="MONAI UNet (default, fast) or BasicUNet (full-resolution first level: finer edges, slower)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--keep", default="best", choices=["best", "last"],
                   help="weights kept: best validation Dice (default) or last (validation only logged)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--time-limit-min", type=float)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--out", required=True, metavar="CARD.json", help="model card to write (weights beside it)")


def run(args) -> int:
    torch.set_num_threads(args.threads)
    if args.dataset:
        desc = data.read_dataset_json(args.dataset)
    else:
        desc = {"labels": data.label_list(args.label_names or ["foreground"]), "channel_names": ["image"],
                "file_ending": None}
    pairs = data.pair_cases(args.images, args.labels, desc["file_ending"])
    unknown = [e for e in args.exclude if e not in [n for n, _, _ in pairs]]
    if unknown:
        raise InputError(args.images, f"--exclude names case(s) not found: {', '.join(unknown)}")
    pairs = [p for p in pairs if p[0] not in args.exclude]
    values = [lab["value"] for lab in desc["labels"]]
    cases = {n: data.load_case(n, i, l, values, args.pixel_size, args.mask_threshold) for n, i, l in pairs}
    train_names, val_names = split_cases(list(cases), args.val, args.val_fraction, args.seed)
    if not train_names:
        raise InputError(args.images, "no training cases left after the validation split")
    dims = choose_dims(args.dims, list(cases.values()))
    out = Path(args.out)
    print(f"{len(train_names)} training and {len(val_names)} validation stacks; {dims}D U-Net")
    result = train([cases[n] for n in train_names], [cases[n] for n in val_names], desc["labels"], out,
                   dims=dims, patch=args.patch_size, channels=args.channels, zoom=args.zoom, steps=args.steps,
                   batch=args.batch, lr=args.lr, val_every=args.val_every, seed=args.seed,
                   augment=not args.no_augment, time_limit_min=args.time_limit_min,
                   channel_names=desc["channel_names"], arch=args.arch, keep=args.keep,
                   extra_card={"data": {"images": str(args.images), "labels": str(args.labels)}})
    print(f"model card: {out} ({result['steps']} steps, {result['seconds'] / 60:.1f} min)")
    return 0
