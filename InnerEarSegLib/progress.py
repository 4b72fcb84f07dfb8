"""Progress reporting and cancellation, plain Python so the GUI, CLI and tests share them.

Every long call takes ``progress`` (a callable ``(stage, fraction, message)``) and
``cancel`` (a :class:`CancelFlag`). Stages call ``report`` then ``cancel.check()``
between steps, so Cancel takes effect at the next stage boundary.
"""
from dataclasses import dataclass, field
from typing import Callable, List

from .errors import Cancelled

ProgressCallback = Callable[[str, float, str], None]


def no_progress(stage: str, fraction: float, message: str = "") -> None:
    """Default callback: ignore progress."""


class Signal:
    """A minimal signal: ``connect`` callables, ``emit`` calls them in order."""

    def __init__(self):
        self._slots: List[Callable] = []

    def connect(self, slot: Callable) -> None:
        self._slots.append(slot)

    def disconnect(self, slot: Callable) -> None:
        self._slots.remove(slot)

    def emit(self, *args) -> None:
        for slot in list(self._slots):
            slot(*args)


@dataclass
class CancelFlag:
    """Set ``cancelled`` (from any thread) to stop a run at the next check."""

    cancelled: bool = False
    reason: str = field(default="cancelled by the user")

    def cancel(self) -> None:
        self.cancelled = True

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled(self.reason)
