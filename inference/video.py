"""Video input with OpenCV: video files, image sequences, frame ranges, rotation, real timestamps.

A source yields :class:`Frame` objects one at a time (RGB ``uint8``, already turned upright when the
container carries rotation metadata) so memory stays flat in the clip length; :class:`FrameReader`
decodes in a background thread into a bounded queue so decoding overlaps the network.

Timestamps come from the container (``CAP_PROP_POS_MSEC``), so variable-frame-rate footage (phones)
keeps its real timing; image sequences are timed by a frame rate given by the caller.
"""

from __future__ import annotations

import glob
import logging
import os
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import InferenceError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".ppm")
DEFAULT_SEQUENCE_FPS = 30.0  # frame rate assumed for image sequences when none is given
_PRINTF_PATTERN = re.compile(r"%0?(\d*)d")


def put_unless_stopped(target: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item`` into a bounded queue, waiting while it is full; False if ``stop`` was set."""
    while not stop.is_set():
        try:
            target.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


class VideoError(InferenceError):
    """The input cannot be read as a video or image sequence; the message says why and what to do."""


@dataclass(frozen=True)
class FrameRange:
    """Which source frames to read: ``start`` (inclusive), ``stop`` (exclusive, None = to the end),
    every ``stride``-th frame. Indices count decoded frames of the source from 0."""

    start: int = 0  # first source frame index
    stop: int | None = None  # one past the last source frame index, None for the end
    stride: int = 1  # read every stride-th frame

    def __post_init__(self) -> None:
        if self.start < 0:
            raise VideoError(f"frame range start must be >= 0, got {self.start}")
        if self.stop is not None and self.stop <= self.start:
            raise VideoError(f"frame range stop ({self.stop}) must be after start ({self.start})")
        if self.stride < 1:
            raise VideoError(f"frame stride must be >= 1, got {self.stride}")

    def count(self, total: int | None) -> int | None:
        """Number of frames this range selects from a source of ``total`` frames (None: unknown)."""
        end = (
            total if self.stop is None else (self.stop if total is None else min(self.stop, total))
        )
        if end is None:
            return None
        return max(0, -(-(end - self.start) // self.stride))


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a source before decoding all of it.

    ``width``/``height`` are those of the frames as delivered (after rotation), pixels;
    ``frame_count`` is the container's estimate (None when unknown), before the frame range;
    ``rotation_deg`` is the clockwise rotation that was applied to make frames upright.
    """

    path: str
    width: int
    height: int
    fps: float
    frame_count: int | None
    rotation_deg: int
    is_sequence: bool
    codec: str


@dataclass
class Frame:
    """One decoded frame: ``index`` in the source (0-based), ``time`` seconds, ``image`` (H, W, 3)
    uint8 RGB."""

    index: int
    time: float
    image: np.ndarray


def _natural_key(path: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path)]


def _sequence_files(source: str) -> list[str] | None:
    """The image files of a folder or pattern (``%04d`` or glob), or None if ``source`` is neither
    (an existing file is itself, whatever characters its name has: ``clip [1080p].mp4``)."""
    if os.path.isfile(source):
        return None
    if os.path.isdir(source):
        names = [
            os.path.join(source, name)
            for name in os.listdir(source)
            if name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")
        ]
        return sorted(names, key=_natural_key)
    if _PRINTF_PATTERN.search(os.path.basename(source)):
        folder, name = os.path.split(source)
        match = _PRINTF_PATTERN.search(name)
        digits = rf"\d{{{int(match.group(1))},}}" if match.group(1) else r"\d+"
        regex = re.compile(
            re.escape(name[: match.start()]) + f"({digits})" + re.escape(name[match.end() :]) + "$"
        )
        folder = folder or "."
        if not os.path.isdir(folder):
            return []
        numbered = [(regex.match(n), n) for n in os.listdir(folder)]
        numbered = sorted((int(m.group(1)), n) for m, n in numbered if m)
        return [os.path.join(folder, n) for _, n in numbered]
    if any(char in os.path.basename(source) for char in "*?["):
        matches = glob.glob(source)
        return sorted((m for m in matches if m.lower().endswith(IMAGE_SUFFIXES)), key=_natural_key)
    return None


