"""Perspective-correct person crops and the way back from crop outputs to the original camera.

A crop is the image of a *virtual camera* that shares the centre of projection of the original
camera but is rotated to look straight at the centre of a person box, then zoomed so the box fills
a ``side x side`` image. Because the rotation keeps the centre of projection, the crop is an exact
homography of the frame, and the person appears as a camera pointed at them would see them: no
off-axis stretching near the image borders. A network predicting in the crop camera has its 3D
output rotated back with the transpose of that rotation.

Conventions (those of the official MeTRAbs multi-person wrapper, which the parity tests check):

- Pixel coordinates put pixel *centres* on integers; the crop's principal point is ``side / 2``.
- ``rotation`` maps original camera coordinates to crop camera coordinates: ``p_crop = R @ p``.
  With a horizontal flip it contains the mirror ``diag(-1, 1, 1)`` and has determinant -1; it is
  still orthogonal, so ``R.T`` undoes it.
- ``homography`` maps original pixels to crop pixels: ``H = K_crop @ R @ inv(K)``.
- The box size is the larger of the box's height and width measured between the midpoints of its
  opposite sides after re-projection into the rotated camera (times ``box_padding``; the official
  wrapper uses 1, so the box exactly fills the crop).
- Test-time augmentation: in-plane rotation about the crop axis, zoom, horizontal flip and a gamma
  change, in the official order ``R = flip @ Rz @ R_lookat``.
- Images are warped in linear light: 8-bit values ``v`` are decoded as ``(v / 255) ** 2.2`` (the
  official wrapper's approximation of the sRGB curve), shrunk with a 2x2 box-filter pyramid when the
  crop zooms out by 2x or more, warped bilinearly with zero padding, and re-encoded as
  ``linear ** (gamma / 2.2)`` so that ``gamma = 1`` returns the original encoding.

Only the part of a frame that its crops read is decoded to linear light (``source_region``): the
levels of a ``LinearImage`` with a region are full-frame buffers filled inside the region only, so
OpenCV samples them at exactly the coordinates it would use for the whole decoded frame and the
crops come out bit for bit the same, at a fraction of the decoding cost for people smaller than
the frame.

Two warps render the same crops: ``warp_crop`` with OpenCV on the CPU (it rounds sample positions
to 1/32 pixel) and ``warp_crops_torch`` with ``grid_sample`` on any torch device, which is what the
official wrapper does and keeps the whole crop pipeline on the GPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from . import InferenceError

DECODING_GAMMA = 2.2  # pixel value -> linear light exponent, as the official wrapper
DEFAULT_UP = (0.0, -1.0, 0.0)  # camera-space up for OpenCV axes (y down) and a level camera
DEFAULT_PYRAMID_LEVELS = 3  # full, 1/2 and 1/4 resolution, as the official wrapper

_FLIP = np.diag([-1.0, 1.0, 1.0])
_DECODE_LUT = ((np.arange(256, dtype=np.float64) / 255.0) ** DECODING_GAMMA).astype(np.float32)


class CropError(InferenceError):
    """Invalid crop request (box, intrinsics or augmentation)."""


@dataclass(frozen=True)
class Augmentation:
    """One test-time augmentation of a crop."""

    rotation_deg: float = 0.0  # in-plane turn of the crop content, counter-clockwise on screen
    scale: float = 1.0  # extra zoom: > 1 magnifies the person beyond filling the crop
    flip: bool = False  # mirror the crop horizontally (outputs need the left/right joint swap)
    gamma: float = 1.0  # crop value = original value ** gamma (on [0, 1] display-encoded values)


def tta_augmentations(num_aug: int, max_rotation_deg: float = 25.0) -> tuple[Augmentation, ...]:
    """The official wrapper's test-time augmentation schedule for ``num_aug`` crops.

    Rotations span ``[-max, +max]`` evenly; zooms are ``num_aug // 2`` steps from 0.8 up to (not
    including) 1.0, then the rest from 1.0 to 1.1; every other crop counted from the middle one is
    flipped; gammas span 0.6 .. 1.0. A single crop is unrotated, unzoomed, unflipped and, like the
    official wrapper, uses gamma 0.8 (the midpoint of the gamma range).
    """
    if num_aug < 1:
        raise CropError(f"the number of test-time augmentations must be at least 1, got {num_aug}")
    angles = _linspace_midpoint(-max_rotation_deg, max_rotation_deg, num_aug)
    gammas = _linspace_midpoint(0.6, 1.0, num_aug)
    n_low = num_aug // 2
    scales_low = 0.8 + 0.2 * np.arange(n_low) / max(n_low, 1)  # 0.8 .. 1.0, endpoint excluded
    n_high = num_aug - n_low
    scales_high = np.linspace(1.0, 1.1, n_high) if n_high > 1 else np.ones(1)
    scales = np.concatenate([scales_low, scales_high])
    flips = (np.arange(num_aug) - num_aug // 2) % 2 != 0
    return tuple(
        Augmentation(float(a), float(s), bool(f), float(g))
        for a, s, f, g in zip(angles, scales, flips, gammas, strict=True)
    )


def _linspace_midpoint(start: float, stop: float, num: int) -> np.ndarray:
    """``np.linspace`` that returns the midpoint (not ``start``) for a single sample."""
    return np.array([(start + stop) / 2]) if num == 1 else np.linspace(start, stop, num)


@dataclass(frozen=True)
class CropGeometry:
    """Geometry of ``N`` crops; every array has a leading crop axis ``N``.

    ``intrinsics`` (N, 3, 3) crop camera matrices; ``rotation`` (N, 3, 3) original camera -> crop
    camera (``p_crop = R @ p``, a reflection when flipped); ``homography`` (N, 3, 3) original pixels
    -> crop pixels; ``source_intrinsics`` (N, 3, 3) the original camera matrices; ``scale`` (N,)
    crop pixels per original pixel at the box centre; ``flip`` (N,) bool; ``gamma`` (N,);
    ``side`` the crop width = height in pixels.
    """

    intrinsics: np.ndarray
    rotation: np.ndarray
    homography: np.ndarray
    source_intrinsics: np.ndarray
    scale: np.ndarray
    flip: np.ndarray
    gamma: np.ndarray
    side: int

    def __len__(self) -> int:
        return len(self.intrinsics)

    @property
    def inverse_homography(self) -> np.ndarray:
        """(N, 3, 3) crop pixels -> original pixels, ``K @ R.T @ inv(K_crop)``."""
        return (
            self.source_intrinsics
            @ np.swapaxes(self.rotation, -1, -2)
            @ np.linalg.inv(self.intrinsics)
        )

    def original_to_crop_3d(self, points: np.ndarray) -> np.ndarray:
        """Original camera points (N, J, 3) -> crop camera points (N, J, 3), same unit."""
        return np.einsum("nij,nkj->nki", self.rotation, points)

    def crop_to_original_3d(self, points: np.ndarray) -> np.ndarray:
        """Crop camera points (N, J, 3) -> original camera points (N, J, 3), same unit."""
        return np.einsum("nji,nkj->nki", self.rotation, points)

    def original_to_crop_2d(self, points: np.ndarray) -> np.ndarray:
        """Original pixels (N, J, 2) -> crop pixels (N, J, 2) through the homography."""
        return apply_homography(self.homography, points)

    def crop_to_original_2d(self, points: np.ndarray) -> np.ndarray:
        """Crop pixels (N, J, 2) -> original pixels (N, J, 2) through the inverse homography."""
        return apply_homography(self.inverse_homography, points)


def apply_homography(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map 2D points (N, J, 2) with homographies (N, 3, 3); returns (N, J, 2)."""
    mapped = np.einsum("nij,nkj->nki", homography[..., :, :2], points) + homography[:, None, :, 2]
    return mapped[..., :2] / mapped[..., 2:3]


