"""Many clips: ``python -m inference batch INPUTS... -o OUT_DIR [--workers N] [--ray [ADDRESS]]``.

Inputs are video files, folders (their video files) or glob patterns. Every clip becomes one
trajectory ``.npz`` in ``OUT_DIR`` (and, with ``--clean PRESET``, a cleaned copy in
``OUT_DIR/cleaned/``), written atomically by the single-clip analysis, which is reused unchanged:
each worker process loads the model once (:class:`ClipAnalyzer`) and analyses clip after clip.

Output folder::

    OUT_DIR/<clip>.npz               trajectory contract, one per clip
    OUT_DIR/cleaned/<clip>.npz       cleaned trajectory (with --clean)
    OUT_DIR/batch_manifest.json      every clip: status, frames, people, seconds, error, ...
    OUT_DIR/batch_manifest.csv       the same as a table
    OUT_DIR/.batch/<clip>.json       per-clip record: input SHA-256, model and settings, output SHA-256

``<clip>`` is the video's file name without suffix; a clip whose name another clip of the run
shares (another folder, another suffix) or whose name holds an earlier run's result of another
input gets ``-<8 hex digits of its path>`` appended.

Idempotent and resumable: a clip is skipped when its output exists and its record matches the
input's content hash (SHA-256), the model id, the settings that change the result (camera, frame
range, TTA, ...) and the cleaning preset; the manifest is rewritten
atomically after every clip, so a crashed or cancelled run loses at most the clips in flight
(cancelled clips keep the worker's partial result and resume from it). A clip that fails, even one
that kills its worker process, is recorded as failed and the batch goes on.

Progress: the single-clip worker's JSON-lines protocol on stdout (``inference.jsonlines``), logs on
stderr. ``start`` (``clips_total``, ``workers``, ``mode``, ``output``, ``manifest``), ``progress``
(per clip: ``clip``, ``worker``, ``clip_frames_done``, ``clip_frames_total``; overall:
``clips_done``, ``clips_total``, ``clips_failed``, ``frames_done`` (frames analysed in this run),
``frames_total`` (null), ``fps``, ``eta_s``; a finished clip adds ``clip_status``, ``clip_error``,
``clip_seconds``, ``people``), ``warning`` (a failed clip, a pattern that matched nothing), ``done`` (``output``,
``manifest``, counts per status, ``frames``, ``partial``, ``elapsed_s``), ``error``.

Exit codes: 0 every clip done or skipped, 1 batch could not run (e.g. no worker could load the
model), 2 bad command line or no clip found, 3 finished but some clips failed, 130 cancelled.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import glob
import hashlib
import importlib
import io
import json
import logging
import multiprocessing
import os
import queue
import shlex
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import InferenceError

if TYPE_CHECKING:
    from .analysis import Finished, Started

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (
    ".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".mts",
    ".m2ts", ".ts", ".3gp", ".ogv", ".mxf",
)  # fmt: skip
MANIFEST_JSON = "batch_manifest.json"
MANIFEST_CSV = "batch_manifest.csv"
MANIFEST_FORMAT = "metrabs-batch-manifest"
MANIFEST_VERSION = 1
RECORD_DIR = ".batch"
CLEANED_DIR = "cleaned"
CSV_COLUMNS = ("clip", "status", "frames", "people", "seconds", "error", "input", "output")
STATUSES = ("pending", "running", "done", "skipped", "failed", "cancelled")
DEFAULT_ANALYZER = "inference.batch:worker_analyzer"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CLIPS_FAILED = 3
EXIT_CANCELLED = 130


class BatchError(InferenceError):
    """The batch as a whole cannot run (bad inputs, no worker could load the model, ...)."""

    exit_code = EXIT_ERROR


class NoClipsError(BatchError):
    """No input matched a video file."""

    exit_code = EXIT_USAGE


class BatchUsageError(BatchError):
    """A bad command line: an option's value, an output folder that is a file (exit 2)."""

    exit_code = EXIT_USAGE


# ------------------------------------------------------------------------------------------------
# Inputs and clip names


def find_clips(inputs: Sequence[str], recursive: bool = False) -> tuple[list[Path], list[str]]:
    """Expand files, folders (their videos, sorted) and glob patterns into distinct video paths.

    Explicit files are taken whatever their suffix (a bad one fails as its own clip); folders and
    patterns contribute files with a video suffix (:data:`VIDEO_SUFFIXES`). Returns the clips in
    input order without duplicates and one warning per input that matched nothing.
    """
    clips: list[Path] = []
    seen: set[Path] = set()
    warnings = []
    for item in inputs:
        found = _expand(item, recursive)
        if not found:
            warnings.append(f"input {item!r} matched no video file")
        elif found == [Path(item)] and not found[0].exists():
            warnings.append(f"input {item!r} does not exist; it is listed as a failed clip")
        for path in found:
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                clips.append(path)
    return clips, warnings


def _is_video(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith(".")
    )


