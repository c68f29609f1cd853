"""Unusual but valid footage: no person, one frame, 8K, portrait phone video with rotation
metadata, paths with spaces and non-ASCII characters — each gives a valid result (subprocess runs)."""

import shutil

import numpy as np
import pytest

from inference.analysis import EXIT_OK
from retarget.contract import read_trajectory
from tests import mp4edit
from tests.synthvideo import (
    BACKGROUND,
    frames_of,
    render_frame,
    walking_people,
    write_clip,
    write_video,
)
from tests.workerrun import analyze

# Slow (the analysis worker runs as a process): `make test-fast` leaves it out.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    truth = walking_people(1, 1.2)  # 30 frames
    return write_clip(tmp_path_factory.mktemp("clip") / "one.mp4", truth), truth


def test_clip_without_people_gives_an_empty_result(tmp_path):
    blank = [np.full((240, 320, 3), BACKGROUND, np.uint8) for _ in range(12)]
    video = write_video(tmp_path / "blank.mp4", blank)
    output = tmp_path / "blank.npz"
    run = analyze(video, "-o", output, frame_model=True)
    assert run.returncode == EXIT_OK
    assert any("No person found in frames 0-11" in w["message"] for w in run.of("warning"))
    result = read_trajectory(output)
    assert (
        result.num_frames == 12
        and result.num_people == 0
        and result.poses3d.shape == (12, 0, 30, 3)
    )


def test_single_frame_clip(clip, tmp_path):
    _, truth = clip
    video = write_video(tmp_path / "one_frame.mp4", frames_of(truth)[:1])
    output = tmp_path / "one_frame.npz"
    run = analyze(video, "-o", output, frame_model=True)
    assert run.returncode == EXIT_OK, run.stderr[-2000:]
    result = read_trajectory(output)
    assert result.num_frames == 1 and result.num_people == 1
    assert np.nanmedian(np.linalg.norm(result.poses2d[0, 0] - truth.poses2d[0, 0], axis=-1)) < 2


def test_8k_frames(clip, tmp_path):
    _, truth = clip
    scale = 12  # 640x360 -> 7680x4320
    frames = [
        render_frame(
            truth.poses2d[t] * scale, truth.poses3d[t, :, 0, 2], (7680, 4320), radius=3 * scale
        )
        for t in range(2)
    ]
    video = write_video(tmp_path / "8k.mkv", frames, fps=25)
    del frames
    output = tmp_path / "8k.npz"
    run = analyze(video, "-o", output, timeout=300, frame_model=True)
    assert run.returncode == EXIT_OK, run.stderr[-2000:]
    result = read_trajectory(output)
    assert list(result.image_size) == [7680, 4320] and result.num_people == 1
    error = np.linalg.norm(result.poses2d[:, 0] - truth.poses2d[:2, 0] * scale, axis=-1)
    assert np.nanmedian(error) < 3 * scale * 0.5
    # Same focal length in 8K pixels as the 640-pixel clip, times the scale.
    assert result.intrinsics[0, 0] == pytest.approx(truth.intrinsics[0, 0] * scale, rel=1e-3)


def test_portrait_phone_video_with_rotation_metadata(tmp_path):
    truth = walking_people(1, 0.8, image_size=(360, 640))  # upright portrait ground truth
    stored = [np.ascontiguousarray(np.rot90(frame, k=1)) for frame in frames_of(truth)]  # sideways
    video = write_video(tmp_path / "phone.mp4", stored, fps=25)
    mp4edit.set_rotation(video, 90)  # the player turns it 90 degrees clockwise
    output = tmp_path / "phone.npz"
    run = analyze(video, "-o", output, frame_model=True)
    assert run.returncode == EXIT_OK, run.stderr[-2000:]
    assert run.events[0]["rotation_deg"] == 90 and run.events[0]["width"] == 360
    result = read_trajectory(output)
    assert list(result.image_size) == [360, 640] and result.num_people == 1
    error = np.linalg.norm(result.poses2d[:, 0] - truth.poses2d[:, 0], axis=-1)
    assert np.nanmedian(error) < 1.5


def test_paths_with_spaces_and_non_ascii_characters(clip, tmp_path):
    video, _ = clip
    folder = tmp_path / "my clips" / "ünïcødé 動画"
    folder.mkdir(parents=True)
    moved = folder / "tänz 1 – take 2.mp4"
    shutil.copy(video, moved)
    output = folder / "résultat 1.npz"
    run = analyze(moved, "-o", output, frame_model=True)
    assert run.returncode == EXIT_OK, run.stderr[-2000:]
    assert run.last["output"] == str(output)
    assert read_trajectory(output).num_people == 1
    assert str(moved) in read_trajectory(output).source
