"""``python -m inference analyze VIDEO -o OUT.npz``: 3D poses of everyone in a clip.

Pipeline: a reader thread decodes frames into a bounded queue (memory flat in the clip length); a
detection thread runs the person detector on every ``--detect-every``-th frame ahead of the
network; the main thread gathers frames into batches of ``--batch-size`` person crops (whole
network batches: people x frames; ``auto`` sizes them to the GPU's free memory, see
``inference.poses``), adds a box proposed from each tracked person's last pose where
the detector did not run or did not find them, runs the pose network on all crops of the batch at
once, then assigns the poses to tracks frame by frame (``inference.track``). While nobody is
tracked, every frame of the batch is searched. With ``--box`` only that person is followed
(and kept however short their track).

Output: the trajectory contract (``retarget.contract``), written atomically. An existing OUTPUT is
only replaced with ``--overwrite`` (or continued with ``--resume``), and a partial result never
replaces a complete one: it goes to ``<name>.partial.npz`` beside it until the run finishes; one
run at a time writes OUTPUT (``inference.outputs``, ``docs/files.md``). ``extras`` holds
``partial`` (bool: the run was interrupted; resume it with ``--resume``), ``source_frames`` (i32 [T]:
source frame index of each row), ``detector`` (str) and ``worker_settings`` (JSON; its
``batch_size`` is the crops per network call the run started with, automatic or not). A box whose
score is 0 was proposed from the previous pose, not detected. A partial result keeps every track;
the final one drops tracks shorter than ``--min-track-frames`` and keeps the ``--max-people``
present longest. ``source`` is the video path and a SHA-256 of its size and first and last MiB.

Progress: JSON lines on stdout (``inference.progress``), logs on stderr.

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

import argparse
import contextlib
import hashlib
import json
import logging
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

import numpy as np

from . import InferenceError
from .outputs import OutputError, OutputPlan
from .progress import AnalysisEvents, Finished, ProgressReporter, Started

if TYPE_CHECKING:
    from retarget.contract import Trajectory

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_MODEL = 4
EXIT_OUTPUT = 5
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

DEFAULT_SKELETON = "smpl+head_30"  # the project's canonical joint set (retarget.skeletons)
DETECTOR_CHOICES = "auto, hog, none, a detector name from `weights list` (e.g. yolox_s) or a .pth"
PROPOSAL_COVERED_IOU = 0.3  # a track whose predicted box overlaps a detection this much needs none
TRACKING_ONLY_FRAMES = 4  # frames per batch when no detector runs (--detector none)
MAX_BATCH_BYTES = 1 << 30  # frames held for one batch at most (8K frames are 100 MB each)


class InputError(InferenceError):
    """An argument or input file that cannot be used (exit code 3)."""


class ModelUnavailableError(InferenceError):
    """No pose model can be loaded (exit code 4); the message names the command that fixes it."""


class UsageError(InferenceError):
    """Options that the command line would refuse (exit code 2)."""


class PoseEstimatorLike(Protocol):
    """What the worker needs of a pose estimator (``inference.poses.PoseEstimator``)."""

    def estimate(
        self, frames: list[np.ndarray], boxes: list[np.ndarray], intrinsics: np.ndarray
    ) -> list[Any]:
        """Per frame an object (or mapping) with ``poses3d`` (n, J, 3) mm, ``poses2d`` (n, J, 2)
        px and ``uncertainty`` (n, J)."""
        ...


@dataclass(frozen=True)
class Settings:
    """One analysis run, from the command line."""

    video: str
    output: str
    model: str | None = None  # name or path; None: the default model
    skeleton: str | None = None  # output joint set of the model; None: smpl+head_30 if it has it
    detector: str = "auto"
    detect_every: int = 1  # run the detector on every n-th frame (tracks fill the others)
    detection_threshold: float | None = None  # None: the detector's own default
    box: tuple[float, float, float, float] | None = None  # x, y, w, h in the first frame
    max_people: int | None = None
    min_track_frames: int = 5
    start: int = 0
    stop: int | None = None
    stride: int = 1
    sequence_fps: float | None = None
    fov: float | None = None
    focal_mm: float | None = None
    sensor_width: float | None = None
    intrinsics: str | None = None
    batch_size: int | None = None  # crops per network call; None: automatic (inference.poses)
    tta: int = 1
    device: str = "auto"
    resume: bool = False
    overwrite: bool = False  # replace an OUTPUT this run did not write
    checkpoint_every_s: float = 60.0


# ------------------------------------------------------------------------------------------------
# Command line


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--box must be x,y,w,h numbers, got {text!r}") from None
    if len(values) != 4 or not all(np.isfinite(values)) or values[2] <= 0 or values[3] <= 0:
        raise argparse.ArgumentTypeError(
            f"--box must be x,y,w,h with a positive width and height in pixels, got {text!r}"
        )
    return values  # type: ignore[return-value]


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {value}")
        return value

    return parse


_positive_int, _non_negative_int = _int_at_least(1), _int_at_least(0)


def _batch_size_arg(text: str) -> int | None:
    """``--batch-size``: ``auto`` (None) or a whole number >= 1."""
    return None if text.strip().lower() == "auto" else _positive_int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _score(text: str) -> float:
    """``--detection-threshold``: a detector score, above 0 and at most 1 (scores are
    probabilities; a larger threshold would silently find nobody)."""
    value = _positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(
            f"detector scores lie between 0 and 1, got {text!r}; try 0.3 (YOLOX) or 0.5 (HOG)"
        )
    return value


def _fov(text: str) -> float:
    """``--fov``: degrees, above 0 and below 180."""
    value = _positive_float(text)
    if value >= 180:
        raise argparse.ArgumentTypeError(f"a field of view lies below 180 degrees, got {text!r}")
    return value


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``analyze``; argument errors are also reported as a JSON ``error`` event."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__[__doc__.index("Exit codes:") :]
    _add_arguments(parser)
    _report_usage_errors(parser)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="video file, folder of images, or pattern (img_%%04d.png)")
    parser.add_argument("-o", "--output", required=True, help="trajectory file to write (.npz)")
    model = parser.add_argument_group("models")
    model.add_argument(
        "--model",
        help="pose model: a name from `python -m inference weights list`, a bundle folder or "
        ".tar.gz (default: the official MeTRAbs model, once downloaded)",
    )
    model.add_argument(
        "--skeleton", metavar="NAME",
        help=f"output joint set of the model (default {DEFAULT_SKELETON} when the model has it)",
    )  # fmt: skip
    model.add_argument("--detector", default="auto", help=f"person detector: {DETECTOR_CHOICES}")
    model.add_argument(
        "--detect-every", type=_positive_int, default=1, metavar="N",
        help="run the detector every N frames; poses propose the boxes in between (default 1: "
        "more for speed, with a model whose poses are good enough to follow people)",
    )  # fmt: skip
    model.add_argument(
        "--detection-threshold", type=_score, metavar="SCORE",
        help="keep detections scoring at least this, 0-1 (default: the detector's own)",
    )  # fmt: skip
    model.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    model.add_argument(
        "--batch-size", type=_batch_size_arg, metavar="N|auto",
        help="person crops per network call; auto (default): fitted to the GPU's free memory "
        "(backing off if it runs out), 16 on the CPU",
    )  # fmt: skip
    model.add_argument(
        "--tta", type=_positive_int, default=1, metavar="N",
        help="test-time augmentation: N crops per person (rotations, flip), averaged (default 1; "
        "the official wrapper uses 5)",
    )  # fmt: skip
    people = parser.add_argument_group("people")
    people.add_argument(
        "--box", type=_box, metavar="X,Y,W,H",
        help="analyse only the person in this box of the first frame (pixels)",
    )  # fmt: skip
    people.add_argument("--max-people", type=_positive_int, metavar="N")
    people.add_argument(
        "--min-track-frames", type=_positive_int, default=5, metavar="N",
        help="drop people seen in fewer frames (default 5)",
    )  # fmt: skip
    frames = parser.add_argument_group("frames")
    frames.add_argument("--start", type=_non_negative_int, default=0, metavar="FRAME")
    frames.add_argument("--stop", type=_positive_int, metavar="FRAME", help="exclusive")
    frames.add_argument("--stride", type=_positive_int, default=1, metavar="N")
    frames.add_argument(
        "--sequence-fps", type=_positive_float, metavar="FPS",
        help="frame rate of an image sequence (default 30)",
    )  # fmt: skip
    camera = parser.add_argument_group("camera (one of; default: 55 deg field of view)")
    camera.add_argument("--fov", type=_fov, metavar="DEG", help="on the longer side")
    camera.add_argument("--focal-mm", type=_positive_float, metavar="MM")
    camera.add_argument(
        "--sensor-width", type=_positive_float, metavar="MM",
        help="with --focal-mm; spans the longer side (default 36, full frame)",
    )  # fmt: skip
    camera.add_argument(
        "--intrinsics", metavar="FILE",
        help="camera file: JSON with K / camera_matrix / fx,fy,cx,cy (+ image_size), .npy or text 3x3",
    )  # fmt: skip
    run = parser.add_argument_group("run")
    run.add_argument("--resume", action="store_true", help="continue a partial result in OUTPUT")
    run.add_argument(
        "--overwrite", action="store_true",
        help="replace an existing OUTPUT (default: refuse); until the run finishes, its partial "
        "results go to <name>.partial.npz and OUTPUT keeps its complete result",
    )  # fmt: skip
    run.add_argument(
        "--checkpoint-every", type=float, default=60.0, metavar="SECONDS", dest="checkpoint_every_s",
        help="write a partial result this often (0: never; default 60)",
    )  # fmt: skip
    run.add_argument("-v", "--verbose", action="store_true", help="debug logs on stderr")


def _report_usage_errors(parser: argparse.ArgumentParser) -> None:
    """Make argument errors also emit a protocol ``error`` event before argparse exits with 2."""
    original = parser.error

    def error(message: str) -> None:
        ProgressReporter().emit(
            "error", message=f"bad command line: {message}", exit_code=EXIT_USAGE
        )
        original(message)

    parser.error = error  # type: ignore[method-assign]


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings of a parsed ``analyze`` command line."""
    fields = Settings.__dataclass_fields__
    return Settings(**{key: value for key, value in vars(args).items() if key in fields})


