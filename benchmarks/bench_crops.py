"""Crop rendering speed: OpenCV (CPU) vs torch grid_sample warps, and the PoseEstimator's overhead.

Renders the 5 test-time-augmentation crops of 1 and 3 people from a 1080p frame at 256 and 384
pixels, side by side in one run, and runs ``PoseEstimator`` with a network that costs nothing, so
its crops/s is the ceiling the wrapper puts on any model. Prints one table; ratios are torch/OpenCV.

    .venv/bin/python benchmarks/bench_crops.py
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from inference.crops import (  # noqa: E402
    LinearImage,
    TorchLinearImage,
    crop_geometry,
    make_crops,
    tta_augmentations,
    warp_crops_torch,
)
from inference.poses import EstimatorConfig, PoseEstimator  # noqa: E402
from retarget.skeletons import SMPL_24  # noqa: E402  (names with sides: the 5 crops flip)

BOXES = np.array([[700.0, 150, 380, 820], [150, 300, 260, 620], [1450, 250, 300, 700]])
K = np.array([[1662.0, 0, 960], [0, 1662, 540], [0, 0, 1]])  # 60 degrees horizontal FOV


def best_of(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


class NullModel(torch.nn.Module):
    def __init__(self, side: int, n_joints: int = 24):
        super().__init__()
        self.input_resolution, self.n_joints = side, n_joints

    def forward(self, crops, intrinsics):
        return crops.new_zeros(len(crops), self.n_joints, 3) + crops.new_tensor([0, 0, 3000.0])


def main() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(1080, 1920, 3), dtype=np.uint8)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(
        f"{'setting':<26} {'opencv crops/s':>15} "
        + " ".join(f"{'torch-' + d:>12}" for d in devices)
        + f" {'ratio':>7}"
    )
    for side in (256, 384):
        for n_people in (1, 3):
            boxes = np.repeat(BOXES[:n_people], 5, axis=0)
            geometry = crop_geometry(boxes, K, side, list(tta_augmentations(5)) * n_people)
            n = len(geometry)
            opencv = n / best_of(lambda g=geometry: make_crops(LinearImage(frame), g))
            rates = []
            for device in devices:

                def run(g=geometry, device=device):
                    image = TorchLinearImage(frame, device)
                    crops = warp_crops_torch(image, g.homography, g.scale, g.side)
                    if device == "cuda":
                        torch.cuda.synchronize()
                    return crops

                rates.append(n / best_of(run))
            label = f"{side}px, {n_people} people x 5 aug"
            print(
                f"{label:<26} {opencv:>15.1f} "
                + " ".join(f"{r:>12.1f}" for r in rates)
                + f" {rates[-1] / opencv:>7.2f}"
            )

    frames = [frame] * 4
    boxes = [BOXES] * 4
    for device in devices:
        for warp in ("opencv", "torch"):
            config = EstimatorConfig(num_aug=5, batch_size=60, warp=warp)
            estimator = PoseEstimator(NullModel(384), list(SMPL_24.joint_names), device, config)
            rate = 60 / best_of(lambda e=estimator: e.estimate(frames, boxes, K), repeats=2)
            print(f"PoseEstimator {device} {warp:<7} 384px, null network: {rate:.1f} crops/s")


if __name__ == "__main__":
    main()
