"""Weights manager: which model files to load, where they live, how they get there.

``python -m inference weights list | download NAME | verify [NAME] | path NAME``

Library entry point for other modules (the video worker's ``--model``)::

    folder = resolve_model("metrabs_eff2l_384px_800k_28ds_pytorch")  # installed copy in the cache
    folder = resolve_model("/downloads/metrabs_eff2l_384px_800k_28ds_pytorch.tar.gz")  # manual file
    folder = resolve_model("metrabs_small_synth")  # bundled with the project (repository folder)
    folder = resolve_model(default_pose_model())  # the official model if installed, else the bundled

The offline default. Without downloads the worker runs the bundled pose model
``metrabs_small_synth`` with the bundled detector ``yolox_synth`` (both trained by the project on
its own synthetic renders, good for the demo and the tests, not for real footage).

Cache (``METRABS_MOCAP_CACHE``, else the platform's user cache folder, see ``cache_dir``)::

    downloads/<file>         finished downloads waiting to be unpacked; <file>.part while in flight
                             (<file>.part.url: the URL those bytes came from)
    models/<name>/           installed models (a bundle folder, or a folder holding one weight file)
    manifests/<name>.json    size + SHA-256 of every installed file, written last (= "installed")
    extracted/<stem>-<key>/  tarballs given by path (``--model file.tar.gz``), unpacked once
    recorded_hashes.json     SHA-256 of downloads whose hash the publisher does not publish

Hashes. When the publisher gives a SHA-256, every download is checked against it. None of the
current remote entries has a published hash (neither the MeTRAbs README nor the YOLOX release
pages publish one), so the first successful download's SHA-256 is recorded ("trust on first use")
and every later download or ``verify`` is checked against that record. This detects corruption
and later substitution, not a file that was already wrong at the first download.

Command line: stdout carries only JSON lines (``inference.jsonlines``), each with ``"event"`` and
``"time"``; logs go to stderr. Events: ``model`` (one per ``list`` entry), ``download_start``,
``progress`` (``downloaded``, ``total`` bytes or null, ``fraction``, ``speed_bps``), ``resume``,
``restart``, ``retry``, ``download_done``, ``verified``, ``hash_recorded``, ``install``,
``installed``, ``path`` (``name``, ``path``), ``verify`` (``status``, ``problems``),
``verify_summary``, ``warning`` (``message``), ``error`` (``message``, ``exit_code``, ``kind``).
Downloading a pose model also installs the person detector YOLOX-S unless a YOLOX detector is
installed (``--no-detector``: not); its events carry its own ``name``. Exit codes: 0 success,
1 other error, 2 bad command line, 3 model not found / not installed, 4 network unreachable (the
message gives the manual steps), 5 download failed (run again to resume), 6 integrity failure
(hash/size mismatch, unsafe archive, wrong bundle layout), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from . import InferenceError, file_hashes
from .download import (
    DownloadError,
    DownloadOptions,
    IntegrityError,
    NetworkUnavailableError,
    ProgressCallback,
    UnsafeArchiveError,
    download_file,
    extract_tar_safely,
    sha256_file,
)
from .jsonlines import JsonLines

log = logging.getLogger(__name__)

CACHE_ENV = "METRABS_MOCAP_CACHE"
REGISTRY_ENV = "METRABS_MOCAP_REGISTRY"
REPO_ROOT = Path(__file__).resolve().parents[1]

#: files of a MeTRAbs model bundle (the official PyTorch release's layout; ours uses it too)
BUNDLE_FILES = (
    "ckpt.pt",
    "config.yaml",
    "joint_info.npz",
    "joint_transform_matrix.npy",
    "skeleton_infos.pkl",
)
POSE_BUNDLE = "pose_bundle"
DETECTOR = "detector"
KINDS = (POSE_BUNDLE, DETECTOR)

DEFAULT_POSE_MODEL = "metrabs_eff2l_384px_800k_28ds_pytorch"
# The detectors the worker's "auto" takes, the first installed one in this order; the download of
# a pose model brings the first of them unless one is installed (DETECTOR_WITH_POSE_MODEL).
AUTO_DETECTORS = ("yolox_s", "yolox_m", "yolox_tiny", "yolox_nano")
DETECTOR_WITH_POSE_MODEL = "yolox_s"
OFFLINE_POSE_MODEL = "metrabs_small_synth"
OFFLINE_DETECTOR = "yolox_synth"  # the detector trained with OFFLINE_POSE_MODEL's data

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # argparse's own code
EXIT_NOT_FOUND = 3
EXIT_OFFLINE = 4
EXIT_DOWNLOAD = 5
EXIT_INTEGRITY = 6
EXIT_INTERRUPTED = 130


class WeightsError(InferenceError):
    """Base class of the weights manager's errors."""

    exit_code = EXIT_ERROR