def settings_from_options(options: Sequence[str]) -> Settings:
    """The settings of ``analyze`` options without the video and the output (the batch gives every
    clip the same options and sets those two per clip); :class:`UsageError` for a bad option."""
    parser = argparse.ArgumentParser(prog="python -m inference analyze", add_help=False)
    _add_arguments(parser)

    def refuse(message: str) -> None:
        raise UsageError(message)

    parser.error = refuse  # type: ignore[method-assign]
    # video and output change per clip; placeholders satisfy the required arguments
    return settings_from_args(parser.parse_args(["<video>", "-o", "<output>.npz", *options]))


# ------------------------------------------------------------------------------------------------
# Models


def resolve_device(spec: str) -> str:
    """The torch device of ``--device`` (auto: CUDA when there is one), checked to exist here."""
    if spec == "cpu":
        return spec  # no need to import torch to know
    import torch

    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise InputError(
            f"--device {spec!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {spec}: CUDA is not available here; use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise InputError(f"--device {spec}: this machine has {count} CUDA device(s), "
                             f"cuda:0 to cuda:{count - 1}")  # fmt: skip
    elif device.type != "cpu":
        raise InputError(f"--device {spec}: only cpu and cuda devices are supported")
    return spec


def warn_if_offline_default(settings: Settings, events: AnalysisEvents) -> None:
    """Say so when no pose model was named and none is installed, so the bundled synthetic one
    runs: its results on real footage are not usable."""
    from . import weights

    if settings.model is None and weights.default_pose_model() == weights.OFFLINE_POSE_MODEL:
        events.warning(
            f"No official MeTRAbs model is installed: using the bundled demo model "
            f"{weights.OFFLINE_POSE_MODEL}, trained on synthetic people only (fine for the demo, "
            f"not for real footage). Install the official one with `python -m inference weights "
            f"download {weights.DEFAULT_POSE_MODEL}`."
        )


