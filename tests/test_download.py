"""Resumable download and safe extraction, against an HTTP server on 127.0.0.1 run by the test.

``LocalServer`` (also used by ``test_weights.py``) serves in-memory files with ``Range`` support and
per-file misbehaviours: dropping the connection half-way, serving corrupted bytes, ignoring
``Range``, stalling. ``refused_url()`` gives a URL where nothing listens (connection refused).
"""

from __future__ import annotations

import hashlib
import http.server
import io
import random
import signal
import socket
import tarfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from inference.download import (
    DownloadError,
    DownloadOptions,
    IntegrityError,
    NetworkUnavailableError,
    UnsafeArchiveError,
    download_file,
    extract_tar_safely,
    sha256_file,
)

FAST = DownloadOptions(timeout_s=2.0, chunk_size=16 << 10, retry_wait_s=0.01, progress_interval_s=0)


@dataclass
class Behaviour:
    """How the server treats one path."""

    drops: int = 0  # the first `drops` requests are cut off after half of the body
    corrupt: bool = False  # serve bytes with one byte flipped in every KiB
    ignore_range: bool = False  # always answer 200 with the whole file
    etag: bool = True  # send an ETag (and honour If-Range with it)
    stall_s: float = 0.0  # sleep this long before sending the body (tests timeouts)
    stalls: int = 0  # how many requests stall (-1: all)


