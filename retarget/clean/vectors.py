"""Lengths and finiteness of stacked 3-vectors, the two checks every cleaning step makes."""

import numpy as np


def norm3(vectors: np.ndarray) -> np.ndarray:
    """Length (...,) of 3-vectors (..., 3): the numbers ``np.linalg.norm(v, axis=-1)`` gives,
    several times faster (numpy reduces over a 3-long axis slowly)."""
    x, y, z = vectors[..., 0], vectors[..., 1], vectors[..., 2]
    return np.sqrt(x * x + y * y + z * z)


def finite3(values: np.ndarray) -> np.ndarray:
    """True (...,) where all three coordinates of ``values`` (..., 3) are finite."""
    return np.isfinite(values[..., 0]) & np.isfinite(values[..., 1]) & np.isfinite(values[..., 2])
