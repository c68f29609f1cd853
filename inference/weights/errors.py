"""The weights manager's errors, each with the exit code of ``python -m inference weights``:
0 success, 1 other error, 2 bad command line, 3 model not found / not installed, 4 network
unreachable (the message gives the manual steps), 5 download failed (run again to resume),
6 integrity failure (hash/size mismatch, unsafe archive, wrong bundle layout), 130 interrupted."""

from __future__ import annotations

from .. import InferenceError

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