@dataclass
class LocalServer:
    """A threaded HTTP server on 127.0.0.1 with Range support and scripted faults."""

    files: dict[str, bytes] = field(default_factory=dict)
    behaviour: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    bytes_sent: int = 0  # body bytes of all finished writes
    bodies: list[int] = field(default_factory=list)  # body bytes each response sends

    def start(self) -> LocalServer:
        owner = self
        self._stop = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                owner._serve(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path.lstrip('/')}"

    def _serve(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        path = handler.path.lstrip("/")
        range_header = handler.headers.get("Range")
        self.requests.append((path, range_header))
        if path not in self.files:
            handler.send_error(404, "Not Found")
            return
        how = self.behaviour.setdefault(path, Behaviour())
        data = _corrupt(self.files[path]) if how.corrupt else self.files[path]
        etag = f'"{hashlib.sha256(data).hexdigest()[:16]}"'
        if_range = handler.headers.get("If-Range")
        still_the_same = if_range is None or (how.etag and if_range == etag)
        start = 0
        if range_header and not how.ignore_range and still_the_same:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(data)}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            handler.send_response(200)
        body = data[start:]
        self.bodies.append(len(body) // 2 if how.drops > 0 else len(body))
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Content-Type", "application/octet-stream")
        if how.etag:
            handler.send_header("ETag", etag)
        handler.end_headers()
        if how.stalls:
            how.stalls -= 1 if how.stalls > 0 else 0
            self._stop.wait(how.stall_s)
        if how.drops > 0:
            how.drops -= 1
            half = body[: len(body) // 2]
            handler.wfile.write(half)
            handler.wfile.flush()
            self.bytes_sent += len(half)
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        handler.wfile.write(body)
        self.bytes_sent += len(body)


def _corrupt(data: bytes) -> bytes:
    out = bytearray(data)
    out[::1024] = bytes(b ^ 0xFF for b in out[::1024])
    return bytes(out)


def refused_url(path: str = "file.bin") -> str:
    """A URL on 127.0.0.1 where nothing listens: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{path}"


def payload(n: int = 300_000, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.fixture
def server():
    srv = LocalServer().start()
    yield srv
    srv.stop()


# ------------------------------------------------------------------------------------------------
# Download


def test_plain_download_hash_progress_and_atomic_rename(server, tmp_path):
    data = payload()
    server.files["f.bin"] = data
    events = []
    dest = tmp_path / "sub" / "f.bin"
    digest = download_file(
        server.url("f.bin"),
        dest,
        expected_sha256=hashlib.sha256(data).hexdigest(),
        expected_size=len(data),
        options=FAST,
        progress=events.append,
    )
    assert digest == hashlib.sha256(data).hexdigest()
    assert dest.read_bytes() == data
    assert not (tmp_path / "sub" / "f.bin.part").exists()
    assert events[0]["event"] == "download_start" and events[-1]["event"] == "download_done"
    progress = [e for e in events if e["event"] == "progress"]
    done = [e["downloaded"] for e in progress]
    assert done == sorted(done) and done[-1] == len(data)
    assert len(progress) >= len(data) // FAST.chunk_size  # one per chunk at interval 0
    assert all(e["total"] == len(data) for e in progress)
    assert progress[-1]["fraction"] == pytest.approx(1.0)


def test_connection_dropped_half_way_is_resumed_with_range(server, tmp_path):
    data = payload()
    server.files["f.bin"] = data
    server.behaviour["f.bin"] = Behaviour(drops=2)
    events = []
    digest = download_file(
        server.url("f.bin"),
        tmp_path / "f.bin",
        expected_sha256=hashlib.sha256(data).hexdigest(),
        options=FAST,
        progress=events.append,
    )
    assert digest == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "f.bin").read_bytes() == data
    # first request without Range, then resumes where the previous body stopped
    ranges = [r for _, r in server.requests]
    half = len(data) // 2
    assert ranges == [None, f"bytes={half}-", f"bytes={half + (len(data) - half) // 2}-"]
    assert [e["event"] for e in events].count("retry") == 2
    assert [e["event"] for e in events].count("resume") == 2
    assert sum(server.bodies) == len(data)  # nothing was sent twice (counted before each write)


class Interrupt(Exception):
    """Raised from a progress callback: like Ctrl-C or a crash in the middle of a transfer."""


def interrupted_download(server, dest: Path, size: int) -> None:
    """Start downloading ``f.bin`` to ``dest`` and stop once a third of ``size`` bytes is in."""

    def stop_a_third_in(event):
        if event["event"] == "progress" and event["downloaded"] >= size // 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        download_file(server.url("f.bin"), dest, options=FAST, progress=stop_a_third_in)


def test_interrupted_run_resumes_from_part_file_in_a_new_call(server, tmp_path):
    data = payload(500_000)
    server.files["f.bin"] = data
    dest = tmp_path / "f.bin"
    interrupted_download(server, dest, len(data))
    part = tmp_path / "f.bin.part"
    kept = part.stat().st_size
    assert len(data) // 3 <= kept < len(data) and not dest.exists()
    assert part.read_bytes() == data[:kept]

    digest = download_file(
        server.url("f.bin"), dest, expected_sha256=hashlib.sha256(data).hexdigest(), options=FAST
    )
    assert digest == hashlib.sha256(data).hexdigest() and dest.read_bytes() == data
    assert server.requests[-1] == ("f.bin", f"bytes={kept}-")
    # (the interrupted first response may still be counting its write into ``bytes_sent``)
    assert server.bodies == [len(data), len(data) - kept]


@pytest.mark.parametrize(
    ("etag", "new_size"), [(True, 500_000), (False, 600_000)], ids=["etag", "no-etag-other-size"]
)
def test_a_file_changed_on_the_server_since_the_part_began_restarts(
    server, tmp_path, etag, new_size
):
    """A resume glues the tail of a new release onto the head of the old one unless the server
    says which file the bytes belong to (ETag with If-Range) or its size changed."""
    server.files["f.bin"] = payload(500_000, seed=1)
    server.behaviour["f.bin"] = Behaviour(etag=etag)
    dest = tmp_path / "f.bin"
    interrupted_download(server, dest, 500_000)
    new_release = payload(new_size, seed=2)
    server.files["f.bin"] = new_release
    events = []
    download_file(server.url("f.bin"), dest, options=FAST, progress=events.append)
    assert dest.read_bytes() == new_release
    assert any(e["event"] == "restart" for e in events)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]  # no .part, .resume or .lock


def test_a_second_download_of_the_same_file_is_refused_while_one_runs(server, tmp_path):
    from inference import download

    server.files["f.bin"] = payload()
    dest = tmp_path / "f.bin"
    with download._only_download(dest):  # another process (here: this one) is downloading it
        with pytest.raises(DownloadError, match="being downloaded by another process"):
            download_file(server.url("f.bin"), dest, options=FAST)
    download_file(server.url("f.bin"), dest, options=FAST)
    assert not dest.with_name("f.bin.lock").exists()


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="file size limits are POSIX")
def test_a_full_disk_ends_the_download_and_a_new_call_resumes_it_exactly(server, tmp_path):
    """A failed write is not a dropped connection: no retry appending at the wrong place; the
    next call (space freed) resumes from the bytes really on disk and the file is exact."""
    import resource

    data = payload(400_000)
    server.files["f.bin"] = data
    dest = tmp_path / "f.bin"
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, limits[1]))  # "the disk is full"
    try:
        with pytest.raises(DownloadError, match="Cannot write"):
            download_file(server.url("f.bin"), dest, options=FAST)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, previous)
    assert len(server.requests) == 1  # not retried
    assert 0 < (tmp_path / "f.bin.part").stat().st_size <= 150_000
    digest = download_file(server.url("f.bin"), dest, options=FAST)
    assert dest.read_bytes() == data and digest == hashlib.sha256(data).hexdigest()


def test_redirects_from_https_to_http_are_refused():
    import urllib.request

    from inference.download import _NoDowngradeRedirects

    handler, request = _NoDowngradeRedirects(), urllib.request.Request("https://a.example/x")
    with pytest.raises(DownloadError, match="not https"):
        handler.redirect_request(request, None, 302, "Found", {}, "http://b.example/y")
    assert handler.redirect_request(request, None, 302, "Found", {}, "https://b.example/y")


def test_corrupted_bytes_are_rejected_and_deleted(server, tmp_path):
    data = payload()
    server.files["f.bin"] = data
    server.behaviour["f.bin"] = Behaviour(corrupt=True)
    dest = tmp_path / "f.bin"
    with pytest.raises(IntegrityError, match="corrupted.*SHA-256"):
        download_file(
            server.url("f.bin"),
            dest,
            expected_sha256=hashlib.sha256(data).hexdigest(),
            options=FAST,
        )
    assert not dest.exists() and not (tmp_path / "f.bin.part").exists()


def test_wrong_size_is_rejected(server, tmp_path):
    server.files["f.bin"] = payload(1000)
    with pytest.raises(IntegrityError, match="size 1000 bytes, expected 999"):
        download_file(server.url("f.bin"), tmp_path / "f.bin", expected_size=999, options=FAST)
    assert list(tmp_path.iterdir()) == []


def test_resume_against_corrupted_part_is_caught_by_the_hash(server, tmp_path):
    data = payload()
    server.files["f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(b"\0" * 1000)  # garbage left by something else
    with pytest.raises(IntegrityError):
        download_file(
            server.url("f.bin"),
            tmp_path / "f.bin",
            expected_sha256=hashlib.sha256(data).hexdigest(),
            options=FAST,
        )
    assert not (tmp_path / "f.bin.part").exists()
    # the next attempt starts clean and succeeds
    download_file(server.url("f.bin"), tmp_path / "f.bin", options=FAST)
    assert (tmp_path / "f.bin").read_bytes() == data


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = payload()
    server.files["f.bin"] = data
    server.behaviour["f.bin"] = Behaviour(ignore_range=True)
    (tmp_path / "f.bin.part").write_bytes(b"x" * 5000)
    events = []
    download_file(server.url("f.bin"), tmp_path / "f.bin", options=FAST, progress=events.append)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert server.requests == [("f.bin", "bytes=5000-")]
    assert any(e["event"] == "restart" and e["reason"] == "range ignored" for e in events)


def test_complete_part_gets_416_and_is_finished_without_body(server, tmp_path):
    data = payload(10_000)
    server.files["f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(data)
    digest = download_file(server.url("f.bin"), tmp_path / "f.bin", options=FAST)
    assert digest == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "f.bin").read_bytes() == data and server.bytes_sent == 0


def test_part_longer_than_the_file_restarts(server, tmp_path):
    data = payload(10_000)
    server.files["f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(b"y" * 20_000)
    download_file(server.url("f.bin"), tmp_path / "f.bin", options=FAST)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert [r for _, r in server.requests] == ["bytes=20000-", None]


def test_stalled_server_times_out_then_resumes(server, tmp_path):
    data = payload(50_000)
    server.files["f.bin"] = data
    server.behaviour["f.bin"] = Behaviour(stall_s=3.0, stalls=1)
    events = []
    options = DownloadOptions(timeout_s=0.3, chunk_size=8192, retry_wait_s=0.01)
    download_file(server.url("f.bin"), tmp_path / "f.bin", options=options, progress=events.append)
    assert (tmp_path / "f.bin").read_bytes() == data
    retries = [e for e in events if e["event"] == "retry"]
    assert len(retries) == 1 and "timed out" in retries[0]["reason"]


def test_server_that_always_stalls_gives_up_after_retries(server, tmp_path):
    server.files["f.bin"] = payload(50_000)
    server.behaviour["f.bin"] = Behaviour(stall_s=3.0, stalls=-1)
    options = DownloadOptions(timeout_s=0.2, max_retries=2, retry_wait_s=0.01)
    with pytest.raises(DownloadError, match="after 2 retries.*resume") as info:
        download_file(server.url("f.bin"), tmp_path / "f.bin", options=options)
    assert not isinstance(info.value, NetworkUnavailableError)  # the server did answer
    assert len(server.requests) == 3


def test_refused_connection_is_reported_as_network_unavailable(tmp_path):
    url = refused_url()
    (tmp_path / "f.bin.part").write_bytes(b"keep me")
    with pytest.raises(NetworkUnavailableError, match="Cannot reach") as info:
        download_file(url, tmp_path / "f.bin", options=FAST)
    assert info.value.url == url and "refused" in info.value.reason.lower()
    assert (tmp_path / "f.bin.part").read_bytes() == b"keep me"  # kept for a later resume


def test_http_error_is_a_download_error_naming_the_status(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download_file(server.url("missing.bin"), tmp_path / "f.bin", options=FAST)
    assert not isinstance(info.value, NetworkUnavailableError)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "/etc/passwd"])
def test_only_http_urls_are_accepted(url, tmp_path):
    with pytest.raises(DownloadError, match="Only http"):
        download_file(url, tmp_path / "f.bin")


def test_sha256_file_matches_hashlib(tmp_path):
    data = payload(3 << 20)  # crosses the 1 MiB hashing block size
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------------
# Extraction


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode="w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for info, content in members:
            if content is not None:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                tar.addfile(info)
    return path


def file_member(name: str, content: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = 0o600
    return info, content


def link_member(name: str, target: str, hard: bool = False) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info, None


def dir_member(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o700
    return info, None


def test_extracts_files_folders_and_internal_links(tmp_path):
    archive = make_tar(
        tmp_path / "ok.tar.gz",
        [
            dir_member("bundle"),
            file_member("bundle/ckpt.pt", b"weights"),
            file_member("bundle/sub/config.yaml", b"a: 1\n"),
            dir_member("bundle/empty"),
            link_member("bundle/alias.yaml", "sub/config.yaml"),
            link_member("bundle/hard.pt", "bundle/ckpt.pt", hard=True),
        ],
    )
    out = tmp_path / "out"
    written = extract_tar_safely(archive, out)
    assert (out / "bundle" / "ckpt.pt").read_bytes() == b"weights"
    assert (out / "bundle" / "sub" / "config.yaml").read_bytes() == b"a: 1\n"
    assert (out / "bundle" / "empty").is_dir()
    # links become plain copies: the result holds only regular files and folders
    for name, content in (("alias.yaml", b"a: 1\n"), ("hard.pt", b"weights")):
        target = out / "bundle" / name
        assert not target.is_symlink() and target.read_bytes() == content
    assert sorted(p.relative_to(out).as_posix() for p in written) == [
        "bundle/alias.yaml",
        "bundle/ckpt.pt",
        "bundle/hard.pt",
        "bundle/sub/config.yaml",
    ]
    assert (out / "bundle" / "ckpt.pt").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    "members, message",
    [
        ([file_member("../evil.txt", b"x")], r"contains '\.\.'"),
        ([file_member("ok/../../evil.txt", b"x")], r"contains '\.\.'"),
        ([link_member("escape", "../evil.txt")], "links outside"),
        ([link_member("escape", "/etc/passwd")], "absolute path"),
        ([link_member("deep/escape", "../../evil.txt")], "links outside"),
        ([link_member("escape", "../evil.txt", hard=True)], r"contains '\.\.'"),
    ],
)
def test_members_escaping_the_folder_are_refused(tmp_path, members, message):
    archive = make_tar(tmp_path / "bad.tar.gz", [file_member("fine.txt", b"ok"), *members])
    out = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_tar_safely(archive, out)
    assert not (tmp_path / "evil.txt").exists()
    assert list(out.iterdir()) == []  # checked before anything is written


def test_absolute_member_path_is_refused(tmp_path):
    victim = tmp_path / "victim.txt"
    archive = make_tar(tmp_path / "abs.tar", [file_member(str(victim), b"x")], mode="w")
    with pytest.raises(UnsafeArchiveError, match="absolute path"):
        extract_tar_safely(archive, tmp_path / "out")
    assert not victim.exists()


def test_special_files_are_refused(tmp_path):
    fifo = tarfile.TarInfo("pipe")
    fifo.type = tarfile.FIFOTYPE
    archive = make_tar(tmp_path / "fifo.tar.gz", [(fifo, None)])
    with pytest.raises(UnsafeArchiveError, match="FIFO"):
        extract_tar_safely(archive, tmp_path / "out")


def test_size_limit(tmp_path):
    archive = make_tar(tmp_path / "big.tar.gz", [file_member("a", b"0" * 10_000)])
    with pytest.raises(UnsafeArchiveError, match="limit"):
        extract_tar_safely(archive, tmp_path / "out", max_total_bytes=9_999)


def test_a_member_inside_a_file_member_is_refused(tmp_path):
    archive = make_tar(
        tmp_path / "t.tar.gz", [file_member("m/a", b"x"), file_member("m/a/b", b"y")]
    )
    with pytest.raises(UnsafeArchiveError, match="cannot be unpacked"):
        extract_tar_safely(archive, tmp_path / "out")


def test_truncated_or_foreign_archive_is_refused(tmp_path):
    archive = make_tar(tmp_path / "t.tar.gz", [file_member("a", payload(200_000))])
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(UnsafeArchiveError, match="truncated|not a readable"):
        extract_tar_safely(cut, tmp_path / "out")
    (tmp_path / "x.zip").write_bytes(b"PK\x03\x04 not a tar")
    with pytest.raises(UnsafeArchiveError, match="not a readable tar"):
        extract_tar_safely(tmp_path / "x.zip", tmp_path / "out2")
