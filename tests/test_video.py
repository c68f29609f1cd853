"""Video input: containers, sequences, frame ranges, rotation metadata, real timestamps, the
bounded reader thread."""

import os
import shutil
import threading
import time

import cv2
import numpy as np
import pytest

from inference.video import FrameRange, FrameReader, VideoError, open_video
from tests import mp4edit
from tests.synthvideo import write_video


def numbered_frames(count, size=(96, 64)):
    """Frames whose index is written into the pixel values of the top 16 rows (red: index % 16,
    green: index // 16, in steps of 16 so that lossy codecs cannot change the digits)."""
    width, height = size
    frames = []
    for index in range(count):
        frame = np.full((height, width, 3), 40, np.uint8)
        frame[:16, :, 0] = 8 + 16 * (index % 16)
        frame[:16, :, 1] = 8 + 16 * (index // 16)
        frame[20:30, 10:20] = (250, 250, 250)  # a marker in the top-left quadrant
        frames.append(frame)
    return frames


def decoded_index(frame):
    red, green = (float(np.median(frame.image[2:14, :, c])) for c in (0, 1))
    return round((red - 8) / 16) + 16 * round((green - 8) / 16)


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mkv"])
def test_containers_decode_every_frame_in_order_with_times(tmp_path, suffix):
    video = write_video(tmp_path / f"clip{suffix}", numbered_frames(12), fps=24)
    source = open_video(video)
    assert (source.info.width, source.info.height, source.info.fps) == (96, 64, 24)
    assert source.info.frame_count == 12 and not source.info.is_sequence
    frames = list(source)
    assert [f.index for f in frames] == list(range(12))
    assert [decoded_index(f) for f in frames] == list(range(12))
    np.testing.assert_allclose([f.time for f in frames], np.arange(12) / 24, atol=1e-3)
    assert frames[0].image.dtype == np.uint8 and frames[0].image.shape == (64, 96, 3)
    assert frames[0].image[25, 15].min() > 200  # RGB order kept (marker is white, top-left)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_frame_range_and_stride(tmp_path, suffix):
    video = write_video(tmp_path / f"clip{suffix}", numbered_frames(30), fps=30)
    frames = list(open_video(video, FrameRange(start=4, stop=20, stride=5)))
    assert [f.index for f in frames] == [4, 9, 14, 19]
    assert [decoded_index(f) for f in frames] == [4, 9, 14, 19]
    np.testing.assert_allclose([f.time for f in frames], np.array([4, 9, 14, 19]) / 30, atol=1e-3)
    assert FrameRange(4, 20, 5).count(30) == 4 and FrameRange(4, None, 5).count(30) == 6
    assert FrameRange(0, None, 1).count(None) is None and FrameRange(10, 12).count(11) == 1
    with pytest.raises(VideoError, match="stride"):
        FrameRange(stride=0)
    with pytest.raises(VideoError, match="after start"):
        FrameRange(5, 5)
    with pytest.raises(VideoError, match="frame 40"):
        open_video(video, FrameRange(start=40))


def test_rotation_metadata_turns_frames_upright(tmp_path):
    upright = numbered_frames(3, size=(64, 96))  # portrait: marker top-left
    stored = [np.ascontiguousarray(np.rot90(f, k=1)) for f in upright]  # as a phone stores them
    video = write_video(tmp_path / "phone.mp4", stored, fps=30)
    mp4edit.set_rotation(video, 90)
    source = open_video(video)
    assert source.info.rotation_deg == 90 and (source.info.width, source.info.height) == (64, 96)
    frame = next(iter(source)).image
    assert frame.shape == (96, 64, 3) and frame[25, 15].min() > 200
    assert np.abs(frame.astype(int) - upright[0]).mean() < 3


def test_variable_frame_rate_times_come_from_the_container(tmp_path):
    video = write_video(tmp_path / "vfr.mp4", numbered_frames(8), fps=30)
    durations = [0.02, 0.1, 0.03, 0.2, 0.05, 0.04, 0.3, 0.04]
    mp4edit.set_frame_durations(video, durations)
    times = [f.time for f in open_video(video)]
    np.testing.assert_allclose(times, np.concatenate([[0], np.cumsum(durations)[:-1]]), atol=2e-3)


def test_image_sequences(tmp_path):
    frames = numbered_frames(11)
    folder = tmp_path / "seq"
    folder.mkdir()
    for index, frame in enumerate(frames):  # natural order: 2 before 10
        cv2.imwrite(str(folder / f"f{index}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    (folder / ".hidden.png").write_bytes(b"")
    source = open_video(folder, sequence_fps=12.5)
    assert source.info.is_sequence and source.info.frame_count == 11
    decoded = list(source)
    assert [decoded_index(f) for f in decoded] == list(range(11))
    np.testing.assert_allclose([f.time for f in decoded], np.arange(11) / 12.5)
    np.testing.assert_array_equal(decoded[3].image, frames[3])  # lossless and RGB
    pattern = list(open_video(folder / "f%d.png", FrameRange(2, 9, 3)))
    assert [f.index for f in pattern] == [2, 5, 8]
    assert [decoded_index(f) for f in open_video(str(folder / "f1*.png"))] == [1, 10]
    (folder / "notes.txt").write_text("shot list")  # a glob takes the images only
    assert [decoded_index(f) for f in open_video(str(folder / "*"))] == list(range(11))
    with pytest.raises(VideoError, match="no images found"):
        open_video(folder / "g%04d.png")
    with pytest.raises(VideoError, match="frame 11 is past the end"):
        open_video(folder, FrameRange(start=11))


def test_sequence_problems(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    cv2.imwrite(str(folder / "a0.png"), np.zeros((10, 10, 3), np.uint8))
    cv2.imwrite(str(folder / "a1.png"), np.zeros((12, 10, 3), np.uint8))
    with pytest.raises(VideoError, match="same size"):
        list(open_video(folder))
    (folder / "a2.png").write_text("not a png")
    with pytest.raises(VideoError, match="not a readable image"):
        list(open_video(folder, FrameRange(start=2)))


def test_bad_files(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        open_video(tmp_path / "nothing.mp4")
    (tmp_path / "zero.mov").touch()
    with pytest.raises(VideoError, match="empty file"):
        open_video(tmp_path / "zero.mov")
    (tmp_path / "text.mp4").write_text("hello " * 1000)
    with pytest.raises(VideoError, match="cannot be opened as a video"):
        open_video(tmp_path / "text.mp4")
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    with pytest.raises(VideoError, match="no images found"):
        open_video(folder)


def test_non_ascii_path(tmp_path):
    video = write_video(tmp_path / "clip.mp4", numbered_frames(3), fps=30)
    target = tmp_path / "vidéo ünï 動画" / "clip 1.mp4"
    target.parent.mkdir()
    shutil.copy(video, target)
    assert len(list(open_video(target))) == 3


@pytest.mark.parametrize("name", ["clip [1080p].mp4", "50%d off?.mp4", "take*2.mp4"])
def test_a_video_whose_name_looks_like_a_pattern_is_the_video(tmp_path, name):
    video = write_video(tmp_path / name, numbered_frames(4), fps=30)
    source = open_video(video)
    assert not source.info.is_sequence
    assert [decoded_index(f) for f in source] == list(range(4))


def test_a_file_name_that_is_not_utf8_is_a_clear_error(tmp_path):
    video = write_video(tmp_path / "clip.mp4", numbered_frames(3), fps=30)
    odd = os.fsencode(video).replace(b"clip", b"caf\xe9")  # e.g. from an old Latin-1 archive
    os.rename(os.fsencode(video), odd)
    with pytest.raises(VideoError, match="not valid UTF-8; rename it"):
        open_video(os.fsdecode(odd))


def test_reader_thread_is_bounded_ordered_and_stoppable(tmp_path):
    video = write_video(tmp_path / "long.mp4", numbered_frames(60, size=(160, 120)), fps=30)
    frame_bytes = 160 * 120 * 3
    reader = FrameReader(open_video(video), max_frames=16, max_bytes=5 * frame_bytes)
    assert reader.capacity == 5  # memory bound wins over the frame bound
    time.sleep(0.5)  # a slow consumer: the reader must wait, not buffer the whole clip
    assert reader._queue.qsize() <= 5
    indices = []
    for frame in reader:
        indices.append(frame.index)
        assert reader._queue.qsize() <= 5
    assert indices == list(range(60))
    # Stopping early ends the thread and the iteration.
    with FrameReader(open_video(video), max_frames=4) as early:
        first = next(iter(early))
        early.stop()
        assert first.index == 0 and not early._thread.is_alive()
    assert not any(t.name == "frame-reader" and t.is_alive() for t in threading.enumerate())


def test_reader_re_raises_decoding_errors(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for index in range(3):
        cv2.imwrite(str(folder / f"i{index}.png"), np.zeros((8, 8, 3), np.uint8))
    (folder / "i3.png").write_text("broken")
    frames = []
    with pytest.raises(VideoError, match="i3.png"), FrameReader(open_video(folder)) as reader:
        for frame in reader:
            frames.append(frame)
    assert len(frames) == 3
