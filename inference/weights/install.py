"""Getting a model into the cache: download (resumable, every URL in turn), check its hash, unpack
or copy it into place, write its manifest; or install a file downloaded by hand."""

from __future__ import annotations

import logging
import os
import shutil
import zipfile
from collections.abc import Iterable
from pathlib import Path

from retarget.files import write_json

from ..download import (
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
from . import file_hashes
from .cache import (
    CachePaths,
    cache_dir,
    cache_paths,
    expected_hash,
    installed_path,
    record_download_hash,
    timestamp,
)
from .errors import (
    ModelDownloadError,
    ModelIntegrityError,
    ModelNotFoundError,
    ModelOfflineError,
    WeightsError,
)
from .registry import (
    AUTO_DETECTORS,
    BUNDLE_FILES,
    DETECTOR_WITH_POSE_MODEL,
    POSE_BUNDLE,
    ModelEntry,
    get_entry,
    project_file,
)

log = logging.getLogger(__name__)


def manual_steps(entry: ModelEntry, cache: Path) -> str:
    """Text telling the user how to install ``entry`` without this program's network access."""
    paths = cache_paths(entry, cache)
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
        return project_model_path(entry)
    existing = installed_path(entry, cache)
    if existing is not None and not force:
        emit({"event": "installed", "name": entry.name, "path": str(existing), "already": True})
        return existing
    paths = cache_paths(entry, cache)
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


def project_model_path(entry: ModelEntry) -> Path:
    path = installed_path(entry)
    if path is None:
        raise ModelNotFoundError(
            f"{entry.name} should be in the repository at {project_file(entry)}, "
            "but it is missing. Check out the full repository, or train it with the "
            "project's training script."
        )
    return path


def _fetch(entry: ModelEntry, cache: Path, options: DownloadOptions, emit: ProgressCallback) -> str:
    """Download ``entry`` into ``downloads/``, trying each URL in turn; return the URL that worked.

    The download is checked against the published or recorded hash when there is one.
    """
    paths = cache_paths(entry, cache)
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
    paths = cache_paths(entry, cache)
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
        record_download_hash(cache, entry.name, digest, size, origin)
        source = "recorded at first download (not published)"
        log.info("%s: no published SHA-256; recorded %s for later checks", entry.name, digest)
        progress({"event": "hash_recorded", "name": entry.name, "sha256": digest, "size": size})
    manifest = {
        "name": entry.name,
        "origin": origin,
        "download_sha256": digest,
        "download_size": size,
        "hash_source": source,
        "installed_at": timestamp(),
        "files": _hash_tree(paths.model_dir, cache),
    }
    write_json(paths.manifest, manifest)
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
    paths = cache_paths(entry, cache)
    manifest = {
        "name": entry.name,
        "origin": f"folder:{folder}",
        "download_sha256": None,
        "download_size": None,
        "hash_source": "installed from an unpacked folder (no archive to hash)",
        "installed_at": timestamp(),
        "files": _hash_tree(paths.model_dir, cache),
    }
    write_json(paths.manifest, manifest)
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
    paths = cache_paths(entry, cache)
    staging = cache / "models" / f".{entry.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        if file.is_dir():  # an unpacked bundle
            shutil.copytree(file, staging / file.name, symlinks=False)
            root = bundle_root(staging, BUNDLE_FILES)
        elif entry.archive:
            try:
                extract_tar_safely(file, staging)
            except UnsafeArchiveError as exc:
                raise ModelIntegrityError(str(exc)) from exc
            root = bundle_root(staging, BUNDLE_FILES if entry.kind == POSE_BUNDLE else ())
        else:
            _check_checkpoint(file)
            shutil.copyfile(file, staging / paths.filename)
            root = staging
        if entry.kind == POSE_BUNDLE:
            _check_loadable(root)
        paths.manifest.unlink(missing_ok=True)  # "not installed" while the folder is swapped
        replace_dir(root, paths.model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_loadable(folder: Path) -> None:
    """Load the bundle in ``folder`` as an analysis would: a wrong or damaged archive is refused
    before it is installed or its hash trusted."""
    from ..model import load_bundle
    from ..model.errors import ModelError

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


def bundle_root(folder: Path, required: Iterable[str]) -> Path:
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


def replace_dir(source: Path, target: Path) -> None:
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