class ModelNotFoundError(WeightsError):
    """Unknown model name, model not installed, or a path that does not exist."""

    exit_code = EXIT_NOT_FOUND


class ModelOfflineError(WeightsError):
    """The download server cannot be reached; the message lists the manual steps."""

    exit_code = EXIT_OFFLINE


class ModelDownloadError(WeightsError):
    """The server was reached but the download failed; running the command again resumes it."""

    exit_code = EXIT_DOWNLOAD


class ModelIntegrityError(WeightsError):
    """Files do not match their expected hash/size, an archive is unsafe, or a bundle is malformed."""

    exit_code = EXIT_INTEGRITY


class RegistryError(WeightsError):
    """A registry override file is malformed."""


# ------------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class ModelEntry:
    """One known model. ``urls`` for downloadable ones, ``project_path`` for ones in the repository."""

    name: str
    kind: str  # POSE_BUNDLE or DETECTOR
    description: str
    license: str
    urls: tuple[str, ...] = ()  # tried in order
    filename: str | None = None  # name of the downloaded file
    archive: bool = False  # a tar(.gz) holding a bundle folder, unpacked after download
    sha256: str | None = None  # published SHA-256 of the download; None if not published
    size: int | None = None  # published size of the download in bytes; None if not published
    approx_size: str = ""  # human hint for the manual steps when ``size`` is unknown
    project_path: str | None = None  # folder or file relative to the repository root
    input_size: int | None = None  # detectors: square input side in pixels, from the publisher
    source_note: str = ""  # where the URL / hash facts come from

    @property
    def source(self) -> str:
        """``"project"`` for models in the repository, ``"remote"`` for downloads."""
        return "project" if self.project_path else "remote"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise RegistryError(
                f"Model {self.name!r}: kind must be one of {KINDS}, not {self.kind!r}"
            )
        if bool(self.project_path) == bool(self.urls):
            raise RegistryError(
                f"Model {self.name!r} needs either urls or project_path (not both)."
            )
        if self.urls and not self.filename:
            raise RegistryError(f"Model {self.name!r} has urls but no filename.")
        if not self.name or "/" in self.name or "\\" in self.name or self.name.startswith("."):
            raise RegistryError(f"Model name {self.name!r} must be a plain name without slashes.")


_YOLOX_RELEASE = "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0"
_YOLOX_NOTE = (
    "URL from the README of Megvii-BaseDetection/YOLOX (release 0.1.1rc0, Apache-2.0); COCO-trained, "
    "person = class 0. No SHA-256 or byte size is published: the hash is recorded at first download."
)


def _yolox(variant: str, input_size: int, description: str, approx_size: str = "") -> ModelEntry:
    return ModelEntry(
        name=f"yolox_{variant}",
        kind=DETECTOR,
        description=description,
        license="Apache-2.0",
        urls=(f"{_YOLOX_RELEASE}/yolox_{variant}.pth",),
        filename=f"yolox_{variant}.pth",
        input_size=input_size,
        approx_size=approx_size,
        source_note=_YOLOX_NOTE,
    )


