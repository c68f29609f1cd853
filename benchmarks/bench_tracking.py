"""Tracking with the bundled offline models on clips of two people passing each other.

Two people walk opposite ways in lanes 1.2 m apart (``inference.training.synth.render``, 4 s at
25 fps, 640x360), so that in most clips one passes in front of the other. Per clip: how close they come in the image, their depth gap,
and the worker's detection rate and track-id switches against the truth's visible boxes
(demo/evaluate.py); then the totals. The seeds are used by no training run (models/*/TRAINING.md).

    .venv/bin/python benchmarks/bench_tracking.py [--seeds N ...]
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from demo import evaluate  # noqa: E402
from inference.training.synth.render import ClipConfig, render_clip  # noqa: E402
from retarget.contract import read_trajectory  # noqa: E402

SEEDS = tuple(range(20261301, 20261311))
CLIP = ClipConfig(num_people=2, duration_s=4.0, fps=25.0, image_size=(640, 360), kinds=("walk",))
WORKER = ["--model", "metrabs_small_synth", "--device", "cpu"]


def closest_approach(truth) -> tuple[float, float]:
    """(smallest horizontal distance between the two people's 2D centres in px, median depth gap
    in mm) over the clip."""
    centres = np.nanmean(truth.poses2d[..., 0], axis=2)  # (T, 2)
    depths = np.nanmean(truth.poses3d[..., 2], axis=2)
    return float(np.nanmin(np.abs(centres[:, 0] - centres[:, 1]))), float(
        np.nanmedian(np.abs(depths[:, 0] - depths[:, 1]))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    seeds = parser.parse_args().seeds
    print(__doc__.splitlines()[0])
    print(f"\n{'seed':>9s}{'closest px':>11s}{'depth gap':>10s}{'tracks':>7s}{'det. rate':>11s}"
          f"{'id sw.':>8s}")  # fmt: skip
    rates, switches = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            video, truth_path = Path(tmp) / f"{seed}.mp4", Path(tmp) / f"{seed}_truth.npz"
            render_clip(video, truth_path, seed, CLIP)
            output = Path(tmp) / f"{seed}.npz"
            command = [sys.executable, "-m", "inference", "analyze", str(video), "-o", str(output)]
            subprocess.run(command + WORKER, cwd=REPO, check=True, capture_output=True)
            truth = read_trajectory(truth_path)
            tracking = evaluate.evaluate_tracking(read_trajectory(output), truth)
            closest, depth_gap = closest_approach(truth)
            rates += list(tracking.detection_rate)
            switches += list(tracking.id_switches)
            rate = "/".join(f"{r:.0%}" for r in tracking.detection_rate)
            switched = "/".join(str(s) for s in tracking.id_switches)
            print(f"{seed:9d}{closest:11.0f}{depth_gap:8.0f}mm{tracking.num_tracks:7d}{rate:>11s}"
                  f"{switched:>8s}")  # fmt: skip
    print(
        f"{'all':>9s}{'':>28s}{np.mean(rates):>11.0%}{int(np.sum(switches)):>8d}"
        f"   (mean detection rate, total id switches of {len(rates)} people)"
    )


if __name__ == "__main__":
    main()
