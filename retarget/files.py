"""Files that appear whole or not at all: every output of the project is written through here.

A file is written to a temporary name in its own folder, flushed to disk, given the permissions
any new file of the process would get (not the owner-only ones of a temporary file), then renamed
over the target (``os.replace``: atomic on one file system). A reader never sees half a file, and
a write that fails (a full disk, an interrupt) leaves the earlier file as it was.
"""

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    """The process's file-creation mask (read by setting it, so set it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def replacing(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` (ending in ``suffix``: some writers insist on their own)
    for a writer that takes a file name (Blender's savers and exporters); once the block ends
    without an error it becomes ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's file is private (0600)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_args: Any) -> Iterator[IO]:
    """An open stream (``mode`` "wb" or "w", ``open_args`` as for :func:`open`) whose content
    becomes ``path`` once the block ends without an error."""
    with replacing(path) as temporary, open(temporary, mode, **open_args) as stream:
        yield stream
        stream.flush()
        os.fsync(stream.fileno())


def write_text(path: str | os.PathLike, text: str) -> None:
    """``text`` (UTF-8; a file name that is not UTF-8 shows its bytes as escapes) into ``path``."""
    with atomic_write(path, "w", encoding="utf-8", errors="backslashreplace", newline="") as out:
        out.write(text)


def write_json(path: str | os.PathLike, data: object) -> None:
    """``data`` as indented JSON with sorted keys into ``path``."""
    write_text(path, json.dumps(data, indent=1, sort_keys=True))
