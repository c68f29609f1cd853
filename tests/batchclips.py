"""Synthetic clips and a small, real clip analyser for the batch tests and benchmark (test helper).

Clips: ``people`` dark upright rectangles ("people", 12 x 40 px) sliding right by ``SPEED_PX`` per
frame on a light background, written with ``cv2.VideoWriter`` (MJPEG .avi). Their boxes are known
exactly (:func:`truth_boxes`).

:class:`BlobPeopleAnalyzer` implements ``inference.batch.ClipAnalyzer`` from the pixels alone: it
decodes every frame with OpenCV, boxes the dark connected regions, orders them left to right as
tracks and writes a contract trajectory (boxes measured, joints unknown = NaN). Loading ("the
model": ``pid,CUDA_VISIBLE_DEVICES,OMP_NUM_THREADS``) and finished analyses are appended to log
files so tests can count them across processes.
It honours ``stop`` (writes a partial result, flagged ``partial`` in the extras) and ``resume``
(continues after the frames of that partial result). ``--hold-at N`` makes it wait for the stop
after frame N (logging the clip to ``--hold-log``), so that a test cancels clips that are
certainly in flight.
"""

import argparse
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from inference import InferenceError
from inference.batch import ClipOutcome
from inference.training.synth.motion import SKELETON
from retarget.contract import Trajectory, read_trajectory, write_trajectory

SIZE = (160, 120)  # width, height px
PERSON_WH = (12, 40)  # px
SPEED_PX = 2  # per frame
FPS = 25.0
HOLD_S = 60.0  # longest wait for the stop at --hold-at (a test that never stops still ends)


def truth_boxes(people: int, frames: int) -> np.ndarray:
    """Exact boxes (T, P, 4) x, y, w, h px of the rectangles drawn by :func:`write_clip`."""
    t = np.arange(frames)[:, None]
    x = 10 + 45 * np.arange(people)[None, :] + SPEED_PX * t
    y = np.full_like(x, 50 - 6 * (np.arange(people)[None, :] % 2))
    w, h = np.full_like(x, PERSON_WH[0]), np.full_like(x, PERSON_WH[1])
    return np.stack([x, y, w, h], axis=-1).astype(np.float64)


def write_clip(path: Path, people: int, frames: int, shade: int = 40) -> Path:
    """An MJPEG clip of ``people`` rectangles over ``frames`` frames; ``shade`` is their grey."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    assert writer.isOpened(), f"cannot write {path}"
    for boxes in truth_boxes(people, frames).astype(int):
        image = np.full((SIZE[1], SIZE[0], 3), 215, np.uint8)
        for x, y, w, h in boxes:
            image[y : y + h, x : x + w] = shade
        writer.write(image)
    writer.release()
    return path


class BlobPeopleAnalyzer:
    """See the module docstring; options come from :func:`make_analyzer`."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.model_id = options.model_id
        self.config_id = f"min-area={options.min_area}"  # --frame-delay changes only the speed
        environment = [os.environ.get(v, "-") for v in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")]
        _append(options.load_log, ",".join([str(os.getpid()), *environment]))

    def _boxes(self, image: np.ndarray) -> np.ndarray:
        dark = (cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) < 120).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(dark)
        boxes = [s[:4] for s in stats[1:count] if s[4] >= self.options.min_area]
        return np.array(sorted(boxes, key=lambda b: b[0]), np.float32).reshape(-1, 4)

    def analyze(self, video, output, *, progress, stop: threading.Event, resume: bool):
        if self.options.crash_on and self.options.crash_on in Path(video).name:
            os.abort()  # what a decoder crash on a corrupt file does to the process
        capture = cv2.VideoCapture(str(video))
        if not capture.isOpened():
            raise InferenceError(f"{Path(video).name} cannot be opened as a video")
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        boxes, times = [], []
        if resume:
            earlier = read_trajectory(output)
            boxes = [b[np.isfinite(b[:, 0])] for b in earlier.extras["measured_boxes"]]
            times = list(earlier.frame_times)
            for _ in boxes:
                capture.grab()
            _append(self.options.resume_log, f"{Path(video).stem} {len(boxes)}")
        partial = False
        while True:
            if stop.is_set() and self.options.crash_on_stop:
                os.abort()
            if stop.is_set() and boxes:  # as the worker: a stop ends the run after some work
                partial = True
                break
            ok, image = capture.read()
            if not ok:
                break
            boxes.append(self._boxes(image))
            times.append(len(times) / FPS)
            progress(len(boxes), total)
            time.sleep(self.options.frame_delay)
            if len(boxes) == self.options.hold_at:  # a cancel that lands mid-clip, not by timing
                _append(self.options.hold_log, Path(video).stem)
                stop.wait(HOLD_S)
        capture.release()
        if not boxes:
            raise InferenceError(f"{Path(video).name} has no decodable frame")
        people = max(len(b) for b in boxes)
        write_trajectory(output, _trajectory(boxes, times, people, partial, self.model_id))
        if not partial:
            _append(self.options.done_log, Path(video).stem)
        return ClipOutcome(len(boxes), people, partial)


