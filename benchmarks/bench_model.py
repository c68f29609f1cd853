"""Crop model speed on CPU: our MeTRAbs vs the official PyTorch implementation, side by side.

Same weights (filled from key names), same input size and batch (8), fp32, one run. EfficientNetV2-S
at 256 px and -L at 384 px. The official model runs in the throwaway reference environment
(``/work/refenv`` with the official source in ``/work/refenv/metrabs_src``; override with
METRABS_REFENV_PYTHON / METRABS_OFFICIAL_SRC); when it is absent only our numbers are printed.
Each measurement runs in its own process with 2 threads. Because the reference environment has a
different torch version, our model is also timed there so the ratio compares like with like.

``--batch-sweep``: crops/s of our model by batch size (1 .. 32) on the CPU, for the bundled model
(``models/metrabs_small_synth``) and EfficientNetV2-S at 256 px, batch sizes interleaved round by
round so that the load of other processes spreads evenly; the basis of ``inference.poses``'s
``CPU_BATCH_SIZE``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFENV_PYTHON = Path(os.environ.get("METRABS_REFENV_PYTHON", "/work/refenv/bin/python"))
OFFICIAL_SRC = Path(os.environ.get("METRABS_OFFICIAL_SRC", "/work/refenv/metrabs_src"))
CASES = [("efficientnetv2-s", "s", 256, 3), ("efficientnetv2-l", "l", 384, 2)]  # ..., timed reps
BATCH = 8
N_JOINTS = 24
THREADS = 2


def _time_model(run, crops, intrinsics, reps: int) -> float:
    """Best crops/s over ``reps`` timed calls after one warm-up call."""
    run(crops, intrinsics)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        run(crops, intrinsics)
        best = min(best, time.perf_counter() - start)
    return len(crops) / best


def worker(impl: str, backbone: str, side: int, reps: int) -> dict:
    """Runs in a child process: build one model, time it, return the measurement."""
    import torch

    sys.path.insert(0, str(REPO))
    from inference.model.testing import make_test_crops, make_test_intrinsics

    torch.set_num_threads(THREADS)
    crops = torch.from_numpy(make_test_crops(BATCH, side))
    intrinsics = torch.from_numpy(make_test_intrinsics(BATCH, side))
    if impl == "ours":
        from inference.model import MetrabsModel, ModelConfig
        from inference.model.testing import deterministic_state_dict

        config = ModelConfig(backbone=backbone, proc_side=side)
        model = MetrabsModel(config, [f"j{i}" for i in range(N_JOINTS)])
        model.load_state_dict(deterministic_state_dict(model), strict=True)
        model.prepare_for_inference("cpu", channels_last=True, fuse_batchnorm=True)
        speed = _time_model(model.predict, crops, intrinsics, reps)
    else:
        import types

        sys.path.insert(0, str(REPO / "tools"))
        from make_parity_fixtures import build_official, install_official

        cfg = types.SimpleNamespace(
            proc_side=side,
            stride_train=32,
            stride_test=32,
            centered_stride=True,
            legacy_centered_stride_bug=False,
            efficientnet_size=backbone[-1],
            depth=8,
            box_size_mm=2200,
            weak_perspective=False,
            mix_3d_inside_fov=0.5,
            affine_weights=None,
            transform_coords=False,
            predict_all_and_latents=False,
        )
        model, _ = build_official(install_official(OFFICIAL_SRC, cfg), cfg, N_JOINTS)

        def run(x, k):
            with torch.inference_mode():
                return model((x, k))

        speed = _time_model(run, crops, intrinsics, reps)
    return {"crops_per_s": speed, "torch": torch.__version__}


SWEEP_BATCHES = (1, 2, 4, 8, 16, 32)


def batch_sweep(rounds: int = 3, crops_per_timing: int = 32) -> None:
    """Print crops/s by batch size (best and median over ``rounds`` interleaved rounds)."""
    import numpy as np
    import torch

    sys.path.insert(0, str(REPO))
    from inference.model import MetrabsModel, ModelConfig, load_bundle
    from inference.model.testing import (
        deterministic_state_dict,
        make_test_crops,
        make_test_intrinsics,
    )

    torch.set_num_threads(THREADS)
    bundled = load_bundle(REPO / "models" / "metrabs_small_synth").model
    s256 = MetrabsModel(
        ModelConfig("efficientnetv2-s", proc_side=256), [f"j{i}" for i in range(24)]
    )
    s256.load_state_dict(deterministic_state_dict(s256), strict=True)
    print(f"crops/s by batch size, CPU fp32, {THREADS} threads; best / median of {rounds} rounds")
    print(f"{'model':<26}" + "".join(f"{b:>13}" for b in SWEEP_BATCHES))
    for name, model in (("bundled (B0-size) 160 px", bundled), ("EfficientNetV2-S 256 px", s256)):
        model.prepare_for_inference("cpu")
        side = model.config.proc_side
        crops = torch.from_numpy(make_test_crops(max(SWEEP_BATCHES), side))
        crops = crops.contiguous(memory_format=torch.channels_last)
        intrinsics = torch.from_numpy(make_test_intrinsics(max(SWEEP_BATCHES), side))
        rates: dict[int, list[float]] = {b: [] for b in SWEEP_BATCHES}
        with torch.inference_mode():
            for batch in SWEEP_BATCHES:  # warm-up: one call per shape
                model(crops[:batch], intrinsics[:batch])
            for _ in range(rounds):
                for batch in SWEEP_BATCHES:
                    calls = max(1, crops_per_timing // batch)
                    start = time.perf_counter()
                    for _ in range(calls):
                        model(crops[:batch], intrinsics[:batch])
                    rates[batch].append(calls * batch / (time.perf_counter() - start))
        cells = [f"{max(r):6.1f} /{np.median(r):5.1f}" for r in rates.values()]
        print(f"{name:<26}" + "".join(f"{c:>13}" for c in cells), flush=True)


def measure(python: Path, impl: str, backbone: str, side: int, reps: int) -> dict:
    command = [
        str(python),
        str(Path(__file__).resolve()),
        "--worker",
        impl,
        backbone,
        str(side),
        str(reps),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{impl} worker failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=4, metavar=("IMPL", "BACKBONE", "SIDE", "REPS"))
    parser.add_argument("--batch-sweep", action="store_true", help="crops/s by batch size only")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the batch sweep")
    args = parser.parse_args()
    if args.batch_sweep:
        batch_sweep(args.rounds)
        return 0
    if args.worker:
        impl, backbone, side, reps = args.worker
        print(json.dumps(worker(impl, backbone, int(side), int(reps))))
        return 0

    have_official = REFENV_PYTHON.exists() and (OFFICIAL_SRC / "metrabs_pytorch").is_dir()
    print(f"MeTRAbs crop model, CPU fp32, batch {BATCH}, {THREADS} threads, {N_JOINTS} joints")
    if not have_official:
        print(
            f"NOTE: official reference not found ({REFENV_PYTHON}, {OFFICIAL_SRC}); "
            "printing our numbers only."
        )
    header = f"{'model':<22}{'ours (venv)':>14}{'ours (ref)':>14}{'official':>14}{'ratio':>8}"
    print(header)
    print("-" * len(header))
    for backbone, _, side, reps in CASES:
        ours = measure(Path(sys.executable), "ours", backbone, side, reps)
        row = f"{backbone + f'-{side}':<22}{ours['crops_per_s']:>14.2f}"
        if have_official:
            ours_ref = measure(REFENV_PYTHON, "ours", backbone, side, reps)
            official = measure(REFENV_PYTHON, "official", backbone, side, reps)
            ratio = ours_ref["crops_per_s"] / official["crops_per_s"]
            row += f"{ours_ref['crops_per_s']:>14.2f}{official['crops_per_s']:>14.2f}{ratio:>7.2f}x"
        print(row, flush=True)
    print(
        "crops/s (best of several batches); ratio = ours / official under the same torch "
        f"({'reference env' if have_official else 'n/a'}); venv torch = "
        f"{ours['torch']}{', ref torch = ' + official['torch'] if have_official else ''}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
