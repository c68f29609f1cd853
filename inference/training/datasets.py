"""Training data for the crop model: a generic on-disk layout, its synthetic producer, and the
augmented perspective crops the trainer consumes.

Generic layout (any data you are licensed to use can be converted to it)::

    DATASET/
      annotations.npz     one row per annotated person
      <images ...>        any files OpenCV reads, at the paths the annotations name

``annotations.npz`` keys (``N`` people, ``J`` joints):

================  ===============  ============================================================
``image_paths``   str (N,)         image file of each person, relative to ``DATASET/``
``intrinsics``    f64 (N,3,3)      camera matrix of that image (or one (3,3) shared by all)
``joints3d``      f32 (N,J,3)      camera frame (OpenCV axes) millimetres; NaN = not annotated
``joint_names``   str (J,)         names of the joints (matched by name to the model's joints)
``boxes``         f32 (N,4)        optional: x, y, w, h pixels of the person (default: the box of
                                   the projected joints, 15 % larger)
================  ===============  ============================================================

Several people may share an image (rows with the same path). Joints the model has but the
dataset lacks are NaN and are left out of the losses and metrics.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from retarget.files import atomic_write

from .. import InferenceError
from ..camera import project
from ..crops import Augmentation, crop_geometry, make_crops, mirror_permutation

logger = logging.getLogger(__name__)

ANNOTATIONS_FILE = "annotations.npz"
BOX_MARGIN = 0.15  # boxes from projected joints are this much larger than the joints' extent


class DatasetError(InferenceError):
    """A dataset folder or annotation file that cannot be used; the message says how to fix it."""


def read_rgb(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB; :class:`DatasetError` when it cannot be read."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot read image {path}; check that the file exists and is valid")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# ------------------------------------------------------------------------------ generic layout


@dataclass(frozen=True)
class PoseDataset:
    """Annotated people of a dataset folder, joints already in the requested joint order.

    ``image_paths`` (N,) str relative to ``root``; ``intrinsics`` (N, 3, 3); ``joints3d`` (N, J, 3)
    camera-frame mm (NaN = unknown); ``boxes`` (N, 4) x, y, w, h pixels; ``joint_names`` (J,).
    """

    root: Path
    image_paths: np.ndarray
    intrinsics: np.ndarray
    joints3d: np.ndarray
    boxes: np.ndarray
    joint_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.image_paths)

    def subset(self, indices: Sequence[int] | np.ndarray) -> PoseDataset:
        """The people at ``indices``, same root and joints."""
        indices = np.asarray(indices, dtype=np.int64)
        return PoseDataset(
            self.root,
            self.image_paths[indices],
            self.intrinsics[indices],
            self.joints3d[indices],
            self.boxes[indices],
            self.joint_names,
        )

    def load_image(self, index: int) -> np.ndarray:
        """The image of person ``index`` as (H, W, 3) uint8 RGB."""
        return read_rgb(self.root / str(self.image_paths[index]))


def boxes_from_joints(
    joints3d: np.ndarray, intrinsics: np.ndarray, margin: float = BOX_MARGIN
) -> np.ndarray:
    """Boxes (N, 4) x, y, w, h around the projected joints (N, J, 3) mm, ``margin`` larger."""
    homogeneous = np.einsum("nij,nkj->nki", intrinsics, joints3d)
    pixels = homogeneous[..., :2] / homogeneous[..., 2:]
    low, high = np.nanmin(pixels, axis=1), np.nanmax(pixels, axis=1)
    centre, size = 0.5 * (low + high), (high - low) * (1 + margin)
    return np.concatenate([centre - size / 2, size], axis=1).astype(np.float32)


def write_pose_dataset(
    root: str | os.PathLike,
    image_paths: Sequence[str],
    intrinsics: np.ndarray,
    joints3d: np.ndarray,
    joint_names: Sequence[str],
    boxes: np.ndarray | None = None,
) -> Path:
    """Write ``annotations.npz`` into ``root`` (atomically); images must already be there.
    Arrays as in the module docstring. Returns the annotation file's path."""
    root = Path(root)
    arrays = {
        "image_paths": np.asarray(image_paths, dtype=str),
        "intrinsics": np.asarray(intrinsics, np.float64),
        "joints3d": np.asarray(joints3d, np.float32),
        "joint_names": np.asarray(joint_names, dtype=str),
    }
    if boxes is not None:
        arrays["boxes"] = np.asarray(boxes, np.float32)
    _validate(arrays, root)
    with atomic_write(root / ANNOTATIONS_FILE) as file:
        np.savez_compressed(file, **arrays)
    return root / ANNOTATIONS_FILE


