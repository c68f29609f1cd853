"""``verify``: re-hash an installed model and compare it with its manifest and with the published
or recorded hash of its download."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..download import sha256_file
from .cache import CachePaths, cache_dir, cache_paths, expected_hash, installed_path, read_json
from .registry import BUNDLE_FILES, POSE_BUNDLE, ModelEntry


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of ``verify_model``: ``status`` is "ok", "failed" or "not_installed"."""

    name: str
    status: str
    path: str | None
    problems: tuple[str, ...]
    hash_source: str


def verify_model(entry: ModelEntry, *, cache: Path | None = None) -> VerifyResult:
    """Re-hash an installed model and compare with its manifest and the published/recorded hash."""
    cache = cache_dir(cache)
    if entry.project_path:
        return _verify_project(entry)
    paths = cache_paths(entry, cache)
    want, source = expected_hash(entry, cache)
    if not paths.manifest.is_file():
        return _verify_download_only(entry, paths, want, source)
    manifest = read_json(paths.manifest)
    problems = []
    if want is not None and manifest.get("download_sha256") != want:
        problems.append(
            f"installed from a file with SHA-256 {manifest.get('download_sha256')}, expected {want}"
        )
    files = manifest.get("files") or {}
    if not files:
        problems.append("manifest lists no files")
    for rel, info in files.items():
        file = paths.model_dir / rel
        if not file.is_file():
            problems.append(f"{rel}: missing")
        elif file.stat().st_size != info.get("size"):
            problems.append(f"{rel}: size {file.stat().st_size}, expected {info.get('size')}")
        elif sha256_file(file) != info.get("sha256"):
            problems.append(f"{rel}: SHA-256 differs from the one recorded at install")
    path = installed_path(entry, cache)
    return VerifyResult(
        entry.name,
        "failed" if problems else "ok",
        str(path) if path else None,
        tuple(problems),
        source,
    )


def _verify_project(entry: ModelEntry) -> VerifyResult:
    path = installed_path(entry)
    if path is None:
        return VerifyResult(entry.name, "not_installed", None, (), "repository")
    required = BUNDLE_FILES if entry.kind == POSE_BUNDLE else ()
    problems = tuple(f"{name}: missing" for name in required if not (path / name).is_file())
    return VerifyResult(
        entry.name, "failed" if problems else "ok", str(path), problems, "repository"
    )


def _verify_download_only(
    entry: ModelEntry, paths: CachePaths, want: str | None, source: str
) -> VerifyResult:
    """Not installed: check a finished download waiting in ``downloads/``, if there is one."""
    if not paths.download.is_file():
        notes: tuple[str, ...] = ()
        if paths.part.is_file():
            size = paths.part.stat().st_size
            notes = (f"partial download of {size} bytes; run download to resume it",)
        return VerifyResult(entry.name, "not_installed", None, notes, source)
    digest = sha256_file(paths.download)
    if want is not None and digest != want:
        problem = f"{paths.download}: SHA-256 {digest}, expected {want}"
        return VerifyResult(entry.name, "failed", None, (problem,), source)
    note = f"{paths.download} is downloaded but not installed; run download to install it"
    return VerifyResult(entry.name, "not_installed", None, (note,), source)
