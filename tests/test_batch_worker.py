"""The batch command over the real single-clip worker (``inference.analysis``) in its worker
processes, with the test pose model and detector of ``tests/tinymodels.py`` loaded once per process,
on synthetic walking people with exact ground truth (``tests/synthvideo.py``)."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retarget.contract import read_trajectory
from tests.batchclips import read_log
from tests.synthvideo import walking_people, write_clip

# Slow (the batch command and its workers run as processes): `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_batch_command_runs_the_worker_once_loaded_per_process(tmp_path):
    folder = tmp_path / "shoot day"
    folder.mkdir()
    truths = {"solo": walking_people(1, 1.0), "duo": walking_people(2, 1.2, seed=3)}
    for name, truth in truths.items():
        write_clip(folder / f"{name}.mp4", truth)
    (folder / "notes.mp4").write_text("not a video", encoding="utf-8")
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "inference", "batch", str(folder), "-o", str(out),
        "--workers", "2", "--analyzer", "tests.batchclips:make_worker_analyzer", "--clean", "default",
        "--analyze-options", f"--load-log '{tmp_path / 'load.log'}' --device cpu --detect-every 2",
    ]  # fmt: skip
    process = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, encoding="utf-8"
    )
    events = [json.loads(line) for line in process.stdout.splitlines()]
    assert process.returncode == 3, process.stderr[-3000:]  # one clip failed
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    assert (events[-1]["done"], events[-1]["failed"]) == (2, 1)
    rows = {r["clip"]: r for r in json.loads((out / "batch_manifest.json").read_text())["clips"]}
    assert rows["notes"]["status"] == "failed" and "notes.mp4" in rows["notes"]["error"]
    for name, truth in truths.items():
        assert (rows[name]["status"], rows[name]["model"]) == ("done", "test-colour-joints")
        result = read_trajectory(out / f"{name}.npz")
        assert (result.num_frames, result.num_people) == (truth.num_frames, truth.num_people)
        assert (rows[name]["frames"], rows[name]["people"]) == (truth.num_frames, truth.num_people)
        order = np.argsort(np.nanmean(result.poses2d[:, :, 0, 0], axis=0))
        truth_order = np.argsort(truth.poses2d[:, :, 0, 0].mean(axis=0))
        error = np.linalg.norm(result.poses2d[:, order] - truth.poses2d[:, truth_order], axis=-1)
        assert np.nanmedian(error) < 1.5  # pixels, as the worker's own tests
        cleaned = read_trajectory(out / rows[name]["cleaned_output"])
        assert rows[name]["cleaned_output"] == f"cleaned/{name}.npz"
        assert json.loads(str(cleaned.extras["clean_params"]))["preset"] == "default"
        np.testing.assert_array_equal(cleaned.extras["raw_poses3d"], result.poses3d)
    assert len(read_log(tmp_path / "load.log")) == 2  # once per worker process, 3 clips


def test_sigterm_cancels_mid_clip_and_the_rerun_resumes(tmp_path):
    truth = walking_people(1, 3.0)  # 75 frames
    write_clip(tmp_path / "long.mp4", truth)
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "inference", "batch", str(tmp_path / "long.mp4"), "-o", str(out),
        "--workers", "1", "--analyzer", "tests.batchclips:make_slow_worker_analyzer",
        "--analyze-options", "--device cpu --batch-size 2 --detect-every 1",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    events, signalled = [], False
    for line in process.stdout:
        events.append(json.loads(line))
        done = events[-1].get("clip_frames_done") or 0
        if events[-1]["event"] == "progress" and 0 < done < 40 and not signalled:
            process.send_signal(signal.SIGTERM)  # as a cluster scheduler or `kill` would
            signalled = True
    process.wait(timeout=60)
    assert process.returncode == 130, process.stderr.read()[-3000:]
    assert events[-1]["event"] == "done" and events[-1]["cancelled"] == 1
    partial = read_trajectory(out / "long.npz")
    assert bool(partial.extras["partial"]) and 0 < partial.num_frames < 75

    rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming at source frame" in rerun.stderr
    final = read_trajectory(out / "long.npz")
    assert final.num_frames == 75 and not bool(final.extras["partial"])
    np.testing.assert_allclose(final.frame_times, truth.frame_times, atol=1e-6)


def test_a_changed_camera_file_makes_the_results_stale(tmp_path):
    """A batch re-run reuses a clip's result only for the same settings: a camera file edited
    in place (same name, another matrix) is another setting."""
    from inference.batch import WorkerAnalyzer

    camera = tmp_path / "camera.json"
    camera.write_text(json.dumps({"fx": 500, "fy": 500, "cx": 320, "cy": 180}))
    args = ["--intrinsics", str(camera)]
    before = WorkerAnalyzer(args, estimator=object(), detector=None).config_id
    assert WorkerAnalyzer(args, estimator=object(), detector=None).config_id == before
    camera.write_text(json.dumps({"fx": 900, "fy": 900, "cx": 320, "cy": 180}))
    assert WorkerAnalyzer(args, estimator=object(), detector=None).config_id != before


def test_start_and_stop_analyse_those_frames_of_every_clip(tmp_path):
    truth = walking_people(1, 1.0)  # 25 frames
    write_clip(tmp_path / "walk.mp4", truth)
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "inference", "batch", str(tmp_path / "walk.mp4"), "-o", str(out),
        "--workers", "1", "--analyzer", "tests.batchclips:make_worker_analyzer",
        "--start", "5", "--stop", "17", "--analyze-options", "--device cpu",
    ]  # fmt: skip
    process = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, encoding="utf-8"
    )
    assert process.returncode == 0, process.stderr[-3000:]
    result = read_trajectory(out / "walk.npz")
    assert result.num_frames == 12
    np.testing.assert_array_equal(result.extras["source_frames"], np.arange(5, 17))
