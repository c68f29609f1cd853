"""The bookkeeping of one batch, shared by the local pool and Ray: manifest updates and the
protocol events as clips start, progress and finish."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .clip import STATUSES, ClipRecord
from .discovery import ClipJob
from .errors import EXIT_CANCELLED, EXIT_CLIPS_FAILED, EXIT_OK
from .manifest import Manifest


class EventSink(Protocol):
    """Where protocol events go (``inference.jsonlines.JsonLines`` or a test recorder)."""

    def emit(self, event: str, **fields: Any) -> None: ...


@dataclass
class BatchSummary:
    """Counts of one run; ``exit_code`` follows ``inference.batch.errors``."""

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
