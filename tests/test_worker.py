"""The analyze command end to end, as a subprocess, on synthetic clips with exact ground truth
(test pose model and detector from ``tinymodels.py``; see ``worker_harness.py``)."""

import io
import json
import os
import signal

import numpy as np
import pytest

from inference.analysis import EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM
from inference.camera import intrinsics_from_fov
from retarget.contract import read_trajectory, write_trajectory
from tests import mp4edit
from tests.synthvideo import frames_of, walking_people, write_clip
from tests.workerrun import analyze, parse_events, start

# Slow (the analysis worker runs as a process): `make test-fast` leaves it out.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_people(tmp_path_factory):
    truth = walking_people(2, 2.0)  # 50 frames at 25 fps, 640x360
    path = write_clip(tmp_path_factory.mktemp("clips") / "two.mp4", truth)
    return path, truth


def match_people(result, truth_poses2d):
    """Per output person, the ground-truth person it follows in every frame (by 2D distance);
    asserts there is exactly one, i.e. no identity switch."""
    mapping = []
    for person in range(result.num_people):
        distance = np.nanmedian(
            np.linalg.norm(result.poses2d[:, person, None] - truth_poses2d, axis=-1), axis=-1
        )  # (T, P_true)
        present = np.isfinite(distance).any(axis=1)
        nearest = np.nanargmin(
            np.where(np.isfinite(distance[present]), distance[present], np.inf), axis=1
        )
        assert len(np.unique(nearest)) == 1, f"person {person} switches identity: {nearest}"
        mapping.append(int(nearest[0]))
    return mapping


