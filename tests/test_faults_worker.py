"""Fault battery, ``python -m inference analyze`` (issue 18): results never lost, arguments
checked, advice that works. The worker runs as a subprocess with the test models
(``tests/worker_harness.py``). Every test here failed before its fix."""

import pytest

from inference.worker import EXIT_USAGE
from tests.synthvideo import walking_people, write_clip
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
