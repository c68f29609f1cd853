"""Many clips from Blender: run ``python -m inference batch`` and import its results as takes.

:func:`import_folder` imports every finished clip of a batch output folder through
:func:`importer.import_trajectory`: one new action per clip and person, named after the clip
(``MeTRAbs <clip> P<id> take N``). Without a ``target`` each person gets a new rig and the rigs of
a clip are gathered in a collection named after the clip (under one collection for the folder);
with a ``target`` armature every clip becomes one take on it (``use_nla`` stacks them as NLA
tracks). Nothing of the user's is modified. The folder's ``batch_manifest.json`` decides which
clips are complete and in which order; without it every ``.npz`` in the folder is imported.
Cleaned results (``cleaned/<clip>.npz``) are preferred when present.

"Analyze folder" runs the batch command in the backend Python like the single-clip analysis:
:func:`start_batch` checks the request (:func:`check_request`: videos found, output writable) and
starts it, returning at once (the panel's modal operator follows it with
``jobs.WorkerJob(process, BatchState())`` and :func:`finish_batch`); :func:`analyze_folder`
blocks until it has finished and imports the results. :func:`analysis_options` turns the
single-clip settings (device, model, camera, max people) into every clip's analysis options.
"""

import dataclasses
import glob
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from ..retarget import RetargetError
from . import backend, jobs
from .errors import MocapError
from .importer import ImportResult, import_trajectory, resolve_target
from .paths import backend_venv_dir, default_output_path

# The batch output layout, shared with inference/batch/ by these names only (Blender's Python
# never imports the inference package).
MANIFEST_JSON = "batch_manifest.json"
MANIFEST_FORMAT = "metrabs-batch-manifest"
CLEANED_DIR = "cleaned"
COMPLETE_STATUSES = ("done", "skipped")
#: The file suffixes a folder's videos have, as ``inference.batch.VIDEO_SUFFIXES`` (a test keeps
#: them equal); the batch command itself decides, this only lets the panel refuse an empty folder.
VIDEO_SUFFIXES = (
    ".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".mts",
    ".m2ts", ".ts", ".3gp", ".ogv", ".mxf",
)  # fmt: skip
#: How the batch command is started after the interpreter: ``python -m inference batch ...``.
BATCH_ENTRY: tuple[str, ...] = ("-m", "inference", "batch")


# ------------------------------------------------------------------------------------------------
# Importing a results folder


@dataclass
class FolderImport:
    """What :func:`import_folder` created, and what it could not import."""

    takes: dict[str, list[ImportResult]] = field(default_factory=dict)  # clip -> one per person
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
        rows = _manifest_clips(manifest)
    else:  # a folder of results without a batch: a cleaned file beside each is theirs
        # not <clip>.partial.npz: the unfinished re-run of a clip whose complete result is beside
        rows = [(path.stem, path, folder / CLEANED_DIR / path.name)
                for path in sorted(folder.glob("*.npz"))
                if not path.name.endswith(".partial.npz")]  # fmt: skip
    if not rows:
        raise MocapError(
            f"no finished results in {folder}; run `python -m inference batch VIDEOS -o {folder}` "
            f"first (or wait until it has finished some clips)"
        )
    return [(name, cleaned if prefer_cleaned and cleaned and cleaned.is_file() else path)
            for name, path, cleaned in rows]  # fmt: skip


