"""Box geometry and non-maximum suppression in numpy (no torchvision).

Boxes are ``(N, 4)`` arrays in pixels, either ``xywh`` (top-left corner, width, height; the contract's
form) or ``xyxy`` (corners). Degenerate boxes (zero or negative size) have zero area and overlap
nothing.
"""

import numpy as np


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """``(..., 4)`` x, y, w, h -> x0, y0, x1, y1."""
    boxes = np.asarray(boxes, np.float64)
    return np.concatenate([boxes[..., :2], boxes[..., :2] + boxes[..., 2:4]], axis=-1)


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """``(..., 4)`` x0, y0, x1, y1 -> x, y, w, h."""
    boxes = np.asarray(boxes, np.float64)
    return np.concatenate([boxes[..., :2], boxes[..., 2:4] - boxes[..., :2]], axis=-1)


def box_iou_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union ``(N, M)`` of ``(N, 4)`` and ``(M, 4)`` corner boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union ``(N, M)`` of ``(N, 4)`` and ``(M, 4)`` x, y, w, h boxes."""
    return box_iou_xyxy(xywh_to_xyxy(np.reshape(a, (-1, 4))), xywh_to_xyxy(np.reshape(b, (-1, 4))))


def intersection_over_smaller_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection area over the smaller box's area ``(N, M)``: 1 when one box lies inside the
    other, whatever their sizes (IoU is low for a small box inside a large one)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=-1)
    smaller = np.minimum(area_a[:, None], area_b[None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(smaller > 0, inter / smaller, 0.0)


def intersection_over_smaller(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`intersection_over_smaller_xyxy` ``(N, M)`` of ``(N, 4)`` and ``(M, 4)`` x, y, w, h
    boxes."""
    a, b = xywh_to_xyxy(np.reshape(a, (-1, 4))), xywh_to_xyxy(np.reshape(b, (-1, 4)))
    return intersection_over_smaller_xyxy(a, b)


def nms(
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    containment_threshold: float | None = None,
) -> np.ndarray:
    """Greedy NMS: indices of the kept boxes, highest score first.

    A box is dropped when its IoU with an already kept, higher-scoring box exceeds
    ``iou_threshold`` or, if ``containment_threshold`` is given, when the intersection covers more
    than that share of the smaller box (nested duplicates from sliding-window detectors).
    Equal scores keep the earlier box (stable order).
    """
    boxes_xyxy = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    keep = []
    while order.size:
        best, order = order[0], order[1:]
        keep.append(best)
        if order.size:
            drop = box_iou_xyxy(boxes_xyxy[best : best + 1], boxes_xyxy[order])[0] > iou_threshold
            if containment_threshold is not None:
                nested = intersection_over_smaller_xyxy(
                    boxes_xyxy[best : best + 1], boxes_xyxy[order]
                )
                drop |= nested[0] > containment_threshold
            order = order[~drop]
    return np.array(keep, np.int64)
