"""Checks that need a CUDA device (run on a lent GPU machine; CI has none).

1. Our crop model on CUDA: fp32 agrees with the CPU fp32 result; fp16/bf16 autocast stay close.
2. PoseEstimator on CUDA (pinned double buffers, torch warp, OpenCV warp) recovers known joints of
   an exactly readable blob scene, as the CPU path does (tests/test_poses.py, same scene).
Prints one line per check with the measured numbers and PASS/FAIL; exits 1 on any failure.
"""

import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from crop_models import BLOB_JOINT_NAMES, BlobPoseModel  # noqa: E402
from test_poses import blob_scene  # noqa: E402

from inference.model import MetrabsModel, ModelConfig  # noqa: E402
from inference.model.testing import (  # noqa: E402
    deterministic_state_dict,
    make_test_crops,
    make_test_intrinsics,
)
from inference.poses import EstimatorConfig, PoseEstimator  # noqa: E402

failures = 0


def report(name: str, value: float, bound: float, unit: str) -> None:
    global failures
    ok = value <= bound
    failures += not ok
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {value:.4g} {unit} (bound {bound:g})", flush=True)


def build(backbone: str, side: int, device: str, amp=None) -> MetrabsModel:
    model = MetrabsModel(
        ModelConfig(backbone=backbone, proc_side=side), [f"j{i}" for i in range(24)]
    )
    model.load_state_dict(deterministic_state_dict(model), strict=True)
    return model.prepare_for_inference(device, amp_dtype=amp, channels_last=True)


def model_checks() -> None:
    for backbone, side in (("efficientnetv2-s", 256), ("efficientnetv2-l", 384)):
        crops = torch.from_numpy(make_test_crops(8, side))
        intrinsics = torch.from_numpy(make_test_intrinsics(8, side))
        cpu = build(backbone, side, "cpu").predict(crops, intrinsics).poses3d.numpy()
        for amp, bound in ((None, 0.1), (torch.float16, 5.0), (torch.bfloat16, 20.0)):
            out = (
                build(backbone, side, "cuda", amp)
                .predict(crops.cuda(), intrinsics.cuda())
                .poses3d.cpu()
                .numpy()
            )
            error = np.linalg.norm(out - cpu, axis=-1)
            label = f"{backbone}-{side} CUDA {amp or 'fp32'} vs CPU fp32, mean joint diff"
            report(label, float(error.mean()), bound, "mm")


def estimator_checks() -> None:
    rng = np.random.default_rng(11)
    k0 = np.array([[700.0, 0, 640], [0, 690, 360], [0, 0, 1]])
    k1 = np.array([[950.0, 0, 610], [0, 950, 375], [0, 0, 1]])
    scenes = [
        blob_scene(rng, [[-2600, 800, 5000], [1800, -200, 4200], [300, 900, 6000]], k0),
        blob_scene(rng, [[2900, 1400, 5500]], k1),
    ]
    truth = np.concatenate([s[2] for s in scenes])
    for warp in ("torch", "opencv"):
        estimator = PoseEstimator(
            BlobPoseModel(truth, side=128),
            BLOB_JOINT_NAMES,
            device="cuda",
            config=EstimatorConfig(num_aug=5, batch_size=10, warp=warp),
        )
        result = estimator.estimate(
            [s[0] for s in scenes], [s[1] for s in scenes], np.stack([k0, k1])
        )
        estimated = np.concatenate([r.poses3d for r in result])
        error = np.linalg.norm(estimated - truth, axis=-1).max()
        report(
            f"PoseEstimator CUDA, {warp} warp, 5 crops: max joint error", float(error), 1.0, "mm"
        )


if __name__ == "__main__":
    print(torch.cuda.get_device_name(), "torch", torch.__version__, flush=True)
    model_checks()
    estimator_checks()
    sys.exit(1 if failures else 0)
