"""A real, tiny pose estimator and detector for the synthetic footage of ``synthvideo.py``.

Both are deterministic functions of the pixels (no ground truth is read): the detector boxes
connected regions of person-coloured pixels; the pose estimator looks inside each box for each joint's
colour, takes the centroid of its largest blob as the 2D joint and back-projects all joints to one
depth, estimated from the pixel lengths of rigid segments whose true lengths it knows (a 1.75 m
adult's, ``SEGMENTS_MM``), so 3D is metric and in the original camera frame. They have the interfaces the worker expects of the real models:
``estimate(frames, boxes, intrinsics)`` and ``detect(frames)``.
"""

import time

import cv2
import numpy as np

from inference.training.synth.motion import SKELETON, rest_pose
from tests.synthvideo import BACKGROUND, JOINT_HUES

_REST = rest_pose()  # metres, a 1.75 m adult
# Rigid segments (joint pairs) and their lengths in millimetres: torso, thighs, shins, upper arms.
SEGMENTS_MM = [
    ((a, b), 1000 * float(np.linalg.norm(_REST[a] - _REST[b])))
    for a, b in ((0, 12), (1, 4), (2, 5), (4, 7), (5, 8), (16, 18), (17, 19))
]


def _hsv(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.int16)


def find_joints(image: np.ndarray, hue_tolerance: int = 2, min_pixels: int = 5) -> np.ndarray:
    """``(J, 2)`` pixel centroids of each joint's disc in an RGB uint8 image (NaN if not seen).

    Every vivid pixel is labelled with the joint whose hue is within ``hue_tolerance``; a joint is
    the largest connected blob of its label (stray pixels where two colours blend are ignored) if
    that blob has at least ``min_pixels`` pixels.
    """
    hsv = _hsv(image)
    step = int(JOINT_HUES[1] - JOINT_HUES[0])
    label = np.round(hsv[..., 0] / step).astype(np.int64) % len(JOINT_HUES)
    close = np.abs(hsv[..., 0] - label * step) % 180 <= hue_tolerance
    rows, cols = np.nonzero(close & (hsv[..., 1] > 150) & (hsv[..., 2] > 120))
    labels = label[rows, cols]
    joints = np.full((len(JOINT_HUES), 2), np.nan)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(len(JOINT_HUES) + 1))
    for joint in range(len(JOINT_HUES)):
        members = order[bounds[joint] : bounds[joint + 1]]
        if len(members) < min_pixels:
            continue
        y, x = rows[members], cols[members]
        mask = np.zeros((y.max() - y.min() + 1, x.max() - x.min() + 1), np.uint8)
        mask[y - y.min(), x - x.min()] = 1
        _, _, stats, centroids = cv2.connectedComponentsWithStats(mask)
        largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        if stats[largest, cv2.CC_STAT_AREA] >= min_pixels:
            joints[joint] = centroids[largest] + (x.min(), y.min())
    return joints


def central_figure(image: np.ndarray) -> np.ndarray:
    """``image`` with every figure but the one nearest the centre painted over with background:
    like a pose network, the readers look at the person the crop is centred on, not at neighbours
    who reach into it (everyone wears the same colour code)."""
    difference = cv2.absdiff(image, np.full_like(image, BACKGROUND)).max(axis=2)
    mask = cv2.dilate((difference > 40).astype(np.uint8), np.ones((5, 5), np.uint8))
    count, labels = cv2.connectedComponents(mask)
    if count <= 2:
        return image
    height, width = mask.shape
    centre = labels[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4]
    areas = np.bincount(centre.ravel(), minlength=count)[1:]
    if not areas.any():
        return image
    keep = labels == 1 + int(np.argmax(areas))
    return np.where(keep[..., None], image, np.uint8(BACKGROUND))


