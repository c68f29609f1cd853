"""What can go wrong in an analysis, and the exit code of each (the ``analyze`` command's).

Exit codes:
  0    success (also: no person found — an empty result and a warning)
  1    unexpected internal error (details in the log on stderr)
  2    bad command line
  3    unusable input: video or image sequence missing, empty, not a video, undecodable;
       bad --box, --device, camera file, frame range, or an output name not ending in .npz
  4    no usable model: pose model not installed or broken bundle, detector weights unusable
  5    output cannot be written: it exists (pass --overwrite, or --resume for a partial result),
       another analysis is writing it, a file stands where its folder should be, no permission,
       a full disk; or the --resume file does not match this run
  130  interrupted by SIGINT (Ctrl-C), 143 by SIGTERM: the partial result was written
"""

from __future__ import annotations

import logging
import traceback

from .. import InferenceError
from .outputs import OutputError

logger = logging.getLogger(__name__)


EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_MODEL = 4
EXIT_OUTPUT = 5
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class InputError(InferenceError):
    """An argument or input file that cannot be used (exit code 3)."""


class ModelUnavailableError(InferenceError):
    """No pose model can be loaded (exit code 4); the message names the command that fixes it."""


class UsageError(InferenceError):
    """Options that the command line would refuse (exit code 2)."""


def describe_failure(error: Exception) -> tuple[int, str]:
    """The exit code of an error of :func:`analyze` and its message for humans; an internal error
    (a bug) is logged with its traceback."""
    code = _exit_code(error)
    if code != EXIT_ERROR:
        return code, str(error)
    logger.error("internal error:\n%s", traceback.format_exc())
    return code, f"internal error: {type(error).__name__}: {error} (details in the log)"


def _exit_code(error: BaseException) -> int:
    from retarget.contract import ContractError

    from ..camera import CameraError
    from ..detect import DetectorWeightsError
    from ..video import VideoError

    if isinstance(error, VideoError | CameraError | InputError):
        return EXIT_INPUT
    if isinstance(error, OutputError):
        return EXIT_OUTPUT
    if isinstance(error, ModelUnavailableError | DetectorWeightsError):
        return EXIT_MODEL
    if isinstance(error, ContractError):
        return EXIT_ERROR
    module = type(error).__module__
    if isinstance(error, InferenceError) and module.startswith(
        ("inference.model", "inference.weights", "inference.download", "inference.poses")
    ):
        return EXIT_MODEL
    return EXIT_ERROR
