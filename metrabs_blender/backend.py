"""The backend: the Python that has torch, found, probed and set up, and the commands the add-on
runs in it.

Blender's own Python has no torch (and must not get it through runtime pip), so the analysis runs
in another interpreter, ``python -m inference analyze VIDEO -o OUT.npz ...``, with the extension
root on ``PYTHONPATH``; :mod:`.jobs` runs these commands and follows their JSON-lines events
(``inference/analysis/events.py``). Nothing in this module touches ``bpy``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BackendError
from .jobs import EXTENSION_ROOT, parse_json_line

log = logging.getLogger(__name__)

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
