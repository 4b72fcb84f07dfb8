"""Exceptions with messages a user can act on: each names the file and the problem; and the
warnings of one run, passed on (``library_warnings``)."""
import contextlib
import warnings
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[1]  # the InnerEarSegLib folder


class InnerEarSegError(Exception):
    """Base class for every error the library raises on purpose."""


class InputError(InnerEarSegError):
    """A scan that cannot be segmented: missing, unreadable, wrong dimension, bad values."""

    def __init__(self, path, problem):
        self.path = str(path) if path is not None else "<in-memory image>"
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ModelError(InnerEarSegError):
    """Weights or model card that cannot be used: missing, corrupt, wrong architecture."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class OutputError(InnerEarSegError):
    """An output folder or file that cannot be written."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class Cancelled(InnerEarSegError):
    """Raised at the next stage boundary after the user pressed Cancel."""


def brief(error: BaseException, limit: int = 200) -> str:
    """One line saying why: the OS reason of an OSError, else the last non-empty line of the
    message (ITK and VTK put the actual cause last, after pages of context)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1][:limit] if lines else type(error).__name__


@contextlib.contextmanager
def library_warnings():
    """Record every warning raised inside; on leaving, pass each on to the caller (its own filters
    decide what shows) and fill the list given by ``with`` with the messages of the library's own
    (raised in ``InnerEarSegLib/``, not in third-party code)."""
    messages = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield messages
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    messages += [str(w.message) for w in caught if LIBRARY in Path(w.filename).resolve().parents]
