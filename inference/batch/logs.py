"""Where the batch's logs go: stderr (stdout carries the JSON lines), from the driver and from
each worker process."""

from __future__ import annotations

import logging
import sys


def log_to_stderr(level: int, format_: str = "%(levelname)s %(name)s: %(message)s") -> None:
    """Send the logs of the whole ``inference`` package (the analyses' too) to stderr, once; not
    through the root logger, so that a record is printed once whatever else configures that."""
    package = logging.getLogger(__name__.partition(".")[0])
    if not package.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(format_))
        package.addHandler(handler)
    package.setLevel(level)
    package.propagate = False
