"""Fault battery, ``python -m inference batch`` (issue 18): results never lost, bad arguments are
exit 2 with a message, never a traceback. The batch runs as a subprocess; the clip analyser is the
real worker with the test models (``tests/batchclips.py``). Every test here failed before its fix."""

import json
import signal
import subprocess
import sys

from retarget.contract import read_trajectory
from tests.faults import ROOT, environment, no_traceback, run
from tests.synthvideo import walking_people, write_clip

BATCH = [sys.executable, "-m", "inference", "batch"]
SLOW_WORKER = ["--workers", "1", "--analyzer", "tests.batchclips:make_slow_worker_analyzer"]


def test_a_stopped_rerun_with_other_settings_keeps_the_complete_result(tmp_path):
    """A re-run with other settings, stopped mid-clip, replaced the clip's complete result with its
    partial one; the partial now waits beside it and the next run with those settings resumes."""
    write_clip(tmp_path / "long.mp4", walking_people(1, 3.0))  # 75 frames
    out = tmp_path / "out"
    first = [*BATCH, tmp_path / "long.mp4", "-o", out, *SLOW_WORKER]
    assert run([*first, "--analyze-options", "--device cpu --batch-size 8"]).returncode == 0
    complete = (out / "long.npz").read_bytes()

    rerun = [*first, "--analyze-options", "--device cpu --batch-size 2 --fov 60"]
    process = subprocess.Popen(
        [str(part) for part in rerun], cwd=ROOT, env=environment(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    for line in process.stdout:
        event = json.loads(line)
        if event["event"] == "progress" and 0 < (event.get("clip_frames_done") or 0) < 40:
            process.send_signal(signal.SIGTERM)
            break
    process.communicate(timeout=120)
    assert process.returncode == 130
    assert (out / "long.npz").read_bytes() == complete
    assert bool(read_trajectory(out / "long.partial.npz").extras["partial"])

    resumed = run(rerun)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming at source frame" in resumed.stderr
    final = read_trajectory(out / "long.npz")
    assert final.num_frames == 75 and not bool(final.extras["partial"])
    assert json.loads(str(final.extras["worker_settings"]))["fov"] == 60
    assert not (out / "long.partial.npz").exists()
    no_traceback(resumed)
