"""The user options of a segmentation run, declared once.

Each field of ``SegmentParameters`` carries, in its metadata (``option``), its help, its panel
label and its choices or range. Everything else is built from that declaration:

- ``innerear-seg segment``'s option flags (``add_arguments``, read back by ``fromArgs``);
- the arguments that reproduce a run (``asArgList``): what the Slicer module passes to the
  process that segments;
- the Slicer module's parameter node and option widgets (``InnerEarSegSlicerLib.panel``), which
  show the words of ``asOptions`` and read them back with ``fromOptions``;
- the checks (``problems`` / ``isValid``), for the API, the CLI and the panel alike.

One name per option everywhere: the field name is the Python keyword, the Slicer parameter and
(dashes for underscores) the command-line flag: ``keep_largest`` is ``--keep-largest`` /
``--no-keep-largest``. One flag keeps its older spelling: ``cpu_bf16`` is ``--cpu-precision``,
whose words (auto, bf16, fp32) stand for the values None, True and False; the panel shows the same
words. Options that are not about how a scan is segmented (inputs, output folder, model, workers,
resume) are not here: they belong to the command line or to the panel. ``preview`` (write
``NAME_preview.png``) is here on purpose although only the writer reads it: these options are what
reaches the writer wherever it runs (``pipeline``, ``cohort``'s Dask workers, the Slicer module's
process), where a flag of its own would have to be passed through each of them. The panel never
shows the PNG, so ``preview`` is declared ``panel=False`` (no widget, no parameter-node field:
``InnerEarSegSlicerLib.panel``) and the module turns it off (``logic.library_parameters``), as it
turns off ``surfaces``.
"""
import argparse
import re
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Tuple


def option(default, help: str, label: str, choices=None, range: Optional[Tuple[float, float]] = None,
           flag: str = "", accepts: str = "", panel: bool = True):
    """A dataclass field declaring a user option. choices: the allowed values, or a mapping from the
    word shown on the command line and in the panel to the value; range: (low, high) inclusive;
    flag: the command-line flag when it is not the field name; accepts: a regular expression of
    further values the API takes (not offered on the command line or in the panel); panel: False
    for an option the Slicer panel does not offer (it keeps its default there)."""
    return field(default=default, metadata={"help": help, "label": label, "choices": choices, "range": range,
                                            "flag": flag, "accepts": accepts, "panel": panel})


@dataclass(frozen=True)
class Option:
    """One declared option, as the command line and the panel need it."""

    name: str
    default: Any
    help: str
    label: str
    choices: Optional[Dict[str, Any]]  # word -> value
    range: Optional[Tuple[float, float]]
    flag: str
    accepts: str
    panel: bool = True  # offered in the Slicer panel

    @property
    def kind(self) -> str:
        """``choice`` (a word from ``choices``), ``range`` (a number) or ``bool`` (on or off)."""
        return "choice" if self.choices else "range" if self.range else "bool"

    @property
    def negative_flag(self) -> str:
        return "--no-" + self.flag[2:]

    def word(self, value):
        """The word that stands for ``value`` (``value`` itself when no word does)."""
        for word, v in (self.choices or {}).items():
            if v is value or (isinstance(v, str) and v == value):
                return word
        return value

    def value(self, word):
        """The value a word stands for (a value that is no word is kept, for ``problem`` to judge)."""
        if self.choices and isinstance(word, str) and word.lower() in self.choices:
            return self.choices[word.lower()]
        return word

    def problem(self, value) -> str:
        """What is wrong with ``value`` for this option, or ""."""
        if self.kind == "choice":
            if self.word(value) in self.choices or (self.accepts and re.fullmatch(self.accepts, str(value))):
                return ""
            return f"{self.name} must be {_either(self.choices)}, not {value!r}"
        if self.kind == "range":
            low, high = self.range
            try:
                inside = low <= float(value) <= high
            except (TypeError, ValueError):
                inside = False
            return "" if inside else f"{self.name} must be between {low:g} and {high:g}, not {value}"
        return "" if isinstance(value, bool) else f"{self.name} must be True or False, not {value!r}"


def _either(choices: Mapping[str, Any]) -> str:
    shown = [repr(v) if not isinstance(v, str) else v for v in choices.values()]
    if any(not isinstance(v, str) for v in choices.values()):
        shown = [f"{s} ({w})" for s, w in zip(shown, choices)]
    return ", ".join(shown[:-1]) + " or " + shown[-1]


