"""OpenCV HOG fallback detector on rendered human figures with known boxes."""

import time

import numpy as np
import pytest

from inference.detect import make_detector
from inference.detect.nms import box_iou
from tests.synthvideo import render_bodies, walking_people


def test_finds_each_person_and_nothing_else():
    truth = walking_people(2, 1.0, image_size=(640, 360))
    detector = make_detector("hog")
    for t in (0, 12, 24):
        frame = render_bodies(
            truth.poses2d[t], truth.poses3d[t, :, 0, 2], truth.intrinsics[0, 0], (640, 360)
        )
        boxes = detector.detect([frame])[0]
        assert boxes.shape == (2, 5)
        # Ground-truth boxes span the joints; the detector's span the silhouette.
        assert box_iou(boxes[:, :4], truth.boxes[t, :, :4]).max(axis=0).min() > 0.4
        assert np.all((boxes[:, 4] > 0.5) & (boxes[:, 4] <= 1))


@pytest.mark.slow
def test_empty_scene_and_very_large_frames():
    truth = walking_people(1, 0.2, image_size=(640, 360))
    empty = render_bodies(truth.poses2d[0, :0], truth.poses3d[0, :0, 0, 2], 500.0, (640, 360))
    detector = make_detector("hog")
    assert detector.detect([empty])[0].shape == (0, 5)
    # An 8K frame is detected at a bounded working size and boxes come back in 8K pixels.
    scale = 12
    big = render_bodies(
        truth.poses2d[0] * scale,
        truth.poses3d[0, :, 0, 2],
        truth.intrinsics[0, 0] * scale,
        (7680, 4320),
    )
    start = time.perf_counter()
    boxes = detector.detect([big])[0]
    assert time.perf_counter() - start < 20
    assert len(boxes) >= 1 and box_iou(boxes[:1, :4], truth.boxes[0, :, :4] * scale)[0, 0] > 0.4