def _manifest_clips(manifest: Path) -> list[tuple[str, Path, Path | None]]:
    """``(clip, output, cleaned output or None)`` of the manifest's complete clips: a cleaned file
    is the one this run made, never one left from an earlier analysis of the clip."""
    try:
        document = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise MocapError(f"{manifest} cannot be read ({error}); run the batch again") from error
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise MocapError(f"{manifest} is not a MeTRAbs batch manifest")
    return [
        (str(row["clip"]), manifest.parent / row["output"],
         manifest.parent / row["cleaned_output"] if row.get("cleaned_output") else None)
        for row in document.get("clips", [])
        if row.get("status") in COMPLETE_STATUSES and row.get("output")
    ]  # fmt: skip


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

    ``target`` and ``options`` (``rig_map``, ``root_motion``, ``foot_contacts``, ``use_nla``,
    ``joint_limits``, ``person``) are those of :func:`importer.import_trajectory`. A clip that cannot
    be imported is listed in :attr:`FolderImport.errors` and the others are imported; if none can
    be, :class:`MocapError` says why and the scene is unchanged. With ``match_scene`` the scene
    takes the first clip's frame rate and its end frame covers the longest clip.
    """
    context = context or bpy.context
    target = resolve_target(target, context)
    imported = FolderImport()
    for name, path in result_files(folder, prefer_cleaned):
        first = match_scene and not imported.takes
        try:
            imported.takes[name] = import_trajectory(
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


def analysis_options(
    *,
    device: str = "auto",
    model: str | None = None,
    fov_deg: float | None = None,
    focal_mm: float | None = None,
    sensor_mm: float | None = None,
    max_people: int | None = None,
    extra_args: Sequence[str] = (),
) -> tuple[str, ...]:
    """Every clip's ``analyze`` options (:attr:`BatchRequest.analyze_args`) for the settings of a
    single-clip analysis (see :func:`api.analyze_video`), e.g. ``("--fov", "60", "--device",
    "cpu")``. Raises :class:`backend.BackendError` for an unknown device or both a field of view
    and a focal length."""
    request = backend.AnalyzeRequest(
        video="", output="", fov_deg=fov_deg, focal_mm=focal_mm, sensor_mm=sensor_mm,
        max_people=max_people, device=device, model=model, extra_args=tuple(extra_args),
    )  # fmt: skip
    # the single-clip command line without its interpreter, video and output: one way to spell it
    return tuple(backend.analyze_command("", request, entry=())[4:])


def default_batch_output(videos: str | os.PathLike, results_dir: str | os.PathLike) -> Path:
    """Where the panel writes a folder's results when no Output Folder is chosen:
    ``<results_dir>/<videos folder name>``, ``results_dir`` resolved as
    :func:`paths.default_output_path` resolves it (next to the saved .blend for ``//``, else in
    the extension's user folder)."""
    name = Path(str(videos).rstrip("/\\")).name or "videos"
    return default_output_path(name, results_dir).parent / name


def _is_video(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith(".")
    )


def _videos_of(item: str, recursive: bool) -> list[Path]:
    path = Path(item)
    if path.is_file():
        return [path]
    if path.is_dir():
        return [p for p in (path.rglob("*") if recursive else path.iterdir()) if _is_video(p)]
    if any(char in item for char in "*?["):
        return [p for p in map(Path, glob.glob(item, recursive=True)) if _is_video(p)]
    raise MocapError(f"{item} does not exist; choose a folder of videos")


def check_request(request: BatchRequest) -> int:
    """Refuse, before anything is started or written, a request whose inputs hold no video or
    whose output folder cannot be written; returns how many videos the inputs hold."""
    if not request.inputs:
        raise MocapError("Choose a folder of videos to analyse")
    count = sum(len(_videos_of(item, request.recursive)) for item in request.inputs)
    if not count:
        where = ", ".join(request.inputs)
        deeper = "" if request.recursive else " (tick Include Subfolders to look deeper)"
        raise MocapError(
            f"No video found in {where}{deeper}; it needs video files such as "
            f"{', '.join(VIDEO_SUFFIXES[:5])}"
        )
    _check_writable(Path(request.output))
    return count


def _check_writable(folder: Path) -> None:
    """The nearest existing folder on the way to ``folder`` accepts a new file (the probe file
    is removed at once, so nothing is left behind)."""
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise MocapError(
            f"Cannot write results to {folder}: {existing} is a file, not a folder; "
            "choose another Output Folder"
        )
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise MocapError(
            f"Cannot write results to {folder} ({error.strerror or error}); "
            "choose an Output Folder you may write to"
        ) from error


@dataclass
class BatchState(jobs.EventState):
    """What the batch command's events said so far; follows the single-clip ``jobs.WorkerState``
    (:attr:`fraction`, :meth:`text`), so ``jobs.WorkerJob`` can follow it."""

    clips_total: int | None = None
    clips_done: int = 0  # finished: done, skipped or failed
    clips_failed: int = 0
    clip: str = ""  # the clip being analysed (latest progress event of an unfinished clip)
    clip_frames: tuple[int | None, int | None] = (None, None)  # its frames done, total
    eta_s: float | None = None

    def _on_start(self, event: dict) -> None:
        self.clips_total = event.get("clips_total")

    def _on_progress(self, event: dict) -> None:
        self.clips_done = int(event.get("clips_done") or 0)
        self.clips_failed = int(event.get("clips_failed") or 0)
        self.eta_s = event.get("eta_s")
        clip = str(event.get("clip") or "")
        if event.get("clip_status"):  # this clip has finished
            if clip == self.clip:
                self.clip, self.clip_frames = "", (None, None)
        else:
            self.clip = clip
            self.clip_frames = (event.get("clip_frames_done"), event.get("clip_frames_total"))

    @property
    def fraction(self) -> float:
        """Share of clips finished, 0..1."""
        if self.done is not None:
            return 1.0
        return min(1.0, self.clips_done / self.clips_total) if self.clips_total else 0.0

    def text(self) -> str:
        """A status line: ``2/12 clips done, analysing take_04 (frame 30/250), 1 failed, 95 s
        left``."""
        if self.start is None:
            return "Starting (finding the clips, loading the model)..."
        parts = [f"{self.clips_done}/{self.clips_total} clips done"]
        if self.clip:
            done, total = self.clip_frames
            frames = f" (frame {done}/{total})" if done is not None and total else ""
            parts.append(f"analysing {self.clip}{frames}")
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
) -> "jobs.BackendProcess":
    """Check ``request`` (:func:`check_request`), then start the batch command in the backend
    Python (default: auto-detected) and return at once."""
    check_request(request)
    if python is None:
        python = backend.find_backend_python(venv_dir=backend_venv_dir()).python
    # the batch runs in the extension's folder: the caller's relative paths would name other files
    inputs = tuple(backend.caller_path(item) for item in request.inputs)
    request = dataclasses.replace(
        request, inputs=inputs, output=backend.caller_path(request.output)
    )
    Path(request.output).mkdir(parents=True, exist_ok=True)
    command = batch_command(backend.caller_python(python), request, entry)
    return jobs.BackendProcess(command, env=backend.worker_environment(cache_dir))


