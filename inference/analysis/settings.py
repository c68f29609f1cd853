"""The settings of one analysis and the ``analyze`` command-line options that make them."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from retarget.arguments import field_of_view_deg, int_at_least, positive_number

from . import errors
from .errors import EXIT_USAGE, UsageError
from .events import ProgressReporter

DEFAULT_SKELETON = "smpl+head_30"  # the project's canonical joint set (retarget.skeletons)
DETECTOR_CHOICES = "auto, hog, none, a detector name from `weights list` (e.g. yolox_s) or a .pth"


@dataclass(frozen=True)
class Settings:
    """One analysis run, from the command line."""

    video: str
    output: str
    model: str | None = None  # name or path; None: the default model
    # output joint set of the model; None: smpl+head_30 if it has it, with the hand extension
    # (smpl+head+hands_34) if it predicts the hand points too
    skeleton: str | None = None
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


_positive_int, _non_negative_int = int_at_least(1), int_at_least(0)


def _batch_size_arg(text: str) -> int | None:
    """``--batch-size``: ``auto`` (None) or a whole number >= 1."""
    return None if text.strip().lower() == "auto" else _positive_int(text)


def _score(text: str) -> float:
    """``--detection-threshold``: a detector score, above 0 and at most 1 (scores are
    probabilities; a larger threshold would silently find nobody)."""
    value = positive_number(text)
    if value > 1:
        raise argparse.ArgumentTypeError(
            f"detector scores lie between 0 and 1, got {text!r}; try 0.3 (YOLOX) or 0.5 (HOG)"
        )
    return value


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``analyze``; argument errors are also reported as a JSON ``error`` event."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = errors.__doc__[errors.__doc__.index("Exit codes:") :]
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
        help=f"output joint set of the model (default {DEFAULT_SKELETON} when the model has it, "
        f"with the hand extension smpl+head+hands_34 when it also predicts thumbs and hand ends)",
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
        "--sequence-fps", type=positive_number, metavar="FPS",
        help="frame rate of an image sequence (default 30)",
    )  # fmt: skip
    camera = parser.add_argument_group("camera (one of; default: 55 deg field of view)")
    camera.add_argument("--fov", type=field_of_view_deg, metavar="DEG", help="on the longer side")
    camera.add_argument("--focal-mm", type=positive_number, metavar="MM")
    camera.add_argument(
        "--sensor-width", type=positive_number, metavar="MM",
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
