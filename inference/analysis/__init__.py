"""One clip, ``python -m inference analyze VIDEO -o OUT.npz``: 3D poses of everyone in it.

Pipeline (``pipeline.py``): a reader thread decodes frames into a bounded queue (memory flat in
the clip length); a detection thread runs the person detector on every ``--detect-every``-th frame
ahead of the network; the main thread gathers frames into batches of ``--batch-size`` person crops
(whole network batches: people x frames; ``auto`` sizes them to the GPU's free memory, see
``inference.poses``), adds a box proposed from each tracked person's last pose where the detector
did not run or did not find them, runs the pose network on all crops of the batch at once, then
assigns the poses to tracks frame by frame (``inference.track``). While nobody is tracked, every
frame of the batch is searched. With ``--box`` only that person is followed (and kept however
short their track).

Output (``results.py``, ``outputs.py``): the trajectory contract (``retarget.contract``), written
atomically. An existing OUTPUT is only replaced with ``--overwrite`` (or continued with
``--resume``), and a partial result never replaces a complete one: it goes to
``<name>.partial.npz`` beside it until the run finishes; one run at a time writes OUTPUT
(``docs/files.md``). ``extras`` holds ``partial`` (bool: the run was interrupted; resume it with
``--resume``), ``source_frames`` (i32 [T]: source frame index of each row), ``detector`` (str)
and ``worker_settings`` (JSON; its ``batch_size`` is the crops per network call the run started
with, automatic or not). A box whose score is 0 was proposed from the previous pose, not
detected. A partial result keeps every track; the final one drops tracks shorter than
``--min-track-frames`` and keeps the ``--max-people`` present longest. ``source`` is the video
path and a SHA-256 of its size and first and last MiB.

The modules, in the order a run uses them:

==============  ===========================================================================
``settings``    :class:`Settings` and the command-line options that make them
``models``      the device, the pose estimator and the detector (:class:`ModelLoader`)
``engine``      :func:`analyze`, the library entry: checks, output lock, resume, the run
``pipeline``    batches of frames: decode, detect, propose, estimate, track
``results``     the trajectory of the rows so far, its write, the partial result to resume
``outputs``     which files a run may write, and its lock (``docs/files.md``)
``events``      the events of a run (:class:`AnalysisEvents`); JSON lines on stdout
``errors``      the errors and the exit codes of ``analyze``
``cli``         the command: argv -> settings, signals -> stop, errors -> exit codes
==============  ===========================================================================

As a library (the batch does this, with ``Models`` loaded once for many clips)::

    settings = Settings(video="clip.mp4", output="clip.npz")
    result = analyze(settings, ModelLoader(), ProgressReporter(), threading.Event())
    result.trajectory, result.path, result.partial
"""

from .cli import main, run
from .engine import AnalysisResult, Stop, analyze
from .errors import (
    EXIT_ERROR,
    EXIT_INPUT,
    EXIT_MODEL,
    EXIT_OK,
    EXIT_OUTPUT,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_USAGE,
    InputError,
    ModelUnavailableError,
    UsageError,
    describe_failure,
)
from .events import AnalysisEvents, Finished, ProgressReporter, Started
from .models import (
    ModelLoader,
    Models,
    ModelSource,
    PoseEstimatorLike,
    load_detector,
    load_pose_estimator,
    model_id,
    resolve_device,
)
from .outputs import OutputError
from .settings import Settings, configure_parser, settings_from_args, settings_from_options

__all__ = [
    "EXIT_ERROR",
    "EXIT_INPUT",
    "EXIT_MODEL",
    "EXIT_OK",
    "EXIT_OUTPUT",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "EXIT_USAGE",
    "AnalysisEvents",
    "AnalysisResult",
    "Finished",
    "InputError",
    "ModelLoader",
    "ModelUnavailableError",
    "Models",
    "ModelSource",
    "OutputError",
    "PoseEstimatorLike",
    "ProgressReporter",
    "Settings",
    "Started",
    "Stop",
    "UsageError",
    "analyze",
    "configure_parser",
    "describe_failure",
    "load_detector",
    "load_pose_estimator",
    "main",
    "model_id",
    "resolve_device",
    "run",
    "settings_from_args",
    "settings_from_options",
]
