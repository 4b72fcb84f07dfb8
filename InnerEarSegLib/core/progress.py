"""Progress reporting and cancellation, plain Python so the GUI, CLI and tests share them.

Every long call takes ``progress`` (a callable ``(stage, fraction, message)``) and
``cancel`` (a :class:`CancelFlag`). Stages call ``report`` then ``cancel.check()``
between steps, so Cancel takes effect at the next stage boundary (:class:`Stages`).
"""
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

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


class Stages:
    """The stages of one run: ``stages("name")`` ends the current stage and starts the next one,
    after checking ``cancel``; each stage's seconds add up in ``timings``, and ``progress`` gets its
    start (fraction 0) and its end (fraction 1)."""

    def __init__(self, progress: ProgressCallback, cancel: Optional[CancelFlag] = None):
        self.progress, self.cancel, self.timings = progress, cancel, {}
        self.stage, self.start = None, 0.0

    def __call__(self, stage: str, message: str = "") -> None:
        self.done()
        if self.cancel is not None:
            self.cancel.check()
        self.stage, self.start = stage, time.perf_counter()
        self.progress(stage, 0.0, message)

    def done(self) -> None:
        """End the current stage, if any."""
        if self.stage is not None:
            self.timings[self.stage] = self.timings.get(self.stage, 0.0) + time.perf_counter() - self.start
            self.progress(self.stage, 1.0, "")
            self.stage = None
