"""The target armature's object transform (docs/design.md §6, "Object transform").

The source joints come in the world frame (metres, Z up) and a rig's rest pose in its own
armature space. An FBX import typically leaves the armature object turned 90° about X with a scale
of 0.01 (its bones in centimetres, Y up), and a character may hang from a parent object. Rather
than asking the user to apply that transform (which edits their rig), the solve runs in the world
frame: the rest pose is carried there through the object's ``matrix_world``
(:func:`rig_in_world`), every rotation and joint is solved as for an unrotated rig, and only the
root's pose location goes back into armature units (:func:`location_to_armature`). Local bone
rotations need no conversion: with the world rest rotation ``R r_b`` and world deltas
``R Δ Rᵀ``, ``q_local = (R r_b)ᵀ (R Δ_p Rᵀ)ᵀ (R Δ_b Rᵀ) (R r_b) = r_bᵀ Δ_pᵀ Δ_b r_b``.

A transform is usable when it is a rotation times one positive scale plus a translation.
A zero scale (a flattened rig), a negative one (a mirrored rig: its left would take the person's
right) and a non-uniform or sheared one (bones would bend as they turn) are refused, each with
a message that says why. Pure numpy.
"""

from dataclasses import dataclass

import numpy as np

from .. import RetargetError
from .target import TargetRig

# Relative tolerance on "one scale for all axes": Blender stores floats, and an FBX import's
# 0.01 arrives as 0.009999999776.
_UNIFORM_TOLERANCE = 1e-4
_ZERO_SCALE = 1e-8


class TransformError(RetargetError):
    """An object transform the solve cannot use; the message names the object and the fix."""


@dataclass(frozen=True)
class ObjectTransform:
    """``matrix_world = [scale * rotation | translation]``: ``rotation`` ``(3, 3)`` proper,
    ``scale`` > 0, ``translation`` ``(3,)`` in world metres."""

    rotation: np.ndarray
    scale: float
    translation: np.ndarray

    @property
    def is_identity(self) -> bool:
        return (
            np.allclose(self.rotation, np.eye(3), atol=1e-9)
            and abs(self.scale - 1.0) < 1e-9
            and not np.any(self.translation)
        )

    def point(self, points: np.ndarray) -> np.ndarray:
        """Armature-space points ``(..., 3)`` -> world."""
        return self.scale * np.asarray(points, float) @ self.rotation.T + self.translation


def translation(origin) -> ObjectTransform:
    """The transform of an unrotated, unscaled object at ``origin`` ``(3,)``."""
    return ObjectTransform(np.eye(3), 1.0, np.asarray(origin, float).reshape(3))


def from_matrix(matrix, name: str = "the armature") -> ObjectTransform:
    """Split a ``(4, 4)`` world matrix into rotation, uniform scale and translation, or raise
    :class:`TransformError` saying why it cannot be used (``name`` names the object)."""
    matrix = np.asarray(matrix, float)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise TransformError(f"{name!r} has no usable world matrix ({matrix.shape}, not finite)")
    linear = matrix[:3, :3]
    scales = np.linalg.norm(linear, axis=0)  # the length of each armature axis in the world
    where = (
        "its object transform (its own scale and that of any parent it hangs from, "
        "Object Properties > Transform)"
    )
    if scales.min() < _ZERO_SCALE:
        raise TransformError(
            f"{name!r} has a zero scale in {where}: scale {np.round(scales, 6).tolist()} "
            "flattens the rig, so no pose can be read from it or keyed onto it; give it a "
            "non-zero scale"
        )
    if np.linalg.det(linear) < 0:
        raise TransformError(
            f"{name!r} is mirrored by a negative scale in {where}: its left side would take the "
            "person's right; make the scale positive"
        )
    scale = float(np.exp(np.mean(np.log(scales))))
    gram = linear.T @ linear / scale**2
    if np.abs(gram - np.eye(3)).max() > 2 * _UNIFORM_TOLERANCE:
        detail = (
            f"scale {np.round(scales, 6).tolist()}"
            if np.abs(scales / scale - 1).max() > _UNIFORM_TOLERANCE
            else "a shear from a parent scaled unevenly while rotated"
        )
        raise TransformError(
            f"{name!r} has a non-uniform scale in {where} ({detail}): bones would stretch as "
            "they turn, so rotations cannot be matched; give it the same scale on X, Y and Z "
            "(e.g. S X/Y/Z all 0.01 for an FBX rig)"
        )
    rotation = linear / scale
    # Orthonormalise the float32-rounded rotation (polar decomposition).
    u, _, vt = np.linalg.svd(rotation)
    return ObjectTransform(u @ vt, scale, matrix[:3, 3].copy())


def rig_in_world(rig: TargetRig, transform: ObjectTransform) -> TargetRig:
    """``rig``'s rest pose carried into the world frame: heads and tails through the transform
    (metres), rest rotations ``R r_b`` (the scale leaves rotations alone)."""
    return TargetRig(
        rig.names,
        rig.parents,
        transform.point(rig.heads),
        transform.point(rig.tails),
        np.einsum("ij,bjk->bik", transform.rotation, rig.rotations),
        rig.follow,
        rig.follow_location,
        rig.local_location,
        rig.connected,
    )


def location_to_armature(
    vectors: np.ndarray, transform: ObjectTransform, rest_rotation: np.ndarray, local: bool
) -> np.ndarray:
    """A pose-bone location ``(..., 3)`` in armature units from a world displacement ``vectors``
    of the bone's head (metres): in the bone's own rest axes (``rest_rotation``, armature space)
    when ``local`` (Blender's *Local Location*), else along the armature's axes."""
    along_armature = np.asarray(vectors, float) @ transform.rotation / transform.scale
    return along_armature @ rest_rotation if local else along_armature
