"""The model cache: where each model's files go, what is installed (a manifest per model, written
last), the hashes recorded at first download, and whether installed files are still those
installed."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from retarget.files import write_json

from . import file_hashes
from .errors import ModelIntegrityError
from .registry import ModelEntry, project_file

CACHE_ENV = "METRABS_MOCAP_CACHE"


def cache_dir(override: Path | str | None = None) -> Path:
    """The cache root: ``override``, else ``$METRABS_MOCAP_CACHE``, else the platform's cache folder.

    Linux ``$XDG_CACHE_HOME/metrabs_mocap`` (default ``~/.cache/metrabs_mocap``), macOS
    ``~/Library/Caches/metrabs_mocap``, Windows ``%LOCALAPPDATA%\\metrabs_mocap\\Cache``.
    Not created here.
    """
    if override is not None:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
        return base / "metrabs_mocap" / "Cache"
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "metrabs_mocap"
    return Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "metrabs_mocap"


@dataclass(frozen=True)
class CachePaths:
    """Where one remote model's files go inside the cache root."""

    root: Path
    name: str
    filename: str

    @property
    def download(self) -> Path:
        return self.root / "downloads" / self.filename

    @property
    def part(self) -> Path:
        return self.download.with_name(self.filename + ".part")

    @property
    def part_origin(self) -> Path:
        """Holds the URL the ``.part`` bytes came from."""
        return self.part.with_name(self.part.name + ".url")

    @property
    def model_dir(self) -> Path:
        return self.root / "models" / self.name

    @property
    def manifest(self) -> Path:
        return self.root / "manifests" / f"{self.name}.json"


def cache_paths(entry: ModelEntry, cache: Path) -> CachePaths:
    return CachePaths(cache, entry.name, entry.filename or entry.name)


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:  # (other OSErrors: the cache itself)
        raise ModelIntegrityError(f"{path} is unreadable ({exc}); delete it and retry.") from exc
    return data if isinstance(data, dict) else {}


def recorded_hash(cache: Path, name: str) -> dict | None:
    """The ``{"sha256", "size", "url", "recorded_at"}`` recorded at first download, if any."""
    return read_json(cache / "recorded_hashes.json").get(name)


def record_download_hash(cache: Path, name: str, sha256: str, size: int, url: str) -> None:
    path = cache / "recorded_hashes.json"
    data = read_json(path)
    data[name] = {"sha256": sha256, "size": size, "url": url, "recorded_at": timestamp()}
    write_json(path, data)


def forget_recorded_hash(cache: Path, name: str) -> bool:
    """Drop the recorded hash of ``name`` (when the publisher really replaced the file)."""
    path = cache / "recorded_hashes.json"
    data = read_json(path)
    if name not in data:
        return False
    del data[name]
    write_json(path, data)
    return True


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def expected_hash(entry: ModelEntry, cache: Path) -> tuple[str | None, str]:
    """(SHA-256 the download must have or None, where that value comes from)."""
    if entry.sha256:
        return entry.sha256.lower(), "published"
    record = recorded_hash(cache, entry.name)
    if record:
        return record["sha256"], f"recorded at first download ({record['recorded_at']})"
    return None, "not published; will be recorded at first download"


def installed_path(entry: ModelEntry, cache: Path | None = None) -> Path | None:
    """The path to load for ``entry`` if it is present, else None.

    Pose bundles: the bundle folder. Detectors: the weight file. Project models: their path in
    the repository (present or not is checked); remote models: present once their manifest is
    written.
    """
    if entry.project_path:
        path = project_file(entry)
        return path if path.exists() else None
    paths = cache_paths(entry, cache_dir(cache))
    if not (paths.manifest.is_file() and paths.model_dir.is_dir()):
        return None
    return paths.model_dir if entry.archive else paths.model_dir / paths.filename


def check_installed(entry: ModelEntry, cache: Path | None = None) -> None:
    """Raise :class:`ModelIntegrityError` if an installed model's files are not those installed
    (full SHA-256 of each file, remembered by size and modification time)."""
    cache = cache_dir(cache)
    paths = cache_paths(entry, cache)
    files = read_json(paths.manifest).get("files") or {}
    store = cache / file_hashes.STORE_NAME
    changed = []
    for relative, info in files.items():
        path = paths.model_dir / relative
        if not path.is_file():
            changed.append(f"{relative} is missing")
        elif file_hashes.file_digest(path, store) != info.get("sha256"):
            changed.append(f"{relative} changed")
    if changed:
        raise ModelIntegrityError(
            f"The installed {entry.name} is not what was installed ({'; '.join(changed)} since "
            f"{read_json(paths.manifest).get('installed_at', 'the install')}). Install it again: "
            f"`python -m inference weights download {entry.name} --force`."
        )


def model_digest(path: Path, cache: Path | None = None) -> str:
    """``sha256:<32 hex>`` of a model's weights (a bundle's ``ckpt.pt`` or a weight file): the
    whole file, so that any change of its bytes gives another model id."""
    weights = Path(path) / "ckpt.pt" if Path(path).is_dir() else Path(path)
    digest = file_hashes.file_digest(weights, cache_dir(cache) / file_hashes.STORE_NAME)
    return f"sha256:{digest[:32]}"
