"""The one JSON-lines writer of every ``python -m inference`` command (``analyze``, ``batch``,
``weights``): stdout carries one JSON object per line, flushed, and nothing else; logs go to stderr.

Every object has ``"event"`` and ``"time"`` (seconds since the epoch, to the millisecond).
Non-finite numbers are written as ``null`` (NaN is not JSON). A reader that went away (a closed
pipe or stream) does not stop the work: its events are dropped, the files still count. The events
each command writes are listed in its own module (``inference.analysis.events`` for ``analyze``).
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from collections.abc import Mapping
from typing import IO, Any

logger = logging.getLogger(__name__)


def _finite(value: Any) -> Any:
    """Replace NaN/inf floats (not valid JSON) by None, recursively through lists and dicts."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


class JsonLines:
    """Writes events to ``stream`` (stdout by default), one flushed line each; thread-safe."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        """Write one event; ``fields`` must be JSON-serialisable (numpy scalars are not)."""
        self.write({"event": event, **fields})

    def write(self, record: Mapping[str, Any]) -> None:
        """Write ``record``, which names its ``"event"`` (the form download callbacks pass)."""
        stamped = {"event": record["event"], "time": round(time.time(), 3), **record}
        line = json.dumps(_finite(stamped))
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (BrokenPipeError, ValueError):
                # The reader went away (closed pipe or stream); keep working, the file still counts.
                logger.debug("stdout closed; dropped a %s event", record["event"])