@dataclass
class SegmentParameters:
    """User options of one run (each field's help says what it does). Notes beyond the help:

    modality auto: ``preprocess.detect_modality``. tta (``infer.TTA_FLIPS``): labyrinth DSC +0.01
    and canals +0.02 on validation; the segmenter only, not the localiser: averaged, its weak blobs
    fell below threshold and whole ears were lost on the synthetic test set. cpu_bf16
    (``infer.native_cpu_bf16``; docs/history.md, Speed). keep_largest / fill_holes:
    ``postprocess.clean_labels``. refine_edges: ``edges.refine_labels``. split_sides False: ``sides`` stays 0, stats rows have side ``both`` and the surface builder gets
    ``sides=None``.
    """

    device: str = option("auto", "auto: the GPU when PyTorch sees one, otherwise the CPU", "Device",
                         choices=("auto", "cpu", "cuda"), accepts=r"cuda:\d+")
    modality: str = option("auto", "auto: CT when the intensities look like Hounsfield units, otherwise MR; "
                           "mr or ct to say which", "Modality", choices=("auto", "mr", "ct"))
    roi: str = option("ears", "ears: the localiser finds each ear; center: a fixed crop at the scan centre "
                      "(the reference method's), split into right and left halves at its middle", "Region",
                      choices=("ears", "center"))
    tta: bool = option(True, "test-time augmentation: average the segmenter over the ear region and its "
                       "left/right mirror (about 1.5x the time, more accurate; docs/history.md, Test-time "
                       "augmentation)",
                       "Test-time augmentation (mirror)")
    tta_turns: bool = option(True, "also average the segmenter over the region turned 15 degrees either way about "
                             "each axis (7x the segmenter's passes; every real validation scan gained: CT 0.003-0.018, MRI 0.025 "
                             "DSC: docs/real_data.md); off for speed", "Test-time turns (15 degrees)")
    cpu_bf16: Optional[bool] = option(
        None, "auto: bf16 autocast on a CPU that has native bf16 (AVX512-BF16, AMX; about twice as fast, same "
        "accuracy), else fp32; bf16 or fp32 to force one (docs/history.md, Speed)", "CPU precision",
        choices={"auto": None, "bf16": True, "fp32": False}, flag="--cpu-precision")
    keep_largest: bool = option(True, "keep the largest piece of the labyrinth and the pieces near it; drop "
                                "fragments far from it", "Keep the labyrinth, drop far fragments")
    fill_holes: bool = option(True, "fill holes enclosed in a structure with that structure", "Fill holes")
    refine_edges: bool = option(True, "move the labyrinth's outline, within 0.4 mm, to the scan's own edge: half-way "
                                "between the lumen's and its surroundings' local intensities (real CT and MRI "
                                "gained 0.04-0.12 DSC: docs/real_data.md)", "Snap the outline to the scan's edges")
    split_sides: bool = option(True, "one segment per structure and side; off: one per structure for both ears",
                               "Split left and right")
    smoothing: float = option(0.5, "surface smoothing factor, 0 (none) to 1 (0.5: Slicer's default)",
                              "Surface smoothing", range=(0.0, 1.0))
    surfaces: bool = option(True, "build the 3D surfaces (STL and VTP files; in Slicer, closed surfaces and "
                            "model nodes)", "Build 3D surfaces")
    preview: bool = option(True, "write NAME_preview.png, the planes, cochlear view and 3D view of each ear "
                           "(matplotlib: seconds per scan); the Slicer module turns it off", "Write a preview image",
                           panel=False)

    @classmethod
    def options(cls) -> Tuple[Option, ...]:
        """The declared options, in declaration order."""
        return tuple(_option_of(f) for f in fields(cls))

    def problems(self) -> List[str]:
        """What is wrong with these values, one message per option (empty: all valid)."""
        return [p for o in self.options() for p in [o.problem(getattr(self, o.name))] if p]

    def isValid(self):
        """(True, "") or (False, what is wrong), for GUIs to show before running."""
        problems = self.problems()
        return not problems, "; ".join(problems)

    def asOptions(self) -> Dict[str, Any]:
        """{name: value as the command line and the panel show it}: words for choices."""
        return {o.name: o.word(getattr(self, o.name)) for o in self.options()}

    @classmethod
    def fromOptions(cls, options: Mapping[str, Any]) -> "SegmentParameters":
        """The parameters from ``asOptions``-style values (words or values); missing ones default."""
        known = {o.name: o for o in cls.options()}
        unknown = set(options) - set(known)
        if unknown:
            raise ValueError(f"unknown options: {', '.join(sorted(unknown))}; known: {', '.join(known)}")
        return cls(**{name: known[name].value(value) for name, value in options.items()})

    def asArgList(self) -> List[str]:
        """Command-line arguments that reproduce these parameters (``add_arguments``, ``fromArgs``)."""
        args = []
        for o in self.options():
            value = getattr(self, o.name)
            if o.kind == "bool":
                args.append(o.flag if value else o.negative_flag)
            else:
                args += [o.flag, str(o.word(value))]
        return args

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add one flag per option to ``parser``, with its help, choices or range and default."""
        for o in cls.options():
            if o.kind == "bool":
                parser.add_argument(o.flag, dest=o.name, action=argparse.BooleanOptionalAction, default=o.default,
                                    help=o.help + f" (default {'on' if o.default else 'off'})")
            elif o.kind == "choice":
                parser.add_argument(o.flag, dest=o.name, default=o.word(o.default), type=str.lower,
                                    choices=list(o.choices), help=o.help + f" (default {o.word(o.default)})")
            else:
                parser.add_argument(o.flag, dest=o.name, default=o.default, type=_in_range(o), metavar="X",
                                    help=o.help + f" (default {o.default})")

    @classmethod
    def fromArgs(cls, namespace: argparse.Namespace) -> "SegmentParameters":
        """The parameters from a namespace parsed with ``add_arguments``' flags."""
        return cls.fromOptions({o.name: getattr(namespace, o.name) for o in cls.options()})


def _option_of(f) -> Option:
    meta = f.metadata
    choices = meta.get("choices")
    if choices is not None and not isinstance(choices, Mapping):
        choices = {c: c for c in choices}
    return Option(f.name, f.default, meta.get("help", ""), meta.get("label", f.name), dict(choices) if choices else None,
                  meta.get("range"), meta.get("flag") or "--" + f.name.replace("_", "-"), meta.get("accepts", ""),
                  meta.get("panel", True))


def _in_range(o: Option):
    """An argparse type: a number within the option's range."""
    def number(text: str) -> float:
        value = float(text)
        if o.problem(value):
            raise argparse.ArgumentTypeError(f"must be between {o.range[0]:g} and {o.range[1]:g}, not {text}")
        return value
    number.__name__ = o.name  # argparse names the type in its messages
    return number
