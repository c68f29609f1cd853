"""Multi-person 3D pose estimation on whole frames: crops, the crop network, test-time averaging.

``PoseEstimator`` takes frames and person boxes, cuts one perspective-correct crop per box and
augmentation (``inference.crops``), runs the crop network on all crops of all frames in batches,
and maps its outputs back: flipped crops get their left/right joints swapped, 3D joints are rotated
back into the original camera, an optional joint transform and skeleton subset are applied, the 2D
joints are the original camera's projection of each augmentation's 3D joints, and everything is
averaged over the augmentations (in 3D camera space), as the official MeTRAbs wrapper does.

Crops are rendered by OpenCV on the CPU (into pinned buffers copied without blocking, double
buffered on CUDA) or, by default on CUDA, by ``grid_sample`` on the GPU from the uploaded 8-bit
frame. The OpenCV path splits a batch's frames among ``RENDER_THREADS`` threads and applies each
augmentation's gamma there; the torch path applies it on the device.

Batch size: crops per network call, ``EstimatorConfig.batch_size`` or, when that is None,
automatic: ``CPU_BATCH_SIZE`` on the CPU; on CUDA the largest batch whose measured memory fits the
free device memory (``batch_size_for_memory``, from two probe batches through the real crop path,
``PoseEstimator.tune_batch_size``). Should a batch still run out of GPU memory, it is retried in
halves and later batches stay at the smaller size (``run_in_batches``); no crop is lost or repeated.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from . import InferenceError
from .crops import (
    DECODING_GAMMA,
    DEFAULT_PYRAMID_LEVELS,
    DEFAULT_UP,
    CropGeometry,
    LevelBuffers,
    LinearImage,
    TorchLinearImage,
    crop_geometry,
    encode_crop,
    mirror_permutation,
    source_region,
    tta_augmentations,
    unflip_joints,
    warp_crop,
    warp_crops_torch,
)

logger = logging.getLogger(__name__)

CropModel = Callable[[torch.Tensor, torch.Tensor], object]
T = TypeVar("T")

# Automatic batch size on the CPU, in crops per network call. Measured with
# `benchmarks/bench_model.py --batch-sweep` (2 threads, fp32, idle machine), crops/s at batch
# 1 / 4 / 8 / 16 / 32: bundled B0-size model at 160 px 99 / 234 / 343 / 457 / 519, EfficientNetV2-S
# at 256 px 10.1 / 14.5 / 16.9 / 15.6 / 13.7 (a second run: 14.9 at both 8 and 16). 16 is within
# noise of the best for S-256 and 1.3x batch 8 for the small model, whose per-call overhead
# dominates; 32 loses 20 % on S-256 and holds twice the frames per batch.
CPU_BATCH_SIZE = 16
# Upper bound of the automatic CUDA batch: the official wrapper batches 64 crops; beyond ~128 a GPU
# gains little speed, while the worker holds more frames per batch and waits longer for the poses
# that propose the next boxes.
MAX_AUTO_BATCH_SIZE = 128
# Share of the free device memory an automatic batch may fill: the rest absorbs fragmentation and
# cuDNN workspaces that differ between batch sizes.
AUTO_MEMORY_FRACTION = 0.8
PROBE_CROPS = (4, 8)  # batch sizes of the two probe calls that measure per-crop and fixed memory
# Threads rendering a batch of crops with OpenCV (the network waits for them). Each holds
# full-frame decoding buffers (0.5 GB for an 8K frame), and more than two gain little on a batch.
RENDER_THREADS = min(2, os.cpu_count() or 1)


class PoseInputError(InferenceError):
    """Frames, boxes, intrinsics or model outputs of the wrong shape or type."""


class DeviceMemoryError(InferenceError):
    """Not even a single crop fits in the device's memory."""


