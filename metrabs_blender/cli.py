"""Headless scene building: trajectory (or video) in, saved .blend out. See ``__main__``."""

import argparse
import logging
import sys
from pathlib import Path

import bpy

from .. import retarget
from . import api
from .errors import MocapError

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m metrabs_blender",
        description="Import a MeTRAbs trajectory into a new Blender scene and save it.",
    )
    parser.add_argument(
        "input", type=Path, help="trajectory .npz written by 'python -m inference analyze'"
    )
    parser.add_argument("--out", type=Path, required=True, help="the .blend file to write")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace --out if it exists (default: refuse)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 1 bad input (message on stderr), 2 bad command line."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.out.exists() and not args.overwrite:
        print(f"error: {args.out} exists; pass --overwrite to replace it", file=sys.stderr)
        return 1
    bpy.ops.wm.read_homefile(use_empty=True)
    try:
        results = api.import_trajectory(args.input)
    except (MocapError, retarget.RetargetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(args.out.resolve()))
    for result in results:
        log.info(
            "person %d -> %s, %d keys", result.track_id, result.armature.name, len(result.frames)
        )
    log.info("saved %s", args.out)
    return 0
