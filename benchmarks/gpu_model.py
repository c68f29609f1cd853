"""Crop model throughput on CUDA: fp16 autocast, channels-last, batches 8/32/128, S-256 and L-384.

Self-contained (needs only torch, numpy and this repository); weights are filled from key names,
so no download is needed. Run on a GPU machine from the repository root:

    python benchmarks/gpu_model.py [--compile] [--bf16] [--reps 20] [--official METRABS_SRC]

Prints crops/s per model and batch size, plus the peak GPU memory. Also checks that the fp16
result stays close to an fp32 run of the same weights (mean joint difference in mm). With
``--official`` (a checkout of the official repository), the official crop model is timed in the same
run with the same weights, batches and crops, under fp16 autocast as its own wrapper runs it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from inference.model import MetrabsModel, ModelConfig  # noqa: E402
from inference.model.testing import (  # noqa: E402
    deterministic_state_dict,
    make_test_crops,
    make_test_intrinsics,
)

CASES = [("efficientnetv2-s", 256), ("efficientnetv2-l", 384)]
BATCHES = [8, 32, 128]
N_JOINTS = 24


def build(backbone: str, side: int, amp: torch.dtype | None, compile_model: bool) -> MetrabsModel:
    model = MetrabsModel(
        ModelConfig(backbone=backbone, proc_side=side), [f"j{i}" for i in range(N_JOINTS)]
    )
    model.load_state_dict(deterministic_state_dict(model), strict=True)
    return model.prepare_for_inference(
        "cuda", amp_dtype=amp, channels_last=True, fuse_batchnorm=True, compile=compile_model
    )


def time_batch(model: MetrabsModel, side: int, batch: int, reps: int) -> float:
    crops = torch.from_numpy(make_test_crops(min(batch, 8), side)).cuda()
    crops = crops.repeat((batch + 7) // 8, 1, 1, 1)[:batch].contiguous()
    intrinsics = torch.from_numpy(make_test_intrinsics(batch, side)).cuda()
    for _ in range(3):  # warm-up (cuDNN autotune, compile)
        model.predict(crops, intrinsics)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        model.predict(crops, intrinsics)
    torch.cuda.synchronize()
    return batch * reps / (time.perf_counter() - start)


def build_official(source: Path, backbone: str, side: int) -> torch.nn.Module:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from types import SimpleNamespace

    from make_parity_fixtures import build_official as build
    from make_parity_fixtures import install_official

    cfg = SimpleNamespace(
        proc_side=side, stride_train=32, stride_test=32, centered_stride=True,
        legacy_centered_stride_bug=False, efficientnet_size=backbone[-1], depth=8,
        box_size_mm=2200, weak_perspective=False, mix_3d_inside_fov=0.5, affine_weights=None,
        transform_coords=False, predict_all_and_latents=False,
    )  # fmt: skip
    model, _ = build(install_official(source, cfg), cfg, N_JOINTS)
    return model.cuda()


def time_official(model: torch.nn.Module, side: int, batch: int, reps: int) -> float:
    crops = torch.from_numpy(make_test_crops(min(batch, 8), side)).cuda()
    crops = crops.repeat((batch + 7) // 8, 1, 1, 1)[:batch].contiguous()
    intrinsics = torch.from_numpy(make_test_intrinsics(batch, side)).cuda()

    def run():
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
            return model((crops, intrinsics))

    for _ in range(3):
        run()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        run()
    torch.cuda.synchronize()
    return batch * reps / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compile", action="store_true", help="use torch.compile")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 instead of float16")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--official", type=Path, help="official metrabs checkout to time alongside")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("No CUDA device: this script times the model on a GPU.")
        return 1
    torch.backends.cudnn.benchmark = True
    amp = torch.bfloat16 if args.bf16 else torch.float16
    print(
        f"{torch.cuda.get_device_name()} torch {torch.__version__}, autocast {amp}, "
        f"channels-last, BN folded, compile={args.compile}"
    )
    header = f"{'model':<22}" + "".join(f"{f'b{b} crops/s':>16}" for b in BATCHES)
    print(header + f"{'peak GiB':>10}{'fp16-fp32 mm':>14}")
    print("-" * (len(header) + 24))
    for backbone, side in CASES:
        torch.cuda.reset_peak_memory_stats()
        model = build(backbone, side, amp, args.compile)
        speeds = [time_batch(model, side, b, args.reps) for b in BATCHES]
        peak = torch.cuda.max_memory_allocated() / 2**30
        reference = build(backbone, side, None, False)
        crops = torch.from_numpy(make_test_crops(8, side)).cuda()
        intrinsics = torch.from_numpy(make_test_intrinsics(8, side)).cuda()
        diff = (
            (
                model.predict(crops, intrinsics).poses3d
                - reference.predict(crops, intrinsics).poses3d
            )
            .norm(dim=-1)
            .mean()
            .item()
        )
        print(
            f"{backbone + f'-{side}':<22}"
            + "".join(f"{s:>16.1f}" for s in speeds)
            + f"{peak:>10.2f}{diff:>14.3f}",
            flush=True,
        )
        del model, reference
        torch.cuda.empty_cache()
        if args.official:
            official = build_official(args.official, backbone, side)
            official_speeds = [time_official(official, side, b, args.reps) for b in BATCHES]
            print(f"{'  official':<22}" + "".join(f"{s:>16.1f}" for s in official_speeds))
            ratios = [ours / theirs for ours, theirs in zip(speeds, official_speeds, strict=True)]
            print(
                f"{'  ours / official':<22}" + "".join(f"{r:>15.2f}x" for r in ratios), flush=True
            )
            del official
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
