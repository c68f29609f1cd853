"""Deterministic weights and inputs for parity tests and benchmarks (no trained weights needed).

:func:`deterministic_tensor` fills a state-dict entry from nothing but its key and shape, so two
independent implementations with the same key layout (ours and the official MeTRAbs port) get
bit-identical weights. The rule keeps a deep random network well-conditioned: convolutions are
scaled by ``1/sqrt(fan_in)``, BatchNorm statistics are mild, so heatmaps stay neither flat nor
one-hot and the decoded poses are sensitive to every layer.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

# std of conv weights = gain / sqrt(fan_in). 1.3 keeps EfficientNetV2-S and -L near the edge of
# chaos: activations stay O(1) through all stages yet the outputs still depend on the input
# (1.0 makes the deep stages ignore the input, 1.4 makes L explode).
CONV_GAIN = 1.3
HEAD_GAIN = 25.0  # the heatmap head: logits with a few units of spread, peaked maps


def key_seed(key: str) -> int:
    """64-bit seed derived from a state-dict key (SHA-256, stable across runs and machines)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")


def deterministic_tensor(key: str, shape: Sequence[int]) -> np.ndarray:
    """Value of the state-dict entry ``key`` of the given shape: float32 (int64 for counters)."""
    shape = tuple(int(s) for s in shape)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return np.zeros(shape, np.int64)
    rng = np.random.default_rng(key_seed(key))
    if leaf == "running_mean":
        values = 0.1 * rng.standard_normal(shape)
    elif leaf == "running_var":
        values = rng.uniform(0.5, 1.5, shape)
    elif leaf == "bias":
        values = 0.1 * rng.standard_normal(shape)
    elif leaf == "weight" and len(shape) == 1:  # normalisation scale
        values = rng.uniform(0.5, 1.0, shape)
    elif leaf == "weight":
        fan_in = math.prod(shape[1:])
        gain = HEAD_GAIN if "heatmap_heads" in key else CONV_GAIN
        values = rng.standard_normal(shape) * (gain / math.sqrt(fan_in))
    else:
        values = 0.1 * rng.standard_normal(shape)
    return values.astype(np.float32)


def deterministic_state_dict(
    reference: Mapping[str, torch.Tensor] | torch.nn.Module,
) -> dict[str, torch.Tensor]:
    """A full state dict with the keys, shapes and dtypes of ``reference``, filled by the rule."""
    if isinstance(reference, torch.nn.Module):
        reference = reference.state_dict()
    out = {}
    for key, tensor in reference.items():
        value = torch.from_numpy(deterministic_tensor(key, tensor.shape))
        out[key] = value.to(tensor.dtype)
    return out


def make_test_crops(n: int, side: int, seed: int = 0) -> np.ndarray:
    """``(n, 3, side, side)`` float32 RGB crops in ``[0, 1]``: smooth blobs plus mild noise.

    Computed from ``seed`` alone with float64 arithmetic, identical in any numpy >= 1.17.
    """
    rng = np.random.default_rng(seed)
    grid = (np.arange(side) + 0.5) / side
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    crops = np.empty((n, 3, side, side), np.float64)
    for i in range(n):
        image = np.zeros((3, side, side))
        for _ in range(6):
            centre = rng.uniform(0.1, 0.9, 2)
            radius = rng.uniform(0.05, 0.3)
            colour = rng.uniform(0.0, 1.0, 3)
            blob = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * radius**2))
            image += colour[:, None, None] * blob
        image += 0.05 * rng.standard_normal((3, side, side))
        crops[i] = image
    return np.clip(crops / max(1.0, crops.max()), 0.0, 1.0).astype(np.float32)


def make_test_intrinsics(n: int, side: int) -> np.ndarray:
    """``(n, 3, 3)`` float32 crop cameras: focal lengths 0.8-2.0 x side, principal point near centre."""
    out = np.zeros((n, 3, 3), np.float32)
    for i in range(n):
        t = i / max(1, n - 1)
        focal = side * (0.8 + 1.2 * t)
        out[i] = [
            [focal, 0.0, side / 2 + 3.0 * (t - 0.5)],
            [0.0, focal * (1.0 + 0.02 * t), side / 2 - 2.0 * (t - 0.5)],
            [0.0, 0.0, 1.0],
        ]
    return out


def feature_probes(features: np.ndarray, name: str, n_probes: int = 8) -> np.ndarray:
    """``(B, n_probes)`` float64 random projections of ``(B, ...)`` features (a compact fingerprint).

    The projection matrix depends only on ``name`` and the feature size, so two models' stage
    outputs can be compared without storing them.
    """
    flat = np.asarray(features, np.float64).reshape(len(features), -1)
    rng = np.random.default_rng(key_seed(f"probe.{name}"))
    projection = rng.standard_normal((flat.shape[1], n_probes)) / math.sqrt(flat.shape[1])
    return flat @ projection
