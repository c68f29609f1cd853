"""Video worker throughput: does the pipeline keep the pose network busy, and is memory flat?

Measured side by side in one run, on synthetic walking people (1280x720, 25 fps, MPEG-4):

1. ``model``: crops/s of the crop network alone (batch 8, 256 px crops, already in memory).
2. ``pipeline``: the whole ``analyze`` command (decode thread, detection every 4 frames, boxes
   proposed from poses, perspective crops, the same network, tracking, writing the .npz) with 1, 3
   and 6 people per frame; ratio = pipeline crops/s / model crops/s (target >= 0.85 for 1 person).
3. ``length``: frames/s and peak memory of whole runs on clips of growing length (each in its own
   process; the frame-level test estimator keeps these runs short): memory must stay flat.
4. ``detector``: per-frame cost of the detectors at 640x360 (HOG, YOLOX nano/s with untrained weights:
   the cost does not depend on the weights); the pipeline amortises it over ``--detect-every``.

The network is the project's MeTRAbs model (EfficientNetV2-B0 backbone, untrained weights) when
``inference.model`` is installed, else a convolutional stand-in of similar size. Its outputs are
not used: the poses come from the colour-joint reader of ``tests/tinycrop.py`` run on the same crops
(the synthetic figures are colour-coded), so tracking behaves as with a trained model while the
network's cost is real. Both sides of every ratio run exactly this composite model.

    .venv/bin/python benchmarks/bench_worker.py
"""

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inference import worker  # noqa: E402
from inference.__main__ import build_parser  # noqa: E402
from inference.poses import EstimatorConfig, PoseEstimator  # noqa: E402
from inference.synth.motion import SKELETON  # noqa: E402
from tests.synthvideo import walking_people, write_clip  # noqa: E402
from tests.tinycrop import ColourJointCropModel  # noqa: E402
from tests.tinymodels import ColourJointPoseEstimator, PersonColourDetector  # noqa: E402

SIDE = 256
SIZE = (1280, 720)
BATCH = 8
FRAMES = 48
REPEATS = 2


def network() -> tuple[torch.nn.Module, str]:
    """The crop network whose cost is measured."""
    try:
        from inference.model import MetrabsModel, ModelConfig
    except ImportError:
        layers, channels = [], 3
        for width in (32, 64, 128, 256, 512):
            layers += [torch.nn.Conv2d(channels, width, 3, 2, 1), torch.nn.BatchNorm2d(width),
                       torch.nn.SiLU(), torch.nn.Conv2d(width, width, 3, 1, 1), torch.nn.SiLU()]  # fmt: skip
            channels = width
        net = torch.nn.Sequential(*layers, torch.nn.Conv2d(channels, 30 * 9, 1)).eval()
        return net, "conv stand-in (inference.model not installed)"
    config = ModelConfig(backbone="efficientnetv2-b0", proc_side=SIDE)
    model = MetrabsModel(config, SKELETON.joint_names, SKELETON.edges)
    return model.prepare_for_inference("cpu"), "MeTRAbs EfficientNetV2-B0 (untrained)"


