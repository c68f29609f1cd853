"""Resumable HTTP(S) downloads, SHA-256 hashing and safe archive extraction (standard library only).

Nothing here knows about models: ``inference.weights`` decides *what* to fetch and where; this module
only moves bytes safely.

Download protocol (``download_file``):

- bytes go to ``<dest>.part``; a ``.part`` left by an interrupted run (dropped connection, timeout,
  Ctrl-C, crash) is resumed with an HTTP ``Range`` request, sent with ``If-Range`` and the file's
  validator (ETag or Last-Modified, kept in ``<dest>.part.resume``) when the server gave one; a
  server that ignores ``Range`` or whose file changed (answers 200 instead of 206, or another total
  size) makes the download restart from byte 0, never append garbage;
- one download of a file at a time: a second process asking for the same ``dest`` is told so (a
  lock on ``<dest>.lock``, released by the system if its holder dies);
- a dropped connection is retried from the current offset (``max_retries`` attempts in a row without
  progress); a failed write (disk full, no permission) ends the download at once;
- redirects may not go from https to http;
- the SHA-256 is computed while streaming (the bytes already in a resumed ``.part`` are hashed first);
  a size or hash mismatch (also of the bytes on disk against those received) deletes the ``.part``
  and raises ``IntegrityError``: a corrupted file is never renamed into place;
- only a complete, verified file is moved to ``dest`` (``os.replace``: atomic on one file system).

Progress is reported through a callback receiving plain ``dict`` events (JSON-serialisable, so the
command line prints them as JSON lines): ``{"event": "progress", "downloaded": bytes, "total": bytes
or None, ...}``, plus ``download_start``, ``resume``, ``restart``, ``retry`` and ``download_done``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import shutil
import stat
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import InferenceError

log = logging.getLogger(__name__)

#: receives one JSON-serialisable event dict; see the module docstring
ProgressCallback = Callable[[dict], None]

USER_AGENT = "metrabs-mocap-weights/1"
_HASH_BLOCK = 1 << 20  # bytes read at a time when hashing files


class DownloadError(InferenceError):
    """A download failed (HTTP error, connection dropped too often, bad server answer)."""


class NetworkUnavailableError(DownloadError):
    """The server cannot be reached at all (no network, DNS failure, connection refused, timeout)."""

    def __init__(self, url: str, reason: str):
        self.url = url
        self.reason = reason
        super().__init__(f"Cannot reach {url}: {reason}")


class IntegrityError(InferenceError):
    """Downloaded or installed bytes do not match the expected size or SHA-256."""


class UnsafeArchiveError(InferenceError):
    """An archive member would land outside the extraction folder, or is not a plain file/folder."""


@dataclass(frozen=True)
class DownloadOptions:
    """How ``download_file`` talks to the server."""

    timeout_s: float = 30.0  # per socket operation (connect, each read), not for the whole file
    chunk_size: int = 1 << 20  # bytes read per ``read()``; also the hashing granularity
    max_retries: int = 5  # consecutive attempts that bring no new bytes before giving up
    retry_wait_s: float = 1.0  # first wait between retries, doubled each time (capped at 30 s)
    progress_interval_s: float = 0.25  # minimum time between two "progress" events


def sha256_file(path: Path, block_size: int = _HASH_BLOCK) -> str:
    """Hex SHA-256 of a file, read in blocks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(block_size):
            digest.update(block)
    return digest.hexdigest()


def _hash_prefix(path: Path, size: int) -> hashlib._Hash:
    """SHA-256 state after the first ``size`` bytes of ``path`` (used when resuming)."""
    digest = hashlib.sha256()
    remaining = size
    with open(path, "rb") as f:
        while remaining > 0:
            block = f.read(min(_HASH_BLOCK, remaining))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
    return digest


def _check_scheme(url: str) -> None:
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise DownloadError(f"Only http(s) URLs can be downloaded, got {url!r}.")


def _is_unreachable(exc: BaseException) -> bool:
    """True for errors meaning "no route to the server" rather than "the server said no"."""
    if isinstance(exc, urllib.error.HTTPError):
        return False
    # URLError wraps the socket error (gaierror, ConnectionRefusedError, TimeoutError, SSL errors);
    # all of them are OSErrors, unlike the HTTPExceptions of a server that answered badly.
    return isinstance(exc, OSError)