def load_pose_estimator(settings: Settings, device: str) -> PoseEstimatorLike:
    """The pose estimator for ``settings.model`` (default: the official model when installed, else
    the bundled offline model), via the weights manager and the bundle loader;
    :class:`ModelUnavailableError` says how to install one."""
    from . import weights

    name = settings.model or weights.default_pose_model()
    try:
        folder = weights.resolve_model(name)
    except weights.WeightsError as error:
        raise ModelUnavailableError(str(error)) from None
    from .model import load_bundle
    from .poses import EstimatorConfig, PoseEstimator

    bundle = load_bundle(folder)
    skeleton, info = _choose_skeleton(bundle.skeleton_infos, settings.skeleton, name)
    indices, names, edges, bundle_names = _canonical_joints(skeleton, info, name)
    model = bundle.model.prepare_for_inference(device)
    config = EstimatorConfig(num_aug=settings.tta, batch_size=settings.batch_size)
    estimator = PoseEstimator(
        model,
        bundle.joint_names,
        device,
        config,
        joint_transform_matrix=bundle.joint_transform_matrix,
        skeleton_indices=indices,
        output_joint_names=names,
    )
    estimator.skeleton = skeleton
    estimator.joint_edges = edges
    estimator.bundle_joint_names = bundle_names
    digest = weights.model_digest(folder)  # all of its bytes: another model is another id
    estimator.model_id = f"{name if settings.model is None else Path(name).name} {digest}".strip()
    logger.info("pose model %s, skeleton %s", estimator.model_id, skeleton)
    return estimator


def _choose_skeleton(
    infos: dict[str, dict[str, Any]], wanted: str | None, model_name: str
) -> tuple[str, dict[str, Any]]:
    """The output skeleton: ``wanted``, else the project's canonical one, else the bundle's first."""
    if wanted is not None:
        if wanted not in infos:
            raise InputError(
                f"--skeleton {wanted}: model {model_name} has {', '.join(sorted(infos))}"
            )
        return wanted, infos[wanted]
    name = DEFAULT_SKELETON if DEFAULT_SKELETON in infos else next(iter(infos))
    return name, infos[name]


def _canonical_joints(
    skeleton: str, info: dict[str, Any], model_name: str
) -> tuple[np.ndarray, tuple[str, ...], np.ndarray, tuple[str, ...]]:
    """(indices, names, edges, bundle's names) of the output joints: a skeleton the contract knows
    in its canonical names and order, whatever the bundle calls them; another one as it is."""
    from retarget.joints import JointNamesError, skeleton_order
    from retarget.skeletons import SKELETONS

    indices = np.asarray(info["indices"], np.int64)
    names = tuple(str(n) for n in info["names"])
    edges = np.asarray(info["edges"], np.int32).reshape(-1, 2)
    known = SKELETONS.get(skeleton)
    if known is None:
        return indices, names, edges, names
    try:
        order = skeleton_order(names, known)
    except JointNamesError as error:
        raise ModelUnavailableError(f"model {model_name}: {error}") from None
    return indices[order], known.joint_names, known.edges, tuple(names[i] for i in order)


def load_detector(settings: Settings, device: str, events: AnalysisEvents) -> Any | None:
    """The person detector for ``settings.detector``; None for ``none``. ``auto`` takes the first
    installed YOLOX detector, else the bundled synthetic detector when the pose model is the
    bundled synthetic one (the offline default pair), else OpenCV's HOG with a warning."""
    from .detect import make_detector

    spec = settings.detector
    if spec == "none":
        return None
    threshold = settings.detection_threshold
    if spec == "auto":
        from . import weights

        for name in weights.AUTO_DETECTORS:
            if weights.installed_path(weights.get_entry(name)) is not None:
                try:
                    path = weights.resolve_model(name)  # checks its bytes are those installed
                except weights.WeightsError as error:
                    raise ModelUnavailableError(str(error)) from None
                logger.info("detector: %s (%s)", name, path)
                return make_detector(str(path), device, threshold)
        if (settings.model or weights.default_pose_model()) == weights.OFFLINE_POSE_MODEL:
            path = weights.resolve_model(weights.OFFLINE_DETECTOR)
            logger.info("detector: %s (%s)", weights.OFFLINE_DETECTOR, path)
            return make_detector(str(path), device, threshold)
        events.warning(
            "No YOLOX person detector is installed; using OpenCV's HOG detector (slower, misses "
            "people who are not upright). Install one with `python -m inference weights download "
            "yolox_s`."
        )
        return make_detector("hog", device, threshold)
    if spec != "hog" and not spec.lower().endswith((".pth", ".pt")):
        from . import weights

        try:
            spec = str(weights.resolve_model(spec))
        except weights.WeightsError as error:
            raise ModelUnavailableError(str(error)) from None
    return make_detector(spec, device, threshold)


def model_id(estimator: PoseEstimatorLike, settings: Settings) -> str:
    """How a result names its model (its ``model`` key): the estimator's id (name and weights
    hash), else ``--model``."""
    return str(getattr(estimator, "model_id", "") or settings.model or "unknown-model")


@dataclass(frozen=True)
class Models:
    """The models of an analysis, loaded."""

    estimator: PoseEstimatorLike
    detector: Any | None  # ``detect(images) -> [(n, 5) boxes]``; None: poses alone follow people


@dataclass(frozen=True)
class ModelLoader:
    """Loads the models that the settings name, on a device; either loader may be replaced
    (tests and benchmarks bring their own models). Called by :func:`analyze` once the input and
    the output are known to be usable, so a bad video is reported before a slow model load."""

    estimator: Callable[[Settings, str], PoseEstimatorLike] = load_pose_estimator
    detector: Callable[[Settings, str, AnalysisEvents], Any | None] = load_detector

    def __call__(self, settings: Settings, device: str, events: AnalysisEvents) -> Models:
        if self.estimator is load_pose_estimator:
            warn_if_offline_default(settings, events)
        estimator = self.estimator(settings, device)
        return Models(estimator, self.detector(settings, device, events))


def _tuned_batch_size(estimator: Any, settings: Settings, image_size: tuple[int, int]) -> int:
    """Crops per network call: the estimator's (tuned for ``image_size`` if automatic), else
    ``--batch-size`` or the CPU default; logged."""
    tune = getattr(estimator, "tune_batch_size", None)
    if tune is not None:
        size = int(tune(image_size))
    else:
        from .poses import CPU_BATCH_SIZE

        size = settings.batch_size or CPU_BATCH_SIZE
    how = "automatic" if settings.batch_size is None else "--batch-size"
    logger.info("batch size: %d crops per network call (%s)", size, how)
    return size