BUILTIN_MODELS: tuple[ModelEntry, ...] = (
    ModelEntry(
        name="metrabs_eff2l_384px_800k_28ds_pytorch",
        kind=POSE_BUNDLE,
        description="Official MeTRAbs, EfficientNetV2-L, 384 px crops, trained on 28 datasets",
        license="non-commercial use only (training-data licences)",
        urls=(
            "https://bit.ly/metrabs_l_pt",
            "https://omnomnom.vision.rwth-aachen.de/data/metrabs/"
            "metrabs_eff2l_384px_800k_28ds_pytorch.tar.gz",
        ),
        filename="metrabs_eff2l_384px_800k_28ds_pytorch.tar.gz",
        archive=True,
        approx_size="about 440 MB",
        source_note=(
            "First URL: the link in the README of isarandi/metrabs ('wget -O - "
            "https://bit.ly/metrabs_l_pt | tar -xzvf -'). Second URL: the authors' server, which "
            "hosts their other models (docs/MODELS.md); this exact path appears only in third-party "
            "code, not in the official README. Neither size nor SHA-256 is published: the hash is "
            "recorded at first download. The size is approximate: third-party download scripts "
            "give ~440 MB, as the fp32 weights of EfficientNetV2-L (118 M parameters) predict."
        ),
    ),
    ModelEntry(
        name="metrabs_small_synth",
        kind=POSE_BUNDLE,
        description="Small MeTRAbs trained by this project on its own synthetic data (tests, demo)",
        license="GPL-3.0-or-later (project's own weights)",
        project_path="models/metrabs_small_synth",
        source_note="Bundled with the project; integrity is tracked by the repository itself.",
    ),
    ModelEntry(
        name=OFFLINE_DETECTOR,
        kind=DETECTOR,
        description="Small person detector trained by this project on its synthetic frames (demo)",
        license="GPL-3.0-or-later (project's own weights)",
        project_path="models/yolox_synth/yolox_synth.pth",
        input_size=416,
        source_note="Bundled with the project; integrity is tracked by the repository itself.",
    ),
    # Approximate sizes as users report them (YOLOX issues 495, 1304): the files hold optimizer
    # state beside the weights.
    _yolox("nano", 416, "YOLOX-Nano person detector (COCO AP 25.8, 0.91 M params)", "about 8 MB"),
    _yolox("tiny", 416, "YOLOX-Tiny person detector (COCO AP 32.8, 5.06 M params)"),
    _yolox("s", 640, "YOLOX-S person detector (COCO AP 40.5, 9.0 M params)", "about 70 MB"),
    _yolox("m", 640, "YOLOX-M person detector (COCO AP 46.9, 25.3 M params)"),
)

_ENTRY_FIELDS = {f.name for f in dataclasses.fields(ModelEntry)}


def load_registry(override: Path | str | None = None) -> dict[str, ModelEntry]:
    """Built-in models, updated by a JSON override file (``override``, else ``$METRABS_MOCAP_REGISTRY``).

    The file holds ``{"models": [{"name": ..., <ModelEntry fields>}, ...]}``; ``"url"`` is accepted
    for a single URL. An entry whose name is built in replaces only the fields it gives (e.g. a
    mirror URL or a hash); a new name adds a model. Used for mirrors, and by the tests to point
    downloads at a local server.
    """
    registry = {entry.name: entry for entry in BUILTIN_MODELS}
    path = override if override is not None else os.environ.get(REGISTRY_ENV) or None
    if path is None:
        return registry
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RegistryError(f"Cannot read the registry file {path}: {exc}") from exc
    items = data.get("models") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise RegistryError(f'Registry file {path} must hold {{"models": [...]}}.')
    for item in items:
        entry = _entry_from_json(item, registry, path)
        registry[entry.name] = entry
    return registry


