"""Full SHA-256 digests of large files (model weights), remembered by size and modification time.

Hashing a 500 MB checkpoint takes seconds and every analysis checks its model, so a digest is kept
in a JSON store (``file_hashes.json`` in the model cache) under the file's absolute path with its
size and ``mtime_ns``, and computed again whenever either changed: a file rewritten in place gets
a new mtime, so changed bytes are always hashed anew. A store that cannot be read or written only
costs the hashing time.
"""

import json
import logging
from pathlib import Path

from retarget.files import write_json

from ..download import sha256_file

log = logging.getLogger(__name__)

STORE_NAME = "file_hashes.json"


def _key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def _read(store: Path) -> dict:
    try:
        data = json.loads(store.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def remember(path: Path, digest: str, store: Path) -> None:
    """Record ``digest`` as the SHA-256 of ``path`` as it is now (size and mtime)."""
    name, size, mtime = _key(Path(path))
    data = _read(store)
    data[name] = {"size": size, "mtime_ns": mtime, "sha256": digest}
    try:
        write_json(store, data)
    except OSError as error:
        log.debug("cannot remember the hash of %s: %s", path, error)


def file_digest(path: Path, store: Path) -> str:
    """Hex SHA-256 of the whole file ``path``; from ``store`` while its size and mtime are those
    recorded, else hashed (and remembered)."""
    path = Path(path)
    name, size, mtime = _key(path)
    known = _read(store).get(name)
    if isinstance(known, dict) and known.get("size") == size and known.get("mtime_ns") == mtime:
        return str(known["sha256"])
    digest = sha256_file(path)
    remember(path, digest, store)
    return digest