def _validate(arrays: dict[str, np.ndarray], root: Path) -> None:
    """Check keys, shapes and values of an annotation mapping; raise DatasetError naming the key."""
    where = root / ANNOTATIONS_FILE
    for key in ("image_paths", "intrinsics", "joints3d", "joint_names"):
        if key not in arrays:
            raise DatasetError(
                f"{where} lacks the key {key!r}; see inference.training.datasets for the layout"
            )
    n = len(arrays["image_paths"])
    joints, names = arrays["joints3d"], arrays["joint_names"]
    if joints.ndim != 3 or joints.shape[0] != n or joints.shape[2] != 3:
        raise DatasetError(
            f"{where}: 'joints3d' must be (N={n}, J, 3) millimetres, got {joints.shape}"
        )
    if names.shape != (joints.shape[1],):
        raise DatasetError(
            f"{where}: 'joint_names' must list the {joints.shape[1]} joints of 'joints3d', "
            f"got shape {names.shape}"
        )
    intr = arrays["intrinsics"]
    if intr.shape not in ((3, 3), (n, 3, 3)):
        raise DatasetError(
            f"{where}: 'intrinsics' must be (3, 3) or (N={n}, 3, 3), got {intr.shape}"
        )
    if not np.all(np.isfinite(intr)) or np.any(np.abs(np.linalg.det(intr)) < 1e-9):
        raise DatasetError(f"{where}: 'intrinsics' must be finite, invertible camera matrices")
    if "boxes" in arrays and arrays["boxes"].shape != (n, 4):
        raise DatasetError(
            f"{where}: 'boxes' must be (N={n}, 4) x, y, w, h, got {arrays['boxes'].shape}"
        )
    if np.any(np.isinf(joints)):
        raise DatasetError(f"{where}: 'joints3d' has infinite values; use NaN for unknown joints")
    behind = np.nanmin(joints[..., 2], axis=1, initial=np.inf) <= 0
    if np.any(behind):
        raise DatasetError(
            f"{where}: person {int(np.flatnonzero(behind)[0])} has joints at depth <= 0; "
            "'joints3d' must be camera-frame millimetres with z pointing forward"
        )
    if not np.any(np.isfinite(joints[..., 0]), axis=1).all():
        empty = int(np.flatnonzero(~np.any(np.isfinite(joints[..., 0]), axis=1))[0])
        raise DatasetError(f"{where}: person {empty} has no annotated joint; drop that row")