def _expand(item: str, recursive: bool) -> list[Path]:
    path = Path(item)
    if path.is_file():
        return [path]
    if path.is_dir():
        candidates = path.rglob("*") if recursive else path.iterdir()
        # not inside hidden folders either (.Trash-1000/, .thumbnails/)
        visible = (
            p
            for p in candidates
            if not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        return sorted(p for p in visible if _is_video(p))
    if any(char in item for char in "*?["):
        return sorted(p for p in map(Path, glob.glob(item, recursive=True)) if _is_video(p))
    return [path]  # a missing file: reported as a failed clip, it does not stop the others


def clip_names(clips: Sequence[Path], out_dir: Path | None = None) -> list[str]:
    """A unique output name per clip: the file stem, plus a hash of the clip's whole path when
    another clip of this run has that stem (the same name in two folders, or ``take.avi`` and
    ``take.mkv``), or when ``out_dir`` holds a result of that name from another input (an earlier
    run's ``day1/take.mp4`` is not replaced by ``day2/take.mp4``)."""
    stems = Counter(clip.stem.casefold() for clip in clips)  # casefold: case-blind file systems
    names = []
    for clip in clips:
        stem = clip.stem
        if stems[stem.casefold()] > 1 or _taken_by_another_input(out_dir, stem, clip):
            path = str(clip.resolve()).encode("utf-8", "surrogateescape")
            stem = f"{stem}-{hashlib.sha1(path).hexdigest()[:8]}"
        names.append(stem)
    return names


def _taken_by_another_input(out_dir: Path | None, name: str, clip: Path) -> bool:
    """Whether ``out_dir`` has a per-clip record ``name`` of another input than ``clip``."""
    if out_dir is None:
        return False
    saved = _read_json(out_dir / RECORD_DIR / f"{name}.json")
    return saved is not None and saved.get("input") != str(clip.resolve())


@dataclass(frozen=True)
class ClipJob:
    """One clip to analyse and where its results go (all paths absolute strings)."""

    name: str  # unique clip name, the output file stem
    video: str  # input video path
    output: str  # contract .npz
    record: str  # per-clip JSON record (hashes, model id)
    cleaned_output: str | None = None  # cleaned .npz, None without cleaning
    clean_preset: str | None = None  # cleaning preset name, None for no cleaning


def make_jobs(clips: Sequence[Path], out_dir: Path, clean_preset: str | None) -> list[ClipJob]:
    """The jobs of ``clips`` writing into ``out_dir`` (see the module docstring for the layout)."""
    out_dir = out_dir.resolve()
    return [
        ClipJob(
            name=name,
            video=str(clip.resolve()),
            output=str(out_dir / f"{name}.npz"),
            record=str(out_dir / RECORD_DIR / f"{name}.json"),
            cleaned_output=str(out_dir / CLEANED_DIR / f"{name}.npz") if clean_preset else None,
            clean_preset=clean_preset,
        )
        for clip, name in zip(clips, clip_names(clips, out_dir), strict=True)
    ]


# ------------------------------------------------------------------------------------------------
# The analyser seam: load once per worker, analyse many clips


ProgressCallback = Callable[[int, "int | None"], None]  # (frames_done, frames_total or None)


@dataclass(frozen=True)
class ClipOutcome:
    """What one analysis produced: frame and person counts of the written file."""

    frames: int  # frames in the written trajectory
    people: int  # people (tracks) in the written trajectory
    partial: bool = False  # True when stopped early (the file is a valid partial result)


class ClipAnalyzer(Protocol):
    """Analyses clips one after the other with a model loaded once, at construction.

    ``model_id`` names the model and its weights hash exactly as written into each output's
    ``model`` key; ``config_id`` names every other setting that changes the result (camera, frame
    range, test-time augmentation, ...), not those that only change the speed. Together with the
    input's hash they decide whether an earlier result can be reused or resumed.
    """

    model_id: str
    config_id: str

    def analyze(
        self,
        video: Path,
        output: Path,
        *,
        progress: ProgressCallback,
        stop: threading.Event,
        resume: bool,
    ) -> ClipOutcome:
        """Write the trajectory of ``video`` to ``output`` atomically. When ``stop`` is set, finish
        the current step, write a partial result and return it with ``partial=True``. With
        ``resume``, continue from the partial result already at ``output``. Raises
        :class:`InferenceError` (or a subclass) for a clip that cannot be analysed."""
        ...


@dataclass(frozen=True)
class AnalyzerSpec:
    """How a worker builds its :class:`ClipAnalyzer`: ``factory`` is ``"module:callable"``, called
    once per worker process with ``args`` (command-line style strings, e.g. the ``analyze``
    options given after ``--``)."""

    factory: str = DEFAULT_ANALYZER  # module:callable returning a ClipAnalyzer
    args: tuple[str, ...] = ()  # arguments handed to the factory


def load_analyzer(spec: AnalyzerSpec) -> ClipAnalyzer:
    """Import ``spec.factory`` and call it once: this is where the model is loaded."""
    module_name, _, attribute = spec.factory.partition(":")
    if not module_name or not attribute:
        raise BatchError(f"analyzer {spec.factory!r} must be given as module:callable")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise BatchError(f"cannot load analyzer {spec.factory!r}: {error}") from error
    return factory(list(spec.args))


class ClipError(InferenceError):
    """The analysis of one clip failed; the message is the worker's message for humans."""


_LOAD = object()  # "load it from the settings" (a detector may legitimately be None)


class WorkerAnalyzer:
    """:class:`ClipAnalyzer` over the single-clip analysis (``inference.analysis.analyze``) in this
    process, with its pose estimator and detector loaded once, here, for every clip.

    ``args`` are ``python -m inference analyze`` options (``--model``, ``--fov``, ``--tta`` ...);
    ``estimator``/``detector`` replace the models those options name (tests, benchmarks).
    """

    def __init__(self, args: Sequence[str], estimator: Any = _LOAD, detector: Any = _LOAD) -> None:
        from . import analysis

        self._analysis = analysis
        self.settings = analysis.settings_from_options(args)
        loader = analysis.ModelLoader(
            analysis.load_pose_estimator if estimator is _LOAD else lambda _s, _d: estimator,
            analysis.load_detector if detector is _LOAD else lambda _s, _d, _e: detector,
        )
        device = analysis.resolve_device(self.settings.device)
        self.models = loader(self.settings, device, _ClipEvents())
        # as the analysis names the model in its output's `model` key
        self.model_id = analysis.model_id(self.models.estimator, self.settings)
        result_settings = {
            key: value
            for key, value in dataclasses.asdict(self.settings).items()
            if key not in _SPEED_ONLY_SETTINGS
        }
        intrinsics = self.settings.intrinsics
        if intrinsics and os.path.isfile(intrinsics):  # its content matters too
            result_settings["intrinsics_sha256"] = file_sha256(intrinsics)
        self.config_id = json.dumps(result_settings, sort_keys=True)

    def analyze(
        self,
        video: Path,
        output: Path,
        *,
        progress: ProgressCallback,
        stop: threading.Event,
        resume: bool,
    ) -> ClipOutcome:
        # The batch's records decide which results in its folder may be replaced (another input's
        # result keeps its name, see clip_names); a partial result still never replaces a
        # complete one (the analysis writes it beside it).
        settings = dataclasses.replace(
            self.settings, video=str(video), output=str(output), resume=resume, overwrite=True
        )
        try:
            result = self._analysis.analyze(
                settings, self.models, _ClipEvents(video.name, progress), stop
            )
        except Exception as error:
            raise ClipError(self._analysis.describe_failure(error)[1]) from error
        trajectory = result.trajectory
        return ClipOutcome(trajectory.num_frames, trajectory.num_people, result.partial)


# worker settings that do not change the result (or change per clip)
_SPEED_ONLY_SETTINGS = frozenset(
    {"video", "output", "resume", "overwrite", "device", "batch_size", "checkpoint_every_s"}
)


class _ClipEvents:
    """The analysis events of one clip (``inference.analysis.AnalysisEvents``): progress goes to
    the batch's callback, warnings to the log (the driver reports a clip by its record)."""

    def __init__(self, clip: str = "", progress: ProgressCallback | None = None) -> None:
        self._clip, self._progress = clip, progress

    def start(self, started: Started) -> None:
        pass

    def progress(
        self,
        frames_done: int,
        frames_total: int | None,
        fps: float,
        people: int,
        force: bool = False,
    ) -> None:
        if self._progress is not None:
            self._progress(frames_done, frames_total)

    def warning(self, message: str) -> None:
        if self._clip:
            logger.warning("%s: %s", self._clip, message)
        else:
            logger.warning("%s", message)

    def done(self, finished: Finished) -> None:
        pass


def worker_analyzer(args: Sequence[str]) -> ClipAnalyzer:
    """Default factory: the single-clip worker with the models its options name (see
    :class:`WorkerAnalyzer`)."""
    try:
        return WorkerAnalyzer(args)
    except ImportError as error:
        raise BatchError(
            f"the single-clip worker cannot be imported ({error}); install the complete "
            f"inference package"
        ) from error


class Throttled:
    """A :data:`ProgressCallback` passing at most one update per ``interval_s`` to ``send``."""

    def __init__(self, send: ProgressCallback, interval_s: float = 0.2) -> None:
        self._send = send
        self._interval_s = interval_s
        self._last = -float("inf")

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self._last >= self._interval_s:
            self._last = now
            self._send(done, total)


# ------------------------------------------------------------------------------------------------
# One clip: hash, reuse or analyse, clean, record


@dataclass
class ClipRecord:
    """One manifest row. Paths are relative to the output folder when inside it."""

    clip: str
    status: str = "pending"  # one of STATUSES
    frames: int | None = None
    people: int | None = None
    seconds: float | None = None  # analysis wall time of the clip
    error: str = ""
    input: str = ""
    output: str = ""
    cleaned_output: str = ""
    input_sha256: str = ""
    model: str = ""
    worker: str = ""
    attempts: int = 0  # analyses started for this clip in this run (retries after a crash)
    finished: float | None = None  # time.time() when the status was last set

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClipRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 4 * 2**20) -> str:
    """Hex SHA-256 of a file's content, read in chunks (memory flat in the file size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(handle, 0o644)  # readable by the cluster's other users, like any output
        # (a table cell with a file name that is not UTF-8 shows its bytes as \x.. escapes)
        with os.fdopen(
            handle, "w", encoding="utf-8", errors="backslashreplace", newline=""
        ) as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _read_json(path: str | os.PathLike) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _same_source(saved: dict[str, Any] | None, input_sha: str, analyzer: ClipAnalyzer) -> bool:
    """True when a per-clip record is of this input, model and result-changing settings."""
    return bool(saved) and (
        saved.get("input_sha256"),
        saved.get("model"),
        saved.get("config"),
    ) == (input_sha, analyzer.model_id, analyzer.config_id)


def _reusable(
    job: ClipJob, saved: dict[str, Any] | None, input_sha: str, analyzer: ClipAnalyzer
) -> bool:
    """True when ``job``'s outputs on disk are a complete result of this input, model, settings
    and cleaning preset."""
    if not _same_source(saved, input_sha, analyzer) or not saved.get("complete"):
        return False
    if saved.get("clean_preset") != job.clean_preset:
        return False
    outputs = [(job.output, "output_sha256")]
    if job.cleaned_output:
        outputs.append((job.cleaned_output, "cleaned_sha256"))
    for path, key in outputs:
        if not os.path.isfile(path) or file_sha256(path) != saved.get(key):
            return False
    return True


def _clean(job: ClipJob) -> None:
    """Write the cleaned trajectory of ``job.output`` to ``job.cleaned_output``."""
    from retarget import clean
    from retarget.contract import read_trajectory, write_trajectory

    cleaned = clean.clean_trajectory(read_trajectory(job.output), preset=job.clean_preset)
    write_trajectory(job.cleaned_output, cleaned)


def _error_message(error: BaseException) -> str:
    from retarget import RetargetError

    if isinstance(error, InferenceError | RetargetError | OSError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def process_clip(
    analyzer: ClipAnalyzer,
    job: ClipJob,
    progress: ProgressCallback,
    stop: threading.Event,
    worker: str = "",
) -> ClipRecord:
    """Analyse one clip (or reuse its earlier result); never raises for a bad clip.

    Returns the clip's record: ``done``, ``skipped`` (reused), ``cancelled`` (``stop`` was set; a
    partial result was kept for ``resume``), ``pending`` (``stop`` was set before it began) or
    ``failed`` with the reason in ``error``.
    """
    started = time.monotonic()
    record = ClipRecord(clip=job.name, input=job.video, model=analyzer.model_id, worker=worker)
    try:
        if not os.path.isfile(job.video):
            raise ClipError(f"video not found: {job.video}; check the path")
        record.input_sha256 = input_sha = file_sha256(job.video)
        saved = _read_json(job.record)
        if _reusable(job, saved, input_sha, analyzer):
            record.status = "skipped"
            record.frames, record.people = saved.get("frames"), saved.get("people")
            record.seconds = saved.get("seconds")
            return record
        if stop.is_set():  # cancelled before this clip began: it stays pending
            record.status = "pending"
            return record
        resume = (
            _same_source(saved, input_sha, analyzer)
            and not saved.get("complete")
            and os.path.isfile(job.output)
        )
        record.attempts += 1
        outcome = analyzer.analyze(
            Path(job.video), Path(job.output), progress=progress, stop=stop, resume=resume
        )
        record.frames, record.people = outcome.frames, outcome.people
        if not outcome.partial and job.clean_preset:
            _clean(job)
        record.status = "cancelled" if outcome.partial else "done"
        record.seconds = round(time.monotonic() - started, 3)
        _save_record(job, record, analyzer.config_id, complete=not outcome.partial)
    except Exception as error:  # the isolation boundary: one bad clip never stops the batch
        logger.error("clip %s failed: %s", job.name, error, exc_info=logger.isEnabledFor(10))
        record.status = "failed"
        record.error = _error_message(error)
    record.seconds = round(time.monotonic() - started, 3)
    return record


def _save_record(job: ClipJob, record: ClipRecord, config_id: str, complete: bool) -> None:
    saved = {
        "clip": job.name,
        "input": job.video,
        "input_sha256": record.input_sha256,
        "model": record.model,
        "config": config_id,
        "clean_preset": job.clean_preset,
        "complete": complete,
        "frames": record.frames,
        "people": record.people,
        "seconds": record.seconds,
        "output_sha256": file_sha256(job.output),
        "cleaned_sha256": file_sha256(job.cleaned_output)
        if complete and job.cleaned_output
        else None,
    }
    write_atomic(Path(job.record), json.dumps(saved, indent=1))


# ------------------------------------------------------------------------------------------------
# Manifest


class Manifest:
    """``batch_manifest.json`` + ``.csv`` in the output folder, rewritten atomically on update.

    Clips of earlier runs into the same folder are kept; this run's clips are added or updated.
    Updates are saved at once unless saving is slow compared with the time between updates (huge
    manifests): then at most ``SAVE_SHARE`` of the wall time goes to saving, and :meth:`flush`
    saves the rest. Nothing is lost by a crash in between: the per-clip records next to the
    outputs let the next run reuse every finished clip.
    """

    SAVE_SHARE = 0.1  # largest share of the wall time spent rewriting the manifest

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir.resolve()
        self.json_path = self.out_dir / MANIFEST_JSON
        self.csv_path = self.out_dir / MANIFEST_CSV
        self.records: dict[str, ClipRecord] = {}
        self.model = ""
        self._dirty = False
        self._next_save = 0.0  # monotonic time before which updates are only kept in memory
        saved = _read_json(self.json_path)
        if saved and saved.get("format") == MANIFEST_FORMAT:
            for item in saved.get("clips", []):
                record = ClipRecord.from_json(item)
                self.records[record.clip] = record
            self.model = str(saved.get("model", ""))

    def _relative(self, path: str) -> str:
        if not path:
            return ""
        try:
            return Path(path).resolve().relative_to(self.out_dir).as_posix()
        except ValueError:
            return path

    def add_jobs(self, jobs: Iterable[ClipJob]) -> None:
        """Enter this run's clips; a clip already listed keeps its last status until it finishes."""
        for job in jobs:
            record = self.records.get(job.name)
            if record is None or record.input != job.video:
                self.records[job.name] = ClipRecord(clip=job.name, input=job.video)

    def update(self, job: ClipJob, record: ClipRecord) -> None:
        """Set a clip's record (paths made relative to the output folder) and save."""
        record = dataclasses.replace(record, finished=round(time.time(), 3))
        if record.status in ("done", "skipped"):
            record.output = self._relative(job.output)
            record.cleaned_output = self._relative(job.cleaned_output or "")
        elif record.status == "cancelled":
            record.output = self._relative(job.output)
        if record.model:
            self.model = record.model
        self.records[job.name] = record
        self.save()

    def mark(self, job: ClipJob, status: str, worker: str = "") -> None:
        """Change only the status (``running``/``pending``) and save."""
        record = self.records.setdefault(job.name, ClipRecord(clip=job.name, input=job.video))
        record.status, record.worker = status, worker or record.worker
        self.save()

    def save(self) -> None:
        """Save now, or after a while when saving is slow (see the class docstring)."""
        self._dirty = True
        if time.monotonic() >= self._next_save:
            self.flush()

    def flush(self) -> None:
        """Write the JSON and CSV files now (atomically) if anything changed."""
        if not self._dirty:
            return
        started = time.monotonic()
        self._write()
        self._dirty = False
        spent = time.monotonic() - started
        self._next_save = time.monotonic() + spent / self.SAVE_SHARE - spent

    def _write(self) -> None:
        clips = [record.to_json() for record in self.records.values()]
        document = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "output_dir": str(self.out_dir),
            "model": self.model,
            "updated": round(time.time(), 3),
            "clips": clips,
        }
        # ASCII escapes: a file name that is not UTF-8 (kept as surrogates) survives the round trip
        write_atomic(self.json_path, json.dumps(document, indent=1))
        table = io.StringIO()
        writer = csv.DictWriter(table, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for item in clips:
            writer.writerow({key: "" if item[key] is None else item[key] for key in CSV_COLUMNS})
        write_atomic(self.csv_path, table.getvalue())


# ------------------------------------------------------------------------------------------------
# Driver: shared by local and Ray mode


class EventSink(Protocol):
    """Where protocol events go (``inference.jsonlines.JsonLines`` or a test recorder)."""

    def emit(self, event: str, **fields: Any) -> None: ...


@dataclass
class BatchSummary:
    """Counts of one run; ``exit_code`` follows the module docstring."""

    records: dict[str, ClipRecord] = field(default_factory=dict)  # this run's clips
    cancelled: bool = False
    elapsed_s: float = 0.0

    def count(self, status: str) -> int:
        return sum(record.status == status for record in self.records.values())

    @property
    def exit_code(self) -> int:
        if self.cancelled:
            return EXIT_CANCELLED
        return EXIT_CLIPS_FAILED if self.count("failed") else EXIT_OK


class BatchDriver:
    """Bookkeeping of one run: manifest updates and protocol events as clips start and finish.

    Backends (local pool, Ray) call :meth:`started`, :meth:`progress` and :meth:`finished`.
    """

    def __init__(
        self,
        jobs: Sequence[ClipJob],
        manifest: Manifest,
        sink: EventSink,
        min_interval_s: float = 0.5,
    ) -> None:
        self.jobs = {job.name: job for job in jobs}
        self.manifest = manifest
        self.sink = sink
        self.summary = BatchSummary()
        self._min_interval_s = min_interval_s
        self._last_emit = -float("inf")
        self._started = time.monotonic()
        self._frames: dict[str, int] = {}  # frames analysed per clip in this run
        self._finished_frames = 0

    def begin(self, mode: str, workers: int) -> None:
        self.manifest.add_jobs(self.jobs.values())
        self.manifest.save()
        self.sink.emit(
            "start",
            mode=mode,
            workers=workers,
            clips_total=len(self.jobs),
            output=str(self.manifest.out_dir),
            manifest=str(self.manifest.json_path),
            frames_total=None,
        )

    def started(self, name: str, worker: str) -> None:
        self.manifest.mark(self.jobs[name], "running", worker)

    def progress(self, name: str, worker: str, done: int, total: int | None) -> None:
        self._frames[name] = done
        now = time.monotonic()
        if now - self._last_emit >= self._min_interval_s:
            self._emit_progress(name, worker, done, total)

    def finished(self, record: ClipRecord) -> None:
        job = self.jobs[record.clip]
        self._frames.pop(record.clip, None)
        if record.status == "pending":  # handed out, but the batch was cancelled before it began
            self.manifest.mark(job, "pending")
            return
        if record.status == "done":
            self._finished_frames += record.frames or 0
        self.summary.records[record.clip] = record
        self.manifest.update(job, record)
        if record.status == "failed":
            self.sink.emit("warning", message=f"clip {record.clip} failed: {record.error}")
        self._emit_progress(
            record.clip,
            record.worker,
            record.frames,
            record.frames,
            clip_status=record.status,
            clip_error=record.error,
            clip_seconds=record.seconds,
            people=record.people,
        )

    def _emit_progress(
        self, name: str, worker: str, done: int | None, total: int | None, **extra: Any
    ) -> None:
        self._last_emit = time.monotonic()
        elapsed = self._last_emit - self._started
        frames_done = self._finished_frames + sum(self._frames.values())
        finished = len(self.summary.records)
        eta = None
        if finished:
            eta = (len(self.jobs) - finished) * elapsed / finished
        self.sink.emit(
            "progress",
            clip=name,
            worker=worker,
            clip_frames_done=done,
            clip_frames_total=total,
            clips_done=finished,
            clips_total=len(self.jobs),
            clips_failed=self.summary.count("failed"),
            frames_done=frames_done,
            frames_total=None,
            fps=round(frames_done / elapsed, 3) if elapsed > 0 else 0.0,
            eta_s=None if eta is None else round(eta, 1),
            **extra,
        )

    def end(self, cancelled: bool) -> BatchSummary:
        self.manifest.flush()
        self.summary.cancelled = cancelled
        self.summary.elapsed_s = round(time.monotonic() - self._started, 3)
        counts = {status: self.summary.count(status) for status in STATUSES[2:]}
        self.sink.emit(
            "done",
            output=str(self.manifest.out_dir),
            manifest=str(self.manifest.json_path),
            clips_total=len(self.jobs),
            **counts,
            frames=self._finished_frames,
            partial=cancelled or len(self.summary.records) < len(self.jobs),
            elapsed_s=self.summary.elapsed_s,
        )
        return self.summary


# ------------------------------------------------------------------------------------------------
# Local mode: one process per GPU or per group of CPU cores


@dataclass(frozen=True)
class WorkerSlot:
    """Where one worker process runs: a GPU (``CUDA_VISIBLE_DEVICES``) or CPU threads."""

    index: int
    gpu: str | None  # CUDA device id given to the worker, None for CPU
    threads: int  # intra-op threads (torch, OpenCV) of the worker

    @property
    def name(self) -> str:
        return f"local-{self.index}" + (f"-gpu{self.gpu}" if self.gpu is not None else "")


def visible_gpus() -> list[str]:
    """CUDA device ids this process may use: from ``CUDA_VISIBLE_DEVICES`` when set, else one per
    GPU of the NVIDIA driver (``/proc/driver/nvidia/gpus`` on Linux, where no driver means no GPU;
    elsewhere counted by torch, slow to import)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [item.strip() for item in listed.split(",") if item.strip() and item.strip() != "-1"]
    if sys.platform.startswith("linux"):
        driver = Path("/proc/driver/nvidia/gpus")
        count = len(list(driver.iterdir())) if driver.is_dir() else 0
        return [str(index) for index in range(count)]
    try:
        import torch
    except ImportError:
        return []
    return [str(index) for index in range(torch.cuda.device_count())]


def cpu_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def plan_slots(
    workers: int | None, gpus: Sequence[str] | None = None, cores: int | None = None
) -> list[WorkerSlot]:
    """Worker slots: one per GPU by default (more workers share GPUs round-robin); without GPUs,
    one per CPU core up to 8 by default, the cores split evenly between the workers."""
    gpus = visible_gpus() if gpus is None else list(gpus)
    cores = cores or cpu_cores()
    if gpus:
        count = workers or len(gpus)
        threads = max(1, cores // count)
        return [WorkerSlot(i, gpus[i % len(gpus)], threads) for i in range(count)]
    count = workers or max(1, min(cores, 8))
    return [WorkerSlot(i, None, max(1, cores // count)) for i in range(count)]


def _worker_environment(slot: WorkerSlot) -> None:
    """Set before the analyser (and torch) is imported in the worker process."""
    if slot.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = slot.gpu
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(slot.threads)


def _watch_stop(stop: threading.Event, shared_stop: Any, parent: Any) -> None:
    """Set the worker's ``stop`` when the driver asks or dies (no orphan keeps running)."""
    while not stop.is_set():
        if shared_stop.is_set() or (parent is not None and not parent.is_alive()):
            stop.set()
        time.sleep(0.1)


def _local_worker(
    slot: WorkerSlot, spec: AnalyzerSpec, inbox: Any, outbox: Any, shared_stop: Any, level: int
) -> None:
    """Entry point of a local worker process: load the model once, then analyse jobs from
    ``inbox`` until ``None``; messages to the driver go to ``outbox``."""
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the driver, which stops us
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())  # stop after this clip
    _log_to_stderr(level, f"%(levelname)s {slot.name} %(name)s: %(message)s")
    _worker_environment(slot)
    try:
        analyzer = load_analyzer(spec)
    except Exception as error:  # reported to the driver, which decides whether the batch can run
        logger.exception("cannot load the analyser")
        outbox.put(("fatal", slot.index, _error_message(error)))
        return
    except SystemExit as error:  # argparse rejected the analysis options (message on stderr)
        outbox.put(("fatal", slot.index, f"the analysis options were rejected (exit {error.code})"))
        return
    outbox.put(("ready", slot.index, analyzer.model_id))
    parent = multiprocessing.parent_process()
    threading.Thread(target=_watch_stop, args=(stop, shared_stop, parent), daemon=True).start()
    while not stop.is_set():
        try:
            job = inbox.get(timeout=0.2)
        except queue.Empty:
            continue
        if job is None:
            break
        outbox.put(("started", slot.index, job.name))
        progress = Throttled(
            lambda done, total, name=job.name: outbox.put(
                ("progress", slot.index, name, done, total)
            )
        )
        record = process_clip(analyzer, job, progress, stop, worker=slot.name)
        outbox.put(("result", slot.index, record))
    stop.set()


