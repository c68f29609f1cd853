"""End to end on the bundled sample (``inference.training.synth.sample``: a walker and a dancer,
4 s at 25 fps) with the bundled offline models, for a few worker settings side by side: the worker's tracking
against the truth's visible boxes (detection rate, id switches) and the final armature motion
(worker -> default cleaning -> generated rigs -> saved .blend, read back) against the truth's 3D
joints in the camera frame. See demo/evaluate.py for the measures."""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from demo import evaluate  # noqa: E402
from inference.training.synth.sample import render_sample  # noqa: E402
from retarget.contract import read_trajectory  # noqa: E402

VARIANTS = {
    "detect every frame, 1 crop (default)": [],
    "detect every 4th frame": ["--detect-every", "4"],
    "5-crop test-time augmentation": ["--tta", "5"],
}
MODELS = ["--model", "metrabs_small_synth", "--max-people", "2", "--device", "cpu"]


def run_variant(video: Path, truth_path: Path, folder: Path, options: list[str]) -> tuple:
    analysis, blend = folder / "analysis.npz", folder / "scene.blend"
    started = time.perf_counter()
    worker = [sys.executable, "-m", "inference", "analyze", str(video), "-o", str(analysis)]
    subprocess.run(worker + MODELS + options, cwd=REPO, check=True, capture_output=True)
    analysed = time.perf_counter()
    scene = [sys.executable, "-m", "metrabs_blender", str(analysis), "--out", str(blend),
             "--clean", "default"]  # fmt: skip
    subprocess.run(scene, cwd=REPO, check=True, capture_output=True)
    truth, output = read_trajectory(truth_path), read_trajectory(analysis)
    tracking = evaluate.evaluate_tracking(output, truth)
    by_track, _ = evaluate.read_armatures(blend)
    errors = evaluate.evaluate_armatures(by_track, output, truth, tracking)
    return tracking, errors, analysed - started


def main() -> None:
    print(__doc__.strip().splitlines()[0])
    with tempfile.TemporaryDirectory() as tmp:
        video, truth = render_sample(tmp)
        print(f"\n{'worker settings':42s}{'worker s':>9s}{'tracks':>7s}{'det. rate':>11s}"
              f"{'id sw.':>8s}{'root-rel':>10s}{'root':>11s}{'limbs':>8s}")  # fmt: skip
        for name, options in VARIANTS.items():
            folder = Path(tmp) / name.replace(" ", "_")
            folder.mkdir()
            tracking, errors, seconds = run_variant(video, truth, folder, options)
            rate = "/".join(f"{r:.0%}" for r in tracking.detection_rate)
            switches = "/".join(str(s) for s in tracking.id_switches)
            rootrel = "/".join(f"{e.rootrel_mpjpe_mm:.0f}" for e in errors)
            root = "/".join(f"{e.root_error_mm:.0f}" for e in errors)
            limbs = "/".join(f"{e.limb_direction_deg:.0f}" for e in errors)
            print(f"{name:42s}{seconds:9.1f}{tracking.num_tracks:7d}{rate:>11s}{switches:>8s}"
                  f"{rootrel:>10s}{root:>11s}{limbs:>8s}")  # fmt: skip
    print("(per true person walker/dancer; errors in mm and degrees, camera frame; 2 CPU cores)")


if __name__ == "__main__":
    main()
