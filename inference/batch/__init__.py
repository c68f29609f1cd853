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

Progress: the single-clip analysis's JSON-lines protocol on stdout (``inference.jsonlines``), logs on
stderr. ``start`` (``clips_total``, ``workers``, ``mode``, ``output``, ``manifest``), ``progress``
(per clip: ``clip``, ``worker``, ``clip_frames_done``, ``clip_frames_total``; overall:
``clips_done``, ``clips_total``, ``clips_failed``, ``frames_done`` (frames analysed in this run),
``frames_total`` (null), ``fps``, ``eta_s``; a finished clip adds ``clip_status``, ``clip_error``,
``clip_seconds``, ``people``), ``warning`` (a failed clip, a pattern that matched nothing), ``done`` (``output``,
``manifest``, counts per status, ``frames``, ``partial``, ``elapsed_s``), ``error``.

Exit codes: 0 every clip done or skipped, 1 batch could not run (e.g. no worker could load the
model), 2 bad command line or no clip found, 3 finished but some clips failed, 130 cancelled.

The modules, in the order a batch uses them:

===============  ==========================================================================
``run``          :func:`run_batch`, the library entry: inputs, output folder, local or Ray
``discovery``    which clips (files, folders, patterns), their unique names and jobs
``analyzer``     the analyser seam (:class:`ClipAnalyzer`) and :class:`WorkerAnalyzer`
``clip``         one clip: reuse, analyse or resume, clean, its record
``manifest``     ``batch_manifest.json`` / ``.csv``
``driver``       the bookkeeping shared by both modes: manifest updates, events
``local_pool``   local worker processes, one per GPU or group of CPU cores
``ray_pool``     Ray actors (imported only with ``--ray``)
``cli``          the command: argv -> options, signals -> cancel, events -> JSON lines
``errors``       what stops a batch, and the exit codes
``files``        content hashes, atomic writes; ``logs``: logs to stderr
===============  ==========================================================================
"""

from .analyzer import (
    DEFAULT_ANALYZER,
    AnalyzerSpec,
    ClipAnalyzer,
    ClipError,
    ClipOutcome,
    ProgressCallback,
    Throttled,
    WorkerAnalyzer,
    load_analyzer,
    worker_analyzer,
)
from .cli import configure_parser, main, options_from_args
from .clip import STATUSES, ClipRecord, process_clip
from .discovery import (
    CLEANED_DIR,
    RECORD_DIR,
    VIDEO_SUFFIXES,
    ClipJob,
    clip_names,
    find_clips,
    make_jobs,
)
from .driver import BatchDriver, BatchSummary, EventSink
from .errors import (
    EXIT_CANCELLED,
    EXIT_CLIPS_FAILED,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    BatchError,
    BatchUsageError,
    NoClipsError,
)
from .files import file_sha256
from .local_pool import LocalPool, WorkerSlot, cpu_cores, plan_slots, run_local, visible_gpus
from .manifest import CSV_COLUMNS, MANIFEST_CSV, MANIFEST_JSON, Manifest
from .run import BatchOptions, run_batch

__all__ = [
    "CLEANED_DIR",
    "CSV_COLUMNS",
    "DEFAULT_ANALYZER",
    "EXIT_CANCELLED",
    "EXIT_CLIPS_FAILED",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "MANIFEST_CSV",
    "MANIFEST_JSON",
    "RECORD_DIR",
    "STATUSES",
    "VIDEO_SUFFIXES",
    "AnalyzerSpec",
    "BatchDriver",
    "BatchError",
    "BatchOptions",
    "BatchSummary",
    "BatchUsageError",
    "ClipAnalyzer",
    "ClipError",
    "ClipJob",
    "ClipOutcome",
    "ClipRecord",
    "EventSink",
    "LocalPool",
    "Manifest",
    "NoClipsError",
    "ProgressCallback",
    "Throttled",
    "WorkerAnalyzer",
    "WorkerSlot",
    "clip_names",
    "configure_parser",
    "cpu_cores",
    "file_sha256",
    "find_clips",
    "load_analyzer",
    "main",
    "make_jobs",
    "options_from_args",
    "plan_slots",
    "process_clip",
    "run_batch",
    "run_local",
    "visible_gpus",
    "worker_analyzer",
]