class _NoDowngradeRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects, except from https to plain http (bytes trusted on first use could be
    swapped on the way)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        old_scheme = urllib.parse.urlsplit(req.full_url).scheme.lower()
        new_scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if old_scheme == "https" and new_scheme != "https":
            raise DownloadError(
                f"{req.full_url} redirects to {newurl}, which is not https; refusing it."
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_NoDowngradeRedirects)


class DiskWriteError(DownloadError):
    """The downloaded bytes cannot be written (disk full, no permission, read-only folder)."""


@contextlib.contextmanager
def _only_download(dest: Path) -> Iterator[None]:
    """Hold the lock on ``<dest>.lock`` for the block; raise ``DownloadError`` if another process
    holds it. The lock dies with its process (a crash leaves nothing stale) and its file is
    removed at the end; a lock taken on a file removed meanwhile is taken again."""
    lock_path = dest.with_name(dest.name + ".lock")
    while True:
        try:
            lock = open(lock_path, "a+b")
        except OSError as exc:
            raise DiskWriteError(f"Cannot write into {dest.parent}: {exc}") from exc
        try:
            _lock_file(lock)
        except OSError:
            lock.close()
            raise DownloadError(
                f"{dest.name} is being downloaded by another process (another Blender window or "
                "command); wait for it to finish."
            ) from None
        if lock_path.exists() and os.path.samestat(os.fstat(lock.fileno()), lock_path.stat()):
            break
        lock.close()  # its holder removed that file after we opened it: lock the current one
    try:
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        _unlock_file(lock)
        lock.close()