class CostedColourModel(torch.nn.Module):
    """Runs ``net`` on the crops (the cost), returns the colour reader's poses (the outputs)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net, self.reader = net, ColourJointCropModel(SIDE)
        self.input_resolution = SIDE

    @torch.inference_mode()
    def forward(self, crops: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
        if isinstance(self.net, torch.nn.Sequential):
            self.net(crops)
        else:
            self.net(crops, intrinsics)
        return self.reader(crops, intrinsics)


def model_batches(model: CostedColourModel, clip: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of BATCH real crops of the clip's first frame and their intrinsics."""
    import cv2

    _, frame = cv2.VideoCapture(str(clip)).read()
    truth = walking_people(1, FRAMES / 25, image_size=SIZE, distance_m=10.0)
    crops, intrinsics = [], []

    def record(batch: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        crops.append(batch.clone())
        intrinsics.append(k.clone())
        return model(batch, k)

    estimator = PoseEstimator(
        model, SKELETON.joint_names, "cpu", EstimatorConfig(1, batch_size=BATCH)
    )
    estimator.model = record
    frames = [np.ascontiguousarray(frame[..., ::-1])] * BATCH
    estimator.estimate(frames, [truth.boxes[0, :, :4]] * BATCH, truth.intrinsics)
    return torch.cat(crops)[:BATCH], torch.cat(intrinsics)[:BATCH]


def model_crops_per_s(model: CostedColourModel, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Crops/s of the model alone over as many crops as a pipeline run (FRAMES, in batches)."""
    start = time.perf_counter()
    for _ in range(FRAMES // BATCH):
        model(*batch)
    return FRAMES // BATCH * BATCH / (time.perf_counter() - start)


def run_pipeline(clip: Path, model: CostedColourModel, people: int) -> tuple[float, int]:
    """Whole-pipeline frames/s of ``analyze`` on ``clip`` (in this process) and the crop count."""
    output = clip.with_suffix(".npz")
    args = build_parser("analyze").parse_args(
        ["analyze", str(clip), "-o", str(output), "--device", "cpu", "--batch-size", str(BATCH)]
    )
    counted = []

    def make_estimator(settings, device):
        estimator = PoseEstimator(
            model, SKELETON.joint_names, device, EstimatorConfig(1, batch_size=BATCH)
        )
        estimator.model_id = "bench"
        inner = estimator.estimate

        def estimate(frames, boxes, intrinsics):
            counted.append(sum(len(b) for b in boxes))
            return inner(frames, boxes, intrinsics)

        estimator.estimate = estimate
        return estimator

    stream = io.StringIO()
    code = worker.run(args, make_estimator, lambda *a: PersonColourDetector(), stream=stream)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert code == 0 and events[-1]["people"] == people, events[-1]
    return events[-1]["frames"] / events[-1]["elapsed_s"], sum(counted)


def one_length(frames: int) -> dict:
    """Run in a child process: a clip of ``frames`` frames with the frame-level estimator."""
    import resource

    with tempfile.TemporaryDirectory() as folder:
        clip = write_clip(Path(folder) / "long.mp4", walking_people(1, frames / 25))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        args = build_parser("analyze").parse_args(
            ["analyze", str(clip), "-o", str(Path(folder) / "o.npz"), "--device", "cpu"]
        )
        stream = io.StringIO()
        estimator = ColourJointPoseEstimator()
        code = worker.run(
            args, lambda s, d: estimator, lambda *a: PersonColourDetector(), stream=stream
        )
        done = json.loads(stream.getvalue().splitlines()[-1])
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"code": code, "fps": done["frames"] / done["elapsed_s"], "rss_mb": after / 1024,
            "rss_growth_mb": (after - before) / 1024}  # fmt: skip


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


def main() -> None:
    if sys.argv[1:2] == ["--length"]:
        print(json.dumps(one_length(int(sys.argv[2]))))
        return
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    import inference.track  # noqa: F401  (scipy: imported once per process, not per clip)

    net, description = network()
    model = CostedColourModel(net)
    print(f"network: {description}; crops {SIDE} px, batch {BATCH}, CPU, {FRAMES} frames")
    print(f"{'setting':<34} {'frames/s':>9} {'crops/s':>9} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as folder:
        clips = {p: write_clip(Path(folder) / f"p{p}.mp4", walking_people(p, FRAMES / 25, image_size=SIZE, spacing_m=1.4, alternate=False, distance_m=10.0))
                 for p in (1, 3, 6)}  # fmt: skip
        batch = model_batches(model, clips[1])
        model(*batch)  # warm-up
        # The machine is shared: measure the model before and after the pipeline runs, run each
        # pipeline twice, and compare means.
        reference = [model_crops_per_s(model, batch) for _ in range(REPEATS)]
        rows = []
        for people, clip in clips.items():
            runs = [run_pipeline(clip, model, people) for _ in range(REPEATS)]
            rows.append((people, np.mean([fps for fps, _ in runs]), runs[0][1]))
        reference += [model_crops_per_s(model, batch) for _ in range(REPEATS)]
        model_rate = float(np.mean(reference))
        print(f"{'model only':<34} {'':>9} {model_rate:>9.2f} {1.0:>7.2f}")
        for people, fps, crops in rows:
            crops_per_s = fps * crops / FRAMES
            print(f"{f'pipeline, {people} people':<34} {fps:>9.2f} {crops_per_s:>9.2f} "
                  f"{crops_per_s / model_rate:>7.2f}")  # fmt: skip
    print(f"\n{'clip length (frame-level model)':<34} {'frames/s':>9} {'peak MB':>9} {'growth':>7}")
    for frames in (100, 400, 1600):
        result = subprocess.run([sys.executable, __file__, "--length", str(frames)], cwd=ROOT,
                                capture_output=True, text=True, check=True)  # fmt: skip
        row = json.loads(result.stdout.splitlines()[-1])
        print(f"{f'{frames} frames':<34} {row['fps']:>9.1f} {row['rss_mb']:>9.0f} "
              f"{row['rss_growth_mb']:>7.0f}")  # fmt: skip
    print(f"\n{'detector, 640x360 frame':<34} {'ms/frame':>9} {'/4 (every 4th)':>15}")
    for name, seconds in detector_costs():
        print(f"{name:<34} {1000 * seconds:>9.1f} {250 * seconds:>15.1f}")


if __name__ == "__main__":
    main()
