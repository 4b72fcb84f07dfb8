"""Training and fine-tuning (``innerear-seg train``).

One network (``--stage segmenter`` or ``localizer``) is trained per run on synthetic
samples and/or user image/label folders (see ``datasets``), validated every epoch by
Dice on fixed held-out samples, and saved as a model (weights + card, ``model_card``)
whenever validation improves. ``<out>.ckpt.pt`` beside the model holds everything needed
to resume (``--resume``). ``--init MODEL.json`` starts from a shipped model's weights and
card; its other network is carried into the new model, which is how a localizer and a
segmenter trained in separate runs end up in one model file.

Mixed precision (``--amp``, on by default): bf16 autocast on CPU, which roughly halves
the step time on CPUs with bf16 instructions (measured 0.35 s against 0.6-0.9 s per step,
batch 2 of 48^3 patches, 2 threads, AMD EPYC); bf16 (or fp16 with loss scaling) on CUDA.
"""
import copy
import functools
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss, DiceLoss, TverskyLoss
from monai.metrics import DiceMetric
from monai.networks.utils import one_hot
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .. import __version__
from ..core import grid
from ..core.errors import Cancelled, InnerEarSegError, ModelError
from ..core.labels import NUM_CLASSES, STRUCTURES
from ..core.progress import CancelFlag, no_progress
from ..model.model_card import card_path_for, default_card, load_model, network_arch, save_model
from ..model.network import AttentionPyramidUNet, build_network, widened
from ..synth.realshapes import ShapeSampler
from . import datasets

STAGES = {"segmenter": NUM_CLASSES, "localizer": 2}  # stage -> output classes
LOSSES = ("tversky", "tverskyce", "dice", "ce", "dicece")
LR_SCHEDULES = ("constant", "cosine")
LOCALIZER_PATCH = (48, 80, 80)  # the generator's default field of view: 96 x 160 x 160 mm
DEFAULT_CHANNELS = (16, 32, 64, 128)  # the reference network's width


