"""Where ``analyze`` writes its result, and the rules that keep results from being lost
(``docs/files.md``):

- OUTPUT is never replaced when it holds a result this run did not write, unless the user asks
  (``--overwrite``) or continues the partial result there (``--resume``).
- A partial result (a checkpoint, an interrupted or failed run) never takes the place of a
  complete one: while OUTPUT holds a complete result, the run's partial results go to OUTPUT's
  partial name (``clip.partial.npz`` beside ``clip.npz``); only the finished result replaces
  OUTPUT, and the partial file is then removed. ``--resume`` continues it.
- One run at a time writes OUTPUT: an advisory lock on ``.clip.npz.lock`` beside it, held for the
  whole run; a second run fails at once instead of both reporting done and one result being lost.

Every file is written atomically (``retarget.contract.write_trajectory``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from .. import InferenceError

PARTIAL_INFIX = ".partial"  # clip.npz -> clip.partial.npz


class OutputError(InferenceError):
    """The output cannot be written (it holds another result, another run is writing it, no
    permission, ...), or a ``--resume`` file does not belong to this run (exit 5)."""


def partial_path(output: Path) -> Path:
    """Where partial results go while ``output`` holds a complete one: ``clip.partial.npz``."""
    return output.with_name(f"{output.stem}{PARTIAL_INFIX}{output.suffix}")


def is_partial(path: Path) -> bool:
    """Whether ``path`` holds a partial result of the worker. A complete result, or a file that is
    no result at all, is False: kept as something of the user's that a partial must not replace."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return "partial" in archive.files and bool(archive["partial"])
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):
        return False


@dataclass(frozen=True)
class OutputPlan:
    """The files of one run (absolute paths)."""

    final: Path  # where the complete result goes: OUTPUT
    partial: Path  # where partial results go: OUTPUT, or its partial name while OUTPUT is complete
    resume_from: Path | None  # the result that --resume continues; None: start afresh


def plan_output(output: str | os.PathLike, overwrite: bool, resume: bool) -> OutputPlan:
    """The files a run may write, or :class:`OutputError` when OUTPUT holds a result it must not
    replace (call it while holding :func:`exclusive`, so the answer stays true for the run)."""
    final = Path(os.path.abspath(output))
    beside = partial_path(final)
    if resume:
        if beside.exists() and not is_partial(final):
            return OutputPlan(final, beside, beside)  # an interrupted re-run of a complete result
        return OutputPlan(final, final, final if final.exists() else None)
    if not final.exists():
        return OutputPlan(final, final, None)
    if not overwrite:
        held = "a partial result" if is_partial(final) else "a result of an earlier run"
        raise OutputError(
            f"{final} exists and holds {held}; pass --overwrite to replace it"
            + (", or --resume to continue it" if held == "a partial result" else "")
            + ", or choose another -o"
        )
    return OutputPlan(final, final if is_partial(final) else beside, None)


def finished(plan: OutputPlan) -> None:
    """After the complete result is written: a partial result beside it is stale (resuming it
    would replace the result just written), so it goes."""
    if plan.partial != plan.final:
        plan.partial.unlink(missing_ok=True)
    partial_path(plan.final).unlink(missing_ok=True)


@contextlib.contextmanager
def exclusive(output: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of ``output`` for the block; :class:`OutputError` at once when another run
    holds it. The lock file is removed at the end (a killed run's lock dies with its process)."""
    output = Path(os.path.abspath(output))
    lock_path = output.with_name(f".{output.name}.lock")
    handle = _acquire(lock_path, output)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # removed while still held: the next run makes its own
            lock_path.unlink()
        handle.close()


def _acquire(lock_path: Path, output: Path) -> IO[str]:
    while True:
        try:
            handle = open(lock_path, "a+", encoding="utf-8")
        except OSError as error:
            raise OutputError(f"cannot write beside {output}: {error.strerror or error}") from None
        try:
            _lock(handle)
        except OSError:
            holder = _read_holder(handle)
            handle.close()
            raise OutputError(
                f"{output} is being written by another analysis ({holder}); wait for it to "
                "finish or choose another -o"
            ) from None
        # The run that held it may have removed the file between our open and our lock: then the
        # lock is on a file nobody else sees, and we take the current one.
        try:
            current = os.stat(lock_path)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(os.fstat(handle.fileno()), current):
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()}\n")
            handle.flush()
            return handle
        handle.close()


def _lock(handle: IO[str]) -> None:
    """A non-blocking exclusive lock on the open file (OSError when another process holds it)."""
    if sys.platform == "win32":
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _read_holder(handle: IO[str]) -> str:
    with contextlib.suppress(OSError):
        handle.seek(0)
        return handle.read().strip() or "another process"
    return "another process"
