"""A ``--model`` value (a registry name, a bundle folder, a tarball, a weight file) as the path to
load, and the pose model used when none is named."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
from pathlib import Path

from ..download import DownloadOptions, ProgressCallback, UnsafeArchiveError, extract_tar_safely
from .cache import cache_dir, check_installed, installed_path
from .errors import ModelIntegrityError, ModelNotFoundError
from .install import bundle_root, download_model, manual_steps, project_model_path, replace_dir
from .registry import (
    DEFAULT_POSE_MODEL,
    OFFLINE_POSE_MODEL,
    ModelEntry,
    get_entry,
    load_registry,
)

log = logging.getLogger(__name__)


def default_pose_model(cache: Path | None = None) -> str:
    """The pose model used when none is named: the official one when it is installed, else the
    bundled offline model (synthetic training data only: for the demo and tests, not real footage)."""
    official = get_entry(DEFAULT_POSE_MODEL)
    return DEFAULT_POSE_MODEL if installed_path(official, cache) else OFFLINE_POSE_MODEL


def resolve_model(
    spec: str | os.PathLike,
    *,
    download: bool = False,
    cache: Path | None = None,
    registry: dict[str, ModelEntry] | None = None,
    options: DownloadOptions | None = None,
    progress: ProgressCallback | None = None,
) -> Path:
    """Turn a ``--model`` value into a path to load.

    ``spec`` is a registry name (installed copy; downloaded first if ``download``), a folder (used
    as is), a tarball (.tar, .tar.gz, .tgz: unpacked safely once into ``extracted/`` in the cache and
    that folder returned) or another file (e.g. detector weights, used as is).
    """
    registry = load_registry() if registry is None else registry
    text = os.fspath(spec)
    if text in registry:
        entry = registry[text]
        if download:
            return download_model(entry, cache=cache, options=options, progress=progress)
        path = installed_path(entry, cache)
        if path is None:
            if entry.project_path:
                return project_model_path(entry)
            raise ModelNotFoundError(
                f"{entry.name} is not installed. Run `python -m inference weights download "
                f"{entry.name}`.\n{manual_steps(entry, cache_dir(cache))}"
            )
        if not entry.project_path:
            check_installed(entry, cache)
        return path
    path = Path(text).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.is_file():
        return extract_local_tarball(path, cache=cache) if _is_tarball(path) else path.resolve()
    raise ModelNotFoundError(
        f"{text!r} is neither a known model ({', '.join(sorted(registry))}) nor an existing file "
        "or folder. Give a model name, a bundle folder, or the downloaded .tar.gz."
    )


def _is_tarball(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return True
    return not name.endswith((".pt", ".pth", ".npz", ".onnx")) and tarfile.is_tarfile(path)


def extract_local_tarball(archive: Path, *, cache: Path | None = None) -> Path:
    """Unpack a user-supplied tarball once into the cache; return the bundle folder inside.

    Keyed by the archive's absolute path, size and modification time, so a replaced file is
    unpacked again. Unsafe members raise ``ModelIntegrityError``.
    """
    archive = Path(archive).resolve()
    stat = archive.stat()
    key = hashlib.sha256(f"{archive}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    stem = archive.name.split(".")[0] or "model"
    root = cache_dir(cache) / "extracted"
    target = root / f"{stem}-{key}"
    if not target.is_dir():
        staging = root / f".{stem}-{key}.staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            extract_tar_safely(archive, staging)
            replace_dir(staging, target)
        except UnsafeArchiveError as exc:
            raise ModelIntegrityError(f"{archive}: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("Unpacked %s into %s", archive, target)
    return bundle_root(target, ())