def _read_image(path: str) -> np.ndarray:
    """RGB uint8 image from any path (``imdecode`` copes with non-ASCII paths on every OS)."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise VideoError(f"cannot read image {path}: {error}") from error
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise VideoError(f"{path} is not a readable image (empty, truncated or unknown format)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class ImageSequenceSource:
    """Frames from numbered images; all images must have the same size."""

    def __init__(
        self, source: str, files: list[str], frame_range: FrameRange, fps: float | None
    ) -> None:
        if not files:
            raise VideoError(
                f"no images found for {source!r}; give a video file, a folder of images "
                f"({', '.join(IMAGE_SUFFIXES)}) or a pattern such as frames/img_%04d.png"
            )
        self.files = files
        self.frame_range = frame_range
        if frame_range.start >= len(files):
            raise VideoError(
                f"frame {frame_range.start} is past the end of {source!r} ({len(files)} images)"
            )
        first = _read_image(files[frame_range.start])
        height, width = first.shape[:2]
        self.info = VideoInfo(
            path=source,
            width=width,
            height=height,
            fps=float(fps or DEFAULT_SEQUENCE_FPS),
            frame_count=len(files),
            rotation_deg=0,
            is_sequence=True,
            codec="images",
        )

    def __iter__(self) -> Iterator[Frame]:
        stop = len(self.files) if self.frame_range.stop is None else self.frame_range.stop
        for index in range(
            self.frame_range.start, min(stop, len(self.files)), self.frame_range.stride
        ):
            image = _read_image(self.files[index])
            if image.shape[:2] != (self.info.height, self.info.width):
                raise VideoError(
                    f"image {self.files[index]} is {image.shape[1]}x{image.shape[0]}, but the "
                    f"sequence started at {self.info.width}x{self.info.height}; all images of a "
                    f"sequence must have the same size"
                )
            yield Frame(index, index / self.info.fps, image)

    def close(self) -> None:
        """Nothing to release (files are opened one at a time)."""


class VideoFileSource:
    """Frames of a video file decoded by OpenCV's FFmpeg backend (any container/codec it reads)."""

    def __init__(self, path: str, frame_range: FrameRange) -> None:
        self.frame_range = frame_range
        try:
            path.encode("utf-8")  # OpenCV crashes (segfault) on a name it cannot encode
        except UnicodeEncodeError:
            raise VideoError(
                f"{path!r}: OpenCV cannot open a file whose name is not valid UTF-8; rename it"
            ) from None
        self.capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        if not self.capture.isOpened():
            raise VideoError(
                f"{path} cannot be opened as a video: it is not a video file, it is truncated "
                f"(e.g. an interrupted copy or recording), or its codec is not supported by "
                f"OpenCV's FFmpeg; re-export it as H.264/MP4 or convert it to an image sequence"
            )
        # Phone footage: let FFmpeg apply the display matrix so frames come out upright.
        self.capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        rotation = int(round(self.capture.get(cv2.CAP_PROP_ORIENTATION_META))) % 360
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fourcc = int(self.capture.get(cv2.CAP_PROP_FOURCC))
        codec = "".join(chr((fourcc >> 8 * i) & 0xFF) for i in range(4)).strip("\0 ") or "?"
        if frame_range.start > 0:
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, frame_range.start)
        ok, first = self.capture.read()
        if not ok or first is None:
            where = f"frame {frame_range.start}" if frame_range.start else "the first frame"
            raise VideoError(
                f"{path} opened, but {where} cannot be decoded: the file is empty, truncated or "
                f"the start frame is past its end ({count} frames reported)"
            )
        self._pending: np.ndarray | None = first
        self._pending_time = self.capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        height, width = first.shape[:2]
        self.info = VideoInfo(
            path=path,
            width=width,
            height=height,
            fps=float(fps) if np.isfinite(fps) and fps > 0 else DEFAULT_SEQUENCE_FPS,
            frame_count=count if count > 0 else None,
            rotation_deg=rotation,
            is_sequence=False,
            codec=codec,
        )

    def _frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        """All frames from the start of the range: (index, container time s, BGR image)."""
        index = self.frame_range.start
        first, self._pending = self._pending, None
        if first is not None:
            yield index, self._pending_time, first
            index += 1
        while self.frame_range.stop is None or index < self.frame_range.stop:
            offset = (index - self.frame_range.start) % self.frame_range.stride
            if offset:
                if not self.capture.grab():
                    return
                index += 1
                continue
            ok, image = self.capture.read()
            if not ok or image is None:
                return
            yield index, self.capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0, image
            index += 1

    def __iter__(self) -> Iterator[Frame]:
        last_time = -np.inf
        nominal = 1.0 / self.info.fps
        for index, stamp, image in self._frames():
            if not np.isfinite(stamp) or stamp <= last_time:
                # Some containers report no or repeated timestamps: keep times increasing.
                stamp = last_time + nominal if np.isfinite(last_time) else index * nominal
            last_time = stamp
            yield Frame(index, float(stamp), cv2.cvtColor(image, cv2.COLOR_BGR2RGB))

    def close(self) -> None:
        self.capture.release()