def _entry_from_json(item: object, registry: dict[str, ModelEntry], path: object) -> ModelEntry:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise RegistryError(f"Registry file {path}: every model needs a string 'name'.")
    fields = dict(item)
    if "url" in fields:
        fields["urls"] = [fields.pop("url")]
    unknown = set(fields) - _ENTRY_FIELDS
    if unknown:
        raise RegistryError(
            f"Registry file {path}, model {item['name']!r}: unknown fields {sorted(unknown)}; "
            f"known: {sorted(_ENTRY_FIELDS)}."
        )
    if "urls" in fields:
        fields["urls"] = tuple(fields["urls"])
    base = registry.get(fields["name"])
    try:
        return dataclasses.replace(base, **fields) if base else ModelEntry(**fields)
    except TypeError as exc:
        raise RegistryError(f"Registry file {path}, model {item['name']!r}: {exc}") from exc


def get_entry(name: str, registry: dict[str, ModelEntry] | None = None) -> ModelEntry:
    """The registry entry called ``name``; ``ModelNotFoundError`` listing the known names if none."""
    registry = load_registry() if registry is None else registry
    try:
        return registry[name]
    except KeyError:
        raise ModelNotFoundError(
            f"Unknown model {name!r}. Known models: {', '.join(sorted(registry))} "
            "(see `python -m inference weights list`), or give a path to a model folder/tarball."
        ) from None


# ------------------------------------------------------------------------------------------------
# Cache


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


def _paths(entry: ModelEntry, cache: Path) -> CachePaths:
    return CachePaths(cache, entry.name, entry.filename or entry.name)