@dataclass(frozen=True)
class EstimatorConfig:
    """How crops are made and averaged."""

    num_aug: int = 5  # crops per person (test-time augmentation); the official default is 5
    max_rotation_deg: float = 25.0  # augmentation rotations span +-this many degrees (official)
    # crops per network call, rounded down to whole people (at least one): all augmentations of
    # a person go through the network together, as the official wrapper batches (64 there). The
    # official network normalises its root least squares over the whole batch, so its outputs
    # depend slightly on which crops share a call; this batching gives the same crops per call.
    # None: automatic (see the module docstring).
    batch_size: int | None = None
    box_padding: float = 1.0  # box size multiplier; 1 = the box fills the crop (official)
    pyramid_levels: int = DEFAULT_PYRAMID_LEVELS  # 2x2 box-filter levels for zoomed-out crops
    up: tuple[float, float, float] = DEFAULT_UP  # camera-space up that keeps crops upright
    amp_dtype: str | None = None  # "float16" / "bfloat16": autocast the network on CUDA only
    warp: str = (
        "auto"  # "opencv" (CPU), "torch" (grid_sample on the device) or "auto": torch on CUDA
    )

    def __post_init__(self) -> None:
        if self.num_aug < 1:
            raise PoseInputError(f"num_aug must be at least 1, got {self.num_aug}")
        if self.batch_size is not None and self.batch_size < 1:
            raise PoseInputError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.warp not in ("auto", "opencv", "torch"):
            raise PoseInputError(f"warp must be 'auto', 'opencv' or 'torch', got {self.warp!r}")
        if self.amp_dtype not in (None, "float16", "bfloat16"):
            raise PoseInputError(
                f"amp_dtype must be None, 'float16' or 'bfloat16', got {self.amp_dtype!r}"
            )