def test_two_people_results_events_and_metadata(two_people, tmp_path):
    video, truth = two_people
    output = tmp_path / "out.npz"
    run = analyze(video, "-o", output)
    assert run.returncode == EXIT_OK, run.stderr[-2000:]
    kinds = [e["event"] for e in run.events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "progress" in kinds
    assert run.events[0]["frames_total"] == 50 and run.events[0]["width"] == 640
    done = [e["frames_done"] for e in run.of("progress")]
    assert done == sorted(done) and done[-1] == 50
    assert run.last["output"] == str(output) and run.last["people"] == 2 and not run.last["partial"]

    result = read_trajectory(output)
    assert result.num_frames == 50 and result.num_people == 2
    mapping = match_people(result, truth.poses2d)
    assert sorted(mapping) == [0, 1]
    # Every person in every frame (detection + tracking rate 100 %), ids stable (checked above).
    assert np.isfinite(result.boxes[..., 0]).all()
    ordered = truth.poses2d[:, mapping]
    error2d = np.linalg.norm(result.poses2d - ordered, axis=-1)
    assert np.nanmedian(error2d) < 1.5 and np.nanpercentile(error2d, 90) < 4
    depth_error = np.abs(result.poses3d[:, :, 0, 2] - truth.poses3d[:, mapping, 0, 2])
    assert np.nanmedian(depth_error / truth.poses3d[:, mapping, 0, 2]) < 0.05
    np.testing.assert_allclose(result.frame_times, truth.frame_times, atol=1e-6)
    np.testing.assert_allclose(result.intrinsics, intrinsics_from_fov(55, (640, 360)))
    assert result.fps == 25 and list(result.image_size) == [640, 360]
    assert result.skeleton == "smpl+head_30" and result.joint_edges.shape == (29, 2)
    assert result.model == "test-colour-joints" and "sha256:" in result.source
    assert not bool(result.extras["partial"])
    np.testing.assert_array_equal(result.extras["source_frames"], np.arange(50))
    assert json.loads(str(result.extras["worker_settings"]))["detect_every"] == 1


def test_sigterm_writes_partial_result_and_resume_completes_it(two_people, tmp_path):
    video, truth = two_people
    whole = tmp_path / "whole.npz"
    options = ["--detect-every", "1", "--batch-size", "4"]
    assert analyze(video, "-o", whole, *options).returncode == EXIT_OK

    output = tmp_path / "resumed.npz"
    process = start("--slow", "0.25", video, "-o", output, *options)
    for line in process.stdout:
        if json.loads(line)["event"] == "progress":
            process.send_signal(signal.SIGTERM)
            break
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == EXIT_SIGTERM, stderr[-2000:]
    done = parse_events(stdout)[-1]
    assert done["event"] == "done" and done["partial"] is True
    partial = read_trajectory(output)  # contract-valid
    assert bool(partial.extras["partial"]) and 0 < partial.num_frames < 50

    run = analyze(video, "-o", output, *options, "--resume")
    assert run.returncode == EXIT_OK, run.stderr[-2000:]
    assert run.events[0]["resumed_frames"] == partial.num_frames
    resumed, reference = read_trajectory(output), read_trajectory(whole)
    assert not bool(resumed.extras["partial"])
    np.testing.assert_array_equal(resumed.track_ids, reference.track_ids)
    np.testing.assert_array_equal(resumed.poses3d, reference.poses3d)
    np.testing.assert_array_equal(resumed.frame_times, reference.frame_times)
    # Resuming a complete result does nothing.
    again = analyze(video, "-o", output, *options, "--resume")
    assert again.returncode == EXIT_OK and "already complete" in again.last["message"]


def test_resume_of_a_partial_result_that_reaches_the_end_of_the_range_completes_it(
    two_people, tmp_path
):
    """A stop request during the last batch leaves a partial result with every frame of the
    range; resuming it has nothing left to read and writes the complete result."""
    video, _ = two_people
    output = tmp_path / "range.npz"
    options = ["--start", "0", "--stop", "10", "--stride", "4"]
    assert analyze(video, "-o", output, *options, frame_model=True).returncode == EXIT_OK
    complete = read_trajectory(output)
    complete.extras["partial"] = np.array(True)
    write_trajectory(output, complete)
    # --fov 55 is the default camera, said otherwise: the same run
    run = analyze(video, "-o", output, *options, "--fov", "55", "--resume", frame_model=True)
    assert run.returncode == EXIT_OK, run.stderr[-2000:]
    assert run.last["event"] == "done" and not run.last["partial"]
    resumed = read_trajectory(output)
    assert not bool(resumed.extras["partial"])
    np.testing.assert_array_equal(resumed.extras["source_frames"], [0, 4, 8])
    np.testing.assert_array_equal(resumed.poses3d, complete.poses3d)


def test_a_second_ctrl_c_while_the_result_is_written_does_not_lose_it(
    two_people, tmp_path, monkeypatch
):
    """Ctrl-C once (stop after the first batch), then again while the partial result is being saved:
    the save completes and the run ends as interrupted."""
    import retarget.contract
    from inference import analysis
    from inference.__main__ import build_parser
    from tests.tinymodels import ColourJointPoseEstimator

    class CtrlCOnFirstCall(ColourJointPoseEstimator):
        calls = 0

        def estimate(self, frames, boxes, intrinsics):
            self.calls += 1
            if self.calls == 1:
                os.kill(os.getpid(), signal.SIGINT)
            return super().estimate(frames, boxes, intrinsics)

    write = retarget.contract.write_trajectory

    def impatient_write(path, trajectory):
        os.kill(os.getpid(), signal.SIGINT)
        return write(path, trajectory)

    monkeypatch.setattr(retarget.contract, "write_trajectory", impatient_write)
    output = tmp_path / "kept.npz"
    args = build_parser("analyze").parse_args(
        ["analyze", str(two_people[0]), "-o", str(output), "--batch-size", "4", "--detector",
         "none", "--box", "100,50,200,300", "--checkpoint-every", "0"]
    )  # fmt: skip
    code = analysis.run(args, lambda s, d: CtrlCOnFirstCall(), lambda *a: None, io.StringIO())
    assert code == EXIT_SIGINT
    kept = read_trajectory(output)
    assert bool(kept.extras["partial"]) and 0 < kept.num_frames < 50


def test_user_box_tracks_only_that_person(two_people, tmp_path):
    video, truth = two_people
    x, y, w, h = truth.boxes[0, 1, :4]
    box = f"{x - 10:.0f},{y - 10:.0f},{w + 20:.0f},{h + 20:.0f}"
    for detector in ("auto", "none"):
        output = tmp_path / f"box_{detector}.npz"
        run = analyze(video, "-o", output, "--box", box, "--detector", detector)
        assert run.returncode == EXIT_OK, run.stderr[-2000:]
        result = read_trajectory(output)
        assert result.num_people == 1 and match_people(result, truth.poses2d) == [1]
        assert np.isfinite(result.boxes[:, 0, 0]).all()
        error = np.linalg.norm(result.poses2d[:, 0] - truth.poses2d[:, 1], axis=-1)
        assert np.nanmedian(error) < 1.5


def test_frame_range_stride_and_max_people(two_people, tmp_path):
    video, truth = two_people
    output = tmp_path / "range.npz"
    options = ["--start", "5", "--stop", "45", "--stride", "3", "--max-people", "1"]
    run = analyze(video, "-o", output, *options, frame_model=True)
    assert run.returncode == EXIT_OK, run.stderr[-2000:]
    result = read_trajectory(output)
    frames = np.arange(5, 45, 3)
    np.testing.assert_array_equal(result.extras["source_frames"], frames)
    np.testing.assert_allclose(result.frame_times, truth.frame_times[frames], atol=1e-6)
    assert result.fps == pytest.approx(25 / 3) and run.events[0]["frames_total"] == len(frames)
    assert result.num_people == 1
    person = match_people(result, truth.poses2d[frames])[0]
    error = np.linalg.norm(result.poses2d[:, 0] - truth.poses2d[frames, person], axis=-1)
    assert np.nanmedian(error) < 1.5


def test_variable_frame_rate_timestamps(tmp_path):
    truth = walking_people(1, 0.8)  # 20 frames
    video = write_clip(tmp_path / "vfr.mp4", truth)
    durations = np.where(np.arange(20) % 3 == 0, 0.1, 1 / 30)
    mp4edit.set_frame_durations(video, list(durations))
    output = tmp_path / "vfr.npz"
    assert analyze(video, "-o", output, frame_model=True).returncode == EXIT_OK
    result = read_trajectory(output)
    np.testing.assert_allclose(
        result.frame_times, np.concatenate([[0], np.cumsum(durations)[:-1]]), atol=2e-3
    )
    assert result.num_people == 1


def test_image_sequences_folder_and_pattern(tmp_path):
    import cv2

    truth = walking_people(1, 0.6, fps=10.0)
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(frames_of(truth)):
        cv2.imwrite(str(folder / f"img_{index:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not an image")
    for source in (folder, folder / "img_%04d.png"):
        output = tmp_path / "sequence.npz"
        run = analyze(source, "-o", output, "--sequence-fps", "10", "--overwrite", frame_model=True)
        assert run.returncode == EXIT_OK, run.stderr[-2000:]
        result = read_trajectory(output)
        np.testing.assert_allclose(result.frame_times, np.arange(6) / 10)
        assert result.num_people == 1 and result.fps == 10
        error = np.linalg.norm(result.poses2d[:, 0] - truth.poses2d[:, 0], axis=-1)
        assert np.nanmedian(error) < 1.0  # lossless PNG


def test_camera_from_lens_and_from_file(two_people, tmp_path):
    video, _ = two_people
    output = tmp_path / "lens.npz"
    assert (
        analyze(video, "-o", output, "--focal-mm", "50", "--stop", "6", frame_model=True).returncode
        == EXIT_OK
    )
    assert read_trajectory(output).intrinsics[0, 0] == pytest.approx(50 / 36 * 640)
    camera = tmp_path / "camera.json"
    camera.write_text(
        json.dumps({"K": [[1000, 0, 640], [0, 1000, 360], [0, 0, 1]], "image_size": [1280, 720]})
    )
    assert (
        analyze(
            video,
            "-o",
            output,
            "--intrinsics",
            camera,
            "--stop",
            "6",
            "--overwrite",
            frame_model=True,
        ).returncode
        == EXIT_OK
    )
    np.testing.assert_allclose(
        read_trajectory(output).intrinsics, [[500, 0, 319.75], [0, 500, 179.75], [0, 0, 1]]
    )
