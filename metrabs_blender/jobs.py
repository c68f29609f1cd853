"""Subprocesses of the backend and the protocols they speak: :class:`BackendProcess` runs one
(a reader thread parses its stdout into events, a second drains stderr), the ``*State`` classes
fold its JSON-lines events into what the panel shows, :class:`WorkerJob` follows one without
blocking, :class:`CommandSequence` runs several in turn (the backend set-up). Nothing here touches
``bpy``, so the threads are safe and the module is testable in any Python.

Cancelling sends SIGTERM (CTRL_BREAK on Windows): the worker finishes its current batch, writes a
partial result and exits; after ``grace_s`` seconds a worker that is still running is killed.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BackendError

log = logging.getLogger(__name__)

#: The extension's root folder (it holds ``inference/`` and ``retarget/``), put on the worker's path.
EXTENSION_ROOT = Path(__file__).resolve().parent.parent


def command_text(commands: Sequence[Sequence[str]]) -> str:
    """``commands`` as text a user can paste into a terminal (one per line)."""
    join = subprocess.list2cmdline if sys.platform == "win32" else shlex.join
    return "\n".join(join(list(command)) for command in commands)


# ------------------------------------------------------------------------------------------------
# Running processes


def parse_json_line(line: str) -> dict | None:
    """A protocol event from one stdout line, or ``None`` for anything that is not a JSON object
    with an ``"event"`` key (stray prints are not part of the protocol)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and isinstance(event.get("event"), str) else None


def parse_text_line(line: str) -> dict | None:
    """A ``line`` event for a tool that prints plain text (pip)."""
    line = line.rstrip()
    return {"event": "line", "text": line} if line else None


class BackendProcess:
    """One subprocess; a reader thread turns its stdout lines into events in :attr:`events`.

    It runs in the extension root by default: ``python -m`` puts the working folder first on the
    module path, and Blender's working folder is wherever the user started it.

    The threads only read pipes and fill queues, so they never touch ``bpy``. stderr is drained
    by a second thread (a full pipe would block the child) and its last lines kept for errors.
    """

    def __init__(
        self,
        command: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike | None = EXTENSION_ROOT,
        parse: Callable[[str], dict | None] = parse_json_line,
        merge_stderr: bool = False,
    ) -> None:
        self.command = [str(part) for part in command]
        self.events: queue.Queue[dict] = queue.Queue()
        self.stderr_tail: deque[str] = deque(maxlen=40)
        self._parse = parse
        self._kill_at: float | None = None
        self.cancel_requested = False
        popen_options: dict = {}
        if sys.platform == "win32":
            popen_options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            popen_options["start_new_session"] = True  # Ctrl-C in Blender's terminal spares it
        try:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                env=env,
                cwd=cwd,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
                **popen_options,
            )
        except OSError as error:
            raise BackendError(f"Could not start {self.command[0]}: {error}") from error
        log.debug("started pid %d: %s", self.process.pid, command_text([self.command]))
        self._threads = [threading.Thread(target=self._read_stdout, daemon=True)]
        if not merge_stderr:
            self._threads.append(threading.Thread(target=self._read_stderr, daemon=True))
        for thread in self._threads:
            thread.start()

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            event = self._parse(line)
            if event is not None:
                self.events.put(event)
        self.process.stdout.close()

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self.stderr_tail.append(line.rstrip())
            log.debug("backend: %s", line.rstrip())
        self.process.stderr.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    @property
    def finished(self) -> bool:
        """The process has exited and both pipes are read to the end (no event is still coming)."""
        return not self.running and not any(thread.is_alive() for thread in self._threads)

    def drain(self) -> list[dict]:
        """Every event that arrived since the last call (never blocks)."""
        events = []
        while True:
            try:
                events.append(self.events.get_nowait())
            except queue.Empty:
                return events

    def request_cancel(self, grace_s: float = 15.0) -> None:
        """Ask the process to stop (SIGTERM, or CTRL_BREAK on Windows) and keep what it has; it is
        killed by :meth:`enforce_deadline` if it still runs ``grace_s`` seconds later."""
        if self.cancel_requested or not self.running:
            self.cancel_requested = True
            return
        self.cancel_requested = True
        self._kill_at = time.monotonic() + grace_s
        try:
            if sys.platform == "win32":
                os.kill(self.pid, signal.CTRL_BREAK_EVENT)
            else:
                self.process.send_signal(signal.SIGTERM)
        except (ProcessLookupError, OSError):
            log.debug("process %d already gone", self.pid)

    def enforce_deadline(self) -> None:
        """Kill the process if a cancel's grace period is over (called on every poll)."""
        if self._kill_at is not None and time.monotonic() > self._kill_at and self.running:
            log.warning("backend process %d ignored the stop request; killing it", self.pid)
            self.kill()

    def kill(self) -> None:
        """Stop the process now (and its children, which share its session on POSIX)."""
        if not self.running:
            return
        try:
            if sys.platform == "win32":
                self.process.kill()
            else:
                os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, OSError):
            pass

    def wait(self, timeout_s: float | None = None) -> int:
        """Wait for the exit and the end of both pipes; returns the exit code."""
        code = self.process.wait(timeout_s)
        for thread in self._threads:
            thread.join(timeout_s)
        return code

    def cancel(self, grace_s: float = 15.0) -> int:
        """Stop and wait: SIGTERM, then kill after ``grace_s`` seconds; returns the exit code."""
        self.request_cancel(grace_s)
        try:
            return self.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.wait()