@dataclass(frozen=True)
class BatchOutcome:
    """How a batch run ended (from its ``done`` event)."""

    output: Path  # the results folder
    clips_total: int  # clips of this run
    finished: int  # analysed now or reused from an earlier run
    failed: int
    cancelled: bool  # stopped early; the finished clips are kept, a re-run resumes
    warnings: tuple[str, ...]  # the batch's warnings (failed clips, inputs without videos)

    def summary(self) -> str:
        """``3/3 clips done`` or ``Cancelled: 1/3 clips done, 1 failed``."""
        text = f"{self.finished}/{self.clips_total} clips done"
        if self.failed:
            text += f", {self.failed} failed"
        return f"Cancelled: {text}" if self.cancelled else text


def finish_batch(job: "jobs.WorkerJob") -> BatchOutcome:
    """The outcome of a finished batch job; raises :class:`backend.BackendError` with the batch's
    own message when it could not run (no video, no model, bad options) or every clip failed."""
    state: BatchState = job.state
    if state.done is None and job.outcome.cancelled and state.error is None:
        raise MocapError("Cancelled before the batch started; nothing was analysed")
    if state.done is None:
        message = (state.error or {}).get("message") or "the batch command failed"
        tail = f": {job.outcome.stderr_tail[-1]}" if job.outcome.stderr_tail else ""
        raise backend.BackendError(f"{message} (exit code {job.outcome.returncode}){tail}")
    done = state.done
    outcome = BatchOutcome(
        output=Path(done.get("output") or ""),
        clips_total=int(done.get("clips_total") or 0),
        finished=int(done.get("done") or 0) + int(done.get("skipped") or 0),
        failed=int(done.get("failed") or 0),
        cancelled=job.outcome.cancelled or job.outcome.returncode == 130,
        warnings=tuple(state.warnings),
    )
    if outcome.failed and not outcome.finished and not outcome.cancelled:
        reasons = "; ".join(outcome.warnings) or "see the manifest"
        raise backend.BackendError(f"No clip could be analysed ({reasons})")
    return outcome


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
    then :func:`import_folder` the results with ``import_options``. Blocks the caller.

    This is the panel's Analyze Folder followed by Import Folder in one call; per-clip settings
    go in ``request.analyze_args`` (see :func:`analysis_options`).
    """
    job = jobs.WorkerJob(start_batch(request, python, cache_dir, entry), BatchState())
    job.on_event = on_event
    try:
        while not job.poll():
            if should_cancel is not None and not job.process.cancel_requested and should_cancel():
                job.cancel()
            time.sleep(poll_s)
    finally:  # interrupted (Ctrl-C in a script): the batch must not outlive the call
        if not job.poll():
            job.stop()
    finish_batch(job)
    return import_folder(request.output, **import_options)
