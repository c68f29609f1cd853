"""Video worker throughput: does the pipeline keep the pose network busy, and is memory flat?

Measured side by side in one run, on synthetic walking people (1280x720, 25 fps, MPEG-4):

1. ``model``: crops/s of the crop network alone (batch 8, crops already in memory).
2. ``pipeline``: the whole ``analyze`` command (decode thread, detection on every frame, boxes
   proposed from poses, perspective crops, the same network, tracking, writing the .npz) with 1, 3
   and 6 people per frame; ratio = pipeline crops/s / model crops/s (target >= 0.85 for 1 person),
   each run against the model measured right before and after it, median (min-max) over runs;
   busy = share of the pipeline's wall time spent in the network, measured inside the same run
   (immune to the load of other processes, which makes ``ratio`` noisy on a shared machine);
   on the CPU, ceiling = the best ratio sharing the cores allows: the network's CPU time per crop
   over that plus the pipeline's own CPU time per crop (a run with a network that costs nothing).
3. ``length``: frames/s and peak memory of whole runs on clips of growing length (each in its own
   process; the frame-level test estimator keeps these runs short): memory must stay flat.
4. ``2-person clips``: share of people found per frame and track-id switches against the ground
   truth, side by side and crossing, with the colour-joint reader as the model (the bundled model
   on the bundled sample: ``bench_sample.py``).
5. ``detector``: per-frame cost of the detectors at 640x360 (HOG, YOLOX nano/s with untrained weights:
   the cost does not depend on the weights); the pipeline amortises it over ``--detect-every``.

The network is the project's MeTRAbs model (untrained weights: the cost does not depend on them):
with 1, 3 and 6 people at the bundled model's size (EfficientNetV2-B0, 256 px), then with 1
person at the official models' sizes (EfficientNetV2-S and -L, 384 px; the default model is the L
one). Its poses are swapped for the clip's true poses of the person nearest each box (after the
network ran, counted in the pipeline's time), so tracking behaves as with a good model; the model
alone and the pipeline run the same network on the same device. ``--device cuda`` measures the GPU
pipeline (crops rendered on the device, the model's fp16 autocast).

    .venv/bin/python benchmarks/bench_worker.py [--throughput-only] [--repeats N] [--people 1 ..]
        [--no-large] [--device cuda]

``--throughput-only`` runs sections 1-2 alone (``--repeats`` pipeline runs per setting, default 3;
``--people`` the settings, default 1 3 6; ``--no-large`` skips the official sizes, a few minutes).
"""

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inference import analysis  # noqa: E402
from inference.__main__ import build_parser  # noqa: E402
from inference.model import MetrabsModel, ModelConfig  # noqa: E402
from inference.poses import EstimatorConfig, FramePoses, PoseEstimator  # noqa: E402
from inference.training.synth.motion import SKELETON  # noqa: E402
from tests.synthvideo import walking_people, write_clip  # noqa: E402
from tests.tinycrop import ColourJointCropModel  # noqa: E402
from tests.tinymodels import ColourJointPoseEstimator, PersonColourDetector  # noqa: E402

SIZE = (1280, 720)
BATCH = 8
FRAMES = 48
REPEATS = 3
T = TypeVar("T")


def network(backbone: str, side: int, device: str) -> tuple[torch.nn.Module, str]:
    """The crop network whose cost is measured: the project's MeTRAbs model with ``backbone`` at
    ``side`` px on ``device`` (untrained: the cost does not depend on the weights)."""
    config = ModelConfig(backbone=backbone, proc_side=side)
    model = MetrabsModel(config, SKELETON.joint_names, SKELETON.edges)
    return model.prepare_for_inference(device), f"MeTRAbs {backbone}, {side} px"


