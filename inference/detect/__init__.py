"""Person detectors: YOLOX (our PyTorch code, released or project-trained weights) and OpenCV HOG.

Every detector has ``name`` and ``detect(frames) -> list[(n, 5) float32]``: per RGB frame, boxes
x, y, w, h in pixels and a score in 0..1, best first. Modules are imported on use (torch is slow to
import and HOG needs none of it).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from .. import InferenceError

logger = logging.getLogger(__name__)


class DetectorWeightsError(InferenceError):
    """A detector checkpoint is missing, unreadable or not a YOLOX state dict."""


class Detector(Protocol):
    name: str

    def detect(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Per frame ``(n, 5)`` x, y, w, h, score boxes in pixels."""
        ...


def make_detector(spec: str, device: str = "cpu", score_threshold: float | None = None) -> Detector:
    """A detector from ``spec``: ``"hog"``, or a YOLOX checkpoint given as a ``.pth`` path.

    Names of downloadable detectors are resolved to files by the caller (the weights manager).
    """
    if spec == "hog":
        from .hog import HogPersonDetector

        return (
            HogPersonDetector()
            if score_threshold is None
            else HogPersonDetector(score_threshold=score_threshold)
        )
    path = Path(spec)
    from .yolox import YoloxDetector

    if not path.is_file():
        raise DetectorWeightsError(
            f"detector {spec!r} is neither 'hog' nor a YOLOX .pth file; download one with "
            f"`python -m inference weights download yolox-s` or pass --detector hog"
        )
    kwargs = {} if score_threshold is None else {"score_threshold": score_threshold}
    return YoloxDetector.from_file(os.fspath(path), device=device, **kwargs)
