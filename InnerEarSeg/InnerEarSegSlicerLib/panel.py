"""The panel's options, built from the one declaration ``InnerEarSegLib.parameters.SegmentParameters``.

The parameter node gets one field per option, named like the option (the Python keyword and,
dashes for underscores, the command-line flag), holding what the command line shows: the word
of a choice (``cpu_bf16``: auto, bf16 or fp32), the number of a range, on or off. The option
widgets are made here too, one per option with its label, help, choices or range, bound to the
parameter node by name; the .ui only gives them their place (the Options section's form layout).
Options declared ``panel=False`` (``preview``: the panel never shows the PNG) get neither a field
nor a widget and keep their defaults; ``logic.library_parameters`` decides them for Slicer.

No Qt or slicer import: the widget classes and Slicer's ``Choice`` / ``WithinRange`` annotations
are passed in, so the same code builds the panel in Slicer and, in the tests, with PySide6.
"""
from typing import Annotated, Dict

from InnerEarSegLib.parameters import Option, SegmentParameters

OPTIONS = tuple(o for o in SegmentParameters.options() if o.panel)  # those the panel offers
PARAMETER_PROPERTY = "SlicerParameterName"  # the dynamic property the parameter node binds widgets by
RANGE_STEPS = 20  # a range option's slider moves in twentieths of its range


def annotation(o: Option, Choice, WithinRange):
    """The parameter node type of an option: a word from its choices, a number in its range, or a bool."""
    if o.kind == "choice":
        return Annotated[str, Choice(list(o.choices))]
    if o.kind == "range":
        return Annotated[float, WithinRange(*o.range)]
    return bool


def withOptions(base: type, Choice, WithinRange) -> type:
    """A class like ``base`` (the panel's own annotated fields: volumes, tables, model path) with one
    more field per option, its default the option's, for ``parameterNodeWrapper``."""
    annotations = dict(base.__annotations__)
    namespace = {k: v for k, v in vars(base).items() if not k.startswith("__")}
    for o in OPTIONS:
        if o.name in annotations:
            raise ValueError(f"{base.__name__}.{o.name} is declared twice: it is an option of SegmentParameters")
        annotations[o.name] = annotation(o, Choice, WithinRange)
        namespace[o.name] = o.word(o.default)
    return type(base.__name__, (), {**namespace, "__annotations__": annotations, "__module__": base.__module__,
                                    "__doc__": base.__doc__})


def segmentParameters(parameterNode) -> SegmentParameters:
    """The options set in the panel (its parameter node) as ``SegmentParameters``."""
    return SegmentParameters.fromOptions({o.name: getattr(parameterNode, o.name) for o in OPTIONS})


def widgetName(optionName: str) -> str:
    """The object name of an option's widget (and its attribute in the widget's ``ui``)."""
    return f"{optionName}OptionWidget"


def addOptionWidgets(formLayout, widgetClasses: Dict[str, type]) -> Dict[str, object]:
    """Add one widget per option to ``formLayout`` (a QFormLayout); returns them by ``widgetName``.

    widgetClasses: the class for each kind of option, ``choice`` (a combo box), ``range`` (a slider
    or spin box with minimum, maximum, step and value) and ``bool`` (a check box). Each widget shows
    the option's default, its help as tooltip, and carries the option's name for the parameter node."""
    widgets = {}
    for o in OPTIONS:
        widget = widgetClasses[o.kind]()
        if o.kind == "bool":
            widget.setText(o.label)
            widget.setChecked(bool(o.default))
            formLayout.addRow(widget)
        else:
            _setChoicesOrRange(widget, o)
            formLayout.addRow(f"{o.label}:", widget)
        widget.setToolTip(o.help[:1].upper() + o.help[1:])
        widget.setObjectName(widgetName(o.name))
        widget.setProperty(PARAMETER_PROPERTY, o.name)
        widgets[widgetName(o.name)] = widget
    return widgets


def _setChoicesOrRange(widget, o: Option) -> None:
    if o.kind == "choice":
        widget.addItems(list(o.choices))
        widget.setCurrentText(o.word(o.default))
        return
    low, high = o.range
    widget.setMinimum(low)
    widget.setMaximum(high)
    widget.setSingleStep((high - low) / RANGE_STEPS)
    widget.setValue(o.default)
