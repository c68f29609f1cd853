"""A small worker that speaks the analysis protocol (test helper, run as a script).

``python tests/protocol_worker.py VIDEO -o OUT.npz [--start N] [--stop N] [--max-people N]
[--frame-delay S]`` behaves like ``python -m inference analyze`` towards its caller: JSON-lines
events on stdout (``start``, ``progress``, ``warning``, ``done``, ``error``), logs on stderr, the
output written atomically in the contract format, and SIGTERM -> finish the current frame, write the
frames done so far (marked partial), exit 143. It does not look at the video's pixels: its poses are
the exact ground truth of :func:`tilted_scene` (two people seen by a camera tilted down), so tests
can check the add-on's plumbing against known values without a trained model.
"""

import argparse
import json
import signal
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.camera import look_at  # noqa: E402
from inference.training.synth.clip import motions_to_trajectory  # noqa: E402
from inference.training.synth.motion import generate_motion  # noqa: E402
from retarget.contract import Trajectory, write_trajectory  # noqa: E402

FPS = 30.0
NUM_FRAMES = 90
GAP = (40, 50)  # frames where person 1 is hidden (NaN), as an occlusion would leave them
UNCERTAIN = (60, 70)  # frames where person 0's uncertainty is high
UNCERTAIN_MM = 150.0
EXIT_SIGTERM = 143  # as the real worker: the partial result was written


def tilted_scene(num_frames: int = NUM_FRAMES) -> Trajectory:
    """Exact trajectory of a walker and a runner seen from 2.6 m height, tilted about 19° down,
    with a gap for person 1 and a high-uncertainty span for person 0. Both move away from the
    camera (depth 5.5 m -> about 14 m), so every joint stays in front of it."""
    duration = num_frames / FPS
    motions = [
        generate_motion("walk", duration, FPS, seed=0, start_xy=(-1.0, 0.0)),
        generate_motion("run", duration, FPS, seed=1, start_xy=(1.0, 0.5)),  # away from the camera
    ]
    camera = look_at(np.array([0.0, -5.0, 2.6]), np.array([0.0, 0.0, 0.9]))
    trajectory = motions_to_trajectory(motions, camera, source="protocol-worker")
    poses3d, poses2d = trajectory.poses3d.copy(), trajectory.poses2d.copy()
    boxes, uncertainty = trajectory.boxes.copy(), trajectory.uncertainty.copy()
    for array in (poses3d, poses2d, boxes):
        array[GAP[0] : GAP[1], 1] = np.nan
    uncertainty[GAP[0] : GAP[1], 1] = np.nan
    uncertainty[UNCERTAIN[0] : UNCERTAIN[1], 0] = UNCERTAIN_MM
    boxes[..., 4] = np.where(np.isfinite(boxes[..., 4]), 0.9, np.nan)
    return trajectory.replace(
        poses3d=poses3d, poses2d=poses2d, boxes=boxes, uncertainty=uncertainty
    )


def frames_of(trajectory: Trajectory, frames: np.ndarray, people: int) -> Trajectory:
    """The given frames and the first ``people`` people of a trajectory."""
    return trajectory.replace(
        poses3d=trajectory.poses3d[frames, :people],
        poses2d=trajectory.poses2d[frames, :people],
        uncertainty=trajectory.uncertainty[frames, :people],
        boxes=trajectory.boxes[frames, :people],
        track_ids=trajectory.track_ids[:people],
        frame_times=trajectory.frame_times[frames],
    )


class Events:
    def __init__(self) -> None:
        self.started = time.time()

    def emit(self, event: str, **fields) -> None:
        sys.stdout.write(json.dumps({"event": event, "time": time.time(), **fields}) + "\n")
        sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("video", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--stop", type=int, default=NUM_FRAMES)
    parser.add_argument("--max-people", type=int, default=2)
    parser.add_argument("--fov", type=float)
    parser.add_argument("--focal-mm", type=float)
    parser.add_argument("--sensor-width", type=float)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model")
    parser.add_argument("--frame-delay", type=float, default=0.0, help="seconds per frame")
    args = parser.parse_args()
    events = Events()
    if not args.video.is_file():
        events.emit("error", message=f"Video not found: {args.video}", exit_code=1)
        print(f"error: video not found: {args.video}", file=sys.stderr)
        return 1
    stop = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    wanted = np.arange(args.start, min(args.stop, NUM_FRAMES))
    scene = tilted_scene()
    people = min(args.max_people, scene.num_people)
    events.emit(
        "start", video=str(args.video), output=str(args.output), frames_total=len(wanted),
        fps=FPS, width=1280, height=720, model="ground-truth", detector="none", batch_size=1,
    )  # fmt: skip
    if args.max_people < scene.num_people:
        events.emit("warning", message=f"{scene.num_people} people seen; kept {people}")
    done = 0
    for done in range(1, len(wanted) + 1):
        time.sleep(args.frame_delay)
        events.emit(
            "progress", frames_done=done, frames_total=len(wanted), fps=30.0,
            eta_s=(len(wanted) - done) / 30.0, people=people,
        )  # fmt: skip
        if stop:
            break
    partial = done < len(wanted)
    result = frames_of(scene, wanted[:done], people)
    result.extras["partial"] = np.array(partial)
    result.extras["source_frames"] = wanted[:done].astype(np.int32)
    write_trajectory(args.output, result)
    events.emit(
        "done", output=str(args.output), frames=done, people=people, partial=partial,
        elapsed_s=time.time() - events.started,
    )  # fmt: skip
    return EXIT_SIGTERM if partial else 0


if __name__ == "__main__":
    sys.exit(main())
