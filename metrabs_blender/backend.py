"""The backend: the Python that has torch, and the subprocesses the add-on runs in it.

Blender's own Python has no torch (and must not get it through runtime pip), so the analysis runs
in another interpreter, ``python -m inference analyze VIDEO -o OUT.npz ...``, started here with the
extension root on ``PYTHONPATH``. The worker prints one JSON object per line on stdout (events
``start``, ``progress``, ``warning``, ``done``, ``error``, see ``inference/analysis/events.py``) and logs on
stderr. A reader thread parses stdout into a queue; the caller (the modal operator's timer, or the
synchronous :func:`run_to_completion`) drains it. Nothing in this module touches ``bpy``, so the
threads are safe and the module is testable in any Python.

Cancelling sends SIGTERM (CTRL_BREAK on Windows): the worker finishes its current batch, writes a
partial result and exits; after ``grace_s`` seconds a worker that is still running is killed.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import MocapError

log = logging.getLogger(__name__)

#: The extension's root folder (it holds ``inference/`` and ``retarget/``), put on the worker's path.
EXTENSION_ROOT = Path(__file__).resolve().parent.parent
#: Environment variable naming a backend Python (checked after the one chosen in the preferences).
PYTHON_ENV = "METRABS_MOCAP_PYTHON"
#: Environment variable of the model cache the ``inference`` package reads.
CACHE_ENV = "METRABS_MOCAP_CACHE"
#: How the worker is started after the interpreter: ``python -m inference analyze ...``.
WORKER_ENTRY: tuple[str, ...] = ("-m", "inference", "analyze")
WEIGHTS_ENTRY: tuple[str, ...] = ("-m", "inference", "weights")
#: What the backend needs besides torch (installed by "Set up backend").
BACKEND_PACKAGES: tuple[str, ...] = (
    "numpy>=1.26,<2",
    "scipy>=1.11",
    "opencv-python-headless>=4.9,<4.11",
    "pyyaml>=6",
)
#: Where torch comes from: ``default`` is PyPI (CUDA build on Linux, CPU on Windows, MPS on macOS).
TORCH_INDEXES: dict[str, str | None] = {
    "default": None,
    "cpu": "https://download.pytorch.org/whl/cpu",
    "cu126": "https://download.pytorch.org/whl/cu126",
}
DEVICES = ("auto", "cuda", "cpu")
#: Modules the worker imports; a backend without one of them cannot analyse.
REQUIRED_MODULES = ("torch", "numpy", "cv2", "scipy", "yaml")


class BackendError(MocapError):
    """The backend Python is missing, broken or failed; the message says what to do."""


# ------------------------------------------------------------------------------------------------
# Finding and checking the backend Python

_PROBE_SCRIPT = """
import importlib, json, platform, sys
info = {"python": sys.executable, "python_version": platform.python_version(), "missing": {}}
for name in sys.argv[1:]:
    try:
        module = importlib.import_module(name)
    except Exception as error:
        info["missing"][name] = type(error).__name__ + ": " + str(error)
    else:
        info[name + "_version"] = str(getattr(module, "__version__", "?"))
torch = sys.modules.get("torch")
if torch is not None:
    info["cuda"] = bool(torch.cuda.is_available())
    info["cuda_version"] = torch.version.cuda
    info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    info["mps"] = bool(mps is not None and mps.is_available())