def _trajectory(boxes: list, times: list, people: int, partial: bool, model_id: str) -> Trajectory:
    frames, joints = len(boxes), SKELETON.num_joints
    table = np.full((frames, people, 5), np.nan, np.float32)
    for t, frame_boxes in enumerate(boxes):
        table[t, : len(frame_boxes), :4] = frame_boxes
        table[t, : len(frame_boxes), 4] = 1.0
    measured = np.full((frames, max(people, 1), 4), np.nan, np.float32)
    measured[:, :people] = table[..., :4]
    return Trajectory(
        poses3d=np.full((frames, people, joints, 3), np.nan, np.float32),
        poses2d=np.full((frames, people, joints, 2), np.nan, np.float32),
        uncertainty=np.full((frames, people, joints), np.nan, np.float32),
        boxes=table,
        track_ids=np.arange(people, dtype=np.int32),
        frame_times=np.array(times, np.float64),
        fps=FPS,
        image_size=np.array(SIZE, np.int32),
        intrinsics=np.array([[150.0, 0, 80], [0, 150.0, 60], [0, 0, 1]]),
        joint_names=SKELETON.joint_names,
        joint_edges=SKELETON.edges,
        skeleton=SKELETON.name,
        source="batch-test",
        model=model_id,
        extras={"partial": np.array(partial), "measured_boxes": measured},
    )


def _append(path: str | None, line: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as stream:  # one short append: atomic on POSIX
            stream.write(line + "\n")


def make_analyzer(args: list[str]) -> BlobPeopleAnalyzer:
    """Factory for ``AnalyzerSpec("tests.batchclips:make_analyzer", args)``."""
    parser = argparse.ArgumentParser(prog="blob-people")
    parser.add_argument("--model-id", default="test-blob-people@1")
    parser.add_argument("--min-area", type=int, default=60, help="smallest person, px")
    parser.add_argument("--load-log")
    parser.add_argument("--done-log")
    parser.add_argument("--resume-log")
    parser.add_argument("--frame-delay", type=float, default=0.0)
    parser.add_argument("--crash-on")
    parser.add_argument("--crash-on-stop", action="store_true", help="die when asked to stop")
    parser.add_argument("--hold-at", type=int, help="after this frame, wait for the stop")
    parser.add_argument("--hold-log", help="clips that wait for the stop (--hold-at)")
    return BlobPeopleAnalyzer(parser.parse_args(args))


def make_worker_analyzer(args: list[str]):
    """Factory for the real single-clip worker (``inference.batch.WorkerAnalyzer``) with the test
    detector of ``tests/tinymodels.py`` and its colour-joint pose model: read from the frame, or
    with ``--crop-model`` through the project's ``PoseEstimator`` (perspective crops, torch) and
    the colour-joint crop network of ``tests/tinycrop.py``. ``--load-log`` as above;
    ``--frame-delay`` slows the detector down (seconds per frame) so that a cancel lands mid-clip
    on any machine; the other arguments are ``analyze`` options."""
    from inference.batch import WorkerAnalyzer
    from tests.tinymodels import ColourJointPoseEstimator, PersonColourDetector

    parser = argparse.ArgumentParser(prog="worker-analyzer")
    parser.add_argument("--load-log")
    parser.add_argument("--crop-model", action="store_true")
    parser.add_argument("--frame-delay", type=float, default=0.0)
    own, analyze_args = parser.parse_known_args(args)
    _append(own.load_log, str(os.getpid()))
    estimator = ColourJointPoseEstimator()
    if own.crop_model:
        from inference.poses import PoseEstimator
        from tests.tinycrop import ColourJointCropModel

        estimator = PoseEstimator(ColourJointCropModel(192), SKELETON.joint_names, "cpu")
        estimator.model_id = "test-colour-joint-crops"
    detector = PersonColourDetector(frame_delay=own.frame_delay)
    return WorkerAnalyzer(analyze_args, estimator=estimator, detector=detector)


def make_slow_worker_analyzer(args: list[str]):
    """:func:`make_worker_analyzer` at 30 ms a frame, for tests that cancel a running clip (the
    add-on passes its batch options to the batch command, not to the factory)."""
    return make_worker_analyzer([*args, "--frame-delay", "0.03"])


def read_log(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split() if path.exists() else []


def run_batch_within(timeout_s: float, *args):
    """``inference.batch.run_batch(*args)`` in a thread, asserting that it ends within
    ``timeout_s`` (a batch that waits for ever fails the test instead of hanging it)."""
    from inference.batch import run_batch

    result = {}
    thread = threading.Thread(target=lambda: result.update(summary=run_batch(*args)), daemon=True)
    thread.start()
    thread.join(timeout=timeout_s)
    assert not thread.is_alive(), f"the batch did not end within {timeout_s} s"
    assert "summary" in result, "the batch raised (see the thread's traceback above)"
    return result["summary"]