def _drain(outbox: Any) -> list[tuple]:
    """Every message waiting in ``outbox``, without blocking."""
    messages = []
    try:
        while True:
            messages.append(outbox.get_nowait())
    except queue.Empty:
        return messages


class LocalPool:
    """Worker processes (spawned, so CUDA and torch start fresh in each), one job at a time each.

    :class:`_LocalRun` replaces a worker that dies and retries or fails its clip.
    """

    def __init__(self, slots: Sequence[WorkerSlot], spec: AnalyzerSpec) -> None:
        self.slots = list(slots)
        self.spec = spec
        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Event()
        self._processes: dict[int, Any] = {}
        self._inboxes: dict[int, Any] = {}
        # One outbox per worker: a multiprocessing.Queue's write lock is shared by its writers, and
        # a worker that dies while its feeder thread holds it would block every other worker.
        self._outboxes: dict[int, Any] = {}

    def start(self, slot: WorkerSlot) -> None:
        inbox, outbox = self._context.Queue(), self._context.Queue()
        process = self._context.Process(
            target=_local_worker,
            args=(slot, self.spec, inbox, outbox, self._stop, logger.getEffectiveLevel()),
            name=f"metrabs-batch-{slot.name}",
            daemon=True,
        )
        process.start()
        self._processes[slot.index], self._inboxes[slot.index] = process, inbox
        self._outboxes[slot.index] = outbox

    def assign(self, index: int, job: ClipJob) -> None:
        self._inboxes[index].put(job)

    def messages(self, timeout: float) -> list[tuple]:
        """Messages from the workers (waits up to ``timeout`` for the first), then a ``died``
        message for every worker process that exited."""
        deadline = time.monotonic() + timeout
        while True:
            found = [message for outbox in self._outboxes.values() for message in _drain(outbox)]
            if found or time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        for index, process in list(self._processes.items()):
            if not process.is_alive():
                process.join()
                found.extend(_drain(self._outboxes.pop(index)))  # what it sent before dying
                del self._processes[index]
                found.append(("died", index, process.exitcode))
        return found

    def request_stop(self) -> None:
        self._stop.set()

    def close(self, timeout: float = 30.0) -> None:
        """Ask every worker to finish, wait, and terminate stragglers."""
        for inbox in self._inboxes.values():
            inbox.put(None)
        deadline = time.monotonic() + timeout
        for process in self._processes.values():
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                logger.warning("worker %s did not stop; killing it", process.name)
                process.kill()
                process.join(5)
        self._processes.clear()