# ------------------------------------------------------------------------------------------------
# Following the worker protocol


@dataclass
class EventState:
    """What a protocol's events said so far: :meth:`update` folds in one event. The ``start``,
    ``warning``, ``done`` and ``error`` events mean the same in every protocol; subclasses read
    their own totals and progress."""

    warnings: list[str] = field(default_factory=list)
    start: dict | None = None
    done: dict | None = None
    error: dict | None = None

    def update(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "start":
            self.start = event
            self._on_start(event)
        elif kind == "progress":
            self._on_progress(event)
        elif kind == "warning":
            self.warnings.append(str(event.get("message", "")))
        elif kind == "done":
            self.done = event
        elif kind == "error":
            self.error = event

    def _on_start(self, event: dict) -> None:
        pass

    def _on_progress(self, event: dict) -> None:
        pass


@dataclass
class WorkerState(EventState):
    """What the single-clip worker's events said so far."""

    frames_done: int = 0
    frames_total: int | None = None
    fps: float | None = None  # processing speed, frames per second
    eta_s: float | None = None
    people: int = 0

    def _on_start(self, event: dict) -> None:
        self.frames_total = event.get("frames_total")

    def _on_progress(self, event: dict) -> None:
        self.frames_done = int(event.get("frames_done") or 0)
        self.frames_total = event.get("frames_total", self.frames_total)
        self.fps, self.eta_s = event.get("fps"), event.get("eta_s")
        self.people = int(event.get("people") or 0)

    @property
    def fraction(self) -> float:
        """Share of frames done, 0..1 (0 while the total is unknown)."""
        if self.done is not None:
            return 1.0
        if not self.frames_total:
            return 0.0
        return min(1.0, self.frames_done / self.frames_total)

    def text(self) -> str:
        """A short status line: ``Frame 120/480, 12.3 fps, 29 s left, 2 people``."""
        if self.start is None and not self.frames_done:
            return "Starting (loading the model)..."
        total = f"/{self.frames_total}" if self.frames_total else ""
        parts = [f"Frame {self.frames_done}{total}"]
        if self.fps:
            parts.append(f"{self.fps:.1f} fps")
        if self.eta_s is not None:
            parts.append(f"{self.eta_s:.0f} s left")
        parts.append(f"{self.people} {'person' if self.people == 1 else 'people'}")
        return ", ".join(parts)


@dataclass(frozen=True)
class WorkerOutcome:
    """How a worker run ended."""

    returncode: int
    output: Path | None  # the trajectory written (None when nothing was written)
    partial: bool  # the output covers only part of the requested frames (cancelled run)
    cancelled: bool
    state: WorkerState | DownloadState
    stderr_tail: tuple[str, ...]

    @property
    def error_message(self) -> str | None:
        """A message for the user when no usable output came back, else ``None``."""
        if self.output is not None:
            return None
        if self.state.error is not None:
            return str(self.state.error.get("message", "the backend process failed"))
        if self.cancelled:
            return "Cancelled before anything was finished; nothing was written"
        detail = f": {self.stderr_tail[-1]}" if self.stderr_tail else ""
        return f"The backend process stopped with exit code {self.returncode}{detail}"


def outcome_of(process: BackendProcess, state: WorkerState | DownloadState) -> WorkerOutcome:
    """Summarise a finished worker (call after :meth:`BackendProcess.wait`)."""
    output = None
    partial = False
    if isinstance(state, DownloadState) and state.path and Path(state.path).exists():
        output = Path(state.path)
    elif getattr(state, "done", None) is not None and state.done.get("output"):
        candidate = Path(state.done["output"])
        if candidate.is_file():
            output, partial = candidate, bool(state.done.get("partial", False))
    return WorkerOutcome(
        returncode=process.process.returncode,
        output=output,
        partial=partial,
        cancelled=process.cancel_requested,
        state=state,
        stderr_tail=tuple(process.stderr_tail),
    )


class DownloadState:
    """What ``python -m inference weights download`` said so far (its JSON-lines events)."""

    def __init__(self) -> None:
        self.downloaded = 0  # bytes
        self.total: int | None = None  # bytes, None while unknown
        self.path: str | None = None  # installed model folder, once done
        self.error: dict | None = None
        self.last: str = "Starting..."
        self.name = ""  # the file in flight: the model, then the detector that comes with it

    def update(self, event: dict) -> None:
        kind = event.get("event")
        if event.get("name") and event.get("name") != self.name and kind != "path":
            self.name, self.downloaded, self.total = str(event["name"]), 0, None
        if kind == "progress":
            self.downloaded = int(event.get("downloaded") or 0)
            self.total = event.get("total") or self.total
            self.last = "Downloading"
        elif kind == "installed":
            self.last = "Installed"
        elif kind == "path":  # the last event: the pose model's folder, its detector installed
            self.path = event.get("path") or self.path
            self.last = "Installed"
        elif kind == "error":
            self.error = event
        elif kind in ("download_start", "resume", "retry", "verified", "install"):
            self.last = kind.replace("_", " ").capitalize()

    @property
    def fraction(self) -> float:
        if self.path is not None:
            return 1.0
        return min(1.0, self.downloaded / self.total) if self.total else 0.0

    def text(self) -> str:
        size = f"{self.downloaded / 1e6:.1f}"
        size += f"/{self.total / 1e6:.1f} MB" if self.total else " MB"
        label = f"{self.last} {self.name}".strip()
        return f"{label}: {size}" if self.downloaded else label


class WorkerJob:
    """A JSON-lines process followed without blocking: :meth:`poll` folds new events into
    :attr:`state` and returns True once the process has exited (then :attr:`outcome` is set).
    The modal operators call it from a timer; :func:`run_to_completion` from a loop."""

    def __init__(self, process: BackendProcess, state: WorkerState | DownloadState | None = None):
        self.process = process
        self.state = WorkerState() if state is None else state
        self.outcome: WorkerOutcome | None = None
        self.on_event: Callable[[dict, object], None] | None = None

    def _consume(self) -> None:
        for event in self.process.drain():
            self.state.update(event)
            if self.on_event is not None:
                self.on_event(event, self.state)

    def poll(self) -> bool:
        if self.outcome is not None:
            return True
        self._consume()
        self.process.enforce_deadline()
        if not self.process.finished:
            return False
        self.process.wait()
        self._consume()  # lines read between the last drain and the exit
        self.outcome = outcome_of(self.process, self.state)
        return True

    @property
    def fraction(self) -> float:
        return self.state.fraction

    def text(self) -> str:
        return self.state.text()

    def cancel(self, grace_s: float = 15.0) -> None:
        """Ask the process to stop; it keeps (and reports) what it has finished."""
        self.process.request_cancel(grace_s)

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop now and wait (SIGTERM, then kill after ``grace_s``): for shutdown."""
        self.process.cancel(grace_s)


def run_to_completion(
    process: BackendProcess,
    on_event: Callable[[dict, WorkerState], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    poll_s: float = 0.05,
    grace_s: float = 15.0,
) -> WorkerOutcome:
    """Follow a worker until it exits: events go to ``on_event``; when ``should_cancel()`` turns
    true the worker is asked to stop (and killed ``grace_s`` later). Blocks the caller."""
    job = WorkerJob(process)
    job.on_event = on_event
    while not job.poll():
        if should_cancel is not None and not process.cancel_requested and should_cancel():
            job.cancel(grace_s)
        time.sleep(poll_s)
    return job.outcome


class CommandSequence:
    """Runs commands one after another (the backend set-up), each as a :class:`BackendProcess`
    with stdout and stderr merged into ``line`` events; stops at the first failure.

    Call :meth:`poll` regularly (a timer, or :meth:`run`); it never blocks.
    """

    def __init__(self, commands: Sequence[Sequence[str]], env: dict[str, str] | None = None):
        if not commands:
            raise BackendError("nothing to run")
        self.commands = [list(command) for command in commands]
        self.env = env
        self.step = 0  # index of the running (or next) command
        self.process: BackendProcess | None = None
        self.lines: deque[str] = deque(maxlen=200)
        self.returncode: int | None = None  # of the whole sequence, once finished
        self.cancelled = False

    @property
    def finished(self) -> bool:
        return self.returncode is not None

    @property
    def fraction(self) -> float:
        """Share of commands finished, 0..1."""
        return 1.0 if self.returncode == 0 else self.step / len(self.commands)

    def text(self) -> str:
        """``Step 2/3: <last line of output>``."""
        last = self.lines[-1] if self.lines else "starting"
        step = min(self.step + 1, len(self.commands))
        return f"Step {step}/{len(self.commands)}: {last}"

    def poll(self) -> bool:
        """Advance; returns True once the sequence has finished (see :attr:`returncode`)."""
        if self.finished:
            return True
        if self.process is None and self.cancelled:  # cancelled between two commands
            self.returncode = 1
            return True
        if self.process is None:
            self.lines.append(command_text([self.commands[self.step]]))
            self.process = BackendProcess(
                self.commands[self.step], env=self.env, parse=parse_text_line, merge_stderr=True
            )
        self.lines.extend(event["text"] for event in self.process.drain())
        self.process.enforce_deadline()
        if not self.process.finished:
            return False
        code = self.process.wait()
        self.lines.extend(event["text"] for event in self.process.drain())
        self.process = None
        if code != 0 or self.cancelled:
            self.returncode = code if code != 0 else 1
            return True
        self.step += 1
        if self.step == len(self.commands):
            self.returncode = 0
            return True
        return False

    def cancel(self) -> None:
        """Stop the running command; the sequence ends after it exits."""
        self.cancelled = True
        if self.process is not None:
            self.process.request_cancel(grace_s=5.0)

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop now and wait: for shutdown."""
        self.cancelled = True
        if self.process is not None:
            self.process.cancel(grace_s)

    def run(self, poll_s: float = 0.1) -> int:
        """Run to the end, blocking; returns the exit code of the failed command or 0."""
        while not self.poll():
            time.sleep(poll_s)
        return self.returncode
