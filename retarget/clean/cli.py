"""``python -m retarget clean IN.npz -o OUT.npz --preset NAME [--set KEY=VALUE ...] [--overwrite]``:
the cleaning stage (:mod:`retarget.clean.pipeline`) from the command line. Exits 0, or 2 with the
reason on stderr; the output is checked before the work, and never replaced unless asked."""

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from .. import RetargetError
from ..contract import output_problem, read_trajectory, write_trajectory
from . import pipeline
from .params import PRESETS, CleanError, CleanParams, resolve_params

logger = logging.getLogger(__name__)


def _parse_override(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise CleanError(f"--set expects KEY=VALUE, got {text!r}")
    key, value = (part.strip() for part in text.split("=", 1))
    fields = {f.name: f.type for f in dataclasses.fields(CleanParams)}
    if key not in fields:
        raise CleanError(f"unknown clean parameter {key!r}; known: {', '.join(sorted(fields))}")
    kind = fields[key]
    if kind in (bool, "bool"):
        if value.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise CleanError(f"{key} expects true or false, got {value!r}")
        return key, value.lower() in ("1", "true", "yes", "on")
    try:
        return key, (int if kind in (int, "int") else float)(value)
    except ValueError:
        raise CleanError(f"{key} expects a number, got {value!r}") from None


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m retarget clean``."""
    parser.add_argument("input", help="trajectory .npz written by the analysis")
    parser.add_argument("-o", "--output", required=True, help="cleaned trajectory .npz to write")
    parser.add_argument(
        "--preset",
        default="default",
        help=f"cleaning preset: {', '.join(sorted(PRESETS))} (alias: dance = fast)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one parameter of the preset, e.g. --set body_cutoff_hz=5 (repeatable)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace OUTPUT if it exists (default: refuse)"
    )


def _check_output(args: argparse.Namespace) -> None:
    """Refuse an output that exists (unless ``--overwrite``) or cannot be written, before the
    cleaning runs."""
    output = Path(args.output)
    if output.exists() and not output.is_dir() and not args.overwrite:
        raise CleanError(f"{output} exists; pass --overwrite to replace it, or choose another -o")
    problem = output_problem(output)
    if problem is not None:
        raise CleanError(f"cannot write the cleaned trajectory: {problem}")


def main(args: argparse.Namespace) -> int:
    """Run the ``clean`` command; returns the process exit code."""
    try:
        overrides = dict(_parse_override(text) for text in args.overrides)
        trajectory = read_trajectory(args.input)
        resolve_params(args.preset, **overrides)  # a bad preset is named before the output
        _check_output(args)
        result = pipeline.clean_trajectory(trajectory, args.preset, **overrides)
        write_trajectory(args.output, result)
    except RetargetError as error:
        logger.error("%s", error)
        return 2
    except OSError as error:  # the disk filled up or went away while writing
        logger.error("cannot write %s: %s", args.output, error.strerror or error)
        return 2
    report = json.loads(str(result.extras["clean_report"]))
    logger.info(
        "cleaned %d people (%s preset) in %.3f s -> %s",
        result.num_people,
        args.preset,
        report["runtime_s"],
        args.output,
    )
    return 0
