"""One clip of a batch: hash the input, reuse an earlier result or analyse (resuming a partial
one), clean, keep the per-clip record; :func:`process_clip` never raises for a bad clip."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retarget.files import write_text

from .analyzer import ClipAnalyzer, ClipError, ProgressCallback
from .discovery import ClipJob
from .errors import error_message
from .files import file_sha256, read_json

logger = logging.getLogger(__name__)


STATUSES = ("pending", "running", "done", "skipped", "failed", "cancelled")


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
        saved = read_json(job.record)
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
        record.error = error_message(error)
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
    write_text(Path(job.record), json.dumps(saved, indent=1))
