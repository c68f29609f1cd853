"""Fault battery, ``python -m inference analyze`` (issue 18): results never lost, arguments
checked, advice that works. The worker runs as a subprocess with the test models
(``tests/worker_harness.py``). Every test here failed before its fix."""

import cv2
import numpy as np
import pytest

from inference.worker import EXIT_INPUT, EXIT_OK, EXIT_USAGE
from retarget.contract import read_trajectory
from tests.synthvideo import frames_of, walking_people, write_clip
from tests.workerrun import analyze


@pytest.fixture(scope="module")
def truth():
    return walking_people(1, 0.8)  # 20 frames at 25 fps


@pytest.fixture(scope="module")
def clip(tmp_path_factory, truth):
    return write_clip(tmp_path_factory.mktemp("clip") / "one.mp4", truth)


def assert_error(run, code: int, *phrases: str) -> str:
    assert run.returncode == code, run.stderr[-2000:]
    assert run.last["event"] == "error" and run.last["exit_code"] == code
    for phrase in phrases:
        assert phrase in run.last["message"], run.last["message"]
    assert "Traceback" not in run.stderr
    return run.last["message"]


@pytest.mark.parametrize(
    ("option", "value", "phrase"),
    [("--detection-threshold", "5", "between 0 and 1"), ("--fov", "200", "below 180")],
)
def test_values_out_of_range_are_bad_arguments(clip, tmp_path, option, value, phrase):
    """``--detection-threshold 5`` was accepted and found nobody (exit 0, an empty result)."""
    output = tmp_path / "out.npz"
    assert_error(analyze(clip, "-o", output, option, value, frame_model=True), EXIT_USAGE, phrase)
    assert not output.exists()


def _write_sequence(folder, frames) -> None:
    folder.mkdir()
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"f{index:02d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def test_a_sequence_fixed_after_a_bad_image_resumes_as_advised(truth, tmp_path):
    """The advice after a bad image ("fix it, then --resume") could not work: the sequence's
    fingerprint held the images' sizes, so the fixed sequence was "made with other settings"."""
    frames = frames_of(truth)[:10]
    folder = tmp_path / "shots"
    _write_sequence(folder, frames)
    good = (folder / "f06.png").read_bytes()
    (folder / "f06.png").write_bytes(b"\x89PNG cut short")
    output = tmp_path / "shots.npz"
    options = ["--batch-size", "2", "--checkpoint-every", "0"]
    stopped = analyze(folder, "-o", output, *options, frame_model=True)
    assert_error(stopped, EXIT_INPUT, "f06.png")
    assert any("--resume" in w["message"] for w in stopped.of("warning"))
    assert read_trajectory(output).num_frames == 6

    (folder / "f06.png").write_bytes(good)
    resumed = analyze(folder, "-o", output, *options, "--resume", frame_model=True)
    assert resumed.returncode == EXIT_OK, resumed.last
    assert resumed.events[0]["resumed_frames"] == 6
    result = read_trajectory(output)
    assert result.num_frames == 10 and not bool(result.extras["partial"])
    np.testing.assert_array_equal(result.extras["source_frames"], np.arange(10))
