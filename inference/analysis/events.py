"""The events of an analysis and the ``analyze`` protocol: one JSON object per line on stdout,
logs on stderr.

Events (every object has ``"event"`` and ``"time"``, seconds since the epoch):

============  ==========================================================================
``start``     ``video``, ``output``, ``frames_total`` (may be an estimate, or null),
              ``fps``, ``width``, ``height``, ``model``, ``detector``, ``batch_size``
``progress``  ``frames_done``, ``frames_total``, ``fps`` (processing speed), ``eta_s``,
              ``people`` (tracks alive)
``warning``   ``message`` for humans
``done``      ``output``, ``frames``, ``people``, ``partial`` (true when interrupted),
              ``elapsed_s``
``error``     ``message`` for humans, ``exit_code``
============  ==========================================================================

A reader (the Blender add-on) parses each stdout line with ``json.loads``; anything that is not a
JSON object is not part of the protocol. Lines are written by ``inference.jsonlines`` (non-finite
numbers as ``null``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from typing import IO, Any, Protocol

from ..jsonlines import JsonLines

logger = logging.getLogger(__name__)

EVENTS = ("start", "progress", "warning", "done", "error")


@dataclass(frozen=True)
class Started:
    """The ``start`` event: what the run analyses, with which models, how big."""

    video: str
    output: str
    frames_total: int | None  # the frame range's length; the container's estimate, or None
    fps: float  # the video's frame rate
    width: int
    height: int
    rotation_deg: int  # display rotation of the video, applied to every frame
    model: str
    detector: str
    batch_size: int  # person crops per network call
    camera: str  # how the intrinsics were chosen
    resumed_frames: int  # frames taken over from the partial result (--resume)


@dataclass(frozen=True)
class Finished:
    """The ``done`` event: the file written and what it holds."""

    output: str
    frames: int
    people: int
    partial: bool  # stopped early: a valid partial result (--resume continues it)
    crops: int | None  # person crops estimated; None: nothing was analysed (already complete)
    elapsed_s: float
    message: str | None = None  # for humans, when there is more to say


class AnalysisEvents(Protocol):
    """Where an analysis reports (``inference.analysis.analyze``): :class:`ProgressReporter` writes
    the JSON lines of ``analyze``; the batch passes progress to its driver and logs warnings."""

    def start(self, started: Started) -> None: ...

    def progress(
        self,
        frames_done: int,
        frames_total: int | None,
        fps: float,
        people: int,
        force: bool = False,
    ) -> None:
        """``fps`` is the processing speed; ``force``: the last one, never dropped."""
        ...

    def warning(self, message: str) -> None: ...

    def done(self, finished: Finished) -> None: ...


class ProgressReporter:
    """:class:`AnalysisEvents` as JSON lines on ``stream`` (stdout by default), one flushed line
    each: the ``analyze`` command's protocol.

    ``progress`` events are rate-limited to one per ``min_interval_s`` (the final one is always
    written by :meth:`progress` with ``force=True``). Thread-safe.
    """

    def __init__(self, stream: IO[str] | None = None, min_interval_s: float = 0.5) -> None:
        self._lines = JsonLines(stream)
        self._min_interval_s = min_interval_s
        self._last_progress = -math.inf
        self.warnings: list[str] = []

    def emit(self, event: str, **fields: Any) -> None:
        """Write one event line; ``fields`` must be JSON-serialisable (numpy scalars are not)."""
        if event not in EVENTS:
            raise ValueError(f"unknown progress event {event!r}; expected one of {EVENTS}")
        self._lines.emit(event, **fields)

    def progress(
        self,
        frames_done: int,
        frames_total: int | None,
        fps: float,
        people: int,
        force: bool = False,
    ) -> None:
        """A ``progress`` event with an ETA from the current speed (frames per second)."""
        now = time.monotonic()
        if not force and now - self._last_progress < self._min_interval_s:
            return
        self._last_progress = now
        eta = None
        if frames_total and fps > 0:
            eta = max(frames_total - frames_done, 0) / fps
        self.emit(
            "progress",
            frames_done=int(frames_done),
            frames_total=None if frames_total is None else int(frames_total),
            fps=round(float(fps), 3),
            eta_s=None if eta is None else round(eta, 1),
            people=int(people),
        )

    def start(self, started: Started) -> None:
        """The ``start`` event."""
        self.emit("start", **dataclasses.asdict(started))

    def done(self, finished: Finished) -> None:
        """The ``done`` event (``crops`` and ``message`` only when known)."""
        fields = dataclasses.asdict(finished)
        for optional in ("crops", "message"):
            if fields[optional] is None:
                del fields[optional]
        self.emit("done", **fields)

    def warning(self, message: str) -> None:
        """A ``warning`` event; also logged and kept in :attr:`warnings`."""
        logger.warning(message)
        self.warnings.append(message)
        self.emit("warning", message=message)

    def error(self, message: str, exit_code: int) -> None:
        """An ``error`` event (the worker exits with ``exit_code`` afterwards)."""
        logger.error(message)
        self.emit("error", message=message, exit_code=int(exit_code))