class _StopFlag:
    """Set by SIGINT/SIGTERM in the driver (or by a caller) to cancel the batch."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: int | None = None

    def handler(self, signum: int, _frame: Any) -> None:
        self.signal = signum
        self.event.set()


class _LocalRun:
    """The driver loop of one local batch: one clip in flight per worker process."""

    def __init__(
        self,
        jobs: Sequence[ClipJob],
        driver: BatchDriver,
        slots: Sequence[WorkerSlot],
        spec: AnalyzerSpec,
        retries: int,
    ) -> None:
        self.driver = driver
        self.pool = LocalPool(slots, spec)
        self.slots = {slot.index: slot for slot in slots}
        self.retries = retries
        self.pending: deque[ClipJob] = deque(jobs)
        self.busy: dict[int, ClipJob] = {}
        self.idle: deque[int] = deque()
        self.loading: set[int] = set()
        self.retired: set[int] = set()  # workers that could not load the analyser
        self.load_errors: list[str] = []
        self.crashes: dict[str, int] = {}  # clip -> worker deaths while analysing it
        self.cancelled = False

    def _start(self, index: int) -> None:
        self.pool.start(self.slots[index])
        self.loading.add(index)

    def _on_ready(self, index: int, _model_id: str) -> None:
        self.loading.discard(index)
        self.idle.append(index)

    def _on_fatal(self, index: int, message: str) -> None:
        self.loading.discard(index)
        self.retired.add(index)
        self.load_errors.append(message)
        self.driver.sink.emit("warning", message=f"worker {self.slots[index].name}: {message}")

    def _on_started(self, index: int, name: str) -> None:
        self.driver.started(name, self.slots[index].name)

    def _on_progress(self, index: int, name: str, done: int, total: int | None) -> None:
        self.driver.progress(name, self.slots[index].name, done, total)

    def _on_result(self, index: int, record: ClipRecord) -> None:
        record.attempts += self.crashes.get(record.clip, 0)
        self.busy.pop(index, None)
        self.driver.finished(record)
        self.idle.append(index)

    def _on_died(self, index: int, exit_code: int | None) -> None:
        job = self.busy.pop(index, None)
        if index in self.idle:  # died between clips: it takes no clip until it is back
            self.idle.remove(index)
        if index in self.loading:  # crashed while loading the model: do not try again
            self._on_fatal(index, f"worker process exited with code {exit_code} while loading")
            return
        if index in self.retired:
            return
        if job is not None:
            self._clip_crashed(job, self.slots[index], exit_code)
        if not self.cancelled:
            self._start(index)

    def _clip_crashed(self, job: ClipJob, slot: WorkerSlot, exit_code: int | None) -> None:
        self.crashes[job.name] = self.crashes.get(job.name, 0) + 1
        message = f"worker {slot.name} died (exit code {exit_code}) while analysing this clip"
        if self.cancelled:  # no retry after a cancel: the clip waits for the next run
            self.driver.finished(ClipRecord(clip=job.name, status="cancelled", error=message,
                                            input=job.video, worker=slot.name))  # fmt: skip
            return
        if self.crashes[job.name] <= self.retries:
            logger.warning("%s: %s; retrying", job.name, message)
            self.pending.appendleft(job)
            return
        self.driver.finished(
            ClipRecord(
                clip=job.name,
                status="failed",
                error=message + "; the video may be corrupt (a decoder crash) or memory ran out",
                input=job.video,
                worker=slot.name,
                attempts=self.crashes[job.name],
            )
        )

    def _dispatch(self) -> None:
        while self.idle and self.pending and not self.cancelled:
            index, job = self.idle.popleft(), self.pending.popleft()
            self.busy[index] = job
            self.pool.assign(index, job)

    def run(self, stop: threading.Event) -> bool:
        handlers = {
            "ready": self._on_ready,
            "fatal": self._on_fatal,
            "started": self._on_started,
            "progress": self._on_progress,
            "result": self._on_result,
            "died": self._on_died,
        }
        for index in self.slots:
            self._start(index)
        try:
            while self.pending or self.busy:
                if stop.is_set() and not self.cancelled:
                    self.cancelled = True
                    self.pool.request_stop()
                    self.pending.clear()
                for kind, index, *payload in self.pool.messages(timeout=0.2):
                    handlers[kind](index, *payload)
                if self.pending and not (self.loading or self.idle or self.busy):
                    raise BatchError(
                        "no worker could load the analyser: "
                        + "; ".join(dict.fromkeys(self.load_errors))
                    )
                self._dispatch()
        finally:
            self.pool.close()
        return self.cancelled


def run_local(
    jobs: Sequence[ClipJob],
    driver: BatchDriver,
    slots: Sequence[WorkerSlot],
    spec: AnalyzerSpec,
    stop: threading.Event,
    retries: int = 1,
) -> bool:
    """Run ``jobs`` on local worker processes; returns True when cancelled through ``stop``."""
    return _LocalRun(jobs, driver, slots, spec, retries).run(stop)


# ------------------------------------------------------------------------------------------------
# Entry points


@dataclass(frozen=True)
class BatchOptions:
    """Parameters of one batch run (the command line, as data)."""

    out_dir: Path  # output folder (created)
    workers: int | None = None  # worker processes / Ray actors; None: one per GPU or CPU core
    gpus: tuple[str, ...] | None = None  # CUDA ids for local mode; None: all visible
    ray_address: str | None = None  # None: local mode; "" start/connect by Ray's defaults
    clean_preset: str | None = None  # also write cleaned trajectories with this preset
    recursive: bool = False  # search input folders recursively
    retries: int = 1  # extra attempts for a clip whose worker died
    analyzer: AnalyzerSpec = AnalyzerSpec()  # how workers build their analyser


def run_batch(
    inputs: Sequence[str],
    options: BatchOptions,
    sink: EventSink,
    stop: threading.Event | None = None,
) -> BatchSummary:
    """Analyse every clip of ``inputs`` into ``options.out_dir``; see the module docstring.

    ``stop`` cancels the run when set (in-flight clips keep partial results). Raises
    :class:`BatchError` when the batch cannot run at all.
    """
    clips, warnings = find_clips(inputs, options.recursive)
    for message in warnings:
        sink.emit("warning", message=message)
    if not clips:
        raise NoClipsError(
            f"no video found in {', '.join(map(repr, inputs))}; give video files, folders of "
            f"videos ({' '.join(VIDEO_SUFFIXES[:6])} ...) or glob patterns such as 'shoot/*.mov'"
        )
    if options.clean_preset:
        _check_clean_preset(options.clean_preset)
    _prepare_out_dir(options.out_dir)
    jobs = make_jobs(clips, options.out_dir, options.clean_preset)
    stop = stop or threading.Event()
    driver = BatchDriver(jobs, Manifest(options.out_dir), sink)
    try:
        if options.ray_address is None:
            slots = plan_slots(options.workers, options.gpus)[: len(jobs)]
            driver.begin("local", len(slots))
            cancelled = run_local(jobs, driver, slots, options.analyzer, stop, options.retries)
        else:
            from .batch_ray import run_ray

            cancelled = run_ray(jobs, driver, options, stop)
    finally:
        driver.manifest.flush()  # what finished is on record even if the batch broke off
    return driver.end(cancelled)


def _prepare_out_dir(out_dir: Path) -> None:
    """Create the output folder and check it takes files, before any clip runs: a file given as
    ``-o`` is a bad command line, a folder that cannot be written a batch that cannot run."""
    existing = next((p for p in (out_dir, *out_dir.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise BatchUsageError(f"-o {out_dir}: {existing} is a file, not a folder; give the folder "
                              "for the results")  # fmt: skip
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out_dir).close()
    except OSError as error:
        raise BatchError(
            f"cannot write the results into {out_dir}: {error.strerror or error}"
        ) from None


def _check_analyze_options(args: Sequence[str]) -> None:
    """Parse the options every clip's analysis gets, as the workers will: a bad one is a bad
    command line (exit 2) now, not a batch whose workers all fail to start."""
    from . import analysis

    try:
        analysis.settings_from_options(args)
    except analysis.UsageError as error:
        raise BatchUsageError(f"--analyze-options: {error}") from None


def _check_clean_preset(preset: str) -> None:
    """Fail before any work when ``--clean`` cannot run or names an unknown preset."""
    from retarget import RetargetError

    try:
        from retarget import clean
    except ImportError as error:
        raise BatchError(f"--clean needs retarget.clean, which is missing ({error})") from error
    try:
        clean.resolve_params(preset)
    except RetargetError as error:
        raise BatchError(f"--clean: {error}") from error


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``batch`` arguments to ``parser``."""
    parser.epilog = (
        "stdout: JSON lines; stderr: logs. Exit codes: 0 all done, 1 error, 2 usage/no clips, "
        "3 some clips failed, 130 cancelled."
    )
    parser.add_argument("inputs", nargs="+", help="video files, folders of videos, glob patterns")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--workers", type=int, help="worker processes / Ray actors (default: one per GPU or core)"
    )
    parser.add_argument("--gpus", help="comma-separated CUDA ids for local mode (default: all)")
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run on a Ray cluster (ADDRESS, or RAY_ADDRESS / a new local instance if omitted)",
    )
    parser.add_argument("--clean", metavar="PRESET", help="also write cleaned trajectories")
    parser.add_argument("--recursive", action="store_true", help="search folders recursively")
    parser.add_argument(
        "--retries", type=int, default=1, help="retries of a clip whose worker crashed (1)"
    )
    parser.add_argument(
        "--analyzer",
        default=DEFAULT_ANALYZER,
        metavar="MODULE:FACTORY",
        help="analyser factory called once per worker (default: the single-clip worker)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs on stderr")
    parser.add_argument(
        "--analyze-options",
        default="",
        metavar="'OPTIONS'",
        help="options for every clip's analysis, as for `python -m inference analyze`, in one "
        "quoted string: --analyze-options '--fov 60 --tta 5' (or --analyze-options=--OPTION)",
    )


