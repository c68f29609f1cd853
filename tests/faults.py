"""Helpers of the fault battery (``tests/test_faults_*.py``, ``tests/blender/test_faults_*.py``):
damaged files, a full disk, a read-only file system, commands run from a user's folder.

Each fault is made real where the machine allows it (a file-size limit stands for a full disk: the
write fails with an ``OSError`` part way, as it does when the disk fills), so the entry points are
tested as a user meets them, in a subprocess.
"""

import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_MAIN_VENV = ROOT / ".venv" / "bin" / "python"
#: the main test environment (torch, OpenCV): the analysis and cleaning commands run in it
PYTHON = str(_MAIN_VENV) if _MAIN_VENV.exists() else sys.executable


def corrupt_member(path: Path, member: str = "poses3d.npy") -> Path:
    """Damage the compressed data of ``member`` of the .npz at ``path`` so that inflating it fails
    (``zlib.error``, not only a bad checksum); the zip headers stay intact."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    data = bytearray(path.read_bytes())
    header = info.header_offset
    name_length, extra_length = struct.unpack("<HH", data[header + 26 : header + 30])
    start = header + 30 + name_length + extra_length
    for offset in range(start + 16, start + info.compress_size - 64, 32):
        damaged = data.copy()
        damaged[offset : offset + 64] = bytes(b ^ 0x5A for b in damaged[offset : offset + 64])
        try:
            zlib.decompress(bytes(damaged[start : start + info.compress_size]), -zlib.MAX_WBITS)
        except zlib.error:
            path.write_bytes(bytes(damaged))
            return path
    raise AssertionError(f"could not damage {member} of {path} so that inflating it fails")


def environment(**extra: str) -> dict[str, str]:
    """The test environment with the repository importable from any working folder."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def run(
    command: list, cwd: Path = ROOT, file_size_limit: int | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``command`` (text output captured); with ``file_size_limit`` no file it writes may grow
    beyond that many bytes, so a large write fails as on a full disk (``OSError``)."""

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an OSError (EFBIG), not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=None if file_size_limit is None else limit_file_size,
    )


def _mount_namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "-m", "--", "mount", "-t", "tmpfs", "-o", "ro", "tmpfs", "/mnt"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def run_with_read_only(
    command: list, folder: Path, cwd: Path = ROOT, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``command`` while ``folder`` (created, empty) is on a read-only file system: a read-only
    tmpfs mounted over it in a private mount namespace (root), or a folder without write
    permission (other users). Skips the test where neither can be made."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return run(command, cwd, timeout=timeout)
    if not _mount_namespaces_work():
        pytest.skip("no way to make a read-only folder here (root without mount namespaces)")
    mount_then_run = 'mount -t tmpfs -o ro tmpfs "$0" && exec "$@"'
    wrapped = ["unshare", "-m", "--", "sh", "-c", mount_then_run, str(folder), *command]
    return run(wrapped, cwd, timeout=timeout)


def no_traceback(completed: subprocess.CompletedProcess) -> str:
    """The process's stderr, asserted free of Python tracebacks and ignored-exception reports."""
    assert "Traceback" not in completed.stderr, completed.stderr[-3000:]
    assert "Exception ignored" not in completed.stderr, completed.stderr[-3000:]
    return completed.stderr
