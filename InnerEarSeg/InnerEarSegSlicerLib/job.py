"""One out-of-process segmentation run as a small state machine: idle -> running -> done | failed | cancelled.

The process is the product's own command line, ``innerear-seg segment ... --events json``
(``segment_command``), run with Slicer's Python: what the panel runs is what users run.
The widget calls ``poll()`` from a timer; the job reads the command's JSON lines
(``InnerEarSegLib.cli.JsonEvents``) on a background thread, so the GUI never blocks, and
``cancel()`` kills the process with every process it started: Slicer's ``PythonSlicer`` is a
launcher that runs the real Python as a child, and killing the launcher alone would leave the
segmentation running (and writing patient-derived files). Output that is not valid UTF-8 is read with replacement
characters, and the end of the output is always signalled, so a job can never stay "running"
after its process is gone. Plain Python (no Qt, no slicer), so it is tested with any command.
"""
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from typing import Callable, List, Optional

IDLE, RUNNING, DONE, FAILED, CANCELLED = "idle", "running", "done", "failed", "cancelled"


class SegmentationJob:
    """Runs ``command``; ``onProgress(stage, fraction, message)`` is called from ``poll()``.

    A case that ended ``failed`` (or an ``error`` event) fails the job with its message; a
    process that exits non-zero fails it too, with the end of its output."""

    def __init__(self, command: List[str], env: Optional[dict] = None,
                 onProgress: Optional[Callable[[str, float, str], None]] = None):
        self.command = command
        self.env = env
        self.onProgress = onProgress or (lambda stage, fraction, message: None)
        self.state = IDLE
        self.error = ""       # why it failed, from the command's events or the end of its output
        self.warnings: List[str] = []
        self._process = None
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self._log: List[str] = []  # lines that are not protocol lines, kept for error messages

    def start(self) -> None:
        if self.state != IDLE:
            raise RuntimeError(f"the job is {self.state}; start a new one")
        self._process = subprocess.Popen(self.command, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1,
                                         encoding="utf-8", errors="replace", **_own_process_group())
        self.state = RUNNING
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self._process.stdout:
                self._lines.put(line)
        except Exception as e:  # noqa: BLE001 - whatever stops the reading, the job must end
            self._lines.put(f"output unreadable: {e}\n")
        finally:
            self._lines.put(None)  # end of output

    def poll(self) -> str:
        """Handle the lines received so far; returns the state after them."""
        if self.state != RUNNING:
            return self.state
        finished = False
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                finished = True
                break
            self._handle(line)
        if finished and self.state == RUNNING:
            code = self._process.wait()
            if code == 0 and not self.error:
                self.state = DONE
            else:
                self.state = FAILED
                self.error = self.error or (f"the segmentation process stopped (exit code {code})"
                                            + (": " + " ".join(self._log[-5:]) if self._log else ""))
        return self.state

    def output(self) -> List[str]:
        """The lines received so far that were not events (the command's text, pip's progress)."""
        return list(self._log)

    def _handle(self, line: str) -> None:
        try:
            event = json.loads(line)
            kind = event["event"]
        except (ValueError, KeyError, TypeError):
            self._log.append(line.strip())  # the command's text, tracebacks: kept for the error text
            return
        if kind == "progress":
            self.onProgress(event.get("stage", ""), float(event.get("fraction", 0.0)), event.get("message", ""))
        elif kind == "case":
            self.warnings = list(event.get("warnings", []))
            if event.get("status") == "failed":
                self.error = event.get("error") or "the segmentation failed"
        elif kind == "error":
            self.error = event.get("message", "unknown error")

    def cancel(self) -> None:
        """Stop the process and every process it started, now; its outputs are discarded by the caller."""
        if self.state != RUNNING:
            return
        kill_tree(self._process)
        self._process.wait()
        self.state = CANCELLED

    def wait(self, timeout: Optional[float] = None) -> str:
        """Block until the process ends (batch use and tests)."""
        if self.state == RUNNING:
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                return self.state
            while self.poll() == RUNNING:
                threading.Event().wait(0.01)
        return self.state


def _own_process_group() -> dict:
    """Popen arguments that start the command in a process group of its own, so that it can be
    killed together with its children (``kill_tree``)."""
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def kill_tree(process: subprocess.Popen) -> None:
    """Kill ``process`` and its descendants (started with ``_own_process_group``)."""
    if sys.platform == "win32":
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True)
    else:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    process.kill()  # in case the group could not be reached; harmless once it is dead


def segment_command(python: str, inputPath, outputDir, model=None, params=None) -> List[str]:
    """``innerear-seg segment INPUT -o OUTDIR --events json`` run by ``python`` (Slicer's
    ``PythonSlicer``); ``params`` (``SegmentParameters``; None: the defaults) become the command
    line's option flags (``asArgList``). The results go to ``OUTDIR/<case name of INPUT>/``."""
    command = [python, "-m", "InnerEarSegLib.cli", "segment", str(inputPath), "-o", str(outputDir), "--events", "json"]
    command += params.asArgList() if params is not None else []
    return command + (["--model", str(model)] if model else [])


def command_environment(libraryParent: str, base: Optional[dict] = None) -> dict:
    """``base`` (default: this process's environment) with ``libraryParent`` first on PYTHONPATH,
    so the command imports the same ``InnerEarSegLib`` as Slicer."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (libraryParent, env.get("PYTHONPATH", "")) if p)
    return env