def load_pose_dataset(
    root: str | os.PathLike, joint_names: Sequence[str] | None = None
) -> PoseDataset:
    """Read a dataset folder (layout in the module docstring). With ``joint_names`` the joints are
    reordered to those names (missing ones NaN); at least one must be present."""
    root = Path(root)
    path = root / ANNOTATIONS_FILE
    if not path.is_file():
        raise DatasetError(
            f"no {ANNOTATIONS_FILE} in {root}; a dataset folder holds its images and an "
            f"{ANNOTATIONS_FILE} (see inference.training.datasets for the keys)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path} is not a readable .npz file ({error})") from error
    _validate(arrays, root)
    n = len(arrays["image_paths"])
    intrinsics = np.broadcast_to(arrays["intrinsics"], (n, 3, 3)).astype(np.float64)
    joints = arrays["joints3d"].astype(np.float32)
    names = tuple(str(name) for name in arrays["joint_names"])
    if joint_names is not None:
        wanted = tuple(joint_names)
        common = [name for name in wanted if name in names]
        if not common:
            raise DatasetError(
                f"{path}: none of its joints ({', '.join(names[:6])}, ...) is among the model's "
                f"joints ({', '.join(wanted[:6])}, ...); rename 'joint_names' to match"
            )
        mapped = np.full((n, len(wanted), 3), np.nan, np.float32)
        for j, name in enumerate(wanted):
            if name in names:
                mapped[:, j] = joints[:, names.index(name)]
        joints, names = mapped, wanted
    boxes = arrays.get("boxes")
    if boxes is None:
        boxes = boxes_from_joints(joints, intrinsics)
    return PoseDataset(root, arrays["image_paths"].astype(str), intrinsics, joints, boxes, names)


# ----------------------------------------------------------------------------- synthetic data


