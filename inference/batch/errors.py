"""What stops a whole batch, the message a failed clip records, and the exit codes of
``python -m inference batch``: 0 every clip done or skipped, 1 batch could not run (e.g. no worker
could load the model), 2 bad command line or no clip found, 3 finished but some clips failed,
130 cancelled."""

from __future__ import annotations

from .. import InferenceError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CLIPS_FAILED = 3
EXIT_CANCELLED = 130


class BatchError(InferenceError):
    """The batch as a whole cannot run (bad inputs, no worker could load the model, ...)."""

    exit_code = EXIT_ERROR


class NoClipsError(BatchError):
    """No input matched a video file."""

    exit_code = EXIT_USAGE


class BatchUsageError(BatchError):
    """A bad command line: an option's value, an output folder that is a file (exit 2)."""

    exit_code = EXIT_USAGE


def error_message(error: BaseException) -> str:
    from retarget import RetargetError

    if isinstance(error, InferenceError | RetargetError | OSError):
        return str(error)
    return f"{type(error).__name__}: {error}"
