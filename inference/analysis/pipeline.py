"""The analysis itself, batch by batch: decode (reader thread), detect (detection thread), propose
boxes from the tracks, estimate the poses of all crops of a batch in one network call, track."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .events import AnalysisEvents
from .models import PoseEstimatorLike
from .settings import Settings

PROPOSAL_COVERED_IOU = 0.3  # a track whose predicted box overlaps a detection this much needs none
TRACKING_ONLY_FRAMES = 4  # frames per batch when no detector runs (--detector none)
MAX_BATCH_BYTES = 1 << 30  # frames held for one batch at most (8K frames are 100 MB each)


@dataclass
class RunState:
    """Rows processed so far (one per analysed frame) and the tracker holding the people."""

    frame_times: list[float]
    source_frames: list[int]
    tracker: Any

    @property
    def num_rows(self) -> int:
        return len(self.frame_times)


class Pipeline:
    """Batches frames, detects, proposes, estimates and tracks (see ``inference.analysis``)."""

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
        from ..track import Candidates

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
    from ..detect.nms import box_iou

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


def _unpack(result: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(poses3d, poses2d, uncertainty) of one frame's estimate (object or mapping)."""
    get = result.get if isinstance(result, dict) else lambda key: getattr(result, key)
    return get("poses3d"), get("poses2d"), get("uncertainty")


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
        from ..video import put_unless_stopped

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
    pipeline: Pipeline, frames: Iterator[Any], stopped: Callable[[], bool]
) -> Iterator[list[Any]]:
    """Group ``(frame, detections)`` items into batches of :meth:`Pipeline.frames_per_batch`; when
    reading fails part way (a broken image in a sequence), the frames read before it are still a
    batch, so the partial result keeps them."""
    batch: list[Any] = []
    target = None
    try:
        for item in frames:
            if target is None:
                target = pipeline.frames_per_batch(item[0].image.nbytes)
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


def process_stream(
    pipeline: Pipeline,
    source: Any,
    stopped: Callable[[], bool],
    events: AnalysisEvents,
    total: int | None,
    done_at_start: int,
    checkpoint: Callable[[], None],
) -> None:
    """Decode (reader thread), detect (detection thread) and analyse batch by batch until the end
    or a stop; calls ``checkpoint`` every ``checkpoint_every_s`` seconds."""
    from ..video import FrameReader

    every = pipeline.settings.checkpoint_every_s
    state = pipeline.state
    started = last_checkpoint = time.monotonic()
    with FrameReader(source) as reader, DetectionStage(
        iter(reader), pipeline.detector, pipeline.settings.detect_every, state.num_rows,
        reader.capacity,
    ) as detected:  # fmt: skip
        for batch in _batches(pipeline, iter(detected), stopped):
            pipeline.process(batch)
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
