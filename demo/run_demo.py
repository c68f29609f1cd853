"""The offline demo: the bundled synthetic sample clip (a walker and a dancer) -> the analysis worker
with the bundled models -> cleaning -> retarget onto generated MeTRAbs rigs in a Blender scene with
the matched camera -> an overlay strip and the errors against the clip's ground truth.

Writes into ``demo/out/``: ``sample.mp4`` + ``sample_truth.npz`` (rendered by
``inference.training.synth.sample``, kept for later runs), ``demo.npz`` (the worker's trajectory),
``cleaned/`` (the cleaned trajectory), ``demo.blend`` (built by the headless main job ``python -m
metrabs_blender``) and ``overlay.png`` (frames with the true skeleton in white and the armatures
read back out of the saved .blend, projected through the camera, in colour).
"""

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "demo" / "out"
sys.path.insert(0, str(REPO))

from demo import evaluate  # noqa: E402
from inference.training.synth.sample import SAMPLE_SEED, render_sample  # noqa: E402
from retarget.contract import read_trajectory  # noqa: E402

OVERLAY_FRAMES = [0, 20, 40, 60, 80, 99]


def main_job(video: Path, blend: Path, model: str | None = "metrabs_small_synth") -> list[str]:
    """The product's headless main job for the sample's 2 people, on the bundled offline model
    (``model=None``: the worker's default, which is that model when no official one is installed)."""
    command = [
        sys.executable, "-m", "metrabs_blender", str(video), "--out", str(blend), "--overwrite",
        "--python", sys.executable, "--device", "cpu", "--max-people", "2", "--clean", "default",
    ]  # fmt: skip
    return command + (["--model", model] if model else [])


def _is_current(truth_path: Path) -> bool:
    """Whether a sample rendered by an earlier run has today's seed (else it is rendered again)."""
    return read_trajectory(truth_path).source == f"synthetic clip seed {SAMPLE_SEED}"


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    video, truth_path = OUT / "sample.mp4", OUT / "sample_truth.npz"
    if not (video.is_file() and truth_path.is_file() and _is_current(truth_path)):
        render_sample(OUT)
    rendered = time.perf_counter()
    blend = OUT / "demo.blend"
    subprocess.run(main_job(video, blend), cwd=REPO, check=True)
    analysed = time.perf_counter()

    truth, output = read_trajectory(truth_path), read_trajectory(blend.with_suffix(".npz"))
    tracking = evaluate.evaluate_tracking(output, truth)
    by_track, _ = evaluate.read_armatures(blend)
    errors = evaluate.evaluate_armatures(by_track, output, truth, tracking)
    overlay = evaluate.overlay_strip(video, truth, by_track, OVERLAY_FRAMES, OUT / "overlay.png")

    print(f"\nsample rendered in {rendered - started:.1f} s; video -> .blend in "
          f"{analysed - rendered:.1f} s (worker, cleaning, retarget, camera)")  # fmt: skip
    print(f"tracks: {tracking.num_tracks}; per true person: detection rate "
          f"{', '.join(f'{r:.0%}' for r in tracking.detection_rate)}, id switches "
          f"{', '.join(str(s) for s in tracking.id_switches)}")  # fmt: skip
    print("armature motion vs ground truth (camera frame, mm / degrees):")
    for person, e in enumerate(errors):
        print(f"  person {person}: {e.frames} frames, root-relative MPJPE "
              f"{e.rootrel_mpjpe_mm:.0f}, root error {e.root_error_mm:.0f}, limb direction "
              f"{e.limb_direction_deg:.1f}")  # fmt: skip
    print(f"wrote {blend}\nwrote {overlay}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
