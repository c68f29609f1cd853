"""Checks that need a CUDA device (run on a lent GPU machine; CI has none).

1. Our crop model on CUDA: fp32 agrees with the CPU fp32 result; fp16/bf16 autocast stay close.
2. PoseEstimator on CUDA (pinned double buffers, torch warp, OpenCV warp) recovers known joints of
   an exactly readable blob scene, as the CPU path does (tests/test_poses.py, same scene).
3. Automatic batch size (EfficientNetV2-L 384 px, fp16, 5 crops per person, 1080p frames): the
   size tuned from free memory runs more crops than one batch without running out of memory and
   its measured peak stays inside the budget; under a real memory cap
   (``set_per_process_memory_fraction``) a too-large batch backs off by halving and gives the same
   poses as a run at the smaller size from the start.
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
from inference.poses import (  # noqa: E402
    AUTO_MEMORY_FRACTION,
    MAX_AUTO_BATCH_SIZE,
    EstimatorConfig,
    PoseEstimator,
)

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


def people_frames(n_people: int, n_frames: int) -> tuple[list, list, np.ndarray]:
    """Noise 1080p frames with ``n_people`` boxes each, and their camera."""
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8) for _ in range(n_frames)]
    x = np.linspace(100, 1600, n_people)
    boxes = [np.stack([x, np.full(n_people, 200.0), np.full(n_people, 250.0),
                       np.full(n_people, 600.0)], axis=1)] * n_frames  # fmt: skip
    k = np.array([[1800.0, 0, 960], [0, 1800, 540], [0, 0, 1]])
    return frames, boxes, k


def autotune_checks() -> None:
    model = build("efficientnetv2-l", 384, "cuda", torch.float16)
    config = EstimatorConfig(num_aug=5, amp_dtype="float16")
    estimator = PoseEstimator(model, model.joint_names, "cuda", config)
    free_before = torch.cuda.mem_get_info()[0]
    size = estimator.tune_batch_size((1920, 1080))
    print(
        f"      automatic batch size {size} crops ({free_before / 2**30:.1f} GiB free)", flush=True
    )
    report("automatic batch size is whole people within the cap", float(size % 5 != 0 or not
           5 <= size <= MAX_AUTO_BATCH_SIZE), 0, "(0 = yes)")  # fmt: skip

    frames, boxes, k = people_frames(6, (2 * size) // 30 + 1)  # more crops than one batch
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    estimator.estimate(frames, boxes, k)
    peak = torch.cuda.max_memory_allocated() - base
    report("batch size kept (no out-of-memory back-off)", float(size - estimator.crops_per_batch),
           0, "crops")  # fmt: skip
    report("peak memory of the tuned batches / the budget", peak / (AUTO_MEMORY_FRACTION *
           free_before), 1.0, "")  # fmt: skip

    # Real out-of-memory errors: cap this process at the memory it holds plus a quarter of what
    # the tuned batch needs, run batches of the tuned size, compare with a small-batch run.
    model.batch_global_scale = False  # per-crop results, so that batch splits must agree
    frames, boxes, k = people_frames(3, 4)
    small = PoseEstimator(model, model.joint_names, "cuda", EstimatorConfig(5, batch_size=5,
                          amp_dtype="float16")).estimate(frames, boxes, k)  # fmt: skip
    torch.cuda.empty_cache()
    total = torch.cuda.mem_get_info()[1]
    allowed = torch.cuda.memory_allocated() + peak / 4
    torch.cuda.set_per_process_memory_fraction(min(1.0, allowed / total))
    try:
        capped = PoseEstimator(model, model.joint_names, "cuda", EstimatorConfig(5,
                               batch_size=size, amp_dtype="float16"))  # fmt: skip
        result = capped.estimate(frames, boxes, k)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    print(f"      capped run backed off from {size} to {capped.crops_per_batch} crops", flush=True)
    report("back-off lowered the batch size", float(capped.crops_per_batch >= size), 0, "(0 = yes)")
    diff = max(
        float(np.abs(a.poses3d - b.poses3d).max()) for a, b in zip(result, small, strict=True)
    )
    report("backed-off poses vs 5-crop batches, max diff", diff, 1.0, "mm")


if __name__ == "__main__":
    print(torch.cuda.get_device_name(), "torch", torch.__version__, flush=True)
    model_checks()
    estimator_checks()
    autotune_checks()
    sys.exit(1 if failures else 0)