def _joint_info(
    estimator: PoseEstimatorLike,
) -> tuple[tuple[str, ...], np.ndarray, str, tuple[str, ...] | None]:
    """Joint names, edges (E, 2), skeleton name and the model's own names (None: the same) of the
    estimator's output joints."""
    from retarget.skeletons import SKELETONS

    names = getattr(estimator, "output_joint_names", None) or estimator.joint_names
    names = tuple(str(n) for n in names)
    skeleton = str(getattr(estimator, "skeleton", "") or "")
    edges = getattr(estimator, "joint_edges", None)
    known = next((s for s in SKELETONS.values() if s.joint_names == names), None)
    if known is not None:
        skeleton = skeleton or known.name
        edges = known.edges if edges is None else edges
    edges = np.zeros((0, 2), np.int32) if edges is None else np.asarray(edges, np.int32)
    bundle_names = getattr(estimator, "bundle_joint_names", None)
    bundle_names = None if bundle_names is None or tuple(bundle_names) == names else bundle_names
    return names, edges.reshape(-1, 2), skeleton or f"custom_{len(names)}", bundle_names


def _unpack(result: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(poses3d, poses2d, uncertainty) of one frame's estimate (object or mapping)."""
    get = result.get if isinstance(result, dict) else lambda key: getattr(result, key)
    return get("poses3d"), get("poses2d"), get("uncertainty")


# ------------------------------------------------------------------------------------------------
# Interruption


class Interrupt:
    """SIGINT/SIGTERM handler, the command line's stop condition of :func:`analyze`: the first
    signal asks to stop after the current batch; a second one stops at once (KeyboardInterrupt) —
    completed batches are still saved — except while the result is being written
    (:meth:`writing`), which a signal must not break off."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}
        self._writing = False

    def _handle(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if self.signal is not None and self._writing:
            logger.warning("%s received again: stopping once the result is written", name)
        elif self.signal is not None:
            raise KeyboardInterrupt
        else:
            self.signal = signum
            logger.warning("%s received: finishing the current batch", name)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """A block that writes the result: a second signal waits for its end."""
        self._writing = True
        try:
            yield
        finally:
            self._writing = False

    def __call__(self) -> bool:
        """Whether a signal asked to stop."""
        return self.signal is not None

    @property
    def exit_code(self) -> int:
        return EXIT_SIGTERM if self.signal == signal.SIGTERM else EXIT_SIGINT

    def __enter__(self) -> Interrupt:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


# ------------------------------------------------------------------------------------------------
# The analysis


def source_fingerprint(path: str) -> str:
    """``path sha256:<hex>``: SHA-256 of the size and the first and last MiB of a file (whole
    videos are too large to hash on every run), or of the names of a sequence's images (not their
    sizes: an image fixed or replaced after a run stopped on it keeps the sequence resumable)."""
    digest = hashlib.sha256()
    target = Path(path)
    if target.is_file():
        size = target.stat().st_size
        digest.update(str(size).encode())
        with open(target, "rb") as handle:
            digest.update(handle.read(1 << 20))
            if size > 2 << 20:
                handle.seek(-(1 << 20), os.SEEK_END)
                digest.update(handle.read(1 << 20))
    else:
        from .video import _sequence_files

        for name in _sequence_files(path) or []:
            digest.update(f"{os.path.basename(name)};".encode())
    return f"{os.path.abspath(path)} sha256:{digest.hexdigest()[:32]}"


@dataclass
class RunState:
    """Rows processed so far (one per analysed frame) and the tracker holding the people."""

    frame_times: list[float]
    source_frames: list[int]
    tracker: Any

    @property
    def num_rows(self) -> int:
        return len(self.frame_times)


class Analysis:
    """Batches frames, detects, proposes, estimates and tracks; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        estimator: PoseEstimatorLike,
        detector: Any | None,
        intrinsics: np.ndarray,
        image_size: tuple[int, int],
        num_joints: int,
        state: RunState,
        batch_size: int,
    ) -> None:
        self.settings = settings
        self.estimator = estimator
        # Used by the detection thread and, while nobody is tracked, by the main thread.
        self.detector = None if detector is None else _LockedDetector(detector)
        self.intrinsics = intrinsics
        self.image_size = image_size
        self.num_joints = num_joints
        self.state = state
        self.batch_size = batch_size  # crops per network call (all augmentations of a box count)
        self.crops = 0  # person crops estimated so far

    def frames_per_batch(self, frame_bytes: int) -> int:
        """Frames to gather so a batch holds about ``batch_size`` crops (people x frames)."""
        if self.settings.box is not None and self.state.num_rows == 0:
            return 1  # the user's box first, so the next frames get boxes proposed from its pose
        tracker = self.state.tracker
        last_time = self.state.frame_times[-1] if self.state.frame_times else 0.0
        live = len(tracker.live_tracks(last_time))
        # Nobody to follow: ``_detect`` searches every frame of the batch, sized as if one person
        # were found in each (a batch of single frames would run the network on one crop at a
        # time, at several times the cost per crop).
        people = max(1, live)
        # people x frames = lcm(people, boxes per call): whole network batches, none half empty.
        boxes_per_call = max(1, self.batch_size // self.settings.tta)
        frames = boxes_per_call // math.gcd(people, boxes_per_call)
        frames = min(frames, MAX_BATCH_BYTES // max(1, frame_bytes))
        if self.detector is None:
            # Without detections inside the batch, every box is extrapolated from the pose at the
            # batch start: keep that short so fast or turning people stay inside their crops.
            frames = min(frames, TRACKING_ONLY_FRAMES)
        return max(1, frames)

    def _detect(self, items: list[tuple[Any, np.ndarray | None]]) -> dict[int, np.ndarray]:
        """Detector boxes ``(n, 5)`` by position in the batch: those the detection stage found on
        its cadence frames, plus — while nobody is tracked — every other frame of the batch."""
        if self.detector is None:
            return {}
        found = {i: boxes for i, (_, boxes) in enumerate(items) if boxes is not None}
        tracker = self.state.tracker
        last_time = self.state.frame_times[-1] if self.state.frame_times else -np.inf
        if self.settings.box is None and not tracker.live_tracks(last_time):
            missing = [i for i in range(len(items)) if i not in found]
            if missing:
                boxes = self.detector.detect([items[i][0].image for i in missing])
                found.update(zip(missing, boxes, strict=True))
        limit = None if self.settings.max_people is None else self.settings.max_people + 2
        return {
            i: np.asarray(boxes, np.float32).reshape(-1, 5)[:limit] for i, boxes in found.items()
        }

    def _crop_boxes(
        self, frames: list[Any], detections: dict[int, np.ndarray], seed_row: int | None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per frame: boxes (n, 5) to estimate and, per box, the track id it was proposed for."""
        tracker = self.state.tracker
        margin = tracker.params.proposal_margin
        anchors: dict[int, tuple[float, np.ndarray]] = {}  # track id -> (time, box) in this batch
        out = []
        for i, frame in enumerate(frames):
            row = self.state.num_rows + i
            if row == seed_row:
                box = np.array([[*self.settings.box, 1.0]], np.float32)
                out.append((box, np.array([-1])))
                continue
            boxes = detections.get(i, np.zeros((0, 5), np.float32))
            proposals = tracker.proposals(frame.time, self.image_size, anchors)
            covered = _covering_detections([box for _, box in proposals], boxes[:, :4])
            proposed, owners = [], []
            for (track_id, box), detection in zip(proposals, covered, strict=True):
                if detection >= 0:
                    # Found by the detector: later frames of the batch start from this box
                    # (shrunk to a pose extent) instead of extrapolating from the batch start.
                    detected = boxes[detection, :4].astype(np.float64)
                    anchors[track_id] = (frame.time, _shrink(detected, margin))
                    continue
                proposed.append([*box, 0.0])
                owners.append(track_id)
            all_boxes = np.concatenate([boxes, np.array(proposed, np.float32).reshape(-1, 5)])
            out.append((all_boxes, np.array([-1] * len(boxes) + owners, np.int64)))
        return out

    def _estimate(self, images: list[np.ndarray], boxes: list[np.ndarray]) -> list[tuple]:
        """Poses for the boxes of every frame, in one call (the estimator backs off on running
        out of GPU memory; later batches follow its smaller size)."""
        if not any(len(b) for b in boxes):
            empty = (np.zeros((0, self.num_joints, 3)), np.zeros((0, self.num_joints, 2)),
                     np.zeros((0, self.num_joints)))  # fmt: skip
            return [empty for _ in images]
        results = self.estimator.estimate(images, [b[:, :4] for b in boxes], self.intrinsics)
        self.batch_size = min(
            self.batch_size, getattr(self.estimator, "crops_per_batch", self.batch_size)
        )
        self.crops += sum(len(b) for b in boxes)
        return [_unpack(result) for result in results]

    def process(self, items: list[tuple[Any, np.ndarray | None]]) -> None:
        """Analyse one batch of ``(frame, detector boxes or None)`` and append their rows."""
        from .track import Candidates

        frames = [frame for frame, _ in items]
        first_row = self.state.num_rows
        rows = list(range(first_row, first_row + len(frames)))
        seed_row = 0 if self.settings.box is not None and first_row == 0 else None
        images = [frame.image for frame in frames]
        detections = self._detect(items)
        crop_boxes = self._crop_boxes(frames, detections, seed_row)
        estimates = self._estimate(images, [boxes for boxes, _ in crop_boxes])
        tracker = self.state.tracker
        for frame, row, (boxes, owners), (poses3d, poses2d, uncertainty) in zip(
            frames, rows, crop_boxes, estimates, strict=True
        ):
            candidates = Candidates(
                boxes.astype(np.float32),
                np.asarray(poses3d, np.float32).reshape(-1, self.num_joints, 3),
                np.asarray(poses2d, np.float32).reshape(-1, self.num_joints, 2),
                np.asarray(uncertainty, np.float32).reshape(-1, self.num_joints),
                owners,
            )
            if row == seed_row:
                tracker.seed(row, frame.time, candidates)
            else:
                tracker.update(row, frame.time, candidates)
            self.state.frame_times.append(frame.time)
            self.state.source_frames.append(frame.index)


def _covering_detections(proposals: list[np.ndarray], detections: np.ndarray) -> list[int]:
    """For each proposed box, the detection that covers it (-1: none), one detection per proposal
    at most: greedily by IoU, down to ``PROPOSAL_COVERED_IOU``. Two people merged into one
    detection box leave one of them with a proposal of their own."""
    from .detect.nms import box_iou

    covered = [-1] * len(proposals)
    if not proposals or not len(detections):
        return covered
    overlap = box_iou(np.array(proposals), detections)
    while overlap.size and overlap.max() >= PROPOSAL_COVERED_IOU:
        proposal, detection = np.unravel_index(int(overlap.argmax()), overlap.shape)
        covered[proposal] = int(detection)
        overlap[proposal, :] = -1
        overlap[:, detection] = -1
    return covered


def _shrink(box: np.ndarray, margin: float) -> np.ndarray:
    """Undo an enlargement by ``margin`` x size on each side: ``(4,)`` x, y, w, h."""
    size = box[2:] / (1 + 2 * margin)
    return np.concatenate([box[:2] + margin * size, size])


def _trajectory(
    state: RunState,
    settings: Settings,
    info: Any,
    intrinsics: np.ndarray,
    joints: tuple[tuple[str, ...], np.ndarray, str, tuple[str, ...] | None],
    source: str,
    model_id: str,
    detector_name: str,
    partial: bool,
) -> Any:
    """The contract object of the rows so far (all tracks if ``partial``, else the selected)."""
    from retarget.contract import Trajectory

    from .track import select_tracks, stack_tracks

    names, edges, skeleton, bundle_names = joints
    tracks = state.tracker.tracks
    if not partial:
        # The person the user boxed is kept however short their track.
        min_frames = 1 if settings.box else min(settings.min_track_frames, max(1, state.num_rows))
        tracks = select_tracks(tracks, min_frames, settings.max_people)
    arrays = stack_tracks(tracks, state.num_rows, len(names))
    worker_settings = {
        key: value for key, value in asdict(settings).items() if key not in ("resume", "overwrite")
    }
    return Trajectory(
        frame_times=np.asarray(state.frame_times, np.float64),
        fps=float(info.fps) / settings.stride,
        image_size=np.array([info.width, info.height], np.int32),
        intrinsics=intrinsics,
        joint_names=names,
        joint_edges=edges,
        skeleton=skeleton,
        source=source,
        model=model_id,
        extras={
            "partial": np.array(partial),
            "source_frames": np.asarray(state.source_frames, np.int32),
            "detector": np.array(detector_name),
            "worker_settings": np.array(json.dumps(worker_settings)),
            **({} if bundle_names is None else {"source_joint_names": np.array(bundle_names)}),
        },
        **arrays,
    )


def _write(path: str, trajectory: Any) -> None:
    from retarget.contract import ContractError, write_trajectory

    try:
        write_trajectory(path, trajectory)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None
    except ContractError as error:  # a bug here, never the user's fault
        raise RuntimeError(f"the result breaks the trajectory contract: {error}") from error


# Settings that must agree between a partial result and the run resuming it (the camera is
# compared as the matrix it gives: --fov 55 and the default, or one file by two paths, agree).
_RESUME_KEYS = ("model", "skeleton", "start", "stop", "stride", "box", "tta", "sequence_fps")


def _load_resume(
    settings: Settings, path: Path | None, source: str, intrinsics: np.ndarray
) -> tuple[Any, bool] | None:
    """(trajectory, complete) of the result at ``path`` to resume, or None to start afresh."""
    from retarget.contract import ContractError, read_trajectory

    if path is None:
        return None
    try:
        previous = read_trajectory(path)
    except ContractError as error:
        raise OutputError(f"--resume: {error}; delete it to start afresh") from None
    stored = json.loads(str(previous.extras.get("worker_settings", "{}")))
    current = asdict(settings)
    different = [
        key for key in _RESUME_KEYS if json.dumps(stored.get(key)) != json.dumps(current[key])
    ]
    if previous.source != source:
        different.insert(0, "video")
    if not np.allclose(previous.intrinsics, intrinsics):
        different.append("camera")
    if different:
        raise OutputError(
            f"--resume: {path.name} was made with other settings ({', '.join(different)}); "
            f"run without --resume to start afresh, or with the same settings"
        )
    return previous, not bool(previous.extras.get("partial", False))


# ------------------------------------------------------------------------------------------------
# Entry points


Stop = Callable[[], bool] | threading.Event
"""Asks an analysis to stop: read after every batch; once true, the run writes its partial result
and returns it. A caller that must stop at once raises KeyboardInterrupt in the analysing thread
(the second Ctrl-C): the completed batches are still kept. A stop condition with a ``writing()``
context manager (the command line's :class:`Interrupt`) is told while the result is written, so
that it holds such a stop back until the file is complete."""


@dataclass(frozen=True)
class AnalysisResult:
    """What :func:`analyze` wrote."""

    trajectory: Trajectory
    path: Path  # OUTPUT, or its partial name while OUTPUT keeps a complete result
    partial: bool  # stopped early: a valid partial result that --resume continues


def analyze(
    settings: Settings,
    models: Models | Callable[[Settings, str, AnalysisEvents], Models],
    events: AnalysisEvents,
    stop: Stop,
) -> AnalysisResult:
    """Analyse ``settings.video`` into ``settings.output`` (see the module docstring): the library
    entry that the command line, the batch and its Ray actors call.

    ``models`` are loaded models, or a loader (:class:`ModelLoader`) called with the resolved
    device once the input and the output are known to be usable. Raises :class:`InputError`,
    :class:`OutputError`, :class:`ModelUnavailableError` and the input's own errors
    (:func:`describe_failure` turns them into exit codes and messages); rows analysed before an
    error are saved as a partial result first.
    """
    from . import outputs

    stopped = stop.is_set if isinstance(stop, threading.Event) else stop
    guard = getattr(stop, "writing", contextlib.nullcontext)
    opened = _open_input(settings)
    with outputs.exclusive(settings.output):
        plan = outputs.plan_output(settings.output, settings.overwrite, settings.resume)
        return _analyse(settings, plan, opened, models, events, stopped, guard)


def describe_failure(error: Exception) -> tuple[int, str]:
    """The exit code of an error of :func:`analyze` and its message for humans; an internal error
    (a bug) is logged with its traceback."""
    code = _exit_code(error)
    if code != EXIT_ERROR:
        return code, str(error)
    logger.error("internal error:\n%s", traceback.format_exc())
    return code, f"internal error: {type(error).__name__}: {error} (details in the log)"


def main(args: argparse.Namespace) -> int:
    """``analyze`` command: run and return the exit code."""
    return run(args)


def _configure_logging(verbose: bool) -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_metrabs_worker", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._metrabs_worker = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def _exit_code(error: BaseException) -> int:
    from retarget.contract import ContractError

    from .camera import CameraError
    from .detect import DetectorWeightsError
    from .video import VideoError

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


def run(
    args: argparse.Namespace,
    make_estimator: Callable[[Settings, str], PoseEstimatorLike] | None = None,
    make_detector: Callable[[Settings, str, AnalysisEvents], Any] | None = None,
    stream: IO[str] | None = None,
) -> int:
    """The ``analyze`` command over :func:`analyze`: signals stop it, its events go to ``stream``
    (stdout) as JSON lines, its errors become exit codes; never raises for bad input.
    ``make_estimator``/``make_detector`` replace the model loaders (tests and benchmarks with
    their own models)."""
    _configure_logging(getattr(args, "verbose", False))
    reporter = ProgressReporter(stream)
    models = ModelLoader(make_estimator or load_pose_estimator, make_detector or load_detector)
    try:
        settings = settings_from_args(args)
        with Interrupt() as interrupt:
            try:
                result = analyze(settings, models, reporter, interrupt)
            except KeyboardInterrupt:  # twice before the first batch ended (e.g. model loading)
                reporter.error("interrupted before any result was written", interrupt.exit_code)
                return interrupt.exit_code
        return interrupt.exit_code if result.partial else EXIT_OK
    except Exception as error:
        code, message = describe_failure(error)
        reporter.error(message, code)
        return code
    except KeyboardInterrupt:
        reporter.error("interrupted before any result was written", EXIT_SIGINT)
        return EXIT_SIGINT


def _check_paths(settings: Settings) -> None:
    from retarget.contract import output_problem

    output = Path(settings.output)
    if output.suffix.lower() != ".npz":
        raise InputError(f"the output must be a .npz file, got {settings.output!r}")
    if output.exists() and output.is_dir():
        raise OutputError(f"the output {settings.output} is a folder; give a file name")
    problem = output_problem(output)  # found out now, not after the whole analysis
    if problem is not None:
        raise OutputError(f"cannot write the output: {problem}")
    video = Path(settings.video)
    if video.exists() and output.exists() and os.path.samefile(video, output):
        raise InputError("the output would overwrite the input video; choose another -o path")


def _open_input(settings: Settings) -> tuple[Any, np.ndarray, str]:
    """Check the paths, open the video for its facts, resolve the camera, check ``--box``:
    ``(video info, intrinsics (3, 3), camera description)``."""
    from .camera import resolve_intrinsics
    from .video import FrameRange, open_video

    _check_paths(settings)
    source = open_video(settings.video, FrameRange(settings.start, settings.stop, settings.stride),
                        settings.sequence_fps)  # fmt: skip
    info = source.info
    source.close()
    intrinsics, camera_text = resolve_intrinsics(
        (info.width, info.height), settings.fov, settings.focal_mm, settings.sensor_width,
        settings.intrinsics,
    )  # fmt: skip
    logger.info("camera: %s", camera_text)
    if settings.box is not None:
        x, y, w, h = settings.box
        if x >= info.width or y >= info.height or x + w <= 0 or y + h <= 0:
            raise InputError(
                f"--box {x:g},{y:g},{w:g},{h:g} lies outside the {info.width}x{info.height} frame"
            )
    return info, intrinsics, camera_text


def _initial_state(
    settings: Settings, previous: Any | None, params: Any
) -> tuple[RunState, Any | None]:
    """The rows and tracks to start from (empty, or those of a partial result) and the frame
    range still to analyse (None: the partial result reaches the end of the range already)."""
    from .track import Tracker, tracker_from_arrays
    from .video import FrameRange

    if previous is None:
        return RunState([], [], Tracker(params)), FrameRange(settings.start, settings.stop,
                                                              settings.stride)  # fmt: skip
    keys = ("poses3d", "poses2d", "uncertainty", "boxes", "track_ids")
    tracker = tracker_from_arrays(
        {k: getattr(previous, k) for k in keys}, previous.frame_times, params
    )
    state = RunState(list(previous.frame_times),
                     [int(i) for i in previous.extras["source_frames"]], tracker)  # fmt: skip
    next_frame = (
        state.source_frames[-1] + settings.stride if state.source_frames else settings.start
    )
    if settings.stop is not None and next_frame >= settings.stop:
        return state, None  # interrupted in its last batch
    logger.info("resuming at source frame %d after %d rows", next_frame, state.num_rows)
    return state, FrameRange(next_frame, settings.stop, settings.stride)


def _analyse(
    settings: Settings,
    plan: OutputPlan,
    opened: tuple[Any, np.ndarray, str],
    models: Models | Callable[[Settings, str, AnalysisEvents], Models],
    events: AnalysisEvents,
    stopped: Callable[[], bool],
    guard: Callable[[], contextlib.AbstractContextManager],
) -> AnalysisResult:
    """The analysis of an opened input into the files of ``plan``."""
    from . import outputs
    from .track import TrackerParams
    from .video import FrameRange, open_video

    started = time.monotonic()
    info, intrinsics, camera_text = opened
    source = source_fingerprint(settings.video)
    resumed = _load_resume(settings, plan.resume_from, source, intrinsics)
    if resumed is None and settings.resume:
        events.warning(f"--resume: {settings.output} does not exist yet; starting afresh")
    if resumed is not None and resumed[1]:
        previous = resumed[0]
        events.done(Finished(str(plan.final), previous.num_frames, previous.num_people,
                             partial=False, crops=None, elapsed_s=0.0,
                             message="already complete; nothing to resume"))  # fmt: skip
        return AnalysisResult(previous, plan.final, partial=False)

    if not isinstance(models, Models):
        models = models(settings, resolve_device(settings.device), events)
    estimator, detector = models.estimator, models.detector
    joints = _joint_info(estimator)
    name = model_id(estimator, settings)
    detector_name = "none" if detector is None else str(getattr(detector, "name", "detector"))
    params = TrackerParams(new_tracks=settings.box is None)
    if detector is None or settings.box is not None:
        # the user's box is followed by its poses alone: nothing is there to confirm the track
        params = replace(params, max_unconfirmed_s=None)
    state, frame_range = _initial_state(settings, None if resumed is None else resumed[0], params)
    total = FrameRange(settings.start, settings.stop, settings.stride).count(info.frame_count)
    batch_size = _tuned_batch_size(estimator, settings, (info.width, info.height))
    recorded = replace(settings, batch_size=batch_size)  # worker_settings hold the size used
    analysis = Analysis(settings, estimator, detector, intrinsics, (info.width, info.height),
                        len(joints[0]), state, batch_size)  # fmt: skip

    def result(partial: bool) -> Trajectory:
        return _trajectory(state, recorded, info, intrinsics, joints, source, name,
                           detector_name, partial)  # fmt: skip

    def save(trajectory: Trajectory, partial: bool) -> Path:
        """Write a partial or the complete result where ``plan`` puts it; the path written."""
        path = plan.partial if partial else plan.final
        with guard():
            _write(str(path), trajectory)
            if not partial:
                outputs.finished(plan)
        return path

    def done(trajectory: Trajectory, partial: bool) -> AnalysisResult:
        path = save(trajectory, partial)
        if partial and path != plan.final:
            events.warning(f"{plan.final} keeps its complete result; this run's partial result "
                           f"is {path.name} (--resume continues it)")  # fmt: skip
        events.done(Finished(str(path), trajectory.num_frames, trajectory.num_people, partial,
                             crops=analysis.crops,
                             elapsed_s=round(time.monotonic() - started, 3)))  # fmt: skip
        return AnalysisResult(trajectory, path, partial)

    events.start(Started(
        str(settings.video), str(settings.output), frames_total=total, fps=info.fps,
        width=info.width, height=info.height, rotation_deg=info.rotation_deg, model=name,
        detector=detector_name, batch_size=batch_size, camera=camera_text,
        resumed_frames=state.num_rows,
    ))  # fmt: skip
    done_at_start = state.num_rows
    try:
        if frame_range is not None and (total is None or state.num_rows < total):
            stream = open_video(settings.video, frame_range, settings.sequence_fps)
            _process_stream(analysis, stream, stopped, events, total, done_at_start,
                            checkpoint=lambda: save(result(True), True))  # fmt: skip
    except KeyboardInterrupt:  # a hard stop (a second signal): keep the completed batches
        return done(result(True), True)
    except Exception:
        if state.num_rows > done_at_start:
            path = save(result(True), True)
            events.warning(
                f"partial result with {state.num_rows} frames saved to {path}; "
                f"continue it with --resume once the problem is fixed"
            )
        raise

    partial = stopped()
    trajectory = result(partial)
    if not partial:
        _warn_if_truncated(events, info, settings, state)
        if trajectory.num_people == 0:
            events.warning(_no_person_message(state))
    return done(trajectory, partial)


def _no_person_message(state: RunState) -> str:
    first, last = (
        (state.source_frames[0], state.source_frames[-1]) if state.source_frames else (0, 0)
    )
    return (
        f"No person found in frames {first}-{last}; lower --detection-threshold, try another "
        f"--detector, or give the person's box with --box x,y,w,h"
    )


class _LockedDetector:
    """A detector that one thread at a time may use."""

    def __init__(self, detector: Any) -> None:
        self._detector, self._lock = detector, threading.Lock()
        self.name = getattr(detector, "name", type(detector).__name__)

    def detect(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            return self._detector.detect(frames)


class DetectionStage:
    """Runs the detector on the cadence frames (row % ``detect_every`` == 0) in a background thread
    while the main thread runs the pose network; iterate for ``(frame, boxes or None)`` in order.

    At most ``max_pending`` frames wait in its queue (memory stays bounded). Errors of the thread
    are re-raised by the iterator. With no detector, frames pass through without a thread.
    """

    def __init__(
        self,
        frames: Iterator[Any],
        detector: Any | None,
        detect_every: int,
        first_row: int,
        max_pending: int = 8,
    ) -> None:
        import queue

        self._frames, self._detector = frames, detector
        self._every, self._first_row = detect_every, first_row
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, max_pending))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = None
        if detector is not None:
            self._thread = threading.Thread(target=self._run, name="detector", daemon=True)
            self._thread.start()

    def _put(self, item: object) -> bool:
        from .video import put_unless_stopped

        return put_unless_stopped(self._queue, item, self._stop)

    def _run(self) -> None:
        try:
            for row, frame in enumerate(self._frames, start=self._first_row):
                boxes = None
                if row % self._every == 0:
                    boxes = self._detector.detect([frame.image])[0]
                if not self._put((frame, boxes)):
                    return
        except BaseException as error:  # handed to the consuming thread
            self._error = error
        finally:
            self._put(_STAGE_END)

    def __iter__(self) -> Iterator[tuple[Any, np.ndarray | None]]:
        if self._thread is None:
            yield from ((frame, None) for frame in self._frames)
            return
        while True:
            item = self._queue.get()
            if item is _STAGE_END:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def __enter__(self) -> DetectionStage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        while self._thread is not None and self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._queue.get_nowait()
            self._thread.join(timeout=0.05)


_STAGE_END = object()


def _batches(
    analysis: Analysis, frames: Iterator[Any], stopped: Callable[[], bool]
) -> Iterator[list[Any]]:
    """Group ``(frame, detections)`` items into batches of :meth:`Analysis.frames_per_batch`; when
    reading fails part way (a broken image in a sequence), the frames read before it are still a
    batch, so the partial result keeps them."""
    batch: list[Any] = []
    target = None
    try:
        for item in frames:
            if target is None:
                target = analysis.frames_per_batch(item[0].image.nbytes)
            batch.append(item)
            if len(batch) >= target:
                yield batch
                batch, target = [], None
                if stopped():
                    return
    except Exception:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


def _process_stream(
    analysis: Analysis,
    source: Any,
    stopped: Callable[[], bool],
    events: AnalysisEvents,
    total: int | None,
    done_at_start: int,
    checkpoint: Callable[[], None],
) -> None:
    """Decode (reader thread), detect (detection thread) and analyse batch by batch until the end
    or a stop; calls ``checkpoint`` every ``checkpoint_every_s`` seconds."""
    from .video import FrameReader

    every = analysis.settings.checkpoint_every_s
    state = analysis.state
    started = last_checkpoint = time.monotonic()
    with FrameReader(source) as reader, DetectionStage(
        iter(reader), analysis.detector, analysis.settings.detect_every, state.num_rows,
        reader.capacity,
    ) as detected:  # fmt: skip
        for batch in _batches(analysis, iter(detected), stopped):
            analysis.process(batch)
            elapsed = time.monotonic() - started
            speed = (state.num_rows - done_at_start) / elapsed if elapsed > 0 else 0.0
            events.progress(state.num_rows, total, speed, _people_alive(state))
            if stopped():
                break
            if every > 0 and time.monotonic() - last_checkpoint >= every:
                checkpoint()
                last_checkpoint = time.monotonic()
    speed = (state.num_rows - done_at_start) / max(time.monotonic() - started, 1e-9)
    events.progress(state.num_rows, total, speed, _people_alive(state), force=True)


def _people_alive(state: RunState) -> int:
    """Tracks alive at the last frame analysed (what ``progress`` events report)."""
    if not state.frame_times:
        return 0
    return len(state.tracker.live_tracks(state.frame_times[-1]))


def _warn_if_truncated(
    events: AnalysisEvents, info: Any, settings: Settings, state: RunState
) -> None:
    """A warning when decoding ended well before the frame count the container reported."""
    if info.is_sequence or info.frame_count is None:
        return
    end = info.frame_count if settings.stop is None else min(settings.stop, info.frame_count)
    last = state.source_frames[-1] if state.source_frames else settings.start - 1
    missing = end - 1 - last
    if missing >= settings.stride + max(2, int(0.01 * info.frame_count)):
        events.warning(
            f"decoding stopped at frame {last} of {info.frame_count}: the file is truncated or "
            f"damaged; the result covers frames {settings.start}-{last}"
        )
