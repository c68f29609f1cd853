"""Fault battery, ``python -m inference batch`` (issue 18): results never lost, bad arguments are
exit 2 with a message, never a traceback. The batch runs as a subprocess; the clip analyser is the
real worker with the test models (``tests/batchclips.py``). Every test here failed before its fix."""

import json
import signal
import subprocess
import sys

import pytest

from retarget.contract import read_trajectory
from tests.faults import ROOT, environment, no_traceback, run
from tests.synthvideo import walking_people, write_clip

pytestmark = pytest.mark.slow  # every test starts worker, batch or CLI processes

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


def _events(completed) -> list[dict]:
    return [json.loads(line) for line in completed.stdout.splitlines()]


def test_bad_arguments_exit_2_with_a_message(tmp_path):
    """``-o`` naming a file raised FileExistsError (exit 1); ``--analyze-options '--tta banana'``
    started every worker to fail and exited 1."""
    clip = write_clip(tmp_path / "clip.mp4", walking_people(1, 0.2))
    taken = tmp_path / "results.npz"
    taken.write_bytes(b"a file")
    for out in (taken, taken / "inside"):
        refused = run([*BATCH, clip, "-o", out])
        assert refused.returncode == 2 and "Error" not in no_traceback(refused)
        assert f"{taken} is a file, not a folder" in _events(refused)[-1]["message"]
    assert taken.read_bytes() == b"a file"
    options = run([*BATCH, clip, "-o", tmp_path / "out", "--analyze-options", "--tta banana"])
    assert options.returncode == 2
    assert "--tta: expected a whole number" in _events(options)[-1]["message"]
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_an_input_that_does_not_exist_is_named(tmp_path):
    """A batch input path that does not exist ran as a clip and failed with a raw
    ``[Errno 2] No such file or directory``."""
    write_clip(tmp_path / "clip.mp4", walking_people(1, 0.2))
    missing = tmp_path / "typo.mp4"
    out = tmp_path / "out"
    command = [*BATCH, tmp_path / "clip.mp4", missing, "-o", out, "--workers", "1", "--analyzer",
               "tests.batchclips:make_worker_analyzer", "--analyze-options", "--device cpu"]  # fmt: skip
    finished = run(command)
    assert finished.returncode == 3  # some clips failed
    events = _events(finished)
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert f"input '{missing}' does not exist; it is listed as a failed clip" in warnings[0]
    rows = {r["clip"]: r for r in json.loads((out / "batch_manifest.json").read_text())["clips"]}
    assert rows["clip"]["status"] == "done" and rows["typo"]["status"] == "failed"
    assert rows["typo"]["error"] == f"video not found: {missing}; check the path"
    assert "Errno" not in finished.stdout + finished.stderr