def lift(joints2d: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """``(J, 3)`` mm: 2D joints back-projected to one depth, estimated from the pixel lengths of
    rigid segments of known length (the longest-looking ones: foreshortening only shortens)."""
    scales = [np.linalg.norm(joints2d[a] - joints2d[b]) / length for (a, b), length in SEGMENTS_MM]
    scales = np.sort([s for s in scales if np.isfinite(s)])[::-1]
    if len(scales) < 2:
        return np.full((len(joints2d), 3), np.nan)
    depth = intrinsics[0, 0] / float(np.median(scales[:3]))
    rays = np.concatenate([joints2d, np.ones((len(joints2d), 1))], axis=1)
    return depth * rays @ np.linalg.inv(intrinsics).T


class ColourJointPoseEstimator:
    """Finds each joint by its disc colour inside the person box; see the module docstring."""

    joint_names = SKELETON.joint_names
    joint_edges = SKELETON.edges
    skeleton = SKELETON.name
    model_id = "test-colour-joints"

    def __init__(self, hue_tolerance: int = 2, min_pixels: int = 5) -> None:
        self.hue_tolerance = hue_tolerance
        self.min_pixels = min_pixels
        self.calls = 0

    def _joints2d(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        x0, y0 = max(int(box[0]), 0), max(int(box[1]), 0)
        x1, y1 = (
            min(int(np.ceil(box[0] + box[2])), width),
            min(int(np.ceil(box[1] + box[3])), height),
        )
        if x1 <= x0 or y1 <= y0:
            return np.full((len(JOINT_HUES), 2), np.nan)
        region = central_figure(frame[y0:y1, x0:x1])
        return find_joints(region, self.hue_tolerance, self.min_pixels) + (x0, y0)

    def _lift(self, joints2d: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
        return lift(joints2d, intrinsics)

    def estimate(
        self, frames: list[np.ndarray], boxes: list[np.ndarray], intrinsics: np.ndarray
    ) -> list[dict[str, np.ndarray]]:
        """Per frame: ``poses3d`` (n, J, 3) mm, ``poses2d`` (n, J, 2) px, ``uncertainty`` (n, J)."""
        self.calls += 1
        results = []
        for frame, frame_boxes in zip(frames, boxes, strict=True):
            poses2d = np.array([self._joints2d(frame, box) for box in frame_boxes]).reshape(
                -1, len(JOINT_HUES), 2
            )
            poses3d = np.array([self._lift(p, intrinsics) for p in poses2d]).reshape(
                -1, len(JOINT_HUES), 3
            )
            uncertainty = np.where(np.isfinite(poses2d[..., 0]), 20.0, np.nan)
            results.append({"poses3d": poses3d, "poses2d": poses2d, "uncertainty": uncertainty})
        return results


class PersonColourDetector:
    """Boxes of connected non-background regions (people drawn by ``synthvideo``), score 1.

    The region mask is dilated so that the limbs and joints of one figure join up.
    """

    name = "test-colour-blobs"

    def __init__(self, min_area: int = 200, margin: int = 4, frame_delay: float = 0.0) -> None:
        self.min_area = min_area
        self.margin = margin
        self.frame_delay = frame_delay  # seconds per frame: a slow model, for cancel tests

    def detect(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Per frame ``(n, 5)`` x, y, w, h, score boxes in pixels (found at a quarter of the
        resolution of frames larger than 640 pixels, then scaled back)."""
        out = []
        for frame in frames:
            time.sleep(self.frame_delay)
            factor = max(1, int(max(frame.shape[:2]) // 640))
            small = frame[::factor, ::factor] if factor > 1 else frame
            channels = cv2.split(cv2.absdiff(small, np.full_like(small, BACKGROUND)))
            difference = np.maximum(np.maximum(channels[0], channels[1]), channels[2])
            mask = cv2.dilate((difference > 40).astype(np.uint8), np.ones((9, 9), np.uint8))
            count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
            boxes = [
                (x * factor - self.margin, y * factor - self.margin, w * factor + 2 * self.margin,
                 h * factor + 2 * self.margin, 1.0)
                for x, y, w, h, area in stats[1:count]
                if area * factor**2 >= self.min_area
            ]  # fmt: skip
            out.append(np.array(boxes, np.float32).reshape(-1, 5))
        return out