print(json.dumps(info))
"""


@dataclass(frozen=True)
class BackendInfo:
    """What :func:`probe_python` found in one interpreter."""

    python: str  # path of the interpreter as given
    python_version: str
    torch_version: str | None  # None when torch does not import
    cuda: bool  # torch sees a CUDA device
    cuda_version: str | None  # CUDA version torch was built with (None: CPU build)
    gpus: tuple[str, ...]  # names of the CUDA devices
    mps: bool  # Apple-silicon GPU available to torch
    missing: dict[str, str] = field(default_factory=dict)  # module -> import error

    @property
    def ok(self) -> bool:
        """Every module the worker needs imports."""
        return not self.missing

    def summary(self) -> str:
        """One line for the user, e.g. ``Python 3.11.9, torch 2.5.1, CUDA 12.4: NVIDIA RTX 4090``."""
        parts = [f"Python {self.python_version}"]
        if self.torch_version is None:
            parts.append("no torch")
        else:
            parts.append(f"torch {self.torch_version}")
            if self.cuda:
                parts.append(f"CUDA {self.cuda_version}: {', '.join(self.gpus)}")
            elif self.mps:
                parts.append("Apple GPU (MPS)")
            else:
                parts.append("CPU only" + (" (CPU build)" if self.cuda_version is None else ""))
        if self.missing:
            parts.append("missing " + ", ".join(sorted(self.missing)))
        return ", ".join(parts)


def probe_python(python: str | os.PathLike, timeout_s: float = 120.0) -> BackendInfo:
    """Run ``python`` and report its torch/CUDA/GPU state (importing torch takes a few seconds).

    Raises :class:`BackendError` when the file is not a working interpreter.
    """
    python = caller_python(python)
    if not Path(python).is_file():
        raise BackendError(f"Backend Python not found: {python}; choose one in the preferences")
    try:
        completed = subprocess.run(
            [python, "-c", _PROBE_SCRIPT, *REQUIRED_MODULES],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=worker_environment(),
            cwd=EXTENSION_ROOT,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BackendError(f"Could not run the backend Python {python}: {error}") from error
    try:
        info = json.loads(completed.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        tail = completed.stderr.strip().splitlines()[-1:] or ["no output"]
        raise BackendError(
            f"{python} is not a working Python 3 interpreter ({tail[0]}); choose another one"
        ) from None
    return BackendInfo(
        python=python,
        python_version=info["python_version"],
        torch_version=info.get("torch_version"),
        cuda=info.get("cuda", False),
        cuda_version=info.get("cuda_version"),
        gpus=tuple(info.get("gpus", ())),
        mps=info.get("mps", False),
        missing=info["missing"],
    )


def caller_path(path: str | os.PathLike) -> str:
    """``path`` made absolute against this process's working folder. Backend processes run in the
    extension's folder (:class:`BackendProcess`), where a relative path names another file, so
    every path handed to one is made absolute first."""
    return os.path.abspath(path) if str(path) else str(path)


def caller_python(python: str | os.PathLike) -> str:
    """An interpreter given with a folder (``venv/bin/python``) made absolute (see
    :func:`caller_path`); a bare name (``python3``) is left for the ``PATH`` lookup."""
    python = str(python)
    separators = [os.sep] + ([os.altsep] if os.altsep else [])
    return caller_path(python) if any(s in python for s in separators) else python


def venv_python(venv_dir: str | os.PathLike) -> Path:
    """The interpreter inside a virtual environment folder."""
    venv_dir = Path(venv_dir)
    if sys.platform == "win32":
        return venv_dir / "Scripts" / "python.exe"
    return venv_dir / "bin" / "python"


def candidate_pythons(venv_dir: str | os.PathLike | None = None) -> list[str]:
    """Interpreters worth probing, best first: ``$METRABS_MOCAP_PYTHON``, the add-on's own backend
    environment, then ``python3``/``python`` on ``PATH``. Duplicates and missing files are dropped."""
    found: list[str] = []
    options = [os.environ.get(PYTHON_ENV)]
    if venv_dir is not None:
        options.append(str(venv_python(venv_dir)))
    options += [shutil.which("python3"), shutil.which("python")]
    for option in options:
        if option and Path(option).is_file() and option not in found:
            found.append(option)
    return found


def find_backend_python(
    chosen: str | None = None,
    venv_dir: str | os.PathLike | None = None,
    probe: Callable[[str], BackendInfo] = probe_python,
) -> BackendInfo:
    """The backend to use: ``chosen`` (the preference) when set, else the first working candidate.

    A chosen interpreter that lacks a module is an error, never silently replaced by another one.
    """
    if chosen:
        info = probe(chosen)
        if not info.ok:
            raise BackendError(
                f"The backend Python {chosen} cannot run the analysis ({info.summary()}); "
                "press Set up backend in the add-on preferences, or choose another Python"
            )
        return info
    tried = []
    for python in candidate_pythons(venv_dir):
        try:
            info = probe(python)
        except BackendError as error:
            tried.append(str(error))
            continue
        if info.ok:
            return info
        tried.append(f"{python}: {info.summary()}")
    detail = ("; tried " + "; ".join(tried)) if tried else ""
    raise BackendError(
        "No Python with torch found: press Set up backend in the add-on preferences, "
        f"or choose a Python that has torch{detail}"
    )


# ------------------------------------------------------------------------------------------------
# Command lines


def worker_environment(
    cache_dir: str | os.PathLike | None = None, base: dict[str, str] | None = None
) -> dict[str, str]:
    """Environment of a backend process: the extension root as the only ``PYTHONPATH`` entry (so
    ``inference`` and ``retarget`` import, and none of Blender's own Python paths leak in),
    unbuffered UTF-8 output, and the model cache when one is chosen."""
    env = dict(os.environ if base is None else base)
    for key in ("PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "PYTHONNOUSERSITE"):
        env.pop(key, None)
    env["PYTHONPATH"] = str(EXTENSION_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    if cache_dir:
        env[CACHE_ENV] = str(cache_dir)
    return env


@dataclass(frozen=True)
class AnalyzeRequest:
    """What to analyse and how; turned into the worker's command line by :func:`analyze_command`."""

    video: str  # footage path (video file or image-sequence pattern)
    output: str  # trajectory .npz to write
    frame_start: int | None = None  # first source frame, 0-based (None: from the start)
    frame_stop: int | None = None  # one past the last source frame (None: to the end)
    fov_deg: float | None = None  # field of view on the longer side, degrees (None: 55)
    focal_mm: float | None = None  # lens focal length, used with sensor_mm instead of fov_deg
    sensor_mm: float | None = None  # sensor width in mm, spanning the longer side (with focal_mm)
    max_people: int | None = None  # keep at most this many tracks (None: worker default)
    sequence_fps: float | None = None  # frame rate of an image sequence (None: worker default)
    device: str = "auto"  # "auto", "cuda" or "cpu"
    model: str | None = None  # model name or path (None: worker default)
    resume: bool = False  # continue a partial result at ``output``
    overwrite: bool = False  # replace an existing ``output`` (else the worker refuses it)
    extra_args: tuple[str, ...] = ()  # passed through unchanged

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise BackendError(f"device must be one of {DEVICES}, not {self.device!r}")
        if self.focal_mm is not None and self.fov_deg is not None:
            raise BackendError("give either a field of view or a focal length, not both")


def analyze_command(
    python: str, request: AnalyzeRequest, entry: Sequence[str] = WORKER_ENTRY
) -> list[str]:
    """The worker's argument list (no shell): ``python -m inference analyze VIDEO -o OUT ...``."""
    command = [python, *entry, request.video, "-o", request.output]
    if request.frame_start is not None:
        command += ["--start", str(request.frame_start)]
    if request.frame_stop is not None:
        command += ["--stop", str(request.frame_stop)]
    if request.fov_deg is not None:
        command += ["--fov", f"{request.fov_deg:g}"]
    if request.focal_mm is not None:
        command += ["--focal-mm", f"{request.focal_mm:g}"]
        if request.sensor_mm is not None:
            command += ["--sensor-width", f"{request.sensor_mm:g}"]
    if request.max_people is not None:
        command += ["--max-people", str(request.max_people)]
    if request.sequence_fps is not None:
        command += ["--sequence-fps", f"{request.sequence_fps:g}"]
    if request.device != "auto":
        command += ["--device", request.device]
    if request.model:
        command += ["--model", request.model]
    if request.resume:
        command.append("--resume")
    if request.overwrite:
        command.append("--overwrite")
    return command + list(request.extra_args)


def weights_command(
    python: str,
    action: str,
    name: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """``python -m inference weights ACTION [NAME] [--cache-dir DIR]`` as an argument list."""
    command = [python, *WEIGHTS_ENTRY, action] + ([name] if name else [])
    if cache_dir:
        command += ["--cache-dir", str(cache_dir)]
    return command + list(extra_args)


def list_models(
    python: str, cache_dir: str | os.PathLike | None = None, timeout_s: float = 60.0
) -> list[dict]:
    """The weights manager's ``model`` events: name, kind, installed, path, size, licence..."""
    command = weights_command(python, "list", cache_dir=cache_dir)
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s,
            env=worker_environment(cache_dir), cwd=EXTENSION_ROOT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BackendError(f"Could not list the models with {python}: {error}") from error
    events = [parse_json_line(line) for line in completed.stdout.splitlines()]
    errors = [event for event in events if event and event["event"] == "error"]
    if completed.returncode != 0 or errors:
        message = errors[0]["message"] if errors else (completed.stderr.strip() or "no output")
        raise BackendError(f"Listing the models failed: {message}")
    return [event for event in events if event and event["event"] == "model"]


def setup_commands(
    base_python: str,
    venv_dir: str | os.PathLike,
    torch_variant: str = "default",
    packages: Sequence[str] = BACKEND_PACKAGES,
    pip_args: Sequence[str] = (),
    install_torch: bool = True,
) -> list[list[str]]:
    """Commands that create the backend environment at ``venv_dir`` with ``base_python`` and
    install torch (from the index of ``torch_variant``) and ``packages`` into it.

    ``pip_args`` go to every pip call (e.g. ``--no-index --find-links DIR`` for an offline mirror).
    """
    if torch_variant not in TORCH_INDEXES:
        raise BackendError(f"torch variant must be one of {tuple(TORCH_INDEXES)}")
    pip = [str(venv_python(venv_dir)), "-m", "pip", "install", "--disable-pip-version-check"]
    pip += list(pip_args)
    commands = [[base_python, "-m", "venv", str(venv_dir)]]
    if install_torch:
        index = TORCH_INDEXES[torch_variant]
        commands.append([*pip, "torch"] + (["--index-url", index] if index else []))
    commands.append([*pip, *packages])
    return commands


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