def batch_size_for_memory(
    free_bytes: float,
    per_crop_bytes: float,
    fixed_bytes: float,
    granule: int = 1,
    fraction: float = AUTO_MEMORY_FRACTION,
    maximum: int = MAX_AUTO_BATCH_SIZE,
) -> int:
    """Crops per network call whose memory fits: ``(fraction * free - fixed) / per_crop``.

    ``free_bytes`` device memory available to the batch; ``per_crop_bytes`` the memory one more
    crop in the batch costs; ``fixed_bytes`` the cost of a call that does not grow with the batch
    (workspaces, the frame being cropped). The result is at most ``maximum``, rounded down to
    whole ``granule`` s (the augmentations of one person) when at least one fits, else whatever
    fits, and never below 1 (a single crop that does not fit is found out by running it).
    """
    if per_crop_bytes <= 0:
        raise ValueError(f"per_crop_bytes must be positive, got {per_crop_bytes}")
    budget = fraction * free_bytes - fixed_bytes
    fit = min(int(budget // per_crop_bytes) if budget > 0 else 0, maximum)
    if fit >= granule:
        return fit // granule * granule
    return max(1, fit)


def smaller_batch(size: int, granule: int = 1) -> int:
    """Half of ``size`` rounded down to whole ``granule`` s while one fits, else half (at least 1)."""
    half = size // 2
    return half // granule * granule if half >= granule else max(1, half)


def run_in_batches(
    forward: Callable[[int, int], T], n: int, batch_size: int, granule: int = 1
) -> tuple[list[T], int]:
    """``forward(start, stop)`` over ``[0, n)`` in consecutive chunks of ``batch_size`` items.

    A chunk that raises ``torch.cuda.OutOfMemoryError`` is retried from its start with
    ``smaller_batch(batch_size, granule)``, and the following chunks keep the smaller size, so
    every item is run exactly once by a call that returns. Returns the outputs in order and the
    final batch size. A single item that does not fit raises :class:`DeviceMemoryError`.
    """
    outputs: list[T] = []
    start = 0
    while start < n:
        stop = min(start + batch_size, n)
        failed = False
        try:
            outputs.append(forward(start, stop))
        except torch.cuda.OutOfMemoryError as error:
            if stop - start <= 1:
                raise DeviceMemoryError(
                    "a single crop does not fit in the GPU's memory: close other programs using "
                    "the GPU, use a smaller model, or run on the CPU (--device cpu)"
                ) from error
            failed = True
        if not failed:
            start = stop
            continue
        # outside the except block: the failed call's tensors are released with its traceback
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        batch_size = smaller_batch(min(batch_size, stop - start), granule)
        logger.warning("out of GPU memory: batch size lowered to %d crops", batch_size)
    return outputs, batch_size


@dataclass(frozen=True)
class FramePoses:
    """Poses of the ``n`` people of one frame, in the order of its boxes.

    ``poses3d`` (n, J, 3) float32 mm, original camera frame; ``poses2d`` (n, J, 2) float32 original
    pixels; ``uncertainty`` (n, J) float32 mm, the RMS distance of the augmentations' 3D joints from
    their mean (NaN with a single crop, where there is no spread to measure).
    """

    poses3d: np.ndarray
    poses2d: np.ndarray
    uncertainty: np.ndarray


class PoseEstimator:
    """Runs a crop network on person boxes of whole frames (see the module docstring)."""

    def __init__(
        self,
        model: CropModel,
        joint_names: Sequence[str],
        device: str | torch.device = "cpu",
        config: EstimatorConfig | None = None,
        crop_side: int | None = None,
        joint_transform_matrix: np.ndarray | None = None,
        skeleton_indices: Sequence[int] | None = None,
        output_joint_names: Sequence[str] | None = None,
    ):
        """
        ``model(crops (B, 3, S, S) float RGB [0, 1], intrinsics (B, 3, 3))`` returns poses3d
        (B, J, 3) mm in the crop camera, either alone, first in a tuple, or under ``"poses3d"`` in
        a dict. ``joint_names`` (J) name its joints (their left/right pairs drive the flip swap).
        ``crop_side`` defaults to ``model.input_resolution`` or ``model.config.proc_side``. ``joint_transform_matrix`` (J, N)
        maps the model's joints to N output joints (``out[n] = sum_j p[j] * T[j, n]``), then
        ``skeleton_indices`` pick a subset of those; both default to identity.
        ``output_joint_names`` names the final joints (default: ``joint_names`` when there is no
        transform).
        """
        self.model = model
        self.joint_names = tuple(joint_names)
        self.device = torch.device(device)
        self.config = config or EstimatorConfig()
        side = crop_side
        if side is None:
            side = getattr(model, "input_resolution", None)
        if side is None:
            side = getattr(getattr(model, "config", None), "proc_side", None)
        if side is None:
            raise PoseInputError(
                "the crop size is unknown: pass crop_side= or give the model an input_resolution "
                "(or a config.proc_side)"
            )
        self.crop_side = int(side)
        n_joints = len(self.joint_names)
        self.mirror = mirror_permutation(self.joint_names)
        self.augmentations = tta_augmentations(self.config.num_aug, self.config.max_rotation_deg)
        if any(a.flip for a in self.augmentations) and np.all(self.mirror == np.arange(n_joints)):
            raise PoseInputError(
                "test-time augmentation flips crops, but no joint name pairs left with right "
                f"({', '.join(self.joint_names[:4])}, ...); name sides as left/right, l/r or "
                ".L/.R, or use one augmentation"
            )
        # decoded frames for the OpenCV warp, reused: one set per rendering thread
        self._level_buffers = [LevelBuffers() for _ in range(RENDER_THREADS)]
        self._render_pool = ThreadPoolExecutor(max(1, RENDER_THREADS - 1), "crops")
        # crops per network call; None until tuned (automatic batch size)
        self._crops_per_batch: int | None = None
        if self.config.batch_size is not None:
            self._crops_per_batch = self._whole_people(self.config.batch_size)
        self.joint_transform_matrix = None
        if joint_transform_matrix is not None:
            matrix = np.asarray(joint_transform_matrix, np.float64)
            if matrix.ndim != 2 or matrix.shape[0] != n_joints:
                raise PoseInputError(
                    f"joint_transform_matrix must be ({n_joints}, N) for the model's {n_joints} "
                    f"joints, got {matrix.shape}"
                )
            self.joint_transform_matrix = matrix
        n_out = n_joints if self.joint_transform_matrix is None else matrix.shape[1]
        self.skeleton_indices = None
        if skeleton_indices is not None:
            indices = np.asarray(skeleton_indices, np.int64)
            if indices.ndim != 1 or np.any(indices < 0) or np.any(indices >= n_out):
                raise PoseInputError(f"skeleton_indices must index the {n_out} joints")
            self.skeleton_indices = indices
        if output_joint_names is None and self.joint_transform_matrix is None:
            names = np.array(self.joint_names)
            output_joint_names = (
                names if self.skeleton_indices is None else names[self.skeleton_indices]
            )
        self.output_joint_names = (
            None if output_joint_names is None else tuple(str(n) for n in output_joint_names)
        )

    @property
    def uses_torch_warp(self) -> bool:
        """Whether crops are rendered with torch on the device rather than OpenCV on the CPU."""
        if self.config.warp == "auto":
            return self.device.type == "cuda"
        return self.config.warp == "torch"

    @property
    def crops_per_batch(self) -> int:
        """Crops per network call: ``batch_size`` rounded down to whole people (at least one), or
        the automatic size (tuned on first use); lowered for good after running out of memory."""
        if self._crops_per_batch is None:
            return self.tune_batch_size()
        return self._crops_per_batch

    def _whole_people(self, crops: int) -> int:
        n_aug = len(self.augmentations)
        return max(1, crops // n_aug) * n_aug

    def tune_batch_size(self, image_size: tuple[int, int] = (1920, 1080)) -> int:
        """Settle the crops per network call and return it (see the module docstring).

        A fixed ``batch_size`` or an already tuned size is kept. Otherwise, on CUDA, two probe
        batches of crops from a blank ``image_size`` (width, height) frame measure the memory of
        a call; on other devices it is ``CPU_BATCH_SIZE`` in whole people.
        """
        if self._crops_per_batch is not None:
            return self._crops_per_batch
        if self.device.type != "cuda":
            self._crops_per_batch = self._whole_people(CPU_BATCH_SIZE)
            logger.info("batch size %d crops per network call (CPU)", self._crops_per_batch)
            return self._crops_per_batch
        per_crop, fixed = self._measure_memory(image_size)
        free, _ = torch.cuda.mem_get_info(self.device)
        # memory the caching allocator holds but no tensor uses is free for the batch, too
        cached = torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
        self._crops_per_batch = batch_size_for_memory(
            free + cached, per_crop, fixed, granule=len(self.augmentations)
        )
        mib = 1 << 20
        logger.info(
            "batch size %d crops per network call (automatic: %.0f MiB free, %.1f MiB per crop, "
            "%.0f MiB per call, %s frames)",
            self._crops_per_batch, (free + cached) / mib, per_crop / mib, fixed / mib,
            "x".join(map(str, image_size)),
        )  # fmt: skip
        return self._crops_per_batch

    def _measure_memory(self, image_size: tuple[int, int]) -> tuple[float, float]:
        """(bytes per crop, fixed bytes per call) of the device memory a network call needs,
        measured by running two probe batches (``PROBE_CROPS``) of crops of a blank frame."""
        width, height = image_size
        frame = np.zeros((height, width, 3), np.uint8)
        focal = float(max(width, height))
        intrinsics = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]])
        box = np.array([[width / 2 - height / 4, height / 4, height / 2, height / 2]])
        peaks = []
        for n in PROBE_CROPS:
            augmentations = [self.augmentations[i % len(self.augmentations)] for i in range(n)]
            geometry = crop_geometry(
                np.repeat(box, n, axis=0), intrinsics, self.crop_side, augmentations,
                up=self.config.up, box_padding=self.config.box_padding,
            )  # fmt: skip
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
            self._predict([frame], np.zeros(n, np.int64), geometry, batch_size=n)
            torch.cuda.synchronize(self.device)
            peaks.append(torch.cuda.max_memory_allocated(self.device) - base)
        (n0, n1), (p0, p1) = PROBE_CROPS, peaks
        per_crop = (p1 - p0) / (n1 - n0)
        if per_crop <= 0:  # allocator rounding hid the growth: charge the whole call per crop
            per_crop = p1 / n1
        return float(per_crop), float(max(0.0, p0 - n0 * per_crop))

    # -- public ---------------------------------------------------------------------------------

    def estimate(
        self,
        frames: Sequence[np.ndarray],
        boxes: Sequence[np.ndarray],
        intrinsics: np.ndarray,
    ) -> list[FramePoses]:
        """Poses of every boxed person in a batch of frames.

        ``frames`` F arrays (H, W, 3) uint8 RGB; ``boxes`` F arrays (n_i, 4) x, y, width, height in
        pixels (extra columns such as a score are ignored); ``intrinsics`` (3, 3) for all frames or
        (F, 3, 3). Returns one ``FramePoses`` per frame.
        """
        frames, boxes, intrinsics = self._validate(frames, boxes, intrinsics)
        counts = np.array([len(b) for b in boxes])
        n_boxes, n_aug = int(counts.sum()), len(self.augmentations)
        n_out = self._n_output_joints()
        if n_boxes == 0:
            return [self._empty(n_out) for _ in frames]

        if self._crops_per_batch is None:  # automatic: tune for the largest frame of the call
            largest = max(frames, key=lambda frame: frame.shape[0] * frame.shape[1])
            self.tune_batch_size((largest.shape[1], largest.shape[0]))
        frame_of_box = np.repeat(np.arange(len(frames)), counts)
        box_intrinsics = intrinsics[frame_of_box]  # (n, 3, 3)
        # crops are ordered box-major: the n_aug crops of a box are adjacent
        geometry = crop_geometry(
            np.repeat(np.concatenate(boxes), n_aug, axis=0),
            np.repeat(box_intrinsics, n_aug, axis=0),
            self.crop_side,
            list(self.augmentations) * n_boxes,
            up=self.config.up,
            box_padding=self.config.box_padding,
        )
        crop_poses = self._predict(frames, np.repeat(frame_of_box, n_aug), geometry)
        poses = geometry.crop_to_original_3d(unflip_joints(crop_poses, geometry.flip, self.mirror))
        poses = poses.reshape(n_boxes, n_aug, len(self.joint_names), 3)
        if self.joint_transform_matrix is not None:
            poses = np.einsum("bajc,jn->banc", poses, self.joint_transform_matrix)
        if self.skeleton_indices is not None:
            poses = poses[:, :, self.skeleton_indices]

        projected = np.einsum("bij,bakj->baki", box_intrinsics, poses)
        poses2d = (projected[..., :2] / projected[..., 2:3]).mean(axis=1)
        poses3d = poses.mean(axis=1)
        if n_aug > 1:
            spread = np.sqrt(np.mean(np.sum((poses - poses3d[:, None]) ** 2, axis=-1), axis=1))
        else:
            spread = np.full(poses3d.shape[:2], np.nan)

        splits = np.cumsum(counts)[:-1]
        return [
            FramePoses(p3.astype(np.float32), p2.astype(np.float32), u.astype(np.float32))
            for p3, p2, u in zip(
                np.split(poses3d, splits),
                np.split(poses2d, splits),
                np.split(spread, splits),
                strict=True,
            )
        ]

    # -- internals ------------------------------------------------------------------------------

    def _n_output_joints(self) -> int:
        if self.skeleton_indices is not None:
            return len(self.skeleton_indices)
        if self.joint_transform_matrix is not None:
            return self.joint_transform_matrix.shape[1]
        return len(self.joint_names)

    @staticmethod
    def _empty(n_joints: int) -> FramePoses:
        return FramePoses(
            np.zeros((0, n_joints, 3), np.float32),
            np.zeros((0, n_joints, 2), np.float32),
            np.zeros((0, n_joints), np.float32),
        )

    @staticmethod
    def _validate(
        frames: Sequence[np.ndarray], boxes: Sequence[np.ndarray], intrinsics: np.ndarray
    ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
        frames = list(frames)
        boxes = [np.asarray(b, np.float64) for b in boxes]
        boxes = [b.reshape(0, 4) if b.size == 0 else b for b in boxes]
        if len(frames) != len(boxes):
            raise PoseInputError(f"got {len(frames)} frames but {len(boxes)} box arrays")
        for i, frame in enumerate(frames):
            if not (
                isinstance(frame, np.ndarray)
                and frame.dtype == np.uint8
                and frame.ndim == 3
                and frame.shape[2] == 3
            ):
                raise PoseInputError(
                    f"frame {i} must be an (H, W, 3) uint8 RGB array, got "
                    f"{getattr(frame, 'dtype', type(frame))} {np.shape(frame)}"
                )
        for i, frame_boxes in enumerate(boxes):
            if frame_boxes.ndim != 2 or frame_boxes.shape[1] < 4:
                raise PoseInputError(
                    f"boxes of frame {i} must be (n, 4) x, y, width, height; got {frame_boxes.shape}"
                )
        boxes = [b[:, :4] for b in boxes]
        intrinsics = np.asarray(intrinsics, np.float64)
        if intrinsics.shape == (3, 3):
            intrinsics = np.broadcast_to(intrinsics, (len(frames), 3, 3))
        if intrinsics.shape != (len(frames), 3, 3):
            raise PoseInputError(
                f"intrinsics must be (3, 3) or ({len(frames)}, 3, 3), got {intrinsics.shape}"
            )
        return frames, boxes, intrinsics

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type != "cuda" or self.config.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=getattr(torch, self.config.amp_dtype))

    def _predict(
        self,
        frames: list[np.ndarray],
        frame_of_crop: np.ndarray,
        geometry: CropGeometry,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Run the network on all crops, ``batch_size`` (default ``crops_per_batch``) per call:
        (N, J, 3) float64 mm in each crop camera."""
        n_crops = len(geometry)
        batch = batch_size or self.crops_per_batch
        render = (
            _TorchRenderer(self, frames, frame_of_crop, geometry)
            if self.uses_torch_warp
            else _OpenCVRenderer(self, frames, frame_of_crop, geometry, batch)
        )
        intrinsics = torch.as_tensor(geometry.intrinsics, dtype=torch.float32)

        def forward(start: int, stop: int) -> torch.Tensor:
            crops = render(start, stop)  # (B, 3, S, S) gamma-encoded on the device
            with self._autocast():
                out = self.model(crops, intrinsics[start:stop].to(self.device, non_blocking=True))
            return self._poses3d_of(out, stop - start).float()

        with torch.inference_mode():
            outputs, final = run_in_batches(forward, n_crops, batch, len(self.augmentations))
        if batch_size is None and final < batch:
            self._crops_per_batch = final  # later calls start at the size that fitted
        result = torch.cat(outputs).cpu().numpy().astype(np.float64)
        logger.debug("ran %d crops in %d batches", n_crops, len(outputs))
        return result

    def _poses3d_of(self, output: object, n: int) -> torch.Tensor:
        if isinstance(output, dict):
            poses3d = output.get("poses3d")
        elif isinstance(output, tuple | list):
            poses3d = output[0] if output else None
        else:
            poses3d = output
        expected = (n, len(self.joint_names), 3)
        if not isinstance(poses3d, torch.Tensor) or tuple(poses3d.shape) != expected:
            raise PoseInputError(
                f"the crop model must return poses3d of shape {expected} (alone, first in a "
                f"tuple, or under 'poses3d'); got {type(poses3d).__name__} "
                f"{tuple(getattr(poses3d, 'shape', ()))}"
            )
        return poses3d


class _OpenCVRenderer:
    """Renders batches of gamma-encoded crops with OpenCV on the CPU into (pinned, for CUDA) host
    buffers that are copied without blocking; two buffers alternate on CUDA, so rendering the next
    batch overlaps the network on the previous one. The frames of a batch are split among
    ``RENDER_THREADS`` threads (OpenCV and numpy release the GIL): the network waits for them."""

    def __init__(
        self,
        estimator: PoseEstimator,
        frames: list[np.ndarray],
        frame_of_crop: np.ndarray,
        geometry: CropGeometry,
        batch_size: int,
    ):
        self.device, self.side = estimator.device, estimator.crop_side
        self.levels = estimator.config.pyramid_levels
        self.frames, self.frame_of_crop, self.geometry = frames, frame_of_crop, geometry
        self.level_buffers = estimator._level_buffers
        self.pool = estimator._render_pool
        self.is_cuda = self.device.type == "cuda"
        n = min(batch_size, len(geometry))
        # (n, S, S, 3): OpenCV writes each crop in place; permuted, it is a channels-last batch
        self.buffers = [
            torch.empty((n, self.side, self.side, 3), dtype=torch.float32, pin_memory=self.is_cuda)
            for _ in range(2 if self.is_cuda else 1)
        ]
        self.copied: list[torch.cuda.Event | None] = [None] * len(self.buffers)
        self.calls = 0

    def __call__(self, start: int, stop: int) -> torch.Tensor:
        slot = self.calls % len(self.buffers)
        self.calls += 1
        if self.copied[slot] is not None:
            self.copied[slot].synchronize()  # the previous copy out of this buffer is done
        host = self.buffers[slot][: stop - start]
        out = host.numpy()
        parts = _split_frames(self.frame_of_crop[start:stop], len(self.level_buffers))
        pending = [
            self.pool.submit(self._render, start + lo, start + hi, buffers, out[lo:hi])
            for (lo, hi), buffers in zip(parts[1:], self.level_buffers[1:], strict=False)
        ]
        lo, hi = parts[0]
        try:
            self._render(start + lo, start + hi, self.level_buffers[0], out[lo:hi])
        finally:  # the helpers' buffers are free again only once they are done, even on errors
            futures.wait(pending)
        for job in pending:
            job.result()
        crops = host.to(self.device, non_blocking=True)
        if self.is_cuda:  # the copy runs on the destination device's stream
            self.copied[slot] = torch.cuda.Event()
            self.copied[slot].record(torch.cuda.current_stream(self.device))
        return crops.permute(0, 3, 1, 2)  # (B, 3, S, S) in channels-last memory layout

    def _render(self, start: int, stop: int, buffers: LevelBuffers, out: np.ndarray) -> None:
        """Render and encode crops ``start .. stop - 1`` (whole frames) into ``out``, decoding
        their frames with ``buffers``."""
        image_index, image = -1, None
        for i in range(start, stop):
            if self.frame_of_crop[i] != image_index:
                image = None  # one decoded frame at a time
                image_index = int(self.frame_of_crop[i])
                image = self._decode(image_index, buffers)
            crop = warp_crop(image, self.geometry.homography[i], float(self.geometry.scale[i]),
                             self.side, out=out[i - start])  # fmt: skip
            encode_crop(crop, float(self.geometry.gamma[i]), out=crop)

    def _decode(self, frame_index: int, buffers: LevelBuffers) -> LinearImage:
        """The frame in linear light where its crops (all of them, in this and later batches)
        read it."""
        frame = self.frames[frame_index]
        mine = self.frame_of_crop == frame_index
        region = source_region(
            self.geometry.homography[mine], self.geometry.scale[mine], self.side,
            (frame.shape[1], frame.shape[0]), self.levels,
        )  # fmt: skip
        return LinearImage(frame, self.levels, region, buffers)


def _split_frames(frame_of_crop: np.ndarray, parts: int) -> list[tuple[int, int]]:
    """Up to ``parts`` consecutive ``(start, stop)`` ranges of ``frame_of_crop`` (sorted), about
    equal in crops, that never split a frame (each frame is decoded once)."""
    n = len(frame_of_crop)
    frame_starts = np.flatnonzero(np.diff(frame_of_crop)) + 1  # where a new frame begins
    cuts = np.unique(
        [frame_starts[np.argmin(np.abs(frame_starts - n * k / parts))] for k in range(1, parts)]
        if len(frame_starts) else []
    ).tolist()  # fmt: skip
    bounds = [0, *cuts, n]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


class _TorchRenderer:
    """Renders batches of gamma-encoded crops with ``grid_sample`` on the estimator's device; each
    frame is uploaded once as 8-bit pixels and decoded there."""

    def __init__(
        self,
        estimator: PoseEstimator,
        frames: list[np.ndarray],
        frame_of_crop: np.ndarray,
        geometry: CropGeometry,
    ):
        self.device, self.side = estimator.device, estimator.crop_side
        self.levels = estimator.config.pyramid_levels
        self.frames, self.frame_of_crop, self.geometry = frames, frame_of_crop, geometry
        self.exponents = torch.as_tensor(geometry.gamma / DECODING_GAMMA, dtype=torch.float32)
        self.image: TorchLinearImage | None = None
        self.image_index = -1

    def __call__(self, start: int, stop: int) -> torch.Tensor:
        crops = torch.empty((stop - start, 3, self.side, self.side), device=self.device)
        # crops are ordered by frame: render each frame's run of crops in one call
        run_starts = [start] + [
            i for i in range(start + 1, stop) if self.frame_of_crop[i] != self.frame_of_crop[i - 1]
        ]
        for run_start, run_stop in zip(run_starts, [*run_starts[1:], stop], strict=True):
            frame_index = int(self.frame_of_crop[run_start])
            if frame_index != self.image_index:
                # one frame on the device at a time; the index changes only once it is there (a
                # retry after running out of memory must not find a stale image)
                self.image = None
                self.image = TorchLinearImage(self.frames[frame_index], self.device, self.levels)
                self.image_index = frame_index
            crops[run_start - start : run_stop - start] = warp_crops_torch(
                self.image,
                self.geometry.homography[run_start:run_stop],
                self.geometry.scale[run_start:run_stop],
                self.side,
            )
        exponents = self.exponents[start:stop].to(self.device, non_blocking=True)
        return crops.pow_(exponents[:, None, None, None])