def options_from_args(args: argparse.Namespace) -> BatchOptions:
    """:class:`BatchOptions` from the parsed command line."""
    try:
        analyze_args = shlex.split(args.analyze_options)
    except ValueError as error:
        raise BatchUsageError(f"--analyze-options: {error}; check the quotes") from error
    if args.analyzer == DEFAULT_ANALYZER:  # another analyser may take other options
        _check_analyze_options(analyze_args)
    if args.workers is not None and args.workers < 1:
        raise BatchUsageError("--workers must be at least 1")
    gpus = tuple(g.strip() for g in args.gpus.split(",") if g.strip()) if args.gpus else None
    return BatchOptions(
        out_dir=args.output,
        workers=args.workers,
        gpus=gpus,
        ray_address=args.ray,
        clean_preset=args.clean,
        recursive=args.recursive,
        retries=max(0, args.retries),
        analyzer=AnalyzerSpec(args.analyzer, tuple(analyze_args)),
    )


def _log_to_stderr(level: int, format_: str = "%(levelname)s %(name)s: %(message)s") -> None:
    """Send this package's logs to stderr, once (not through the root logger: a worker process
    then prints each record once even if the analysis adds its own root handler)."""
    package = logging.getLogger(__package__)
    if not package.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(format_))
        package.addHandler(handler)
    package.setLevel(level)
    package.propagate = False


def main(args: argparse.Namespace) -> int:
    """Run the batch command; returns the exit code (see the module docstring)."""
    from .jsonlines import JsonLines

    _log_to_stderr(logging.DEBUG if args.verbose else logging.INFO)
    events = JsonLines()
    flag = _StopFlag()
    previous = {sig: signal.signal(sig, flag.handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary = run_batch(args.inputs, options_from_args(args), events, flag.event)
    except BatchError as error:
        logger.error("%s", error)
        events.emit("error", message=str(error), exit_code=error.exit_code)
        return error.exit_code
    except Exception as error:  # a bug: still an error event for the caller, details in the log
        logger.exception("the batch stopped")
        message = f"internal error: {type(error).__name__}: {error} (details in the log)"
        events.emit("error", message=message, exit_code=EXIT_ERROR)
        return EXIT_ERROR
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return summary.exit_code
