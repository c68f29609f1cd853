"""The batch's small files: content hashes and JSON records read leniently (written through
``retarget.files``)."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 4 * 2**20) -> str:
    """Hex SHA-256 of a file's content, read in chunks (memory flat in the file size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def read_json(path: str | os.PathLike) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
