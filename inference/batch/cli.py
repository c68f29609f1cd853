"""The ``batch`` command, a shell over :func:`run_batch`: its argument list becomes
:class:`BatchOptions`, SIGINT/SIGTERM cancel it, its events go to stdout as JSON lines
(``inference.jsonlines``), its outcome becomes the exit code (``inference.batch.errors``)."""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from retarget.arguments import int_at_least

from .analyzer import DEFAULT_ANALYZER, AnalyzerSpec
from .errors import EXIT_ERROR, BatchError, BatchUsageError
from .logs import log_to_stderr
from .run import BatchOptions, run_batch

logger = logging.getLogger(__name__)


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
        "--start", type=int_at_least(0), metavar="FRAME",
        help="first frame of every clip to analyse (0-based, as analyze's --start)",
    )  # fmt: skip
    parser.add_argument(
        "--stop", type=int_at_least(1), metavar="FRAME",
        help="frame of every clip to stop at (exclusive, as analyze's --stop)",
    )  # fmt: skip
    parser.add_argument(
        "--analyze-options",
        default="",
        metavar="'OPTIONS'",
        help="options for every clip's analysis, as for `python -m inference analyze`, in one "
        "quoted string: --analyze-options '--fov 60 --tta 5' (or --analyze-options=--OPTION)",
    )


def _frame_range(args: argparse.Namespace, analyze_args: list[str]) -> list[str]:
    """``--start``/``--stop`` as the analysis options every clip gets; refused when they come
    after each other the wrong way or are also given in ``--analyze-options``."""
    start, stop = getattr(args, "start", None), getattr(args, "stop", None)
    if start is not None and stop is not None and stop <= start:
        raise BatchUsageError(f"--stop {stop} must come after --start {start}")
    given = [o for o in ("--start", "--stop") if getattr(args, o[2:], None) is not None]
    twice = [o for o in given if any(a == o or a.startswith(o + "=") for a in analyze_args)]
    if twice:
        raise BatchUsageError(f"{' and '.join(twice)} given twice: also in --analyze-options")
    extra = [] if start is None else ["--start", str(start)]
    return extra + ([] if stop is None else ["--stop", str(stop)])


def options_from_args(args: argparse.Namespace) -> BatchOptions:
    """:class:`BatchOptions` from the parsed command line."""
    try:
        analyze_args = shlex.split(args.analyze_options)
    except ValueError as error:
        raise BatchUsageError(f"--analyze-options: {error}; check the quotes") from error
    analyze_args += _frame_range(args, analyze_args)
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


def _check_analyze_options(args: Sequence[str]) -> None:
    """Parse the options every clip's analysis gets, as the workers will: a bad one is a bad
    command line (exit 2) now, not a batch whose workers all fail to start."""
    from .. import analysis

    try:
        analysis.settings_from_options(args)
    except analysis.UsageError as error:
        raise BatchUsageError(f"--analyze-options: {error}") from None


class _StopFlag:
    """Set by SIGINT/SIGTERM in the driver (or by a caller) to cancel the batch."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: int | None = None

    def handler(self, signum: int, _frame: Any) -> None:
        self.signal = signum
        self.event.set()


def main(args: argparse.Namespace) -> int:
    """Run the batch command; returns the exit code (see ``inference.batch.errors``)."""
    from ..jsonlines import JsonLines

    log_to_stderr(logging.DEBUG if args.verbose else logging.INFO)
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
