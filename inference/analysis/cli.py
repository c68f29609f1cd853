"""The ``analyze`` command, a shell over :func:`inference.analysis.analyze`: its argument list
becomes settings, SIGINT/SIGTERM stop it, its events go to stdout as JSON lines, its errors become
exit codes (``inference.analysis.errors``); logs go to stderr."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

from .engine import analyze
from .errors import EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, describe_failure
from .events import AnalysisEvents, ProgressReporter
from .models import ModelLoader, PoseEstimatorLike, load_detector, load_pose_estimator
from .settings import Settings, settings_from_args

logger = logging.getLogger(__name__)


def main(args: argparse.Namespace) -> int:
    """``analyze`` command: run and return the exit code."""
    return run(args)


def run(
    args: argparse.Namespace,
    make_estimator: Callable[[Settings, str], PoseEstimatorLike] | None = None,
    make_detector: Callable[[Settings, str, AnalysisEvents], Any] | None = None,
    stream: IO[str] | None = None,
) -> int:
    """The ``analyze`` command over :func:`analyze`: signals stop it, its events go to ``stream``
    (stdout) as JSON lines, its errors become exit codes; never raises for bad input.
    ``make_estimator``/``make_detector`` replace the model loaders (tests and benchmarks with
    their own models)."""
    _configure_logging(getattr(args, "verbose", False))
    reporter = ProgressReporter(stream)
    models = ModelLoader(make_estimator or load_pose_estimator, make_detector or load_detector)
    try:
        settings = settings_from_args(args)
        with Interrupt() as interrupt:
            try:
                result = analyze(settings, models, reporter, interrupt)
            except KeyboardInterrupt:  # twice before the first batch ended (e.g. model loading)
                reporter.error("interrupted before any result was written", interrupt.exit_code)
                return interrupt.exit_code
        return interrupt.exit_code if result.partial else EXIT_OK
    except Exception as error:
        code, message = describe_failure(error)
        reporter.error(message, code)
        return code
    except KeyboardInterrupt:
        reporter.error("interrupted before any result was written", EXIT_SIGINT)
        return EXIT_SIGINT


def _configure_logging(verbose: bool) -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_metrabs_worker", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._metrabs_worker = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


class Interrupt:
    """SIGINT/SIGTERM handler, the command line's stop condition of :func:`analyze`: the first
    signal asks to stop after the current batch; a second one stops at once (KeyboardInterrupt) —
    completed batches are still saved — except while the result is being written
    (:meth:`writing`), which a signal must not break off."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}
        self._writing = False

    def _handle(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if self.signal is not None and self._writing:
            logger.warning("%s received again: stopping once the result is written", name)
        elif self.signal is not None:
            raise KeyboardInterrupt
        else:
            self.signal = signum
            logger.warning("%s received: finishing the current batch", name)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """A block that writes the result: a second signal waits for its end."""
        self._writing = True
        try:
            yield
        finally:
            self._writing = False

    def __call__(self) -> bool:
        """Whether a signal asked to stop."""
        return self.signal is not None

    @property
    def exit_code(self) -> int:
        return EXIT_SIGTERM if self.signal == signal.SIGTERM else EXIT_SIGINT

    def __enter__(self) -> Interrupt:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
