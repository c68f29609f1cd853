"""``run_batch()``: every clip of some inputs into one output folder, on local worker processes
or on Ray; the library entry of ``python -m inference batch``."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .analyzer import AnalyzerSpec
from .discovery import VIDEO_SUFFIXES, find_clips, make_jobs
from .driver import BatchDriver, BatchSummary, EventSink
from .errors import BatchError, BatchUsageError, NoClipsError
from .local_pool import plan_slots, run_local
from .manifest import Manifest


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
    """Analyse every clip of ``inputs`` into ``options.out_dir``; see ``inference.batch``.

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
            from .ray_pool import run_ray

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
