"""The ``weights`` command: ``python -m inference weights list | download NAME | verify [NAME] |
path NAME``. stdout carries only JSON lines (``inference.jsonlines``), each with ``"event"`` and
``"time"``; logs go to stderr; the exit codes are those of ``inference.weights.errors``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from ..download import DownloadOptions
from ..jsonlines import JsonLines
from .cache import CACHE_ENV, cache_dir, expected_hash, forget_recorded_hash, installed_path
from .errors import (
    EXIT_ERROR,
    EXIT_INTEGRITY,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    WeightsError,
)
from .install import download_model, ensure_detector, install_from_file
from .registry import (
    DETECTOR_WITH_POSE_MODEL,
    POSE_BUNDLE,
    REGISTRY_ENV,
    ModelEntry,
    get_entry,
    load_registry,
)
from .resolve import resolve_model
from .verify import verify_model

log = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``weights`` sub-commands to ``parser`` (the ``python -m inference weights`` parser)."""
    parser.epilog = (
        "stdout: JSON lines; stderr: logs. Exit codes: 0 ok, 1 error, 2 usage, 3 not found/not "
        "installed, 4 network unreachable (manual steps printed), 5 download failed, 6 integrity, "
        "130 interrupted."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--cache-dir", type=Path, help=f"cache root (default: ${CACHE_ENV} or user cache)"
    )
    common.add_argument(
        "--registry", type=Path, help=f"JSON registry override (default: ${REGISTRY_ENV})"
    )
    common.add_argument("-v", "--verbose", action="store_true", help="debug logs on stderr")
    sub = parser.add_subparsers(dest="weights_command", required=True, metavar="ACTION")

    sub.add_parser("list", parents=[common], help="known models and whether they are installed")

    dl = sub.add_parser("download", parents=[common], help="download, verify and install a model")
    dl.add_argument("name", help="model name (see list)")
    dl.add_argument(
        "--model",
        type=Path,
        help="install from this manually downloaded file (or the bundle folder unpacked from it)",
    )
    dl.add_argument("--force", action="store_true", help="reinstall even if installed")
    dl.add_argument(
        "--no-detector",
        action="store_true",
        help=f"a pose model only: do not also install the {DETECTOR_WITH_POSE_MODEL} person detector",
    )
    dl.add_argument("--keep-archive", action="store_true", help="keep the .tar.gz after unpacking")
    dl.add_argument("--timeout", type=float, default=30.0, help="socket timeout in seconds (30)")
    dl.add_argument(
        "--retries",
        type=int,
        default=5,
        help="attempts in a row that bring no new bytes before giving up (5)",
    )
    dl.add_argument(
        "--forget-recorded-hash",
        action="store_true",
        help="drop the hash recorded at first download (the publisher replaced the file)",
    )

    ver = sub.add_parser("verify", parents=[common], help="re-hash installed models")
    ver.add_argument("name", nargs="?", help="model name (default: every installed model)")

    pth = sub.add_parser("path", parents=[common], help="print the path to load for a model")
    pth.add_argument("name", nargs="?", help="model name")
    pth.add_argument("--model", help="a model folder, tarball or file instead of a name")
    pth.add_argument("--download", action="store_true", help="download the model if missing")


def main(args: argparse.Namespace) -> int:
    """Run one ``weights`` action; return the process exit code (see the module docstring)."""
    _configure_logging(args.verbose)
    emit = JsonLines().write
    try:
        registry = load_registry(args.registry)
        cache = cache_dir(args.cache_dir)
        action = _ACTIONS[args.weights_command]
        return action(args, registry, cache, emit)
    except WeightsError as exc:
        log.error("%s", exc)
        emit(
            {
                "event": "error",
                "exit_code": exc.exit_code,
                "kind": type(exc).__name__,
                "message": str(exc),
            }
        )
        return exc.exit_code
    except OSError as exc:  # the cache folder itself (a file in its place, no permission, ...)
        message = f"cannot use the model cache: {exc}; check that it is a writable folder"
        log.error("%s", message)
        emit({"event": "error", "exit_code": EXIT_ERROR, "kind": type(exc).__name__,
              "message": message})  # fmt: skip
        return EXIT_ERROR
    except KeyboardInterrupt:
        log.error("Interrupted; run the same command again to resume the download.")
        emit(
            {
                "event": "error",
                "exit_code": EXIT_INTERRUPTED,
                "kind": "KeyboardInterrupt",
                "message": "interrupted; run the same command again to resume",
            }
        )
        return EXIT_INTERRUPTED


