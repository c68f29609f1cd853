"""Box IoU and NMS against hand-computed values and a brute-force reference."""

import numpy as np

from inference.detect.nms import (
    box_iou,
    box_iou_xyxy,
    intersection_over_smaller_xyxy,
    nms,
    xywh_to_xyxy,
    xyxy_to_xywh,
)


def test_iou_of_hand_computed_pairs():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 5, 15, 15], [10, 10, 20, 20], [0, 0, 10, 10], [2, 2, 4, 4]])
    # overlap 25 / union 175; touching corners; identical; nested 4 / 100
    np.testing.assert_allclose(box_iou_xyxy(a, b)[0], [25 / 175, 0, 1, 0.04])
    np.testing.assert_allclose(intersection_over_smaller_xyxy(a, b)[0], [0.25, 0, 1, 1])
    np.testing.assert_allclose(box_iou([0, 0, 10, 10], [5, 5, 10, 10]), [[25 / 175]])
    assert box_iou_xyxy([[0, 0, 0, 0]], [[0, 0, 0, 0]])[0, 0] == 0  # degenerate: no NaN


def test_box_format_round_trip():
    boxes = np.array([[3.0, 4.0, 10.0, 20.0]])
    np.testing.assert_allclose(xywh_to_xyxy(boxes), [[3, 4, 13, 24]])
    np.testing.assert_allclose(xyxy_to_xywh(xywh_to_xyxy(boxes)), boxes)


def _reference_nms(boxes, scores, threshold):
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        if all(box_iou_xyxy(boxes[i], boxes[k])[0, 0] <= threshold for k in keep):
            keep.append(i)
    return keep


def test_nms_matches_brute_force_on_random_boxes():
    rng = np.random.default_rng(1)
    for _ in range(20):
        corners = rng.uniform(0, 100, (40, 2))
        boxes = np.concatenate([corners, corners + rng.uniform(5, 40, (40, 2))], axis=1)
        scores = rng.uniform(size=40)
        assert nms(boxes, scores, 0.5).tolist() == _reference_nms(boxes, scores, 0.5)


def test_nms_containment_drops_nested_duplicates():
    boxes = np.array([[0, 0, 50, 100], [5, 10, 30, 60], [60, 0, 100, 100]])
    scores = np.array([0.9, 0.95, 0.5])
    assert nms(boxes, scores, 0.5).tolist() == [1, 0, 2]  # IoU 0.25: both kept
    assert nms(boxes, scores, 0.5, containment_threshold=0.8).tolist() == [1, 2]
