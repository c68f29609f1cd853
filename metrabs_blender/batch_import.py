"""Many clips from Blender: run ``python -m inference batch`` and import its results as takes.

:func:`import_folder` imports every finished clip of a batch output folder through
:func:`api.import_trajectory`: one new action per clip and person, named after the clip
(``MeTRAbs <clip> P<id> take N``). Without a ``target`` each person gets a new rig and the rigs of
a clip are gathered in a collection named after the clip (under one collection for the folder);
with a ``target`` armature every clip becomes one take on it (``use_nla`` stacks them as NLA
tracks). Nothing of the user's is modified. The folder's ``batch_manifest.json`` decides which
clips are complete and in which order; without it every ``.npz`` in the folder is imported.
Cleaned results (``cleaned/<clip>.npz``) are preferred when present.

"Analyze folder" runs the batch command in the backend Python like the single-clip analysis:
:func:`start_batch` starts it and returns at once (a modal operator follows it with
``backend.WorkerJob(process, BatchState())``), :func:`analyze_folder` blocks until it has finished
and imports the results.
"""

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from ..retarget import RetargetError
from . import backend
from .errors import MocapError

# The batch output layout, shared with inference/batch.py by these names only (Blender's Python
# never imports the inference package).
MANIFEST_JSON = "batch_manifest.json"
MANIFEST_FORMAT = "metrabs-batch-manifest"
CLEANED_DIR = "cleaned"
COMPLETE_STATUSES = ("done", "skipped")
#: How the batch command is started after the interpreter: ``python -m inference batch ...``.
BATCH_ENTRY: tuple[str, ...] = ("-m", "inference", "batch")


# ------------------------------------------------------------------------------------------------
# Importing a results folder


@dataclass
class FolderImport:
    """What :func:`import_folder` created, and what it could not import."""

    takes: dict[str, list] = field(default_factory=dict)  # clip -> api.ImportResult per person
    errors: dict[str, str] = field(default_factory=dict)  # clip -> why it was not imported
    collection: "bpy.types.Collection | None" = None  # new rigs, one child collection per clip