@dataclass
class TrainConfig:
    """Everything a training run needs; the CLI options map one to one onto these fields."""

    out: str = ""
    stage: str = "segmenter"
    synthetic: bool = True
    data: List[str] = field(default_factory=list)
    synthetic_fraction: float = 0.5        # share of synthetic samples when user data is given too
    label_kind: str = "structures"         # what --data/--val-data labels hold: datasets.LABEL_KINDS
    shape_fraction: float = 0.0            # share of samples synthesised from the real shapes of --data
    val_data: List[str] = field(default_factory=list)
    val_samples: int = 16
    val_shape_samples: int = 0             # fixed MR-like samples rendered from the --val-data label shapes
    patch_size: Optional[Sequence[int]] = None  # (z, y, x); None: the card's (segmenter) or 48x80x80
    spacing: Optional[float] = None        # input spacing in mm; None: the card's (0.45 segmenter, 2 localiser)
    channels: Optional[Sequence[int]] = None  # None: the --init network's, else DEFAULT_CHANNELS
    loss: str = "tversky"
    lr: float = 1e-4
    lr_schedule: str = "constant"          # or "cosine": lr falls to 0 over epochs * steps_per_epoch
    batch: int = 2
    steps_per_epoch: int = 250
    epochs: int = 100
    patience: int = 10                     # epochs without validation gain before stopping; 0 never
    time_limit_min: float = 0.0            # 0: no limit
    init: Optional[str] = None
    resume: bool = False
    device: str = "auto"
    amp: bool = True
    workers: int = 1
    threads: int = 0                       # 0: torch's default
    seed: int = 0
    augment: bool = True
    soft_labels: bool = True               # segmenter: synthetic targets are class fractions (sub-voxel)
    contrast_weights: Optional[Sequence[float]] = None  # synthetic training contrasts mr, ct, cbct, random
    progress_bar: bool = True

    def problems(self) -> List[str]:
        """What is wrong with the options, one CLI-worded sentence each; empty when the run can start."""
        return (self._run_problems() + self._label_problems() + self._network_problems()
                + self._count_problems() + self._option_problems() + self._seed_problems())

    def _run_problems(self) -> List[str]:
        p = []
        if not self.out or Path(self.out).suffix != ".json":
            p.append("--out must name the model card to write, e.g. my_model.json")
        if self.stage not in STAGES:
            p.append(f"--stage must be one of {sorted(STAGES)}")
        if not self.synthetic and not self.data:
            p.append("no training data: use --synthetic and/or --data")
        return p

    def _label_problems(self) -> List[str]:
        p = []
        if not 0.0 <= self.synthetic_fraction <= 1.0:
            p.append("--synthetic-fraction must be between 0 and 1")
        if not 0.0 <= self.shape_fraction <= 1.0 or self.shape_fraction + self.synthetic_fraction > 1.0:
            p.append("--shape-fraction must be between 0 and 1 - --synthetic-fraction")
        if self.shape_fraction and (self.label_kind not in ("labyrinth", "split") or not self.data):
            p.append("--shape-fraction needs --data with --label-kind labyrinth or split (the real shapes)")
        if self.val_shape_samples and (self.label_kind not in ("labyrinth", "split") or not self.val_data):
            p.append("--val-shape-samples needs --val-data with --label-kind labyrinth or split (the real shapes)")
        if self.label_kind not in datasets.LABEL_KINDS:
            p.append(f"--label-kind must be one of {datasets.LABEL_KINDS}")
        if self.label_kind in datasets.LABEL_KINDS and datasets.is_partial(self.label_kind) \
                and self.stage != "segmenter":
            p.append(f"--label-kind {self.label_kind} is for the segmenter")
        return p

    def _network_problems(self) -> List[str]:
        p = []
        if self.loss not in LOSSES:
            p.append(f"--loss must be one of {LOSSES}")
        channels = self.channels or DEFAULT_CHANNELS
        if len(channels) < 2 or min(channels) < 2:
            p.append("--channels needs at least two levels of at least 2 channels")
        divisor = 2 ** (len(channels) - 1)
        if self.patch_size is not None and (len(self.patch_size) != 3 or any(s < divisor or s % divisor
                                                                                for s in self.patch_size)):
            p.append(f"--patch-size must be 3 sizes, multiples of {divisor} for {len(channels)} levels")
        return p

    def _count_problems(self) -> List[str]:
        p = []
        for name in ("batch", "steps_per_epoch", "epochs"):
            if getattr(self, name) < 1:
                p.append(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("val_samples", "val_shape_samples", "patience", "workers", "threads", "seed", "time_limit_min"):
            if getattr(self, name) < 0:
                p.append(f"--{name.replace('_', '-')} must not be negative")
        return p

    def _option_problems(self) -> List[str]:
        p = []
        if self.contrast_weights is not None and (len(self.contrast_weights) != 4 or min(self.contrast_weights) < 0
                                                  or not sum(self.contrast_weights) > 0):
            p.append("--contrast-weights needs 4 shares (mr ct cbct random), none negative, not all 0")
        if not self.lr > 0:
            p.append("--lr must be positive")
        if self.spacing is not None and not self.spacing > 0:
            p.append("--spacing must be positive")
        if self.lr_schedule not in LR_SCHEDULES:
            p.append(f"--lr-schedule must be one of {LR_SCHEDULES}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            p.append("--device must be auto, cpu or cuda")
        return p

    def _seed_problems(self) -> List[str]:
        last_seed = datasets.sample_seed(self.seed, self.epochs * self.steps_per_epoch, self.batch, 0)
        if self.seed * 1_000_003 < datasets.VALIDATION_SEED + self.val_samples and \
                last_seed > datasets.VALIDATION_SEED:
            return ["--seed too large: training seeds would reach the validation seeds (10**9 + i)"]
        return []

    def isValid(self) -> bool:
        return not self.problems()


def learning_rate(config: TrainConfig, step: int) -> float:
    """The rate for ``step`` (0-based). Cosine: from ``lr`` to 0 over the run's planned steps.

    Why: at a constant rate the fine-tuning runs' validation Dice went up and down by about
    0.01 around a plateau for thousands of steps; annealing to 0 settles at the bottom
    (Loshchilov & Hutter 2017). Resuming recomputes the rate from the step, so it continues.
    """
    if config.lr_schedule == "constant":
        return config.lr
    total = config.epochs * config.steps_per_epoch
    return 0.5 * config.lr * (1.0 + math.cos(math.pi * min(step, total) / total))


def merged_logits(logits: torch.Tensor, groups) -> torch.Tensor:
    """(B, C, ...) -> (B, 1 + len(groups), ...): background, then one channel per group of structure
    classes, whose softmax probability is the sum of its structures' (log-sum-exp of their logits)."""
    return torch.cat([logits[:, :1]] + [torch.logsumexp(logits[:, list(g)], 1, keepdim=True) for g in groups], 1)


class MarginalLoss(nn.Module):
    """A loss for batches that mix structure targets and partial (grouped) targets.

    A sample's ``kind`` indexes ``datasets.LABEL_KINDS``. Partial kinds carry groups of structures
    in target channels 1..G (the whole labyrinth; or the cochlea and the vestibule with the canals):
    for them the structures' probabilities are summed per group (``merged_logits``) and scored
    against those channels, so the network is never told more than the label knows (the marginal
    loss of Shi et al., Med Image Anal 2021, for partially labelled data). Samples with structure
    labels take ``loss`` as usual. Each part is weighted by its share of the batch.
    """

    def __init__(self, loss: nn.Module):
        super().__init__()
        self.loss = loss

    def forward(self, logits, target, kind=None):
        if kind is None:
            return self.loss(logits, target)
        kind = kind.to(logits.device)
        total = logits.new_zeros(())
        for index, name in enumerate(datasets.LABEL_KINDS):
            chosen = kind == index
            if not bool(chosen.any()):
                continue
            groups = datasets.LABEL_GROUPS[name]
            if groups is None:
                part = self.loss(logits[chosen], target[chosen])
            else:
                part = self.loss(merged_logits(logits[chosen], groups), target[chosen][:, :len(groups) + 1])
            total = total + part * chosen.float().mean()
        return total


def make_loss(name: str) -> nn.Module:
    """Loss on logits (B, C, ...) against labels (B, 1, ...) or class fractions (B, C, ...), background excluded.

    Tversky weighs false negatives 0.7 and false positives 0.3, so thin canals are not
    given up for a cleaner background. MONAI's ``alpha`` weighs false POSITIVES and
    ``beta`` false NEGATIVES, hence alpha=0.3, beta=0.7. ``tverskyce`` adds cross-entropy:
    from scratch, Tversky alone first over-segments the small classes (measured: vestibule
    and canal Dice near 0.01 after 900 steps while the cochlea reached 0.6); the voxel-wise
    cross-entropy term corrects that quickly. With class fractions as targets the
    cross-entropy is lowest when the network outputs the fractions themselves, which is
    what places boundaries between voxel centres.
    """
    tversky = functools.partial(TverskyLoss, include_background=False, softmax=True, alpha=0.3, beta=0.7)
    losses = {"tversky": tversky, "dice": functools.partial(DiceLoss, include_background=False, softmax=True),
              "dicece": functools.partial(DiceCELoss, include_background=False, softmax=True),
              "ce": nn.CrossEntropyLoss, "tverskyce": lambda: SumOfLosses(tversky(), nn.CrossEntropyLoss())}
    if name not in losses:
        raise ValueError(f"unknown loss {name!r}; choose from {LOSSES}")
    return MarginalLoss(OnProbabilities(losses[name]()))


class SumOfLosses(nn.Module):
    def __init__(self, *losses):
        super().__init__()
        self.losses = nn.ModuleList(losses)

    def forward(self, logits, target):
        return sum(loss(logits, target) for loss in self.losses)


class OnProbabilities(nn.Module):
    """Gives a loss class probabilities: labels (B, 1, ...) become one-hot, fractions pass as they are."""

    def __init__(self, loss):
        super().__init__()
        self.loss = loss

    def forward(self, logits, target):
        if target.shape[1] == 1:
            target = one_hot(target.long(), logits.shape[1])
        return self.loss(logits, target.to(logits.dtype))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)


def amp_dtype(device: torch.device, enabled: bool):
    """The autocast dtype, or None for full precision."""
    if not enabled:
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        name = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {torch.get_num_threads()} threads"


def checkpoint_path(out) -> Path:
    """``model.json`` -> ``model.ckpt.pt`` (beside the model's ``model.pt``)."""
    return card_path_for(out).with_suffix(".ckpt.pt")


def starting_point(config: TrainConfig):
    """(base card, networks): the ``--init`` model's, or a default card and a fresh network."""
    networks, card = {}, default_card()
    if config.init:
        loaded = load_model(config.init, require_segmenter=False)
        networks, card = dict(loaded.networks), copy.deepcopy(loaded.card)
    if config.stage not in networks:
        networks[config.stage] = AttentionPyramidUNet(out_channels=STAGES[config.stage],
                                                      channels=config.channels or DEFAULT_CHANNELS)
    elif config.channels and tuple(config.channels) != networks[config.stage].channels:
        try:
            networks[config.stage] = widened(networks[config.stage], config.channels, seed=config.seed)
        except ValueError as e:
            raise ModelError(config.init, f"its {config.stage} cannot start --channels "
                                          f"{' '.join(map(str, config.channels))}: {e}") from None
    if networks[config.stage].head.out_channels != STAGES[config.stage]:
        raise ModelError(config.init, f"its {config.stage} has {networks[config.stage].head.out_channels} "
                                      f"outputs, expected {STAGES[config.stage]}")
    return card, networks


def structure_names(stage: str) -> List[str]:
    return [s.key for s in STRUCTURES] if stage == "segmenter" else ["labyrinth"]


# MR-like patches rendered from the validation cases' label shapes (``--val-shape-samples``)
MR_SHAPES_SET = "shapes_mr"
MR_CONTRAST_ONLY = (1.0, 0.0, 0.0, 0.0)   # realshapes.CONTRASTS shares: MR only

# validation set of each label kind, and the names of its label values beyond 0 (None: the structures)
VALIDATION_SETS = {"structures": ("user", None), "labyrinth": ("user_labyrinth", ()),
                   "split": ("user_split", ("cochlea", "vestibule_canals"))}


def to_label_values(pred: torch.Tensor, kind: str) -> torch.Tensor:
    """Predicted structure classes as the label values of ``kind`` (its groups for partial kinds)."""
    lut = torch.arange(NUM_CLASSES, device=pred.device)
    for value, group in enumerate(datasets.LABEL_GROUPS[kind] or (), 1):
        lut[list(group)] = value
    return lut[pred]


@torch.no_grad()
def predict_sets(net, synthetic, volumes, patch_size, batch, device, dtype, normalisation, shapes=None) -> list:
    """(set name, label kind, prediction, label) per validation case, each (B, 1, z, y, x).

    ``synthetic``: (images, labels) of procedural patches; ``shapes``: (images, labels, kind) of
    patches rendered from real label shapes (``MR_SHAPES_SET``), or None."""
    net.eval()
    pairs = []
    patch_sets = [("synthetic", "structures", *synthetic)]
    if shapes is not None:
        patch_sets.append((MR_SHAPES_SET, shapes[2], shapes[0], shapes[1]))
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        for name, kind, images, labels in patch_sets:
            for i in range(0, len(images), batch):
                image = torch.as_tensor(images[i:i + batch])[:, None].to(device)
                pred = to_label_values(net(image).argmax(1, keepdim=True), kind)
                pairs.append((name, kind, pred, labels[i:i + batch]))
        for v in volumes:
            image = torch.as_tensor(grid.normalise(v.image, *normalisation))[None, None].to(device)
            logits = sliding_window_inference(image, patch_size, batch, net, overlap=0.25)
            label = datasets.group_classes(v.label) if datasets.is_partial(v.kind) else v.label
            pairs.append((VALIDATION_SETS[v.kind][0], v.kind, to_label_values(logits.argmax(1, keepdim=True), v.kind),
                          label[None]))
    net.train()
    return pairs


def validate(net, synthetic, volumes, stage, patch_size, batch, device, dtype, normalisation, shapes=None) -> dict:
    """Mean Dice per structure (or per label value of partial labels) and for the whole labyrinth
    on each validation set.

    ``synthetic``: (images, labels) arrays of patches; ``volumes``: user volumes, each
    normalised as a whole and segmented with a sliding window of the patch size; ``shapes``:
    (images, labels, kind) of MR-like patches from the validation shapes, or None.
    Returns {"synthetic": {...}, "user": {...}, ...} (sets that exist), each with "mean" (over
    structures or label values, else the labyrinth), which the first set of
    ``selection_score`` drives model selection.
    """
    pairs = predict_sets(net, synthetic, volumes, patch_size, batch, device, dtype, normalisation, shapes)
    results = {}
    for name in ("user", "user_split", "user_labyrinth", MR_SHAPES_SET, "synthetic"):
        chosen = [(k, p.cpu(), torch.as_tensor(np.asarray(y, np.int64))[:, None]) for n, k, p, y in pairs if n == name]
        if chosen:
            results[name] = set_metrics(chosen, stage)
    return results


def set_metrics(chosen, stage) -> dict:
    """Dice per label value and of the whole labyrinth over (kind, prediction, label) triples of one set."""
    values = VALIDATION_SETS[chosen[0][0]][1]
    keys = structure_names(stage) if values is None else list(values)
    n_classes = STAGES[stage] if values is None else len(datasets.LABEL_GROUPS[chosen[0][0]]) + 1
    per_class = DiceMetric(include_background=False, reduction="mean_batch", get_not_nans=True)
    whole = DiceMetric(include_background=False, reduction="mean_batch", get_not_nans=True)
    for _, pred, label in chosen:
        per_class(one_hot(pred, n_classes), one_hot(label, n_classes))
        whole(one_hot((pred > 0).long(), 2), one_hot((label > 0).long(), 2))
    metrics = {}
    if stage == "segmenter" and keys:
        dice, counted = per_class.aggregate()
        metrics = {k: float(d) if c else math.nan for k, d, c in zip(keys, dice, counted)}
    dice, counted = whole.aggregate()
    metrics["labyrinth"] = float(dice[0]) if counted[0] else math.nan
    scored = [metrics[k] for k in (keys if stage == "segmenter" and keys else ["labyrinth"]) if not math.isnan(metrics[k])]
    metrics["mean"] = float(np.mean(scored)) if scored else math.nan
    return metrics


def selection_score(metrics: dict) -> float:
    """The validation Dice that picks the best model: user cases first (per structure, else per label
    value of split labels, else the whole labyrinth), else synthetic; averaged with the labyrinth
    Dice of the MR-like renders of the validation shapes when there are some.

    Why the average: the validation ears are CT. Selected on them alone, fine-tunes kept the epoch
    with the best CT and let MR skill fade: the real MRI crop scored 0.76 a few hundred steps into
    two runs (real44, real46w) and 0.70 at the CT-best epoch (real45; docs/real_data.md). The
    renders' labyrinth Dice ranked four models as the real MRI does (``experiments/mr_proxy.py``);
    their split mean did not."""
    first = next((metrics[n]["mean"] for n in ("user", "user_split", "user_labyrinth", "synthetic")
                  if n in metrics and not math.isnan(metrics[n]["mean"])), math.nan)
    mr = metrics.get(MR_SHAPES_SET, {}).get("labyrinth", math.nan)
    return first if math.isnan(mr) else mr if math.isnan(first) else (first + mr) / 2


def save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def train(config: TrainConfig, progress=None, cancel: Optional[CancelFlag] = None) -> dict:
    """Train one network as ``config`` says; returns a summary (paths, losses, validation history).

    Stops after ``epochs``, on early stopping, or at the time limit (finishing with a
    validation and save). On cancel (``cancel`` or Ctrl+C) the last epoch's checkpoint stands.
    """
    problems = config.problems()
    if problems:
        raise ValueError("; ".join(problems))
    return Trainer(config).run(progress or no_progress, cancel or CancelFlag())


def new_state() -> dict:
    """The run's counters as the checkpoint keeps them."""
    return {"step": 0, "epoch": 0, "best": -math.inf, "best_epoch": 0, "stale": 0, "seconds": 0.0, "history": []}


def read_checkpoint(path: Path, stage: str) -> dict:
    """The checkpoint at ``path``, checked to train ``stage``."""
    if not path.is_file():
        raise ModelError(path, "no checkpoint to resume from")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if ckpt["stage"] != stage:
        raise ModelError(path, f"checkpoint trains the {ckpt['stage']}, not the {stage}")
    return ckpt


def checkpoint_networks(ckpt: dict) -> dict:
    """{name: network} rebuilt from a checkpoint's architectures and weights."""
    networks = {}
    for name, saved in ckpt["networks"].items():
        networks[name] = build_network(saved["arch"])
        networks[name].load_state_dict(saved["state"])
    return networks


class Trainer:
    """One training run: the network, optimizer and data that ``config`` asks for, the loop over
    epochs, and the model and checkpoint written along the way.

    Set-up happens in ``__init__`` in a fixed order (seeds, then networks, then data), so a run
    with the same config draws the same random numbers; ``run`` trains until a stop condition.
    """

    def __init__(self, config: TrainConfig):
        self.config = config
        self.out, self.ckpt_path = card_path_for(config.out), checkpoint_path(config.out)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = pick_device(config.device)
        self.dtype = amp_dtype(self.device, config.amp)
        self.state = new_state()
        ckpt = read_checkpoint(self.ckpt_path, config.stage) if config.resume else None
        if ckpt:
            self.card, self.networks = ckpt["card"], checkpoint_networks(ckpt)
            self.state.update(ckpt["state"])
        else:
            self.card, self.networks = starting_point(config)
        self.net = self.networks[config.stage].to(self.device).train()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        if ckpt:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            torch.set_rng_state(ckpt["rng"]["torch"])
            np.random.set_state(ckpt["rng"]["numpy"])
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)
        self._set_geometry()
        self._set_data()
        self.loss_fn = make_loss(config.loss)

    def _set_geometry(self) -> None:
        """Input spacing (``--spacing`` written into the card), patch size and intensity window."""
        config, pre = self.config, self.card["preprocessing"]
        spacing_key = "spacing_mm" if config.stage == "segmenter" else "localizer_spacing_mm"
        if config.spacing:
            pre[spacing_key] = float(config.spacing)
        self.spacing = pre[spacing_key]
        self.patch = tuple(config.patch_size or (pre["patch_size"] if config.stage == "segmenter"
                                                 else LOCALIZER_PATCH))
        if any(s % self.net.divisor for s in self.patch):
            raise ValueError(f"patch size {self.patch} is not a multiple of {self.net.divisor} for this network")
        self.norm = (pre["normalisation"]["low"], pre["normalisation"]["high"])

    def _set_data(self) -> None:
        """User volumes, fixed synthetic validation patches and the training batch loader."""
        config = self.config
        sampler = datasets.synthetic_sampler(config.stage, self.patch, self.spacing, config.soft_labels) \
            if config.synthetic or config.val_samples else None
        # validation keeps the generator's own mix, so runs with other contrast weights compare
        train_sampler = datasets.synthetic_sampler(config.stage, self.patch, self.spacing, config.soft_labels,
                                                   config.contrast_weights) if config.contrast_weights else sampler
        self.volumes = datasets.load_volumes(config.data, config.stage, self.spacing, self.patch, config.label_kind)
        self.val_volumes = datasets.load_volumes(config.val_data, config.stage, self.spacing, self.patch,
                                                 config.label_kind)
        shape_sampler = ShapeSampler(self._shapes(config.data), self.patch, self.spacing) \
            if config.shape_fraction else None
        self.val_synthetic = validation_patches(sampler, config.val_samples)
        self.val_shapes = mr_shape_patches(self._shapes(config.val_data), self.patch, self.spacing,
                                           config.val_shape_samples, config.label_kind) \
            if config.val_shape_samples else None
        self.stream = datasets.PatchStream(self.volumes, train_sampler if config.synthetic else None, self.patch,
                                           config.batch, config.seed, self.state["step"], config.synthetic_fraction,
                                           config.augment, self.norm, STAGES[config.stage], shape_sampler,
                                           config.shape_fraction)
        self.loader = DataLoader(self.stream, batch_size=None, num_workers=config.workers,
                                 persistent_workers=config.workers > 0, pin_memory=self.device.type == "cuda")

    def _shapes(self, folders) -> list:
        """The real labyrinth shapes (``realshapes.Shape``) of the cases in ``folders``."""
        return [datasets.load_shape(c, self.spacing) for c in datasets.find_cases(folders, self.config.label_kind)]

    def run(self, progress, cancel: CancelFlag) -> dict:
        """Epochs until done, early stopping, the time limit or a cancel; the summary ``train`` returns."""
        config, state = self.config, self.state
        self.progress, self.cancel = progress, cancel
        self.total = config.epochs * config.steps_per_epoch
        self.bar = tqdm(total=self.total, initial=min(state["step"], self.total), disable=not config.progress_bar,
                        desc=f"train {config.stage}", file=sys.stderr)
        self.losses, self.stopped, self.last_val = [], "epochs done", math.nan
        self.deadline = time.monotonic() + config.time_limit_min * 60 if config.time_limit_min else math.inf
        batches = iter(self.loader)
        try:
            while state["epoch"] < config.epochs:
                if self._epoch(batches):
                    break
        except (Cancelled, KeyboardInterrupt):
            self.stopped = "cancelled"
            raise
        finally:
            self.bar.close()
            del batches  # stops the data workers
            progress("train", 1.0, f"training {self.stopped}")
        return {"model": self.out, "checkpoint": self.ckpt_path, "stopped": self.stopped, "step": state["step"],
                "epoch": state["epoch"], "best": state["best"], "best_epoch": state["best_epoch"],
                "losses": self.losses, "history": state["history"]}

    def _epoch(self, batches) -> bool:
        """One epoch of steps, then validation, the model if it improved, and the checkpoint.
        True when training stops here (time limit or early stopping)."""
        config, state = self.config, self.state
        started = time.monotonic()
        for _ in range(config.steps_per_epoch):
            self._step(*next(batches))
            self.cancel.check()
            if time.monotonic() > self.deadline:
                self.stopped = "time limit"
                break
        state["epoch"] += 1
        state["seconds"] += time.monotonic() - started
        self._validate()
        self._write_checkpoint()
        if self.stopped == "time limit":
            return True
        if config.patience and state["stale"] >= config.patience:
            self.stopped = "early stopping"
            return True
        return False

    def _step(self, image, label, kind) -> None:
        """One optimizer step on one batch, reported to the bar and ``progress``."""
        device, dtype, state = self.device, self.dtype, self.state
        image, label = image.to(device, non_blocking=True), label.to(device, non_blocking=True)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.config, state["step"])
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = self.net(image)
        loss = self.loss_fn(logits.float(), label, kind)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.losses.append(loss.item())
        state["step"] += 1
        self.bar.update()
        self.bar.set_postfix(loss=f"{self.losses[-1]:.4f}", val=f"{self.last_val:.3f}")
        self.progress("train", min(state["step"] / self.total, 1.0),
                      f"epoch {state['epoch'] + 1}, step {state['step']}, loss {self.losses[-1]:.4f}")

    def _validate(self) -> None:
        """Validation Dice into the history; the model is written when the score improves."""
        config, state = self.config, self.state
        metrics = validate(self.net, self.val_synthetic, self.val_volumes, config.stage, self.patch, config.batch,
                           self.device, self.dtype, self.norm, self.val_shapes)
        score = self.last_val = selection_score(metrics)
        state["history"].append({"epoch": state["epoch"], "step": state["step"],
                                 "loss": float(np.mean(self.losses[-config.steps_per_epoch:])), **metrics})
        if math.isnan(score) or score > state["best"]:  # no validation: every epoch is the best
            state.update(best=score if not math.isnan(score) else state["best"], best_epoch=state["epoch"], stale=0)
            self._write_model(metrics)
        else:
            state["stale"] += 1

    def _write_model(self, metrics: dict) -> None:
        """The model file: all networks, and the card with this run's training record."""
        config, new = self.config, copy.deepcopy(self.card)
        if config.stage == "segmenter":
            new["preprocessing"]["patch_size"] = list(self.patch)
            # class weights were chosen for the init's segmenter; new weights need their own
            # (docs/training.md, Options worth knowing)
            new.pop("postprocessing", None)
        # an assembled (bundled) init's test figures and run history describe the init, which the
        # record's "init" names; make_default_model.init_chain finds that history there
        new.pop("test_metrics", None)
        new.pop("training_runs", None)
        new["library_version"] = __version__
        new.setdefault("training", {})[config.stage] = self._training_record(metrics)
        save_model(self.out, self.networks, new)

    def _training_record(self, metrics: dict) -> dict:
        """How this network was trained, for the card's ``training`` section."""
        config, state, dtype = self.config, self.state, self.dtype
        return {
            "steps": state["step"], "epochs": state["epoch"], "best_epoch": state["epoch"],
            "seconds": round(state["seconds"], 1), "hardware": hardware(self.device), "device": str(self.device),
            "amp": str(dtype).replace("torch.", "") if dtype else "fp32", "seed": config.seed,
            "synthetic_seeds": "seed * 1000003 + step * batch + i",
            "validation_seeds": f"{datasets.VALIDATION_SEED} + i for i < {config.val_samples}",
            "loss": config.loss + (" (alpha FN 0.7, beta FP 0.3)" if config.loss.startswith("tversky") else ""),
            "lr": config.lr, "lr_schedule": config.lr_schedule, "batch": config.batch, "patch_size": list(self.patch),
            "spacing_mm": self.spacing,
            "augment": config.augment, "synthetic": config.synthetic,
            "soft_labels": config.soft_labels and config.stage == "segmenter",
            "synthetic_fraction": float(self.stream.shares[1]), "generator_version": datasets.generator_version(),
            "label_kind": config.label_kind, "shape_fraction": float(self.stream.shares[2]),
            "contrast_weights": list(config.contrast_weights) if config.contrast_weights else None,
            "data": [str(d) for d in config.data], "cases": len(self.volumes),
            "val_data": [str(d) for d in config.val_data], "val_cases": len(self.val_volumes),
            "val_shape_samples": config.val_shape_samples,
            "init": str(config.init) if config.init else None, "validation": metrics}

    def _write_checkpoint(self) -> None:
        """Everything ``--resume`` needs, replaced in one rename."""
        save_atomic({"stage": self.config.stage, "config": asdict(self.config), "card": self.card,
                     "state": self.state,
                     "networks": {k: {"arch": network_arch(v, v.head.out_channels), "state": v.state_dict()}
                                  for k, v in self.networks.items()},
                     "optimizer": self.optimizer.state_dict(),
                     "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}}, self.ckpt_path)


def validation_patches(sampler, count: int, to_labels=datasets.as_labels):
    """(images, labels) of the ``count`` fixed synthetic validation samples, empty without a sampler;
    ``to_labels`` turns a sample's target into label values."""
    val_set = [sampler(datasets.VALIDATION_SEED + i) for i in range(count)] if sampler else []
    return (np.stack([s[0] for s in val_set]).astype(np.float32) if val_set else np.zeros((0,)),
            np.stack([to_labels(s[1]) for s in val_set]) if val_set else np.zeros((0,)))


def mr_shape_patches(shapes, patch, spacing: float, count: int, kind: str):
    """(images, labels, kind): the ``count`` fixed MR-like validation renders of real ``shapes``
    (``MR_SHAPES_SET``), their labels as the values of label kind ``kind``."""
    sampler = ShapeSampler(shapes, patch, spacing, contrast_weights=MR_CONTRAST_ONLY)
    return (*validation_patches(sampler, count, datasets.group_classes), kind)


def add_arguments(parser) -> None:
    """The options of ``innerear-seg train``."""
    import argparse
    d = TrainConfig()
    a = parser.add_argument
    a("--out", required=True, help="model card to write (PATH.json; weights PATH.pt, checkpoint PATH.ckpt.pt)")
    a("--stage", choices=sorted(STAGES), default=d.stage, help="which network to train")
    a("--synthetic", action=argparse.BooleanOptionalAction, default=d.synthetic,
      help="train on on-the-fly synthetic samples (default on)")
    a("--data", nargs="+", default=[], metavar="DIR",
      help="folders of image/label pairs: imagesTr/X_0000.nii.gz + labelsTr/X.nii.gz, or X_image.ext + X_label.ext")
    a("--synthetic-fraction", type=float, default=d.synthetic_fraction,
      help="share of synthetic samples when --data is given too")
    a("--val-data", nargs="+", default=[], metavar="DIR", help="held-out user cases for validation")
    a("--label-kind", choices=datasets.LABEL_KINDS, default=d.label_kind,
      help="what the --data/--val-data labels hold: structures (0-3), labyrinth (0/1, the whole labyrinth "
           "without a split) or split (0/1/2: cochlea, vestibule with canals); partial kinds are trained "
           "with the marginal loss")
    a("--shape-fraction", type=float, default=d.shape_fraction,
      help="share of samples synthesised from the real labyrinth shapes of --data with random contrasts "
           "(needs --label-kind labyrinth)")
    a("--val-samples", type=int, default=d.val_samples, help="fixed synthetic validation samples (0: none)")
    a("--val-shape-samples", type=int, default=d.val_shape_samples,
      help="fixed MR-like samples rendered from the --val-data label shapes (needs --label-kind labyrinth or "
           "split); model selection averages their labyrinth Dice with the --val-data cases' score (0: none)")
    a("--patch-size", type=int, nargs=3, metavar=("Z", "Y", "X"), help="patch size in voxels")
    a("--spacing", type=float, metavar="MM", help="the network's isotropic input spacing (default: the --init "
      "card's, else 0.45 for the segmenter and 2 for the localiser); keep patch size x spacing about the card's "
      "ear_region_mm (28.8) for the segmenter")
    a("--channels", type=int, nargs="+", help="features per level (default: the --init network's, else "
      f"{' '.join(map(str, DEFAULT_CHANNELS))}); with --init, twice the init's widens it (same outputs to start)")
    a("--loss", choices=LOSSES, default=d.loss)
    a("--lr", type=float, default=d.lr)
    a("--lr-schedule", choices=LR_SCHEDULES, default=d.lr_schedule,
      help="constant, or cosine: from --lr down to 0 over --epochs x --steps-per-epoch steps")
    a("--batch", type=int, default=d.batch)
    a("--steps-per-epoch", type=int, default=d.steps_per_epoch)
    a("--epochs", type=int, default=d.epochs)
    a("--patience", type=int, default=d.patience, help="stop after this many epochs without gain (0: never)")
    a("--time-limit-min", type=float, default=d.time_limit_min, help="stop (and save) after this many minutes")
    a("--init", metavar="MODEL.json", help="start from this model's weights and card (fine-tuning)")
    a("--resume", action="store_true", help="continue from the checkpoint beside --out")
    a("--device", default=d.device, help="auto, cpu or cuda")
    a("--amp", action=argparse.BooleanOptionalAction, default=d.amp,
      help="mixed precision: bf16 on CPU (about twice as fast), bf16/fp16 on CUDA")
    a("--augment", action=argparse.BooleanOptionalAction, default=d.augment)
    a("--contrast-weights", type=float, nargs=4, metavar=("MR", "CT", "CBCT", "RANDOM"),
      help="shares of the synthetic training contrasts (default 0.4 0.25 0.15 0.2); validation keeps the default")
    a("--soft-labels", action=argparse.BooleanOptionalAction, default=d.soft_labels,
      help="segmenter: synthetic targets are the fraction of each voxel every class fills (default on)")
    a("--workers", type=int, default=d.workers, help="data loader processes")
    a("--threads", type=int, default=d.threads, help="torch CPU threads (0: default)")
    a("--seed", type=int, default=d.seed)


def config_from_args(args) -> TrainConfig:
    names = TrainConfig.__dataclass_fields__
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in names and v is not None})
    config.channels = tuple(config.channels) if config.channels else None
    config.contrast_weights = tuple(config.contrast_weights) if config.contrast_weights else None
    return config


def run(args) -> int:
    """``innerear-seg train``: 0 on success, 1 on a data/model error, 2 on bad options."""
    config = config_from_args(args)
    if not config.isValid():
        for problem in config.problems():
            print(f"innerear-seg train: {problem}", file=sys.stderr)
        return 2
    try:
        result = train(config)
    except (InnerEarSegError, ValueError) as e:
        print(f"innerear-seg train: {e}", file=sys.stderr)
        return 1
    best = f"best validation Dice {result['best']:.3f}" if math.isfinite(result["best"]) else "no validation"
    print(f"{result['stopped']} after {result['epoch']} epochs ({result['step']} steps); {best} at epoch "
          f"{result['best_epoch']}\nmodel: {result['model']}\ncheckpoint: {result['checkpoint']}")
    return 0