VideoSource = ImageSequenceSource | VideoFileSource


def open_video(
    source: str | os.PathLike,
    frame_range: FrameRange | None = None,
    sequence_fps: float | None = None,
) -> VideoSource:
    """Open a video file, a folder of images or an image pattern (``img_%04d.png``, ``*.jpg``).

    Raises :class:`VideoError` with a message for the user when the input cannot be read.
    """
    frame_range = frame_range or FrameRange()
    source = os.fspath(source)
    files = _sequence_files(source)
    if files is not None:
        return ImageSequenceSource(source, files, frame_range, sequence_fps)
    path = Path(source)
    if not path.exists():
        raise VideoError(
            f"video not found: {source}; check the path (and that the drive is mounted)"
        )
    if not path.is_file():
        raise VideoError(f"{source} is not a file, a folder of images or an image pattern")
    if path.stat().st_size == 0:
        raise VideoError(f"{source} is an empty file (0 bytes); the copy or recording failed")
    if not os.access(path, os.R_OK):
        raise VideoError(f"{source} is not readable; check its permissions")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSequenceSource(source, [source], frame_range, sequence_fps)
    return VideoFileSource(source, frame_range)


_END = object()


class FrameReader:
    """Decodes a source in a background thread into a bounded queue; iterate to get frames.

    The queue holds at most ``max_frames`` frames and at most ``max_bytes`` of pixels, so memory
    stays flat however long the clip is. An error in the reader thread is re-raised by the iterator.
    :meth:`stop` ends decoding early (the iterator then finishes after the frames already queued
    are dropped).
    """

    def __init__(
        self, source: VideoSource, max_frames: int = 16, max_bytes: int = 512 * 2**20
    ) -> None:
        frame_bytes = max(1, source.info.width * source.info.height * 3)
        capacity = max(2, min(max_frames, max_bytes // frame_bytes))
        self.source = source
        self._queue: queue.Queue = queue.Queue(maxsize=capacity)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="frame-reader", daemon=True)
        self._thread.start()

    @property
    def capacity(self) -> int:
        return self._queue.maxsize

    def _put(self, item: object) -> bool:
        return put_unless_stopped(self._queue, item, self._stop)

    def _run(self) -> None:
        try:
            for frame in self.source:
                if not self._put(frame):
                    return
        except BaseException as error:  # handed over to the consuming thread
            self._error = error
        finally:
            self._put(_END)

    def __iter__(self) -> Iterator[Frame]:
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                finished = not self._thread.is_alive() and self._queue.empty()
                if not (self._stop.is_set() or finished):
                    continue
                item = _END
            if item is _END:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def stop(self) -> None:
        """Stop decoding and wait for the reader thread; frames still queued are dropped."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=10)

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        self.source.close()