def result_files(folder: str | os.PathLike, prefer_cleaned: bool = True) -> list[tuple[str, Path]]:
    """``(clip, path)`` of every complete result in ``folder``, in manifest order (or by name).

    Raises :class:`MocapError` when the folder does not exist or holds no result.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MocapError(f"{folder} is not a folder; choose the batch output folder")
    manifest = folder / MANIFEST_JSON
    if manifest.is_file():
        clips = _manifest_clips(manifest)
    else:
        clips = [(path.stem, path) for path in sorted(folder.glob("*.npz"))]
    if not clips:
        raise MocapError(
            f"no finished results in {folder}; run `python -m inference batch VIDEOS -o {folder}` "
            f"first (or wait until it has finished some clips)"
        )
    if prefer_cleaned:
        clips = [(name, _cleaned(folder, name, path)) for name, path in clips]
    return clips


def _manifest_clips(manifest: Path) -> list[tuple[str, Path]]:
    try:
        document = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise MocapError(f"{manifest} cannot be read ({error}); run the batch again") from error
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise MocapError(f"{manifest} is not a MeTRAbs batch manifest")
    return [
        (str(row["clip"]), manifest.parent / row["output"])
        for row in document.get("clips", [])
        if row.get("status") in COMPLETE_STATUSES and row.get("output")
    ]


def _cleaned(folder: Path, name: str, path: Path) -> Path:
    cleaned = folder / CLEANED_DIR / f"{name}.npz"
    return cleaned if cleaned.is_file() else path


def import_folder(
    folder: str | os.PathLike,
    *,
    target: "bpy.types.Object | None" = None,
    prefer_cleaned: bool = True,
    match_scene: bool = True,
    context: "bpy.types.Context | None" = None,
    **options,
) -> FolderImport:
    """Import every finished clip of a batch output ``folder`` as takes (see the module docstring).

    ``target`` and ``options`` (``rig_map``, ``root_motion``, ``foot_lock``, ``use_nla``,
    ``joint_limits``, ``person``) are those of :func:`api.import_trajectory`. A clip that cannot
    be imported is listed in :attr:`FolderImport.errors` and the others are imported; if none can
    be, :class:`MocapError` says why and the scene is unchanged. With ``match_scene`` the scene
    takes the first clip's frame rate and its end frame covers the longest clip.
    """
    from . import api  # here, so that api may re-export this function

    context = context or bpy.context
    imported = FolderImport()
    for name, path in result_files(folder, prefer_cleaned):
        first = match_scene and not imported.takes
        try:
            imported.takes[name] = api.import_trajectory(
                path, target=target, context=context, match_scene=first, **options
            )
        except (MocapError, RetargetError) as error:
            imported.errors[name] = str(error)
    if not imported.takes:
        problems = "; ".join(f"{name}: {error}" for name, error in imported.errors.items())
        raise MocapError(f"no clip of {folder} could be imported ({problems})")
    if target is None:
        imported.collection = _gather(context, Path(folder).resolve().name, imported.takes)
    if match_scene:
        last = max(float(r.frames.max()) for rs in imported.takes.values() for r in rs)
        context.scene.frame_end = max(context.scene.frame_end, math.ceil(last - 1e-6))
    return imported


def _gather(context, folder_name: str, takes: dict[str, list]) -> "bpy.types.Collection":
    """Move each clip's new rigs into a collection named after the clip, all inside one new
    collection named after the folder."""
    parent = bpy.data.collections.new(f"MeTRAbs {folder_name}")
    context.scene.collection.children.link(parent)
    for clip, results in takes.items():
        collection = bpy.data.collections.new(clip)
        parent.children.link(collection)
        for result in results:
            for owner in list(result.armature.users_collection):
                owner.objects.unlink(result.armature)
            collection.objects.link(result.armature)
    return parent


# ------------------------------------------------------------------------------------------------
# Running the batch command


@dataclass(frozen=True)
class BatchRequest:
    """What to analyse and how; turned into the command line by :func:`batch_command`."""

    inputs: tuple[str, ...]  # video files, folders of videos or glob patterns
    output: str  # results folder
    workers: int | None = None  # None: one per GPU, else CPU workers
    ray_address: str | None = None  # None: this machine; "" Ray's default; or a cluster address
    clean_preset: str | None = None  # also write cleaned trajectories with this preset
    recursive: bool = False  # search the input folders recursively
    analyze_args: tuple[str, ...] = ()  # options of every clip's analysis (``analyze --help``)
    extra_args: tuple[str, ...] = ()  # batch options passed through unchanged


def batch_command(
    python: str, request: BatchRequest, entry: Sequence[str] = BATCH_ENTRY
) -> list[str]:
    """The argument list (no shell): ``python -m inference batch INPUTS... -o OUT ...``."""
    if not request.inputs:
        raise MocapError("Choose at least one video or folder to analyse")
    command = [python, *entry, *request.inputs, "-o", request.output]
    if request.workers is not None:
        command += ["--workers", str(request.workers)]
    if request.clean_preset:
        command += ["--clean", request.clean_preset]
    if request.recursive:
        command.append("--recursive")
    if request.analyze_args:
        command.append("--analyze-options=" + " ".join(map(_quote, request.analyze_args)))
    command += request.extra_args
    if request.ray_address is not None:  # last: a bare --ray would take the next word
        command += ["--ray", request.ray_address] if request.ray_address else ["--ray"]
    return command


def _quote(word: str) -> str:
    """POSIX shell quoting, as the batch command splits ``--analyze-options`` (``shlex``)."""
    if word and all(c.isalnum() or c in "@%+=:,./-_" for c in word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


@dataclass
class BatchState:
    """What the batch command's events said so far; folds events like ``backend.WorkerState``
    (:meth:`update`, :attr:`fraction`, :meth:`text`), so ``backend.WorkerJob`` can follow it."""

    clips_total: int | None = None
    clips_done: int = 0
    clips_failed: int = 0
    clip: str = ""  # the clip of the latest progress event
    eta_s: float | None = None
    warnings: list[str] = field(default_factory=list)
    start: dict | None = None
    done: dict | None = None
    error: dict | None = None

    def update(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "start":
            self.start, self.clips_total = event, event.get("clips_total")
        elif kind == "progress":
            self.clips_done = int(event.get("clips_done") or 0)
            self.clips_failed = int(event.get("clips_failed") or 0)
            self.clip, self.eta_s = str(event.get("clip") or ""), event.get("eta_s")
        elif kind == "warning":
            self.warnings.append(str(event.get("message", "")))
        elif kind == "done":
            self.done = event
        elif kind == "error":
            self.error = event

    @property
    def fraction(self) -> float:
        """Share of clips finished, 0..1."""
        if self.done is not None:
            return 1.0
        return min(1.0, self.clips_done / self.clips_total) if self.clips_total else 0.0

    def text(self) -> str:
        """A status line: ``Clip 3/12 (take_04), 1 failed, 95 s left``."""
        if self.start is None:
            return "Starting (finding the clips)..."
        parts = [f"Clip {min(self.clips_done + 1, self.clips_total or 0)}/{self.clips_total}"]
        if self.clip:
            parts[0] += f" ({self.clip})"
        if self.clips_failed:
            parts.append(f"{self.clips_failed} failed")
        if self.eta_s is not None:
            parts.append(f"{self.eta_s:.0f} s left")
        return ", ".join(parts)


def start_batch(
    request: BatchRequest,
    python: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    entry: Sequence[str] = BATCH_ENTRY,
) -> "backend.BackendProcess":
    """Start the batch command in the backend Python and return at once."""
    if python is None:
        from .api import backend_venv_dir

        python = backend.find_backend_python(venv_dir=backend_venv_dir()).python
    Path(request.output).mkdir(parents=True, exist_ok=True)
    command = batch_command(python, request, entry)
    return backend.BackendProcess(command, env=backend.worker_environment(cache_dir))


def analyze_folder(
    request: BatchRequest,
    *,
    python: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    entry: Sequence[str] = BATCH_ENTRY,
    on_event: "Callable[[dict, BatchState], None] | None" = None,
    should_cancel: "Callable[[], bool] | None" = None,
    poll_s: float = 0.05,
    **import_options,
) -> FolderImport:
    """Run the batch command to its end (``should_cancel`` stops it: finished clips are kept),
    then :func:`import_folder` the results with ``import_options``. Blocks the caller."""
    job = backend.WorkerJob(start_batch(request, python, cache_dir, entry), BatchState())
    job.on_event = on_event
    while not job.poll():
        if should_cancel is not None and not job.process.cancel_requested and should_cancel():
            job.cancel()
        time.sleep(poll_s)
    state: BatchState = job.state
    if state.done is None:
        message = (state.error or {}).get("message") or "the batch command failed"
        tail = f": {job.outcome.stderr_tail[-1]}" if job.outcome.stderr_tail else ""
        raise backend.BackendError(f"{message} (exit code {job.outcome.returncode}){tail}")
    return import_folder(request.output, **import_options)