def _lock_file(file) -> None:  # noqa: ANN001
    if os.name == "nt":
        import msvcrt

        file.seek(0)
        msvcrt.locking(file.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock_file(file) -> None:  # noqa: ANN001
    if os.name == "nt":
        import msvcrt

        file.seek(0)
        msvcrt.locking(file.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(file.fileno(), fcntl.LOCK_UN)


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """``"bytes 100-199/1000"`` -> (100, 1000); ``"bytes */1000"`` -> (None, 1000)."""
    if not value or not value.startswith("bytes "):
        return None, None
    span, _, total = value[6:].partition("/")
    total_n = int(total) if total.strip().isdigit() else None
    if span.strip() == "*":
        return None, total_n
    start, _, _ = span.partition("-")
    return (int(start) if start.strip().isdigit() else None), total_n


class _Transfer:
    """State of one ``download_file`` call: offset, running hash, progress throttling."""

    def __init__(self, url: str, part: Path, options: DownloadOptions, progress: ProgressCallback):
        self.url = url
        self.part = part
        self.options = options
        self.progress = progress
        self.total: int | None = None
        self.offset = part.stat().st_size if part.exists() else 0
        self.digest = _hash_prefix(part, self.offset) if self.offset else hashlib.sha256()
        self._last_event = 0.0
        self._t0 = time.monotonic()
        self._bytes_this_run = 0
        self.reached_server = False  # True once any HTTP answer arrived (even an error status)
        self.resume_file = part.with_name(part.name + ".resume")
        self.known = self._read_resume_state() if self.offset else {}

    def _read_resume_state(self) -> dict:
        """``{"validator": ..., "total": ...}`` of the file the ``.part`` bytes belong to."""
        try:
            state = json.loads(self.resume_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def _remember(self, response: http.client.HTTPResponse) -> None:
        """Keep what identifies the file being received, for a later resume to check."""
        headers = response.headers
        etag = headers.get("ETag")
        validator = etag if etag and not etag.startswith("W/") else headers.get("Last-Modified")
        state = {"validator": validator, "total": self.total}
        if state != self.known:
            self.resume_file.write_text(json.dumps(state), encoding="utf-8")
            self.known = state

    def restart(self) -> None:
        self.offset = 0
        self.digest = hashlib.sha256()
        self.part.unlink(missing_ok=True)
        self.resume_file.unlink(missing_ok=True)
        self.known = {}

    def emit_progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_event < self.options.progress_interval_s:
            return
        self._last_event = now
        elapsed = max(now - self._t0, 1e-9)
        fraction = self.offset / self.total if self.total else None
        self.progress(
            {
                "event": "progress",
                "url": self.url,
                "downloaded": self.offset,
                "total": self.total,
                "fraction": fraction,
                "speed_bps": self._bytes_this_run / elapsed,
            }
        )

    def request(self) -> urllib.request.Request:
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if self.offset:
            headers["Range"] = f"bytes={self.offset}-"
            if self.known.get("validator"):  # a changed file comes whole (200), not its tail
                headers["If-Range"] = self.known["validator"]
        return urllib.request.Request(self.url, headers=headers)

    def open(self) -> http.client.HTTPResponse | None:
        """Open the connection for the current offset; None if the ``.part`` is already complete."""
        try:
            response = _OPENER.open(self.request(), timeout=self.options.timeout_s)
        except urllib.error.HTTPError as exc:
            self.reached_server = True
            if exc.code == 416 and self.offset:
                # Range past the end: either the .part is already complete, or stale and too long.
                _, total = _parse_content_range(exc.headers.get("Content-Range"))
                exc.close()
                if total is not None and total == self.offset:
                    self.total = total
                    return None
                log.warning("Server refused to resume at byte %d; restarting", self.offset)
                self.progress({"event": "restart", "url": self.url, "reason": "range refused"})
                self.restart()
                return self.open()
            raise DownloadError(
                f"Server answered HTTP {exc.code} ({exc.reason}) for {self.url}; check the URL "
                "or try again later."
            ) from exc
        self.reached_server = True
        status = response.status
        length = response.headers.get("Content-Length")
        if self.offset and status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range"))
            if start != self.offset:
                response.close()
                raise DownloadError(
                    f"Server resumed at byte {start} instead of {self.offset} for {self.url}."
                )
            if self.known.get("total") not in (None, total):  # the file changed size meanwhile
                response.close()
                log.info("The file on the server changed since the .part began; restarting")
                self.progress({"event": "restart", "url": self.url, "reason": "file changed"})
                self.restart()
                return self.open()
            self.total = total
            self.progress(
                {"event": "resume", "url": self.url, "offset": self.offset, "total": self.total}
            )
        elif status == 200:
            if self.offset:
                log.info("Server ignored the Range request; downloading from the start")
                self.progress({"event": "restart", "url": self.url, "reason": "range ignored"})
                self.restart()
            self.total = int(length) if length and length.isdigit() else None
        else:
            response.close()
            raise DownloadError(f"Unexpected HTTP status {status} for {self.url}.")
        try:
            self._remember(response)
        except OSError as exc:
            response.close()
            raise DiskWriteError(f"Cannot write next to {self.part}: {exc}") from exc
        return response

    def pump(self, response: http.client.HTTPResponse) -> None:
        """Append the response body to the ``.part`` file, hashing as it goes. Reading problems
        propagate as they are (the caller retries); writing ones end the download."""
        with response:
            try:
                out = open(self.part, "ab")
                out.truncate(self.offset)  # what a failed write may have left beyond the offset
            except OSError as exc:
                raise DiskWriteError(f"Cannot write {self.part}: {exc}") from exc
            with out:
                while True:
                    block = response.read(self.options.chunk_size)
                    if not block:
                        break
                    try:
                        out.write(block)
                    except OSError as exc:
                        raise DiskWriteError(
                            f"Cannot write {self.part} ({exc.strerror or exc}); free some space "
                            "or set METRABS_MOCAP_CACHE to another disk, then run the same "
                            "command again to resume."
                        ) from exc
                    self.digest.update(block)
                    self.offset += len(block)
                    self._bytes_this_run += len(block)
                    self.emit_progress()
                try:
                    out.flush()
                    os.fsync(out.fileno())
                except OSError as exc:
                    raise DiskWriteError(f"Cannot write {self.part}: {exc}") from exc
        if self.total is not None and self.offset < self.total:
            raise http.client.IncompleteRead(b"", self.total - self.offset)


def download_file(
    url: str,
    dest: Path,
    *,
    expected_sha256: str | None = None,
    expected_size: int | None = None,
    options: DownloadOptions | None = None,
    progress: ProgressCallback | None = None,
) -> str:
    """Download ``url`` to ``dest`` (resuming ``dest.part`` if present); return the hex SHA-256.

    ``expected_sha256`` / ``expected_size`` (bytes), when given, are checked before ``dest`` appears;
    a mismatch deletes the partial file and raises ``IntegrityError``. Raises
    ``NetworkUnavailableError`` when the server cannot be reached at all (the ``.part`` is kept for a
    later resume) and ``DownloadError`` for other failures. ``dest``'s folder is created if needed.
    """
    _check_scheme(url)
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DiskWriteError(f"Cannot write into {dest.parent}: {exc}") from exc
    with _only_download(dest):
        return _download(url, dest, expected_sha256, expected_size, options, progress)


def _download(
    url: str,
    dest: Path,
    expected_sha256: str | None,
    expected_size: int | None,
    options: DownloadOptions | None,
    progress: ProgressCallback | None,
) -> str:
    options = options or DownloadOptions()
    part = dest.with_name(dest.name + ".part")
    emit = progress or (lambda event: None)
    transfer = _Transfer(url, part, options, emit)
    emit({"event": "download_start", "url": url, "dest": str(dest), "offset": transfer.offset})
    log.info("Downloading %s -> %s (starting at byte %d)", url, dest, transfer.offset)

    failures = 0
    while True:
        offset_before = transfer.offset
        try:
            response = transfer.open()
            if response is not None:
                _check_free_space(dest.parent, transfer)
                transfer.pump(response)
            break
        except (http.client.HTTPException, OSError) as exc:
            # OSError covers URLError (socket errors while connecting), timeouts and resets mid-body;
            # HTTPException covers IncompleteRead and garbled status lines.
            if not transfer.reached_server and _is_unreachable(exc):
                # Never got an answer: retrying a refused connection or a failed DNS lookup only
                # delays the message telling the user what to do.
                raise NetworkUnavailableError(url, _describe(exc)) from exc
            failures = 0 if transfer.offset > offset_before else failures + 1
            if failures > options.max_retries:
                raise DownloadError(
                    f"Download of {url} failed after {options.max_retries} retries at byte "
                    f"{transfer.offset} ({_describe(exc)}). Run the same command again to resume."
                ) from exc
            wait = min(options.retry_wait_s * 2 ** max(failures - 1, 0), 30.0)
            log.warning("Connection problem (%s); retrying in %.1f s", _describe(exc), wait)
            emit(
                {
                    "event": "retry",
                    "url": url,
                    "offset": transfer.offset,
                    "attempt": failures,
                    "reason": _describe(exc),
                }
            )
            time.sleep(wait)

    transfer.emit_progress(force=True)
    return _finish(transfer, dest, expected_sha256, expected_size, emit)


def _check_free_space(folder: Path, transfer: _Transfer) -> None:
    if transfer.total is None:
        return
    needed = transfer.total - transfer.offset
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DownloadError(
            f"Not enough disk space in {folder}: {needed / 1e6:.0f} MB needed, {free / 1e6:.0f} MB "
            "free. Free some space or set METRABS_MOCAP_CACHE to a larger disk."
        )


def _finish(
    transfer: _Transfer,
    dest: Path,
    expected_sha256: str | None,
    expected_size: int | None,
    emit: ProgressCallback,
) -> str:
    """Check size and hash of the complete ``.part``; rename it to ``dest`` or delete it."""
    if not transfer.part.exists():  # zero-byte body
        transfer.part.touch()
    size = transfer.part.stat().st_size
    digest = transfer.digest.hexdigest()
    problem = None
    if size != transfer.offset:  # the bytes on disk are not those received and hashed
        problem = f"{size} bytes on disk, {transfer.offset} received"
    elif expected_size is not None and size != expected_size:
        problem = f"size {size} bytes, expected {expected_size}"
    elif expected_sha256 is not None and digest != expected_sha256.lower():
        problem = f"SHA-256 {digest}, expected {expected_sha256.lower()}"
    transfer.resume_file.unlink(missing_ok=True)
    if problem:
        transfer.part.unlink(missing_ok=True)
        raise IntegrityError(
            f"Downloaded file from {transfer.url} is corrupted ({problem}); it was deleted. "
            "Run the download again; if this repeats, the server or a proxy serves a different file."
        )
    os.replace(transfer.part, dest)
    emit({"event": "download_done", "url": transfer.url, "dest": str(dest), "sha256": digest})
    log.info("Downloaded %s (%d bytes, sha256 %s)", dest, size, digest)
    return digest


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


# ------------------------------------------------------------------------------------------------
# Safe extraction


def _member_target(root: Path, name: str) -> Path:
    """Where member ``name`` would land under ``root``; refuses absolute and ``..`` paths."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or (posix.parts and ":" in posix.parts[0]):
        raise UnsafeArchiveError(f"Archive member {name!r} has an absolute path; refusing it.")
    if ".." in posix.parts:
        raise UnsafeArchiveError(f"Archive member {name!r} contains '..'; refusing it.")
    target = (root / Path(*posix.parts)) if posix.parts else root
    resolved = target.resolve()
    if resolved != root and root not in resolved.parents:
        raise UnsafeArchiveError(f"Archive member {name!r} would land outside {root}.")
    return target


def _check_link(root: Path, member: tarfile.TarInfo) -> None:
    """Refuse links whose target leaves the extraction folder."""
    if member.issym():
        link_path = PurePosixPath(member.linkname.replace("\\", "/"))
        if link_path.is_absolute():
            raise UnsafeArchiveError(
                f"Archive member {member.name!r} links to the absolute path {member.linkname!r}."
            )
        base = PurePosixPath(member.name).parent
        target = (root / Path(*base.parts, *link_path.parts)).resolve()
    else:  # hard link: linkname is relative to the archive root
        target = _member_target(root, member.linkname).resolve()
    if target != root and root not in target.parents:
        raise UnsafeArchiveError(
            f"Archive member {member.name!r} links outside the folder ({member.linkname!r})."
        )


def extract_tar_safely(archive: Path, dest: Path, *, max_total_bytes: int = 64 << 30) -> list[Path]:
    """Extract a (possibly gzip/bzip2/xz-compressed) tar archive into the folder ``dest``.

    Every member is checked before anything is written: absolute paths, ``..`` components, links
    pointing outside ``dest``, and devices/FIFOs raise ``UnsafeArchiveError``; so does a total size
    over ``max_total_bytes``. Links inside ``dest`` are materialised as copies of their target, so
    the result holds only regular files and folders. File modes are reduced to rw-r--r-- / rwxr-xr-x.
    Returns the extracted regular files (paths under ``dest``).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UnsafeArchiveError(f"{archive} is not a readable tar archive: {exc}") from exc
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise UnsafeArchiveError(f"{archive} is truncated or corrupted: {exc}") from exc
        total = 0
        for member in members:
            _member_target(root, member.name)
            if member.issym() or member.islnk():
                _check_link(root, member)
            elif not (member.isfile() or member.isdir()):
                raise UnsafeArchiveError(
                    f"Archive member {member.name!r} is a device, FIFO or other special file."
                )
            total += max(member.size, 0)
        if total > max_total_bytes:
            raise UnsafeArchiveError(
                f"{archive} would unpack to {total / 1e9:.1f} GB, over the "
                f"{max_total_bytes / 1e9:.1f} GB limit."
            )
        try:
            written = [_extract_member(tar, member, root) for member in members if member.isfile()]
            for member in members:  # links last, once their targets exist
                if member.issym() or member.islnk():
                    written.append(_materialise_link(root, member))
            for member in members:
                if member.isdir():
                    _member_target(root, member.name).mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # e.g. a member inside what another member made a file
            raise UnsafeArchiveError(f"{archive} cannot be unpacked: {exc}") from exc
    return written


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path) -> Path:
    target = _member_target(root, member.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(member)
    if source is None:
        raise UnsafeArchiveError(f"Archive member {member.name!r} cannot be read.")
    try:
        with source, open(target, "wb") as out:
            shutil.copyfileobj(source, out, _HASH_BLOCK)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UnsafeArchiveError(f"Archive member {member.name!r} is truncated: {exc}") from exc
    executable = member.mode & stat.S_IXUSR
    os.chmod(target, 0o755 if executable else 0o644)
    return target


def _materialise_link(root: Path, member: tarfile.TarInfo) -> Path:
    """Copy a (checked, in-folder) link's target to the link's place."""
    target = _member_target(root, member.name)
    if member.issym():
        base = PurePosixPath(member.name).parent
        link_path = PurePosixPath(member.linkname.replace("\\", "/"))
        source = root / Path(*base.parts, *link_path.parts)
    else:
        source = _member_target(root, member.linkname)
    source = source.resolve()
    if not source.is_file():
        raise UnsafeArchiveError(
            f"Archive member {member.name!r} links to {member.linkname!r}, which is not a file "
            "in the archive."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target
