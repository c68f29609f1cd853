"""OpenCV's HOG + linear SVM pedestrian detector: the offline fallback (nothing to download).

The detector was trained (Dalal & Triggs) on upright pedestrians in 64x128 windows, which leave a
margin around the person; boxes are tightened by ``WINDOW_MARGIN`` to the person's extent. It sees
people taller than ~100 px, so large frames are downscaled to ``max_side`` first (which also bounds
the cost on 4K/8K footage) and small ones are upscaled so people of ~60 px are found.
"""

import logging

import cv2
import numpy as np

from .nms import nms, xywh_to_xyxy

logger = logging.getLogger(__name__)

# Fraction of the 64x128 window outside the person on each side (x, y): 16/64 and 12/128 pixels.
WINDOW_MARGIN = (0.25, 0.09)


class HogPersonDetector:
    """``detect(frames)`` -> per frame ``(n, 5)`` x, y, w, h, score boxes in pixels.

    Scores are the SVM margins mapped through a logistic function to 0..1 (0.5 at the margin of
    ``hit_threshold``); they rank boxes but are not calibrated probabilities.
    """

    name = "hog"

    def __init__(
        self,
        max_side: int = 960,
        min_side: int = 480,
        hit_threshold: float = 0.0,
        scale_step: float = 1.05,
        nms_iou: float = 0.4,
        containment: float = 0.8,
        score_threshold: float = 0.5,
    ) -> None:
        self.max_side = max_side
        self.min_side = min_side
        self.hit_threshold = hit_threshold
        self.scale_step = scale_step
        self.nms_iou = nms_iou
        self.containment = containment
        self.score_threshold = score_threshold
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def _resize_factor(self, height: int, width: int) -> float:
        longest = max(height, width)
        if longest > self.max_side:
            return self.max_side / longest
        if longest < self.min_side:
            return self.min_side / longest
        return 1.0

    def detect_one(self, frame: np.ndarray) -> np.ndarray:
        """``(n, 5)`` float32 boxes of one RGB frame, best first."""
        factor = self._resize_factor(*frame.shape[:2])
        image = frame if factor == 1.0 else cv2.resize(frame, None, fx=factor, fy=factor)
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        rects, weights = self._hog.detectMultiScale(
            gray,
            hitThreshold=self.hit_threshold,
            winStride=(8, 8),
            padding=(16, 16),
            scale=self.scale_step,
            groupThreshold=0,
        )
        if len(rects) == 0:
            return np.zeros((0, 5), np.float32)
        boxes = np.asarray(rects, np.float64).reshape(-1, 4) / factor
        scores = 1.0 / (
            1.0 + np.exp(-(np.asarray(weights, np.float64).ravel() - self.hit_threshold))
        )
        margin_x, margin_y = WINDOW_MARGIN
        boxes[:, 0] += margin_x * boxes[:, 2]
        boxes[:, 1] += margin_y * boxes[:, 3]
        boxes[:, 2] *= 1 - 2 * margin_x
        boxes[:, 3] *= 1 - 2 * margin_y
        keep = scores >= self.score_threshold
        boxes, scores = boxes[keep], scores[keep]
        order = nms(xywh_to_xyxy(boxes), scores, self.nms_iou, self.containment)
        return np.concatenate([boxes[order], scores[order, None]], axis=1).astype(np.float32)

    def detect(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Per frame ``(n, 5)`` float32 boxes x, y, w, h, score, best first."""
        return [self.detect_one(frame) for frame in frames]