def look_at_rotation(forward: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Rotations (N, 3, 3) whose rows are the new x, y, z axes: z along ``forward`` (N, 3), x
    perpendicular to ``up`` (3,) or (N, 3) and to z, y = z x x (so y points against ``up``).

    When ``forward`` is parallel to ``up`` the new x is z rotated by 90 degrees about the old y
    axis (as the official wrapper does) or, if z is along y, the old x axis.
    """
    forward = np.asarray(forward, np.float64)
    z = forward / np.linalg.norm(forward, axis=-1, keepdims=True)
    x = np.cross(z, np.broadcast_to(np.asarray(up, np.float64), z.shape))
    fallback = np.stack([z[:, 2], np.zeros(len(z)), -z[:, 0]], axis=-1)
    along_y = np.linalg.norm(fallback, axis=-1, keepdims=True) < 1e-12
    fallback = np.where(along_y, [1.0, 0.0, 0.0], fallback)
    x = np.where(np.linalg.norm(x, axis=-1, keepdims=True) < 1e-12, fallback, x)
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def rotation_about_z(angle_rad: np.ndarray) -> np.ndarray:
    """(N, 3, 3) matrices rotating camera coordinates by ``-angle`` about the optical axis, which
    turns the image content by ``+angle`` (counter-clockwise on screen, y down)."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    zero, one = np.zeros_like(c), np.ones_like(c)
    return np.stack(
        [np.stack([c, s, zero], -1), np.stack([-s, c, zero], -1), np.stack([zero, zero, one], -1)],
        axis=-2,
    )


def _as_boxes(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64)
    if boxes.ndim != 2 or boxes.shape[1] < 4:
        raise CropError(f"boxes must be an (N, 4) array of x, y, width, height; got {boxes.shape}")
    boxes = boxes[:, :4]
    bad = ~np.all(np.isfinite(boxes), axis=1) | (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise CropError(
            f"box {i} is {boxes[i].tolist()}: boxes need finite coordinates and a positive width "
            "and height; drop absent people before cropping"
        )
    return boxes


def _as_intrinsics(intrinsics: np.ndarray, n: int) -> np.ndarray:
    intrinsics = np.asarray(intrinsics, np.float64)
    if intrinsics.shape == (3, 3):
        intrinsics = np.broadcast_to(intrinsics, (n, 3, 3))
    if intrinsics.shape != (n, 3, 3):
        raise CropError(f"intrinsics must be (3, 3) or ({n}, 3, 3), got {intrinsics.shape}")
    if not np.all(np.isfinite(intrinsics)) or np.any(np.abs(np.linalg.det(intrinsics)) < 1e-12):
        raise CropError("intrinsics must be finite, invertible 3x3 camera matrices")
    return intrinsics


def _as_augmentations(
    augmentations: Augmentation | Sequence[Augmentation] | None, n: int
) -> list[Augmentation]:
    if augmentations is None:
        return [Augmentation()] * n
    if isinstance(augmentations, Augmentation):
        return [augmentations] * n
    augmentations = list(augmentations)
    if len(augmentations) != n:
        raise CropError(f"got {len(augmentations)} augmentations for {n} boxes; give one per box")
    return augmentations


def box_rotation_and_scale(
    boxes: np.ndarray,
    intrinsics: np.ndarray,
    side: int,
    up: Sequence[float] = DEFAULT_UP,
    box_padding: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Look-at rotation (N, 3, 3) towards each box centre and the zoom (N,) that makes the box fill
    a ``side`` crop.

    ``boxes`` (N, 4) x, y, width, height in original pixels; ``intrinsics`` (3, 3) or (N, 3, 3).
    The box size is measured in the rotated camera (same focal lengths) between the midpoints of
    opposite sides; the zoom is ``side / (box_padding * max(height, width))``.
    """
    boxes = _as_boxes(boxes)
    intrinsics = _as_intrinsics(intrinsics, len(boxes))
    x, y, w, h = boxes.T
    points = np.stack(
        [
            np.stack([x + w / 2, y + h / 2], -1),  # centre
            np.stack([x + w / 2, y], -1),  # top
            np.stack([x + w, y + h / 2], -1),  # right
            np.stack([x + w / 2, y + h], -1),  # bottom
            np.stack([x, y + h / 2], -1),  # left
        ],
        axis=1,
    )  # (N, 5, 2)
    rays = np.einsum("nij,nkj->nki", np.linalg.inv(intrinsics)[..., :2], points)
    rays += np.linalg.inv(intrinsics)[:, None, :, 2]  # (N, 5, 3) ray directions, unnormalised
    rotation = look_at_rotation(rays[:, 0], up)
    sides = np.einsum("nij,nkj->nki", intrinsics @ rotation, rays[:, 1:])
    sides = sides[..., :2] / sides[..., 2:3]  # (N, 4, 2) pixels of the rotated camera
    vertical = np.linalg.norm(sides[:, 0] - sides[:, 2], axis=-1)
    horizontal = np.linalg.norm(sides[:, 1] - sides[:, 3], axis=-1)
    scale = side / (box_padding * np.maximum(vertical, horizontal))
    return rotation, scale


def crop_geometry(
    boxes: np.ndarray,
    intrinsics: np.ndarray,
    side: int,
    augmentations: Augmentation | Sequence[Augmentation] | None = None,
    up: Sequence[float] = DEFAULT_UP,
    box_padding: float = 1.0,
) -> CropGeometry:
    """Geometry of one crop per box.

    ``boxes`` (N, 4) x, y, width, height in original pixels; ``intrinsics`` (3, 3) or (N, 3, 3)
    original camera matrices; ``side`` crop size in pixels; ``augmentations`` one per box, a single
    one for all, or None (plain crops); ``up`` the camera-space up direction that keeps the crop
    upright; ``box_padding`` multiplies the box size (1 = the box fills the crop).
    """
    if side < 1:
        raise CropError(f"crop side must be a positive number of pixels, got {side}")
    if not box_padding > 0:
        raise CropError(f"box padding must be positive, got {box_padding}")
    boxes = _as_boxes(boxes)
    n = len(boxes)
    intrinsics = _as_intrinsics(intrinsics, n)
    augs = _as_augmentations(augmentations, n)
    look_at, box_scale = box_rotation_and_scale(boxes, intrinsics, side, up, box_padding)

    aug_scale = np.array([a.scale for a in augs], np.float64)
    flip = np.array([a.flip for a in augs], bool)
    gamma = np.array([a.gamma for a in augs], np.float64)
    angle = np.radians([a.rotation_deg for a in augs]).astype(np.float64).reshape(n)
    if np.any(aug_scale <= 0) or np.any(gamma <= 0):
        raise CropError("augmentation scales and gammas must be positive")

    scale = aug_scale * box_scale
    crop_intrinsics = np.zeros((n, 3, 3))
    crop_intrinsics[:, :2, :2] = intrinsics[:, :2, :2] * scale[:, None, None]
    crop_intrinsics[:, :2, 2] = side / 2
    crop_intrinsics[:, 2, 2] = 1.0

    aug_rotation = rotation_about_z(angle)
    aug_rotation = np.where(flip[:, None, None], _FLIP @ aug_rotation, aug_rotation)
    rotation = aug_rotation @ look_at
    homography = crop_intrinsics @ rotation @ np.linalg.inv(intrinsics)
    return CropGeometry(
        intrinsics=crop_intrinsics,
        rotation=rotation,
        homography=homography,
        source_intrinsics=np.array(intrinsics),
        scale=scale,
        flip=flip,
        gamma=gamma,
        side=int(side),
    )


def mirror_permutation(joint_names: Sequence[str]) -> np.ndarray:
    """Index permutation (J,) that swaps each left joint with its right counterpart.

    Recognised sides: ``left``/``right`` and ``Left``/``Right`` prefixes, a leading ``l``/``r``
    (the MeTRAbs names, e.g. ``lhip_smpl``), and ``.L``/``.R``, ``_l``/``_r``, ``_L``/``_R``
    suffixes. A joint without a counterpart of that name maps to itself.
    """
    names = list(joint_names)
    index = {name: i for i, name in enumerate(names)}
    if len(index) != len(names):
        raise CropError("joint names must be unique to find left/right counterparts")

    def candidates(name: str) -> list[str]:
        out = []
        for a, b in (("left", "right"), ("Left", "Right"), ("LEFT", "RIGHT")):
            for p, q in ((a, b), (b, a)):
                if name.startswith(p):
                    out.append(q + name[len(p) :])
        for p, q in (("l", "r"), ("r", "l"), ("L", "R"), ("R", "L")):
            if name.startswith(p):
                out.append(q + name[1:])
        for p, q in ((".L", ".R"), ("_l", "_r"), ("_L", "_R")):
            for s, t in ((p, q), (q, p)):
                if name.endswith(s):
                    out.append(name[: -len(s)] + t)
        return out

    permutation = np.arange(len(names))
    for i, name in enumerate(names):
        for other in candidates(name):
            if other in index and other != name:
                permutation[i] = index[other]
                break
    if not np.array_equal(permutation[permutation], np.arange(len(names))):
        raise CropError(
            "left/right joint names do not pair up one to one; pass an explicit mirror permutation"
        )
    return permutation


def unflip_joints(values: np.ndarray, flip: np.ndarray, permutation: np.ndarray) -> np.ndarray:
    """Swap left/right joints (axis 1 of ``values`` (N, J, ...)) where ``flip`` (N,) is set.

    A network looking at a mirrored crop names the mirrored person's joints, so the joint it calls
    "left" is the person's right one.
    """
    return np.where(
        np.reshape(flip, (-1,) + (1,) * (values.ndim - 1)), values[:, permutation], values
    )


def decode_srgb8(frame: np.ndarray) -> np.ndarray:
    """8-bit RGB frame (H, W, 3) -> linear light float32 (H, W, 3) in [0, 1]."""
    return cv2.LUT(np.ascontiguousarray(frame), _DECODE_LUT)  # 3-4x faster than numpy indexing


def pyramid_level_matrix(level: int, inverse: bool = False) -> np.ndarray:
    """(3, 3) map from full-resolution pixels to pixels of pyramid ``level`` (scale ``2**-level``),
    keeping pixel centres on integers (a 2x2 box average sits between its four source pixels);
    with ``inverse`` the map back."""
    factor = 2.0**-level
    if inverse:
        factor = 1 / factor
    shift = (factor - 1) / 2
    return np.array([[factor, 0, shift], [0, factor, shift], [0, 0, 1.0]])


def pyramid_level_for_scale(scale: float, n_levels: int = DEFAULT_PYRAMID_LEVELS) -> int:
    """Pyramid level to sample from for a crop zoom ``scale`` (crop pixels per original pixel):
    ``floor(-log2(scale))`` clipped to the available levels, as the official wrapper."""
    return int(pyramid_levels_for_scales(np.array([scale]), n_levels)[0])


def pyramid_levels_for_scales(
    scales: np.ndarray, n_levels: int = DEFAULT_PYRAMID_LEVELS
) -> np.ndarray:
    """``pyramid_level_for_scale`` of each of ``scales`` (N,): (N,) int64."""
    levels = np.floor(-np.log2(np.asarray(scales, np.float64)))
    return np.clip(levels, 0, n_levels - 1).astype(np.int64)


def usable_levels(image_size: tuple[int, int], n_levels: int) -> int:
    """Pyramid levels of a ``(width, height)`` frame: at most ``n_levels``, each level at least
    one pixel each way."""
    return min(n_levels, 1 + int(math.log2(min(image_size))))


def source_region(
    homographies: np.ndarray,
    scales: np.ndarray,
    side: int,
    image_size: tuple[int, int],
    n_levels: int = DEFAULT_PYRAMID_LEVELS,
) -> tuple[int, int, int, int]:
    """The frame pixels that crops read: ``(x0, y0, x1, y1)``, ends exclusive, full resolution.

    ``homographies`` (N, 3, 3) original pixels -> crop pixels and ``scales`` (N,) of the crops of
    one ``(width, height)`` frame, ``side`` their size. Each crop reads the pyramid level of its
    zoom inside the image of its pixel square (a convex quadrilateral: a homography maps lines to
    lines), plus the bilinear neighbours and one spare level pixel each way. Starts and ends are
    rounded out to multiples of ``2 ** (levels - 1)`` (so each pyramid level of the region is
    exactly the matching block of the whole frame's level) and clipped to the frame. The whole
    frame when a crop's square reaches the horizon (its corners do not map to finite pixels).
    """
    width, height = image_size
    whole = (0, 0, int(width), int(height))
    if len(homographies) == 0:
        return (0, 0, 0, 0)
    levels_available = usable_levels(image_size, n_levels)
    corners = np.array(
        [[-1.0, -1.0, 1.0], [side, -1.0, 1.0], [side, side, 1.0], [-1.0, side, 1.0]]
    )  # beyond the outermost sample positions (pixel centres 0 .. side - 1)
    mapped = np.einsum("nij,kj->nki", np.linalg.inv(homographies), corners)  # (N, 4, 3)
    depth = mapped[..., 2] * np.sign(mapped[:, :1, 2])  # an inverse is defined up to sign
    if not np.all(np.isfinite(mapped)) or np.any(depth <= 1e-9 * np.abs(mapped).max()):
        return whole  # the square spans the horizon: its image is not a bounded quadrilateral
    points = mapped[..., :2] / mapped[..., 2:]  # (N, 4, 2) full-resolution pixels
    factor = 2.0 ** pyramid_levels_for_scales(scales, levels_available)[:, None, None]
    # level pixel coordinates p = x / factor + (1 / factor - 1) / 2 (pyramid_level_matrix)
    p = points / factor + (1 / factor - 1) / 2
    # bilinear samples read floor(p) and floor(p) + 1; one spare level pixel each way; level
    # pixel u averages full-resolution pixels factor * u .. factor * (u + 1) - 1
    lows = (np.floor(p.min(axis=1)) - 1) * factor[:, 0]
    highs = (np.floor(p.max(axis=1)) + 3) * factor[:, 0]
    align = 2 ** (levels_available - 1)
    low = np.floor(np.min(lows, axis=0) / align) * align
    high = np.ceil(np.max(highs, axis=0) / align) * align
    x0, y0 = (int(np.clip(v, 0, limit)) for v, limit in zip(low, image_size, strict=True))
    x1, y1 = (int(np.clip(v, 0, limit)) for v, limit in zip(high, image_size, strict=True))
    return (x0, y0, max(x0, x1), max(y0, y1))


class LevelBuffers:
    """Reusable full-frame float32 level buffers for ``LinearImage`` s with a region: one image
    at a time (a new image overwrites the region of the previous one; outside its own region an
    image holds stale pixels that its crops never read)."""

    def __init__(self) -> None:
        self._arrays: dict[int, np.ndarray] = {}

    def get(self, level: int, shape: tuple[int, int, int]) -> np.ndarray:
        array = self._arrays.get(level)
        if array is None or array.shape != shape:
            array = np.zeros(shape, np.float32)
            self._arrays[level] = array
        return array


class LinearImage:
    """An 8-bit RGB frame in linear light with a lazily built 2x2 box-filter pyramid."""

    def __init__(
        self,
        frame: np.ndarray,
        n_levels: int = DEFAULT_PYRAMID_LEVELS,
        region: tuple[int, int, int, int] | None = None,
        buffers: LevelBuffers | None = None,
    ):
        """``frame`` (H, W, 3) uint8 RGB; ``n_levels`` pyramid levels including full size.

        With ``region`` (``source_region``: x0, y0, x1, y1, starts aligned to
        ``2 ** (levels - 1)``) only that part is decoded and averaged down, into full-frame
        buffers (reused from ``buffers``): the levels hold the whole frame's values there and
        must not be read elsewhere.
        """
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise CropError(
                f"frames must be (H, W, 3) uint8 RGB arrays, got {frame.dtype} {frame.shape}"
            )
        if n_levels < 1:
            raise CropError(f"the pyramid needs at least one level, got {n_levels}")
        # a level needs at least one pixel each way
        self.n_levels = usable_levels((frame.shape[1], frame.shape[0]), n_levels)
        self.region = region
        if region is None:
            self._levels: list[np.ndarray] = [decode_srgb8(frame)]
            return
        x0, y0, x1, y1 = region
        align = 2 ** (self.n_levels - 1)
        if x0 % align or y0 % align or not (0 <= x0 <= x1 <= frame.shape[1]):
            raise CropError(f"region {region} does not start on multiples of {align} pixels")
        if not 0 <= y0 <= y1 <= frame.shape[0]:
            raise CropError(
                f"region {region} lies outside the {frame.shape[1]}x{frame.shape[0]} frame"
            )
        self._buffers = buffers or LevelBuffers()
        full = self._buffers.get(0, frame.shape)
        if x1 > x0 and y1 > y0:
            cv2.LUT(frame[y0:y1, x0:x1], _DECODE_LUT, dst=full[y0:y1, x0:x1])
        self._levels = [full]

    def level(self, i: int) -> np.ndarray:
        """Level ``i < n_levels`` (H >> i, W >> i, 3) float32; halving drops an odd last row or
        column."""
        while len(self._levels) <= i:
            prev = self._levels[-1]
            h, w = prev.shape[0] // 2, prev.shape[1] // 2
            if self.region is None:
                # area interpolation at exactly half size is the 2x2 box average
                self._levels.append(
                    cv2.resize(prev[: 2 * h, : 2 * w], (w, h), interpolation=cv2.INTER_AREA)
                )
                continue
            shift = len(self._levels) - 1  # prev is level ``shift``
            x0, y0, x1, y1 = (v >> shift for v in self.region)
            nw, nh = (x1 - x0) // 2, (y1 - y0) // 2
            level = self._buffers.get(shift + 1, (h, w, 3))
            if nw > 0 and nh > 0:  # the same 2x2 averages as for the whole frame (aligned start)
                level[y0 // 2 : y0 // 2 + nh, x0 // 2 : x0 // 2 + nw] = cv2.resize(
                    prev[y0 : y0 + 2 * nh, x0 : x0 + 2 * nw], (nw, nh),
                    interpolation=cv2.INTER_AREA,
                )  # fmt: skip
            self._levels.append(level)
        return self._levels[i]


def warp_crop(
    image: LinearImage,
    homography: np.ndarray,
    scale: float,
    side: int,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Render one crop (side, side, 3) float32 in linear light, into ``out`` (C-contiguous) if
    given.

    ``homography`` (3, 3) maps original pixels to crop pixels and ``scale`` is the crop's zoom; the
    source is the pyramid level suited to that zoom. Pixels outside the frame are black.
    """
    level = pyramid_level_for_scale(scale, image.n_levels)
    source = image.level(level)
    crop_from_level = homography @ pyramid_level_matrix(level, inverse=True)
    crop = cv2.warpPerspective(
        source,
        crop_from_level,
        (side, side),
        dst=out,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0.0, 0.0, 0.0),
    )
    if out is not None and not np.shares_memory(crop, out):
        out[...] = crop  # OpenCV allocated anew (``out`` was not a float32 crop)
        crop = out
    return crop


def encode_crop(linear: np.ndarray, gamma: float, out: np.ndarray | None = None) -> np.ndarray:
    """Linear-light crop -> display-encoded values ``linear ** (gamma / 2.2)`` (same shape), into
    ``out`` if given (it may be ``linear``)."""
    return np.power(linear, np.float32(gamma / DECODING_GAMMA), out=out)


def make_crops(
    frame: np.ndarray | LinearImage, geometry: CropGeometry, encode: bool = True
) -> np.ndarray:
    """All crops of ``geometry`` from one frame: (N, 3, side, side) float32 RGB in [0, 1].

    ``frame`` (H, W, 3) uint8 RGB or a ``LinearImage``; with ``encode`` the values carry each
    crop's gamma, otherwise they stay in linear light.
    """
    image = frame if isinstance(frame, LinearImage) else LinearImage(frame)
    side = geometry.side
    crops = np.empty((len(geometry), 3, side, side), np.float32)
    for i in range(len(geometry)):
        linear = warp_crop(image, geometry.homography[i], float(geometry.scale[i]), side)
        crops[i] = (encode_crop(linear, float(geometry.gamma[i])) if encode else linear).transpose(
            2, 0, 1
        )
    return crops


# --- the same warp with torch (grid_sample), for frames on a GPU --------------------------------


class TorchLinearImage:
    """A frame in linear light on a torch device, (3, H, W) float32, with a lazy 2x2 pyramid.

    The GPU counterpart of ``LinearImage``: decoding, pyramid and warping run where the network
    runs, so only the 8-bit frame crosses the bus.
    """

    def __init__(
        self,
        frame: np.ndarray,
        device: torch.device | str = "cpu",
        n_levels: int = DEFAULT_PYRAMID_LEVELS,
    ):
        """``frame`` (H, W, 3) uint8 RGB; ``device`` where the pixels live."""
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise CropError(
                f"frames must be (H, W, 3) uint8 RGB arrays, got {frame.dtype} {frame.shape}"
            )
        self.device = torch.device(device)
        self.n_levels = usable_levels((frame.shape[1], frame.shape[0]), n_levels)
        lut = torch.from_numpy(_DECODE_LUT).to(self.device)
        pixels = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device, non_blocking=True)
        self._levels = [lut[pixels.long()].permute(2, 0, 1).contiguous()]

    def level(self, i: int) -> torch.Tensor:
        """Level ``i < n_levels`` (3, H >> i, W >> i); halving drops an odd last row or column."""
        while len(self._levels) <= i:
            self._levels.append(torch.nn.functional.avg_pool2d(self._levels[-1][None], 2)[0])
        return self._levels[i]


def warp_crops_torch(
    image: TorchLinearImage, homographies: np.ndarray, scales: np.ndarray, side: int
) -> torch.Tensor:
    """Render crops (N, 3, side, side) float32 in linear light on the image's device.

    ``homographies`` (N, 3, 3) original pixels -> crop pixels, ``scales`` (N,) crop zooms. Bilinear
    sampling with zero padding at pixel centres, as ``warp_crop`` (without OpenCV's 1/32-pixel
    rounding of sample positions).
    """
    n = len(homographies)
    crops = torch.empty((n, 3, side, side), dtype=torch.float32, device=image.device)
    levels = pyramid_levels_for_scales(scales, image.n_levels)
    coords = torch.arange(side, dtype=torch.float32, device=image.device)
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    crop_pixels = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1)  # (S, S, 3)
    for level in np.unique(levels):
        index = np.flatnonzero(levels == level)
        source = image.level(int(level))
        level_from_crop = pyramid_level_matrix(int(level)) @ np.linalg.inv(homographies[index])
        # normalise to grid_sample's [-1, 1] (align_corners: -1 and 1 are the corner pixel centres)
        width, height = source.shape[2] - 1, source.shape[1] - 1
        to_grid = np.array([[2 / width, 0, -1], [0, 2 / height, -1], [0, 0, 1]])
        matrix = torch.from_numpy((to_grid @ level_from_crop).astype(np.float32))
        points = torch.einsum("nij,yxj->nyxi", matrix.to(image.device), crop_pixels)
        grid = points[..., :2] / points[..., 2:]
        crops[torch.from_numpy(index).to(image.device)] = torch.nn.functional.grid_sample(
            source[None].expand(len(index), -1, -1, -1),
            grid,
            mode="bilinear",
            padding_mode="zeros",
            align_corners=True,
        )
    return crops