def _write_json_atomic(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:  # (other OSErrors: the cache itself)
        raise ModelIntegrityError(f"{path} is unreadable ({exc}); delete it and retry.") from exc
    return data if isinstance(data, dict) else {}


def recorded_hash(cache: Path, name: str) -> dict | None:
    """The ``{"sha256", "size", "url", "recorded_at"}`` recorded at first download, if any."""
    return _read_json(cache / "recorded_hashes.json").get(name)


def _record_hash(cache: Path, name: str, sha256: str, size: int, url: str) -> None:
    path = cache / "recorded_hashes.json"
    data = _read_json(path)
    data[name] = {"sha256": sha256, "size": size, "url": url, "recorded_at": _now()}
    _write_json_atomic(path, data)


def forget_recorded_hash(cache: Path, name: str) -> bool:
    """Drop the recorded hash of ``name`` (when the publisher really replaced the file)."""
    path = cache / "recorded_hashes.json"
    data = _read_json(path)
    if name not in data:
        return False
    del data[name]
    _write_json_atomic(path, data)
    return True


def _now() -> str:
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
        path = REPO_ROOT / entry.project_path
        return path if path.exists() else None
    paths = _paths(entry, cache_dir(cache))
    if not (paths.manifest.is_file() and paths.model_dir.is_dir()):
        return None
    return paths.model_dir if entry.archive else paths.model_dir / paths.filename


# ------------------------------------------------------------------------------------------------
# Download and install


def manual_steps(entry: ModelEntry, cache: Path) -> str:
    """Text telling the user how to install ``entry`` without this program's network access."""
    paths = _paths(entry, cache)
    if entry.size:
        size = f"{entry.size / 1e6:.0f} MB"
    else:
        size = entry.approx_size or "size not published"
    urls = "\n".join(f"       {url}" for url in entry.urls)
    return (
        f"To install {entry.name} by hand:\n"
        f"  1. On any computer with internet access, download ({size}):\n{urls}\n"
        f"  2. Then either copy the file to\n"
        f"       {paths.download}\n"
        f"     and run `python -m inference weights download {entry.name}` again (it is checked "
        "and installed from there),\n"
        f"     or run `python -m inference weights download {entry.name} --model "
        f"/path/to/{paths.filename}`,\n"
        f"     or give the file (or its unpacked folder) directly: `--model /path/to/{paths.filename}`."
    )


def download_model(
    entry: ModelEntry,
    *,
    cache: Path | None = None,
    force: bool = False,
    keep_archive: bool = False,
    options: DownloadOptions | None = None,
    progress: ProgressCallback | None = None,
) -> Path:
    """Make ``entry`` present in the cache (download, verify, unpack) and return its path.

    Already installed -> returned at once (unless ``force``). A finished file already in
    ``downloads/`` (e.g. copied there by hand) is verified and installed without the network; a
    ``.part`` is resumed. Raises ``ModelOfflineError`` (with manual steps), ``ModelDownloadError``,
    ``ModelIntegrityError``; a corrupted download is deleted, never installed.
    """
    cache = cache_dir(cache)
    emit = progress or (lambda event: None)
    if entry.project_path:
        return _project_model_path(entry)
    existing = installed_path(entry, cache)
    if existing is not None and not force:
        emit({"event": "installed", "name": entry.name, "path": str(existing), "already": True})
        return existing
    paths = _paths(entry, cache)
    origin = f"file:{paths.download}"  # a file copied there by hand
    if not paths.download.is_file():
        origin = _fetch(entry, cache, options or DownloadOptions(), emit)
    return _install(
        entry, cache, paths.download, origin=origin, keep_archive=keep_archive, progress=emit
    )


def install_from_file(
    entry: ModelEntry,
    source: Path,
    *,
    cache: Path | None = None,
    progress: ProgressCallback | None = None,
) -> Path:
    """Install ``entry`` from a file downloaded by hand (verified like a download), or for a pose
    bundle from the folder unpacked from it; return its path."""
    cache = cache_dir(cache)
    source = Path(source).expanduser()
    if entry.project_path:
        raise WeightsError(
            f"{entry.name} is bundled with the project; there is nothing to install."
        )
    if not source.exists():
        raise ModelNotFoundError(
            f"{source} does not exist; give the downloaded {entry.filename}"
            + (" or the folder unpacked from it." if entry.archive else ".")
        )
    emit = progress or (lambda event: None)
    return _install(entry, cache, source, origin=f"file:{source}", keep_archive=True, progress=emit)


def _project_model_path(entry: ModelEntry) -> Path:
    path = installed_path(entry)
    if path is None:
        raise ModelNotFoundError(
            f"{entry.name} should be in the repository at {REPO_ROOT / str(entry.project_path)}, "
            "but it is missing. Check out the full repository, or train it with the "
            "project's training script."
        )
    return path


def _fetch(entry: ModelEntry, cache: Path, options: DownloadOptions, emit: ProgressCallback) -> str:
    """Download ``entry`` into ``downloads/``, trying each URL in turn; return the URL that worked.

    The download is checked against the published or recorded hash when there is one.
    """
    paths = _paths(entry, cache)
    want, source = expected_hash(entry, cache)
    failures: list[str] = []
    corrupted: list[str] = []  # URLs that served other bytes than the expected hash
    all_offline = True

    def named(event: dict) -> None:
        emit({**event, "name": entry.name})

    for url in entry.urls:
        _forget_part_from_other_url(paths, url, want)
        try:
            digest = download_file(
                url,
                paths.download,
                expected_sha256=want,
                expected_size=entry.size,
                options=options,
                progress=named,
            )
        except NetworkUnavailableError as exc:
            log.warning("%s", exc)
            failures.append(str(exc))
            continue
        except IntegrityError as exc:  # (e.g. a link shortener's page): the next URL may serve it
            paths.part_origin.unlink(missing_ok=True)  # the .part itself is already deleted
            log.warning("%s", exc)
            corrupted.append(str(exc))
            all_offline = False
            continue
        except DownloadError as exc:
            log.warning("%s", exc)
            failures.append(str(exc))
            all_offline = False
            continue
        paths.part_origin.unlink(missing_ok=True)
        if want is not None:
            named({"event": "verified", "sha256": digest, "hash_source": source})
        return url
    if corrupted:
        raise ModelIntegrityError(_integrity_hint(entry, "\n".join(corrupted + failures), source))
    tried = "\n".join(f"  - {text}" for text in failures)
    steps = manual_steps(entry, cache)
    if all_offline:
        raise ModelOfflineError(f"No network: cannot download {entry.name}.\n{tried}\n{steps}")
    raise ModelDownloadError(
        f"Download of {entry.name} failed:\n{tried}\nRun the same command again to resume "
        f"(partial data is kept in {paths.part}).\n{steps}"
    )


def _forget_part_from_other_url(paths: CachePaths, url: str, want: str | None) -> None:
    """Resume a ``.part`` only from the URL it came from, unless a hash would catch a mix-up.

    Without a known hash, bytes from two servers must never be glued into one file.
    """
    if want is None and paths.part.exists():
        try:
            previous = paths.part_origin.read_text(encoding="utf-8")
        except OSError:
            previous = None
        if previous != url:
            log.info("Discarding %s: it came from another URL (%s)", paths.part, previous)
            paths.part.unlink()
    paths.part.parent.mkdir(parents=True, exist_ok=True)
    paths.part_origin.write_text(url, encoding="utf-8")


def _integrity_hint(entry: ModelEntry, message: str, source: str) -> str:
    if not source.startswith("recorded"):
        return message
    return (
        f"{message}\nThe expected hash was {source}. If the publisher really replaced the file, "
        f"run `python -m inference weights download {entry.name} --forget-recorded-hash`."
    )


def _install(
    entry: ModelEntry,
    cache: Path,
    file: Path,
    *,
    origin: str,
    keep_archive: bool,
    progress: ProgressCallback,
) -> Path:
    """Check ``file``'s hash, unpack/copy it into ``models/<name>``, write the manifest.

    A file in the cache's ``downloads/`` that fails (wrong hash, unsafe archive, not a bundle) is
    deleted; a user's own file is left alone. With no published or recorded hash, the hash is
    recorded only once the install succeeded, so a bad first file is not trusted later.
    """
    paths = _paths(entry, cache)
    if file.is_dir():
        return _install_folder(entry, cache, file, progress)
    want, source = expected_hash(entry, cache)
    digest = sha256_file(file)
    size = file.stat().st_size
    in_cache = file == paths.download
    try:
        _check_download(entry, file, size, digest, want, source)
        progress({"event": "install", "name": entry.name, "from": str(file), "sha256": digest})
        _unpack_into_place(entry, cache, file)
    except ModelIntegrityError as exc:
        if in_cache:
            file.unlink(missing_ok=True)
        fate = "it was deleted" if in_cache else "it was not used"
        raise ModelIntegrityError(f"{exc} ({file}: {fate}.)") from exc
    if want is None:
        _record_hash(cache, entry.name, digest, size, origin)
        source = "recorded at first download (not published)"
        log.info("%s: no published SHA-256; recorded %s for later checks", entry.name, digest)
        progress({"event": "hash_recorded", "name": entry.name, "sha256": digest, "size": size})
    manifest = {
        "name": entry.name,
        "origin": origin,
        "download_sha256": digest,
        "download_size": size,
        "hash_source": source,
        "installed_at": _now(),
        "files": _hash_tree(paths.model_dir, cache),
    }
    _write_json_atomic(paths.manifest, manifest)
    if in_cache and not keep_archive:
        file.unlink()
    path = installed_path(entry, cache)
    assert path is not None, "manifest and model folder were just written"
    progress({"event": "installed", "name": entry.name, "path": str(path), "already": False})
    log.info("Installed %s at %s", entry.name, path)
    return path


def _install_folder(
    entry: ModelEntry, cache: Path, folder: Path, progress: ProgressCallback
) -> Path:
    """Install an unpacked bundle folder (a release archive unpacked by hand) as ``entry``: its
    files are checked by loading the bundle and hashed into the manifest; no archive hash exists
    to record."""
    if entry.kind != POSE_BUNDLE:
        raise ModelNotFoundError(f"{folder} is a folder; {entry.name} is a single weight file.")
    progress({"event": "install", "name": entry.name, "from": str(folder), "sha256": None})
    try:
        _unpack_into_place(entry, cache, folder)
    except ModelIntegrityError as exc:
        raise ModelIntegrityError(f"{exc} ({folder}: it was not used.)") from exc
    paths = _paths(entry, cache)
    manifest = {
        "name": entry.name,
        "origin": f"folder:{folder}",
        "download_sha256": None,
        "download_size": None,
        "hash_source": "installed from an unpacked folder (no archive to hash)",
        "installed_at": _now(),
        "files": _hash_tree(paths.model_dir, cache),
    }
    _write_json_atomic(paths.manifest, manifest)
    path = installed_path(entry, cache)
    assert path is not None, "manifest and model folder were just written"
    progress({"event": "installed", "name": entry.name, "path": str(path), "already": False})
    return path


def _check_download(
    entry: ModelEntry, file: Path, size: int, digest: str, want: str | None, source: str
) -> None:
    problem = None
    if entry.size is not None and size != entry.size:
        problem = f"size {size} bytes, expected {entry.size}"
    elif want is not None and digest != want:
        problem = f"SHA-256 {digest}, expected {want}"
    if problem:
        message = f"{file.name} is not the expected {entry.name} ({problem})"
        raise ModelIntegrityError(_integrity_hint(entry, message, source))


def _unpack_into_place(entry: ModelEntry, cache: Path, file: Path) -> None:
    """Unpack (archive) or copy (single file) into a staging folder, then swap it into place."""
    paths = _paths(entry, cache)
    staging = cache / "models" / f".{entry.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        if file.is_dir():  # an unpacked bundle
            shutil.copytree(file, staging / file.name, symlinks=False)
            root = _bundle_root(staging, BUNDLE_FILES)
        elif entry.archive:
            try:
                extract_tar_safely(file, staging)
            except UnsafeArchiveError as exc:
                raise ModelIntegrityError(str(exc)) from exc
            root = _bundle_root(staging, BUNDLE_FILES if entry.kind == POSE_BUNDLE else ())
        else:
            _check_checkpoint(file)
            shutil.copyfile(file, staging / paths.filename)
            root = staging
        if entry.kind == POSE_BUNDLE:
            _check_loadable(root)
        paths.manifest.unlink(missing_ok=True)  # "not installed" while the folder is swapped
        _replace_dir(root, paths.model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_loadable(folder: Path) -> None:
    """Load the bundle in ``folder`` as an analysis would: a wrong or damaged archive is refused
    before it is installed or its hash trusted."""
    from .model import load_bundle
    from .model.errors import ModelError

    try:
        load_bundle(folder)
    except ModelError as exc:
        raise ModelIntegrityError(f"the files are not a usable MeTRAbs model: {exc}") from exc


def _check_checkpoint(file: Path) -> None:
    """A torch checkpoint (``.pt``/``.pth``) is a zip archive: a cut one (a connection closed
    early by a server that sent no size) fails its central directory or its CRCs."""
    if file.suffix.lower() not in (".pt", ".pth"):
        return
    try:
        with zipfile.ZipFile(file) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ModelIntegrityError(
            f"{file.name} is not a complete torch checkpoint ({exc})"
        ) from exc
    if damaged is not None:
        raise ModelIntegrityError(f"{file.name} is damaged (its member {damaged!r} fails its CRC)")


def _bundle_root(folder: Path, required: Iterable[str]) -> Path:
    """The folder holding the bundle: ``folder`` itself or its single sub-folder (tarball layout)."""
    required = tuple(required)
    candidates = [folder]
    visible = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(visible) == 1 and visible[0].is_dir():
        candidates.append(visible[0])
    if not required:
        return candidates[-1]
    for candidate in candidates:
        if all((candidate / name).is_file() for name in required):
            return candidate
    found = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())[:20]
    raise ModelIntegrityError(
        f"The archive does not hold a model bundle: expected the files {', '.join(required)} "
        f"(at the top or in one folder), found {found or 'no files'}."
    )


def _replace_dir(source: Path, target: Path) -> None:
    """Move ``source`` to ``target``, replacing an existing ``target`` (old copy removed after)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(source, target)
    shutil.rmtree(old, ignore_errors=True)


def _hash_tree(folder: Path, cache: Path) -> dict[str, dict]:
    """Size and SHA-256 of every file under ``folder`` (remembered for later checks)."""
    tree = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = sha256_file(path)
        file_hashes.remember(path, digest, cache / file_hashes.STORE_NAME)
        tree[path.relative_to(folder).as_posix()] = {"size": path.stat().st_size, "sha256": digest}
    return tree


def check_installed(entry: ModelEntry, cache: Path | None = None) -> None:
    """Raise :class:`ModelIntegrityError` if an installed model's files are not those installed
    (full SHA-256 of each file, remembered by size and modification time)."""
    cache = cache_dir(cache)
    paths = _paths(entry, cache)
    files = _read_json(paths.manifest).get("files") or {}
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
            f"{_read_json(paths.manifest).get('installed_at', 'the install')}). Install it again: "
            f"`python -m inference weights download {entry.name} --force`."
        )


def model_digest(path: Path, cache: Path | None = None) -> str:
    """``sha256:<32 hex>`` of a model's weights (a bundle's ``ckpt.pt`` or a weight file): the
    whole file, so that any change of its bytes gives another model id."""
    weights = Path(path) / "ckpt.pt" if Path(path).is_dir() else Path(path)
    digest = file_hashes.file_digest(weights, cache_dir(cache) / file_hashes.STORE_NAME)
    return f"sha256:{digest[:32]}"


# ------------------------------------------------------------------------------------------------
# Verify


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
    paths = _paths(entry, cache)
    want, source = expected_hash(entry, cache)
    if not paths.manifest.is_file():
        return _verify_download_only(entry, paths, want, source)
    manifest = _read_json(paths.manifest)
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


# ------------------------------------------------------------------------------------------------
# Resolve a --model argument


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
                return _project_model_path(entry)
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
            _replace_dir(staging, target)
        except UnsafeArchiveError as exc:
            raise ModelIntegrityError(f"{archive}: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("Unpacked %s into %s", archive, target)
    return _bundle_root(target, ())


# ------------------------------------------------------------------------------------------------
# Command line


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
    logger = logging.getLogger(__package__)
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


def ensure_detector(
    *,
    cache: Path | None = None,
    options: DownloadOptions | None = None,
    progress: ProgressCallback | None = None,
) -> Path | None:
    """Download the person detector that goes with a pose model (:data:`DETECTOR_WITH_POSE_MODEL`)
    unless one of :data:`AUTO_DETECTORS` is installed; return it, or None (with a ``warning``
    event) when it cannot be had: the pose model works without it, with OpenCV's slower HOG."""
    emit = progress or (lambda event: None)
    for name in AUTO_DETECTORS:
        path = installed_path(get_entry(name), cache)
        if path is not None:
            return path
    entry = get_entry(DETECTOR_WITH_POSE_MODEL)
    try:
        return download_model(entry, cache=cache, options=options, progress=emit)
    except WeightsError as error:
        message = (
            f"The person detector {entry.name} could not be installed ({error}); analyses use "
            f"OpenCV's slower HOG detector until it is: `python -m inference weights download "
            f"{entry.name}`."
        )
        log.warning("%s", message)
        emit({"event": "warning", "name": entry.name, "message": message})
        return None


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


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(
        prog="python -m inference.weights", description=__doc__.splitlines()[0]
    )
    configure_parser(_parser)
    sys.exit(main(_parser.parse_args()))
