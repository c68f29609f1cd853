"""Which clips a batch analyses (files, folders, glob patterns) and where each one's results go:
a unique name per clip, its :class:`ClipJob`."""

from __future__ import annotations

import glob
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .files import read_json

VIDEO_SUFFIXES = (
    ".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".mts",
    ".m2ts", ".ts", ".3gp", ".ogv", ".mxf",
)  # fmt: skip


RECORD_DIR = ".batch"
CLEANED_DIR = "cleaned"


def find_clips(inputs: Sequence[str], recursive: bool = False) -> tuple[list[Path], list[str]]:
    """Expand files, folders (their videos, sorted) and glob patterns into distinct video paths.

    Explicit files are taken whatever their suffix (a bad one fails as its own clip); folders and
    patterns contribute files with a video suffix (:data:`VIDEO_SUFFIXES`). Returns the clips in
    input order without duplicates and one warning per input that matched nothing.
    """
    clips: list[Path] = []
    seen: set[Path] = set()
    warnings = []
    for item in inputs:
        found = _expand(item, recursive)
        if not found:
            warnings.append(f"input {item!r} matched no video file")
        elif found == [Path(item)] and not found[0].exists():
            warnings.append(f"input {item!r} does not exist; it is listed as a failed clip")
        for path in found:
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                clips.append(path)
    return clips, warnings


def _is_video(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith(".")
    )


def _expand(item: str, recursive: bool) -> list[Path]:
    path = Path(item)
    if path.is_file():
        return [path]
    if path.is_dir():
        candidates = path.rglob("*") if recursive else path.iterdir()
        # not inside hidden folders either (.Trash-1000/, .thumbnails/)
        visible = (
            p
            for p in candidates
            if not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        return sorted(p for p in visible if _is_video(p))
    if any(char in item for char in "*?["):
        return sorted(p for p in map(Path, glob.glob(item, recursive=True)) if _is_video(p))
    return [path]  # a missing file: reported as a failed clip, it does not stop the others


def clip_names(clips: Sequence[Path], out_dir: Path | None = None) -> list[str]:
    """A unique output name per clip: the file stem, plus a hash of the clip's whole path when
    another clip of this run has that stem (the same name in two folders, or ``take.avi`` and
    ``take.mkv``), or when ``out_dir`` holds a result of that name from another input (an earlier
    run's ``day1/take.mp4`` is not replaced by ``day2/take.mp4``)."""
    stems = Counter(clip.stem.casefold() for clip in clips)  # casefold: case-blind file systems
    names = []
    for clip in clips:
        stem = clip.stem
        if stems[stem.casefold()] > 1 or _taken_by_another_input(out_dir, stem, clip):
            path = str(clip.resolve()).encode("utf-8", "surrogateescape")
            stem = f"{stem}-{hashlib.sha1(path).hexdigest()[:8]}"
        names.append(stem)
    return names


def _taken_by_another_input(out_dir: Path | None, name: str, clip: Path) -> bool:
    """Whether ``out_dir`` has a per-clip record ``name`` of another input than ``clip``."""
    if out_dir is None:
        return False
    saved = read_json(out_dir / RECORD_DIR / f"{name}.json")
    return saved is not None and saved.get("input") != str(clip.resolve())


@dataclass(frozen=True)
class ClipJob:
    """One clip to analyse and where its results go (all paths absolute strings)."""

    name: str  # unique clip name, the output file stem
    video: str  # input video path
    output: str  # contract .npz
    record: str  # per-clip JSON record (hashes, model id)
    cleaned_output: str | None = None  # cleaned .npz, None without cleaning
    clean_preset: str | None = None  # cleaning preset name, None for no cleaning


def make_jobs(clips: Sequence[Path], out_dir: Path, clean_preset: str | None) -> list[ClipJob]:
    """The jobs of ``clips`` writing into ``out_dir`` (the layout: ``inference.batch``)."""
    out_dir = out_dir.resolve()
    return [
        ClipJob(
            name=name,
            video=str(clip.resolve()),
            output=str(out_dir / f"{name}.npz"),
            record=str(out_dir / RECORD_DIR / f"{name}.json"),
            cleaned_output=str(out_dir / CLEANED_DIR / f"{name}.npz") if clean_preset else None,
            clean_preset=clean_preset,
        )
        for clip, name in zip(clips, clip_names(clips, out_dir), strict=True)
    ]
