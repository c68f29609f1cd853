"""The headless main job analyses a frame range of a video, as ``analyze`` does (--start/--stop)."""

import subprocess
import sys

import numpy as np

from retarget.contract import read_trajectory
from tests.faults import ROOT, no_traceback, run

HEADLESS = [sys.executable, "-m", "metrabs_blender"]


def test_start_and_stop_choose_the_frames_analysed(tmp_path):
    backend = ROOT / ".venv" / "bin" / "python"  # the test venv with torch (`make test` makes it)
    make_clip = (  # the bundled models' synthetic world, so the offline default finds people
        "import sys; from pathlib import Path; from tests.official_layout import "
        "render_short_clip; render_short_clip(Path(sys.argv[1]))"
    )
    subprocess.run([backend, "-c", make_clip, tmp_path], cwd=ROOT, check=True)
    video = tmp_path / "clip.mp4"
    common = [video, "--python", backend, "--device", "cpu", "--no-camera"]
    done = run([*HEADLESS, *common, "--out", tmp_path / "x.blend", "--start", "3", "--stop", "9"])
    assert done.returncode == 0, done.stderr[-3000:]
    analysis = read_trajectory(tmp_path / "x.npz")
    np.testing.assert_array_equal(analysis.extras["source_frames"], np.arange(3, 9))

    backwards = run([*HEADLESS, *common, "--out", tmp_path / "y.blend", "--start", "9", "--stop",
                     "3"])  # fmt: skip
    assert backwards.returncode == 2 and "must come after --start" in no_traceback(backwards)
    npz = run([*HEADLESS, tmp_path / "x.npz", "--out", tmp_path / "z.blend", "--start", "2"])
    assert npz.returncode == 2 and "frames of a video" in no_traceback(npz)
    assert not (tmp_path / "y.blend").exists() and not (tmp_path / "z.blend").exists()