def synchronize(device: str) -> None:
    """Wait for the device's queued work (timing asynchronous CUDA calls)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def model_batch(
    net: torch.nn.Module, clip: Path, frames: int, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of BATCH real crops of the clip's first frame and their intrinsics, on ``device``
    (rendered by the estimator as in the pipeline)."""
    import cv2

    _, frame = cv2.VideoCapture(str(clip)).read()
    truth = walking_people(1, frames / 25, image_size=SIZE, distance_m=10.0)
    crops, intrinsics = [], []

    def record(batch: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        crops.append(batch.clone())
        intrinsics.append(k.clone())
        return net(batch, k)

    config = EstimatorConfig(1, batch_size=BATCH)
    estimator = PoseEstimator(net, SKELETON.joint_names, device, config)
    estimator.model = record
    images = [np.ascontiguousarray(frame[..., ::-1])] * BATCH
    estimator.estimate(images, [truth.boxes[0, :, :4]] * BATCH, truth.intrinsics)
    return torch.cat(crops)[:BATCH], torch.cat(intrinsics)[:BATCH]


@torch.inference_mode()
def model_crops_per_s(
    net: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor], crops: int, device: str
) -> float:
    """Crops/s of the network alone over about ``crops`` crops (a pipeline run's), in batches."""
    calls = max(1, crops // BATCH)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        net(*batch)
    synchronize(device)
    return calls * BATCH / (time.perf_counter() - start)


class TimedModel(torch.nn.Module):
    """``net`` plus the seconds spent in its forward calls (until its results are ready)."""

    def __init__(self, net: torch.nn.Module, device: str) -> None:
        super().__init__()
        self.net, self.device, self.seconds = net, device, 0.0
        self.input_resolution = net.config.proc_side

    def forward(self, crops: torch.Tensor, intrinsics: torch.Tensor) -> object:
        start = time.perf_counter()
        try:
            output = self.net(crops, intrinsics)
            synchronize(self.device)
            return output
        finally:
            self.seconds += time.perf_counter() - start


class FreeNetwork(torch.nn.Module):
    """A stand-in for ``net`` that costs nothing: its outputs for one crop, repeated per crop (the
    pipeline's own work is measured with it)."""

    def __init__(self, net: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        super().__init__()
        self.config = net.config
        with torch.inference_mode():
            self.one = net(batch[0][:1], batch[1][:1])

    def forward(self, crops: torch.Tensor, intrinsics: torch.Tensor) -> object:
        return type(self.one)(*(value.expand(len(crops), *value.shape[1:]) for value in self.one))


def cpu_seconds(function: Callable[[], T]) -> tuple[T, float]:
    """``function()`` and the CPU seconds this process spent on it (all threads)."""
    start = time.process_time()
    result = function()
    return result, time.process_time() - start


class TruePoses:
    """Swaps the network's poses (untrained weights) for the clip's true poses of the person
    nearest each box, so tracking follows the people; frames arrive in order, each once."""

    def __init__(self, truth) -> None:
        self.truth, self.frames_seen = truth, 0

    def __call__(self, results: list[FramePoses], boxes: list[np.ndarray]) -> list[FramePoses]:
        out = []
        for result, frame_boxes in zip(results, boxes, strict=True):
            row, truth = self.frames_seen, self.truth
            self.frames_seen += 1
            centres = frame_boxes[:, :2] + frame_boxes[:, 2:4] / 2
            true_centres = truth.boxes[row, :, :2] + truth.boxes[row, :, 2:4] / 2
            distance = np.linalg.norm(centres[:, None] - true_centres[None], axis=-1)
            person = np.argmin(np.nan_to_num(distance, nan=np.inf), axis=1)
            out.append(FramePoses(truth.poses3d[row, person], truth.poses2d[row, person],
                                  result.uncertainty))  # fmt: skip
        return out


def run_pipeline(clip: Path, truth, net: torch.nn.Module, device: str) -> tuple[float, int, float]:
    """``analyze`` on ``clip`` in this process: frames/s, crops estimated, and the share of the
    run's wall time spent in the network's forward calls."""
    output = clip.with_suffix(".npz")  # each repeat replaces the last one's result
    args = build_parser("analyze").parse_args(
        ["analyze", str(clip), "-o", str(output), "--device", device, "--batch-size", str(BATCH),
         "--overwrite"]
    )  # fmt: skip
    timed = TimedModel(net, device)
    true_poses = TruePoses(truth)
    counted = []

    def make_estimator(settings, device):
        config = EstimatorConfig(1, batch_size=BATCH)
        estimator = PoseEstimator(timed, SKELETON.joint_names, device, config)
        estimator.model_id = "bench"
        inner = estimator.estimate

        def estimate(frames, boxes, intrinsics):
            counted.append(sum(len(b) for b in boxes))
            return true_poses(inner(frames, boxes, intrinsics), boxes)

        estimator.estimate = estimate
        return estimator

    stream = io.StringIO()
    code = analysis.run(args, make_estimator, lambda *a: PersonColourDetector(), stream=stream)
    done = json.loads(stream.getvalue().splitlines()[-1])
    assert code == 0 and done["people"] == truth.num_people, done
    assert true_poses.frames_seen == done["frames"], "frames reached the estimator out of step"
    return done["frames"] / done["elapsed_s"], sum(counted), timed.seconds / done["elapsed_s"]


def one_length(clip: str) -> dict:
    """Run in a child process: ``analyze`` on ``clip`` with the frame-level estimator; peak memory
    of the whole process (it holds nothing else)."""
    with tempfile.TemporaryDirectory() as folder:
        args = build_parser("analyze").parse_args(
            ["analyze", clip, "-o", str(Path(folder) / "o.npz"), "--device", "cpu"]
        )
        stream = io.StringIO()
        estimator = ColourJointPoseEstimator()
        code = analysis.run(
            args, lambda s, d: estimator, lambda *a: PersonColourDetector(), stream=stream
        )
    done = json.loads(stream.getvalue().splitlines()[-1])
    # VmHWM: this process's own peak (getrusage's maxrss keeps the forking parent's across exec)
    status = Path("/proc/self/status").read_text()
    peak = int(status.split("VmHWM:")[1].split()[0]) / 1024
    return {"code": code, "fps": done["frames"] / done["elapsed_s"], "rss_mb": peak}


def tracking_quality(result, truth, tolerance_px: float = 10.0) -> tuple[float, int]:
    """(share of (frame, person in view) pairs found within ``tolerance_px`` median joint error,
    number of track-id changes summed over the ground-truth people)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        error = np.nanmedian(
            np.linalg.norm(result.poses2d[:, :, None] - truth.poses2d[:, None], axis=-1), axis=-1
        )  # (T, P_out, P_true)
    width, height = truth.image_size
    found, in_view, switches = 0, 0, 0
    for person in range(truth.num_people):
        centre = np.nanmedian(truth.poses2d[:, person], axis=1)
        visible = (centre[:, 0] > 0) & (centre[:, 0] < width) & (centre[:, 1] > 0)
        best = np.where(np.isfinite(error[:, :, person]), error[:, :, person], np.inf)
        matched = best.min(axis=1) < tolerance_px
        ids = result.track_ids[best.argmin(axis=1)][matched & visible]
        found += int((matched & visible).sum())
        in_view += int(visible.sum())
        switches += int(np.count_nonzero(np.diff(ids)))
    return found / max(in_view, 1), switches


def tracking_rows() -> list[tuple[str, float, int]]:
    """Detection rate and id switches of the pipeline (PoseEstimator + colour-joint crop model,
    test colour detector) on 2-person samples."""
    from retarget.contract import read_trajectory

    samples = {
        "side by side, 4 s": walking_people(2, 4.0),
        "crossing, 1.5 m apart in depth, 4 s": walking_people(2, 4.0, spacing_m=-2.4, depth_step_m=1.5),
    }  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, truth in samples.items():
            clip = write_clip(Path(folder) / "sample.mp4", truth)
            args = build_parser("analyze").parse_args(
                ["analyze", str(clip), "-o", str(Path(folder) / "s.npz"), "--device", "cpu",
                 "--overwrite"]  # one result file, sample after sample
            )  # fmt: skip
            reader = ColourJointCropModel(192)

            def make_estimator(settings, device, reader=reader):
                estimator = PoseEstimator(
                    reader, SKELETON.joint_names, device, EstimatorConfig(1, batch_size=8)
                )
                estimator.model_id = "colour-joints"
                return estimator

            code = analysis.run(
                args, make_estimator, lambda *a: PersonColourDetector(), stream=io.StringIO()
            )
            assert code == 0
            rows.append((name, *tracking_quality(read_trajectory(Path(folder) / "s.npz"), truth)))
    return rows


def detector_costs() -> list[tuple[str, float]]:
    from inference.detect.hog import HogPersonDetector
    from inference.detect.yolox import Yolox, YoloxConfig, YoloxDetector

    frames = [np.full((360, 640, 3), 128, np.uint8)] * 4
    rows = []
    for name, detector in (
        ("hog", HogPersonDetector()),
        ("yolox-nano (416)", YoloxDetector(Yolox(YoloxConfig.named("yolox-nano")))),
        ("yolox-s (640)", YoloxDetector(Yolox(YoloxConfig.named("yolox-s")))),
    ):
        detector.detect(frames[:1])
        start = time.perf_counter()
        detector.detect(frames)
        rows.append((name, (time.perf_counter() - start) / len(frames)))
    return rows


def throughput(
    backbone: str, side: int, frames: int, settings: list[int], repeats: int, device: str
) -> None:
    """Sections 1-2 for one network: the model alone and the pipeline with ``settings`` people
    per frame on ``frames``-frame clips, ``repeats`` pipeline runs each."""
    net, description = network(backbone, side, device)
    cpu = torch.device(device).type == "cpu"
    print(f"\nnetwork: {description}, batch {BATCH}, {device}, {frames} frames")
    print(f"{'setting':<34} {'frames/s':>9} {'crops/s':>9} {'ratio':>7} {'busy':>7}"
          + (f" {'ceiling':>8}" if cpu else ""))  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        truths = {p: walking_people(p, frames / 25, image_size=SIZE, spacing_m=1.4, alternate=False, distance_m=10.0)
                  for p in sorted({1, *settings})}  # fmt: skip
        clips = {p: write_clip(Path(folder) / f"p{p}.mp4", truth) for p, truth in truths.items()}
        batch = model_batch(net, clips[1], frames, device)  # the crops the model alone runs on
        model_crops_per_s(net, batch, BATCH, device)  # warm-up
        _, seconds = cpu_seconds(lambda: model_crops_per_s(net, batch, frames, device))
        network_cpu_per_crop = seconds / (max(1, frames // BATCH) * BATCH)
        free = FreeNetwork(net, batch)
        reference_rates = []
        for people in settings:
            # The machine is shared: each pipeline run is compared with the model alone measured
            # right before and after it, and the median of those paired ratios is reported.
            rates, runs = [model_crops_per_s(net, batch, frames * people, device)], []
            for _ in range(repeats):
                runs.append(run_pipeline(clips[people], truths[people], net, device))
                rates.append(model_crops_per_s(net, batch, frames * people, device))
            reference_rates += rates
            crops_per_s = np.array([fps * crops / frames for fps, crops, _ in runs])
            ratios = crops_per_s / ((np.array(rates[:-1]) + np.array(rates[1:])) / 2)
            fps = float(np.median([run[0] for run in runs]))
            busy = float(np.median([run[2] for run in runs]))
            (_, crops, _), seconds = cpu_seconds(
                lambda p=people: run_pipeline(clips[p], truths[p], free, device)
            )
            ceiling = network_cpu_per_crop / (network_cpu_per_crop + seconds / crops)
            rows.append((people, fps, float(np.median(crops_per_s)), ratios, busy, ceiling))
    print(f"{'model only':<34} {'':>9} {np.median(reference_rates):>9.2f} {1.0:>7.2f}")
    for people, fps, crops_per_s, ratios, busy, ceiling in rows:
        spread = f"({ratios.min():.2f}-{ratios.max():.2f})" if len(ratios) > 1 else ""
        print(f"{f'pipeline, {people} people':<34} {fps:>9.2f} {crops_per_s:>9.2f} "
              f"{np.median(ratios):>7.2f} {busy:>7.2f}" + (f" {ceiling:>8.2f}" if cpu else "")
              + f"  {spread}")  # fmt: skip


def main() -> None:
    if sys.argv[1:2] == ["--length"]:
        print(json.dumps(one_length(sys.argv[2])))
        return
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--throughput-only", action="store_true", help="sections 1-2 only")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="pipeline runs per setting")
    parser.add_argument(
        "--people", type=int, nargs="+", default=[1, 3, 6], help="people per frame settings"
    )
    parser.add_argument(
        "--no-large", dest="large", action="store_false",
        help="skip the 1-person runs with the official models' network sizes (several minutes)",
    )  # fmt: skip
    parser.add_argument(
        "--device", default="cpu", help="where the network runs (cuda: the GPU pipeline)"
    )
    options = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    import inference.track  # noqa: F401  (scipy: imported once per process, not per clip)

    device = options.device
    throughput("efficientnetv2-b0", 256, FRAMES, options.people, options.repeats, device)
    if options.large:
        # The official models' sizes (the default is EfficientNetV2-L): 1 person; on the CPU
        # fewer frames (a crop of the L network takes ~0.7 s on 2 cores).
        cpu = torch.device(device).type == "cpu"
        for backbone, frames in (("efficientnetv2-s", 24 if cpu else FRAMES),
                                 ("efficientnetv2-l", 16 if cpu else FRAMES)):  # fmt: skip
            throughput(backbone, 384, frames, [1], max(1, options.repeats - 1), device)
    if options.throughput_only:
        return
    print(f"\n{'clip length (frame-level model)':<34} {'frames/s':>9} {'peak MB':>9}")
    with tempfile.TemporaryDirectory() as folder:
        for frames in (100, 400, 1600):
            clip = write_clip(Path(folder) / f"long{frames}.mp4", walking_people(1, frames / 25))
            result = subprocess.run([sys.executable, __file__, "--length", str(clip)], cwd=ROOT,
                                    capture_output=True, text=True, check=True)  # fmt: skip
            row = json.loads(result.stdout.splitlines()[-1])
            print(f"{f'{frames} frames':<34} {row['fps']:>9.1f} {row['rss_mb']:>9.0f}")
    print(f"\n{'2-person sample (colour-joint model)':<40} {'found':>7} {'id switches':>12}")
    for name, rate, switches in tracking_rows():
        print(f"{name:<40} {rate:>7.1%} {switches:>12d}")
    print(f"\n{'detector, 640x360 frame':<34} {'ms/frame':>9} {'/4 (every 4th)':>15}")
    for name, seconds in detector_costs():
        print(f"{name:<34} {1000 * seconds:>9.1f} {250 * seconds:>15.1f}")


if __name__ == "__main__":
    main()
