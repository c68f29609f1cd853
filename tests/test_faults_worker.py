"""Fault battery, ``python -m inference analyze`` (issue 18): results never lost, arguments
checked, advice that works. The worker runs as a subprocess with the test models
(``tests/worker_harness.py``). Every test here failed before its fix."""

import json
import signal
import time

import cv2
import numpy as np
import pytest

from inference.analysis import EXIT_INPUT, EXIT_OK, EXIT_OUTPUT, EXIT_SIGTERM, EXIT_USAGE
from retarget.contract import read_trajectory
from tests.faults import no_traceback, run
from tests.synthvideo import frames_of, walking_people, write_clip
from tests.workerrun import HARNESS, analyze, parse_events, start

pytestmark = pytest.mark.slow  # every test starts worker, batch or CLI processes


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


# ------------------------------------------------------------------------------------------------
# Results are never lost (items 1 and 3)


@pytest.fixture
def complete(clip, tmp_path):
    """A complete result of ``clip`` at ``tmp_path/result.npz`` and its bytes."""
    output = tmp_path / "result.npz"
    assert analyze(clip, "-o", output, frame_model=True).returncode == EXIT_OK
    return output, output.read_bytes()


def test_an_existing_result_is_replaced_only_with_overwrite(clip, complete):
    """``analyze -o X`` replaced an existing X without a word."""
    output, before = complete
    message = assert_error(
        analyze(clip, "-o", output, frame_model=True), EXIT_OUTPUT, "--overwrite"
    )
    assert str(output) in message and output.read_bytes() == before
    replaced = analyze(clip, "-o", output, "--overwrite", "--fov", "60", frame_model=True)
    assert replaced.returncode == EXIT_OK and replaced.last["output"] == str(output)
    assert json.loads(str(read_trajectory(output).extras["worker_settings"]))["fov"] == 60


def _slow_run(clip, output, *options):
    """The harness analysing ``clip`` one frame per network call, 0.2 s each, in the background."""
    return start(
        "--frame-model", "--slow", "0.2", clip, "-o", output, "--batch-size", "1", *options
    )


def _wait_for(process, kind: str) -> None:
    for line in process.stdout:
        if json.loads(line)["event"] == kind:
            return
    raise AssertionError(f"no {kind} event: {process.stderr.read()[-2000:]}")


def test_a_stopped_rerun_never_replaces_the_complete_result(clip, complete):
    """Re-running a clip with --overwrite and stopping it (SIGTERM) replaced the complete result
    with the partial one; now the partial goes beside it and --resume finishes the re-run."""
    output, before = complete
    process = _slow_run(clip, output, "--overwrite")
    _wait_for(process, "progress")
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == EXIT_SIGTERM, stderr[-2000:]
    done = parse_events(stdout)[-1]
    partial = output.with_name("result.partial.npz")
    assert done["event"] == "done" and done["partial"] and done["output"] == str(partial)
    assert output.read_bytes() == before  # the complete result, untouched
    stopped = read_trajectory(partial)
    assert bool(stopped.extras["partial"]) and 0 < stopped.num_frames < 20

    resumed = analyze(clip, "-o", output, "--batch-size", "1", "--resume", frame_model=True)
    assert resumed.returncode == EXIT_OK, resumed.stderr[-2000:]
    assert resumed.events[0]["resumed_frames"] == stopped.num_frames
    assert resumed.last["output"] == str(output) and not partial.exists()
    result = read_trajectory(output)
    assert result.num_frames == 20 and not bool(result.extras["partial"])


def test_a_killed_rerun_leaves_the_complete_result(clip, complete):
    """``kill -9`` after a checkpoint left the checkpoint (200 of 300 frames) in place of the
    complete result."""
    output, before = complete
    partial = output.with_name("result.partial.npz")
    process = _slow_run(clip, output, "--overwrite", "--checkpoint-every", "0.01")
    deadline = time.monotonic() + 60
    while not partial.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert partial.exists(), "no checkpoint was written"
    assert output.read_bytes() == before
    assert 0 < read_trajectory(partial).num_frames < 20


def test_two_runs_on_one_output_cannot_both_write_it(clip, tmp_path):
    """Two runs with the same -o both reported done; one result was lost."""
    output = tmp_path / "shared.npz"
    first = _slow_run(clip, output)
    _wait_for(first, "start")
    second = analyze(clip, "-o", output, "--overwrite", frame_model=True)
    assert_error(second, EXIT_OUTPUT, "being written by another analysis", f"process {first.pid}")
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == EXIT_OK, stderr[-2000:]
    assert parse_events(stdout)[-1]["output"] == str(output)
    assert read_trajectory(output).num_frames == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.npz"]  # no lock file left


# ------------------------------------------------------------------------------------------------
# Unwritable outputs (items 9 and 10)


def test_an_output_inside_a_file_names_the_file(clip, tmp_path):
    """``-o o/one.npz/x.npz`` said "File exists"; the parent is a file: say that."""
    (tmp_path / "o").mkdir()
    blocker = tmp_path / "o" / "one.npz"
    blocker.write_bytes(b"a result")
    run_ = analyze(clip, "-o", blocker / "x.npz", frame_model=True)
    assert_error(run_, EXIT_OUTPUT, f"{blocker} is a file, not a folder")


def test_a_full_disk_is_an_output_error_without_tracebacks(clip, tmp_path):
    """A write that fails part way (a full disk) left "Exception ignored ... ValueError" from
    numpy's archive after the error."""
    output = tmp_path / "out.npz"
    command = [*HARNESS, "--frame-model", clip, "-o", output, "--device", "cpu"]
    full = run(command, file_size_limit=3_000)  # a fifth of the result
    assert full.returncode == EXIT_OUTPUT
    no_traceback(full)
    error = parse_events(full.stdout)[-1]
    assert error["event"] == "error" and "cannot write" in error["message"]
    assert not output.exists() and sorted(p.name for p in tmp_path.iterdir()) == []
