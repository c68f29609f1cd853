"""Bad input to the worker: each case ends with a clear ``error`` event and a documented exit
code, never a hang or a bare traceback (the worker runs as a subprocess)."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference.analysis import EXIT_INPUT, EXIT_MODEL, EXIT_OK, EXIT_OUTPUT, EXIT_USAGE
from retarget.contract import read_trajectory
from tests.synthvideo import (
    frames_of,
    walking_people,
    write_clip,
    write_video,
)
from tests.workerrun import analyze

# Slow (the analysis worker runs as a process): `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    truth = walking_people(1, 1.2)  # 30 frames
    return write_clip(tmp_path_factory.mktemp("clip") / "one.mp4", truth), truth


def assert_error(run, code, *phrases):
    assert run.returncode == code, run.stderr[-2000:]
    error = run.last
    assert error["event"] == "error" and error["exit_code"] == code
    for phrase in phrases:
        assert phrase in error["message"], error["message"]
    assert "Traceback" not in run.stderr


def test_missing_empty_and_fake_videos(tmp_path):
    output = tmp_path / "out.npz"
    assert_error(
        analyze(tmp_path / "absent.mp4", "-o", output, frame_model=True), EXIT_INPUT, "not found"
    )
    empty = tmp_path / "empty.mp4"
    empty.touch()
    assert_error(analyze(empty, "-o", output, frame_model=True), EXIT_INPUT, "empty file")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 100)
    assert_error(
        analyze(text, "-o", output, frame_model=True), EXIT_INPUT, "cannot be opened as a video"
    )
    assert not output.exists()


def test_truncated_videos(clip, tmp_path):
    video, truth = clip
    # MP4 from OpenCV keeps its index at the end: a cut file cannot be opened at all.
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size * 2 // 3])
    assert_error(
        analyze(cut, "-o", tmp_path / "cut.npz", frame_model=True), EXIT_INPUT, "truncated"
    )
    # AVI (MJPEG) decodes up to the cut: a valid result for the frames there, and a warning.
    avi = write_video(tmp_path / "full.avi", frames_of(truth), fps=25)
    cut_avi = tmp_path / "cut.avi"
    cut_avi.write_bytes(avi.read_bytes()[: avi.stat().st_size // 2])
    output = tmp_path / "cut_avi.npz"
    run = analyze(cut_avi, "-o", output, frame_model=True)
    assert run.returncode == EXIT_OK, run.stderr[-2000:]
    assert any("truncated" in w["message"] for w in run.of("warning"))
    result = read_trajectory(output)
    assert 5 <= result.num_frames < 30 and result.num_people == 1


def test_a_named_model_not_installed_names_the_weights_command(clip, tmp_path):
    """(Without ``--model``, the bundled offline model runs instead: tests/test_end_to_end.py.)"""
    video, _ = clip
    env = {"METRABS_MOCAP_CACHE": str(tmp_path / "empty-cache")}
    official = "metrabs_eff2l_384px_800k_28ds_pytorch"
    run = analyze(video, "-o", tmp_path / "out.npz", "--model", official, real=True, env=env)
    assert_error(
        run, EXIT_MODEL, "not installed", f"python -m inference weights download {official}"
    )


def test_bad_arguments(clip, tmp_path):
    video, _ = clip
    output = tmp_path / "out.npz"
    run = analyze(video, "-o", output, "--box", "10,20,30", frame_model=True)
    assert (
        run.returncode == EXIT_USAGE
        and run.last["event"] == "error"
        and "--box" in run.last["message"]
    )
    assert_error(
        analyze(video, "-o", output, "--box", "5000,10,50,50", frame_model=True),
        EXIT_INPUT,
        "outside",
    )
    assert_error(
        analyze(video, "-o", output, "--fov", "60", "--focal-mm", "35", frame_model=True),
        EXIT_INPUT,
        "only one",
    )
    assert_error(analyze(video, "-o", tmp_path / "out.txt", frame_model=True), EXIT_INPUT, ".npz")
    camera = tmp_path / "camera.json"
    camera.write_text(
        json.dumps({"K": [[900, 0, 640], [0, 900, 360], [0, 0, 1]], "image_size": [1280, 960]})
    )
    assert_error(
        analyze(video, "-o", output, "--intrinsics", camera, frame_model=True),
        EXIT_INPUT,
        "aspect ratio",
    )
    assert_error(
        analyze(video, "-o", output, "--start", "500", frame_model=True), EXIT_INPUT, "frame 500"
    )
    for device, phrase in (("gpu", "not a device"), ("cuda:7", "cuda")):
        assert_error(analyze(video, "-o", output, "--device", device, frame_model=True),
                     EXIT_INPUT, phrase)  # fmt: skip
    assert not output.exists()


def test_an_unknown_option_is_an_error_event(clip, tmp_path):
    command = [sys.executable, "-m", "inference", "analyze", str(clip[0]), "-o",
               str(tmp_path / "out.npz"), "--bogus"]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    error = json.loads(run.stdout.splitlines()[-1])
    assert run.returncode == EXIT_USAGE and error["event"] == "error"
    assert error["exit_code"] == EXIT_USAGE and "--bogus" in error["message"]


def test_a_broken_image_in_a_sequence_keeps_the_frames_before_it(clip, tmp_path):
    _, truth = clip
    folder = tmp_path / "shots"
    folder.mkdir()
    for index, frame in enumerate(frames_of(truth)[:6]):
        cv2.imwrite(str(folder / f"f{index:02d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    (folder / "f06.png").write_bytes(b"\x89PNG cut short")
    output = tmp_path / "shots.npz"
    assert_error(analyze(folder, "-o", output, frame_model=True), EXIT_INPUT, "f06.png")
    kept = read_trajectory(output)
    assert kept.num_frames == 6 and bool(kept.extras["partial"])
    assert np.isfinite(kept.boxes[:, 0, 0]).all()  # the person in every frame kept


def test_output_problems(clip, tmp_path):
    video, truth = clip
    folder = tmp_path / "taken.npz"
    folder.mkdir()
    assert_error(analyze(video, "-o", folder, frame_model=True), EXIT_OUTPUT, "folder")
    blocked = tmp_path / "file"
    blocked.write_text("a file where a folder should be")
    run = analyze(video, "-o", blocked / "out.npz", frame_model=True)
    assert_error(run, EXIT_OUTPUT, "cannot write")
    assert "start" not in [event["event"] for event in run.events]  # found before the analysis
    # --resume with a result of another clip
    other = write_clip(tmp_path / "other.mp4", walking_people(1, 0.4, seed=3))
    output = tmp_path / "other.npz"
    assert analyze(other, "-o", output, frame_model=True).returncode == EXIT_OK
    assert_error(
        analyze(video, "-o", output, "--resume", frame_model=True),
        EXIT_OUTPUT,
        "other settings (video",
    )
    assert_error(
        analyze(other, "-o", output, "--fov", "70", "--resume", frame_model=True),
        EXIT_OUTPUT,
        "other settings (camera)",
    )
    assert cv2.VideoCapture(str(video)).isOpened()  # the input is untouched


def test_missing_detector_weights(clip, tmp_path):
    video, _ = clip
    env = {"METRABS_MOCAP_CACHE": str(tmp_path / "empty-cache")}
    output = tmp_path / "out.npz"
    run = analyze(video, "-o", output, "--detector", "yolox_s", frame_model=True, env=env)
    assert_error(run, EXIT_MODEL, "python -m inference weights download yolox_s")
    run = analyze(video, "-o", output, "--detector", tmp_path / "none.pth", frame_model=True)
    assert_error(run, EXIT_MODEL, "neither 'hog' nor a YOLOX .pth file")