def _configure_logging(verbose: bool) -> None:
    logger = logging.getLogger(__name__.partition(".")[0])  # all of inference/ (the downloads too)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


_Emit = Callable[[dict], None]


def _cmd_list(args, registry: dict[str, ModelEntry], cache: Path, emit: _Emit) -> int:
    for entry in registry.values():
        path = installed_path(entry, cache)
        want, source = expected_hash(entry, cache) if entry.urls else (None, "repository")
        emit(
            {
                "event": "model",
                "name": entry.name,
                "kind": entry.kind,
                "source": entry.source,
                "installed": path is not None,
                "path": str(path) if path else None,
                "description": entry.description,
                "license": entry.license,
                "urls": list(entry.urls),
                "size": entry.size,
                "approx_size": entry.approx_size,
                "sha256": want,
                "hash_source": source,
                "input_size": entry.input_size,
                "note": entry.source_note,
            }
        )
    return EXIT_OK


def _cmd_download(args, registry: dict[str, ModelEntry], cache: Path, emit: _Emit) -> int:
    entry = get_entry(args.name, registry)
    if args.forget_recorded_hash and forget_recorded_hash(cache, entry.name):
        log.warning(
            "Forgot the recorded hash of %s; the next download is recorded anew", entry.name
        )
    options = DownloadOptions(timeout_s=args.timeout, max_retries=args.retries)
    if args.model is not None:
        path = install_from_file(entry, args.model, cache=cache, progress=emit)
    else:
        path = download_model(
            entry,
            cache=cache,
            force=args.force,
            keep_archive=args.keep_archive,
            options=options,
            progress=emit,
        )
    if entry.kind == POSE_BUNDLE and not args.no_detector:
        ensure_detector(cache=cache, options=options, progress=emit)
    emit({"event": "path", "name": entry.name, "path": str(path)})
    return EXIT_OK


def _cmd_verify(args, registry: dict[str, ModelEntry], cache: Path, emit: _Emit) -> int:
    if args.name:
        results = [verify_model(get_entry(args.name, registry), cache=cache)]
    else:
        results = [verify_model(e, cache=cache) for e in registry.values()]
        results = [r for r in results if r.status != "not_installed" or r.problems]
    for result in results:
        emit({"event": "verify", **dataclasses.asdict(result)})
        for problem in result.problems:
            log.warning("%s: %s", result.name, problem)
    failed = [r.name for r in results if r.status == "failed"]
    emit({"event": "verify_summary", "checked": len(results), "failed": failed})
    if any(r.status == "failed" for r in results):
        return EXIT_INTEGRITY
    if args.name and results[0].status == "not_installed":
        log.error(
            "%s is not installed; run `python -m inference weights download %s`",
            args.name,
            args.name,
        )
        return EXIT_NOT_FOUND
    return EXIT_OK


def _cmd_path(args, registry: dict[str, ModelEntry], cache: Path, emit: _Emit) -> int:
    if (args.name is None) == (args.model is None):
        log.error("Give either a model name or --model PATH (exactly one of them).")
        return EXIT_USAGE
    spec = args.name if args.name is not None else args.model
    path = resolve_model(
        spec, download=args.download, cache=cache, registry=registry, progress=emit
    )
    emit({"event": "path", "name": args.name, "path": str(path)})
    return EXIT_OK


_ACTIONS = {"list": _cmd_list, "download": _cmd_download, "verify": _cmd_verify, "path": _cmd_path}