def frame_seed(seed: int, index: int) -> int:
    """The renderer seed of frame ``index`` of a dataset with ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def render_synthetic_dataset(
    root: str | os.PathLike,
    num_frames: int,
    seed: int,
    scene: object | None = None,
    jpeg_quality: int = 92,
    min_visible: float = 0.4,
    min_in_image: float = 0.6,
    shard_size: int = 250,
) -> PoseDataset:
    """Render ``num_frames`` synthetic images into ``root`` in the generic layout and return it.

    Every person at least ``min_visible`` unoccluded and with ``min_in_image`` of the joints
    inside the image becomes a row (the main person of each frame from 15 % and 30 %), with the box of
    its visible pixels. ``scene`` is a :class:`inference.training.synth.render.SceneConfig`
    (default: a person window of 1.6x the joints' box, at most 256 px). Frames are rendered in shards of
    ``shard_size`` whose annotations are kept in ``root/parts/``, so an interrupted run resumes
    where it stopped. Same arguments, same files.
    """
    from .synth.render import SKELETON, SceneConfig

    scene = scene if scene is not None else SceneConfig(window_scale=1.6, window_max_side=256)
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "parts").mkdir(exist_ok=True)
    parts = []
    for start in range(0, num_frames, shard_size):
        part = root / "parts" / f"frames_{start:07d}_{min(start + shard_size, num_frames):07d}.npz"
        if not part.is_file():
            rows = _render_shard(root, range(start, min(start + shard_size, num_frames)), seed,
                                 scene, jpeg_quality, min_visible, min_in_image)  # fmt: skip
            with atomic_write(part) as file:
                np.savez(file, **rows)
            logger.info("rendered frames %d..%d of %d", start, start + shard_size, num_frames)
        with np.load(part) as archive:
            parts.append({key: archive[key] for key in archive.files})
    merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    write_pose_dataset(root, merged["image_paths"], merged["intrinsics"], merged["joints3d"],
                       SKELETON.joint_names, merged["boxes"])  # fmt: skip
    return load_pose_dataset(root)


def _render_shard(
    root: Path,
    indices: range,
    seed: int,
    scene: object,
    jpeg_quality: int,
    min_visible: float,
    min_in_image: float,
) -> dict[str, np.ndarray]:
    """Render frames ``indices`` into ``root/images``; their annotation rows as arrays."""
    from .synth.render import render_frame

    paths, intrinsics, joints, boxes = [], [], [], []
    for index in indices:
        frame = render_frame(frame_seed(seed, index), scene)
        name = f"images/{index:07d}.jpg"
        cv2.imwrite(str(root / name), frame.image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        for person in range(len(frame.joints3d)):
            main = person == 0  # kept when barely visible too: occlusion is what it must learn
            keep = frame.visible_fraction[person] >= (0.15 if main else min_visible) and (
                frame.in_image_fraction[person] >= (0.3 if main else min_in_image)
            )
            if keep and np.all(np.isfinite(frame.boxes[person])):
                paths.append(name)
                intrinsics.append(frame.camera.intrinsics)
                joints.append(frame.joints3d[person])
                boxes.append(frame.boxes[person])
    return {
        "image_paths": np.array(paths, dtype=str),
        "intrinsics": np.array(intrinsics, np.float64).reshape(-1, 3, 3),
        "joints3d": np.array(joints, np.float32).reshape(len(paths), -1, 3),
        "boxes": np.array(boxes, np.float32).reshape(-1, 4),
    }


# -------------------------------------------------------------------------------- crop sampler


@dataclass(frozen=True)
class AugmentConfig:
    """Random changes applied to each training crop (all off with ``enabled=False``)."""

    enabled: bool = True
    zoom: tuple[float, float] = (0.75, 1.1)  # crop zoom (1 = box fills the crop), uniform
    shift: float = 0.06  # box centre jitter, normal std as a fraction of the box size
    rotation_deg: float = 25.0  # in-plane rotation, uniform within +-this
    rotation_prob: float = 0.7  # chance of rotating at all
    flip_prob: float = 0.5  # horizontal mirror, with the left/right joint swap
    gamma: tuple[float, float] = (0.7, 1.3)  # linear-light gamma of the crop
    brightness: float = 0.25  # multiplicative, uniform +-
    contrast: float = 0.3
    saturation: float = 0.4
    hue_deg: float = 12.0
    occlusion_prob: float = 0.35  # paste a random occluder (rectangle or ellipse)
    blur_prob: float = 0.15
    noise_std: float = 0.02  # upper bound of the additive pixel noise std


@dataclass
class CropBatch:
    """A batch of ``B`` training crops. ``images`` (B, 3, S, S) RGB [0, 1]; ``intrinsics`` (B, 3, 3)
    crop camera; ``joints3d`` (B, J, 3) crop-camera mm; ``joints2d`` (B, J, 2) crop pixels;
    ``valid`` (B, J) bool, joints with ground truth."""

    images: torch.Tensor
    intrinsics: torch.Tensor
    joints3d: torch.Tensor
    joints2d: torch.Tensor
    valid: torch.Tensor

    def to(self, device: torch.device | str) -> CropBatch:
        return CropBatch(*(t.to(device, non_blocking=True) for t in self.as_tuple()))

    def as_tuple(self) -> tuple[torch.Tensor, ...]:
        return self.images, self.intrinsics, self.joints3d, self.joints2d, self.valid


def collate_crops(items: list[dict[str, np.ndarray]]) -> CropBatch:
    """Stack the dicts of :class:`CropDataset` into a :class:`CropBatch`."""
    return CropBatch(
        *(
            torch.from_numpy(np.stack([item[key] for item in items]))
            for key in ("image", "intrinsics", "joints3d", "joints2d", "valid")
        )
    )


@dataclass
class CropDataset(torch.utils.data.Dataset):
    """Perspective-correct, augmented crops of a :class:`PoseDataset` for a ``side`` px model.

    Item ``i`` of epoch ``e`` is a pure function of (``seed``, ``e``, ``i``): the same in any
    DataLoader worker, different across epochs. Without augmentation the crop is the plain crop
    of the person's box (box filling the crop), as at inference.
    """

    data: PoseDataset
    side: int
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0
    epoch: int = 0

    def __post_init__(self) -> None:
        self._mirror = mirror_permutation(self.data.joint_names)

    def __len__(self) -> int:
        return len(self.data)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _augmentation(
        self, rng: np.random.Generator, box: np.ndarray
    ) -> tuple[np.ndarray, Augmentation]:
        aug = self.augment
        if not aug.enabled:
            return box, Augmentation()
        size = max(box[2], box[3])
        centre = box[:2] + box[2:] / 2 + rng.normal(0, aug.shift, 2) * size
        shifted = np.concatenate([centre - box[2:] / 2, box[2:]])
        rotation = (
            rng.uniform(-aug.rotation_deg, aug.rotation_deg)
            if rng.uniform() < aug.rotation_prob
            else 0.0
        )
        return shifted, Augmentation(
            rotation_deg=float(rotation),
            scale=float(rng.uniform(*aug.zoom)),
            flip=bool(rng.uniform() < aug.flip_prob),
            gamma=float(rng.uniform(*aug.gamma)),
        )

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        box, augmentation = self._augmentation(rng, self.data.boxes[index].astype(np.float64))
        geometry = crop_geometry(box[None], self.data.intrinsics[index], self.side, augmentation)
        image = make_crops(self.data.load_image(index), geometry)[0]  # (3, S, S) RGB [0, 1]
        joints = geometry.original_to_crop_3d(self.data.joints3d[index][None].astype(np.float64))[0]
        if augmentation.flip:  # the mirrored person's left is the person's right
            joints = joints[self._mirror]
        joints2d = project(joints, geometry.intrinsics[0])
        if self.augment.enabled:
            image = _appearance_augment(rng, image, self.augment)
        valid = np.all(np.isfinite(joints), axis=1)
        return {
            "image": np.ascontiguousarray(image, np.float32),
            "intrinsics": geometry.intrinsics[0].astype(np.float32),
            "joints3d": np.nan_to_num(joints).astype(np.float32),
            "joints2d": np.nan_to_num(joints2d).astype(np.float32),
            "valid": valid,
        }


def _appearance_augment(
    rng: np.random.Generator, image: np.ndarray, aug: AugmentConfig
) -> np.ndarray:
    """Colour jitter, occluder, blur and noise on a (3, S, S) RGB [0, 1] crop."""
    hwc = np.ascontiguousarray(image.transpose(1, 2, 0))
    hsv = cv2.cvtColor(hwc, cv2.COLOR_RGB2HSV)  # float32: H in degrees, S and V in [0, 1]
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-aug.hue_deg, aug.hue_deg)) % 360
    hsv[..., 1] *= rng.uniform(1 - aug.saturation, 1 + aug.saturation)
    hwc = cv2.cvtColor(np.clip(hsv, 0, [360, 1, 1]).astype(np.float32), cv2.COLOR_HSV2RGB)
    mean = hwc.mean()
    hwc = (hwc - mean) * rng.uniform(1 - aug.contrast, 1 + aug.contrast) + mean
    hwc *= rng.uniform(1 - aug.brightness, 1 + aug.brightness)
    side = hwc.shape[0]
    if rng.uniform() < aug.occlusion_prob:
        mask = np.zeros((side, side), np.uint8)
        centre = (int(rng.integers(0, side)), int(rng.integers(0, side)))
        axes = (int(rng.uniform(0.08, 0.35) * side), int(rng.uniform(0.08, 0.35) * side))
        if rng.uniform() < 0.5:
            cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        else:
            cv2.rectangle(
                mask,
                (centre[0] - axes[0], centre[1] - axes[1]),
                (centre[0] + axes[0], centre[1] + axes[1]),
                1,
                -1,
            )
        colour = rng.uniform(0, 1, 3).astype(np.float32)
        shade = np.linspace(rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0), side, dtype=np.float32)
        occluder = colour * shade[:, None, None]
        hwc = np.where(mask[..., None] > 0, occluder, hwc)
    if rng.uniform() < aug.blur_prob:
        hwc = cv2.GaussianBlur(hwc, (0, 0), rng.uniform(0.5, 1.5))
    hwc = hwc + rng.normal(0, rng.uniform(0, aug.noise_std), hwc.shape).astype(np.float32)
    return np.clip(hwc, 0, 1).transpose(2, 0, 1)
