"""Foot contact modes and grounding: the feet never below the floor (docs/design.md §5).

The modes, as animators know them from mocap tools:

- ``auto``: the feet are held during the contacts the cleaning found, and kept above the floor;
- ``always``: the feet are held for the whole take (one planted spot each: standing, seated or
  upper-body takes), and kept above the floor;
- ``never``: neither (the motion as solved);
- ``grounded``: no holding, only never below the floor.

Grounding needs the floor the cleaning fitted (:func:`has_floor`); a file that was not cleaned is
not grounded.

The *floor* of a foot joint is its height on a flat foot: for a rig standing on the clip's own
floor (the generated rig) the cleaning's ``contact_clearance``; otherwise (a target, re-grounded
by the 5th percentile of its lowest foot joint, or a raw clip) the 5th percentile height of that
joint of both feet in the take, where the motion stands. (A target's rest pose is not used: its
foot may be pitched otherwise than the motion's flat foot, and its ankle would then float or
sink.) Where an ankle or toe would sink below its floor, the foot is lifted (the lift eased in
time, never less than needed) and the leg re-solved by the two-bone IK of the foot lock, so the
knee bends and the foot keeps its orientation. Pure numpy.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from .. import RetargetError
from ..frames import FOOT_JOINTS
from ..ik import two_bone_ik
from ..rotations import rotation_between
from .footlock import FootLockParams, smooth_drop
from .rigmaps import SIDES

if TYPE_CHECKING:
    from .target import Plan

CONTACT_MODES = ("auto", "always", "never", "grounded")
# Without a measured clearance a joint's floor height is this percentile of its height in the
# take (both feet pooled): the percentile at which the level camera of a raw clip
# (retarget.frames.level_camera_pose) and the re-grounding of a target (retarget.solve.pipeline)
# stand the lowest foot joint.
FLOOR_PERCENTILE = 5.0


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`CONTACT_MODES`, else an error listing them."""
    if mode not in CONTACT_MODES:
        raise RetargetError(f"foot contacts {mode!r} is not one of {', '.join(CONTACT_MODES)}")
    return mode


def mode_contacts(mode: str, detected: np.ndarray | None, num_frames: int, channels: int = 4):
    """The contacts the solve locks for ``mode``: the ``detected`` ones (``auto``; None when the
    file has none), every frame of every channel (``always``; ``(T, channels)``), or None."""
    check_mode(mode)
    if mode == "auto":
        return detected
    if mode == "always":
        width = channels if detected is None else np.shape(detected)[1]
        return np.ones((num_frames, width), bool)
    return None


def holds_feet(mode: str) -> bool:
    """Whether ``mode`` holds the feet (the cleaning's joint-level lock included)."""
    return check_mode(mode) in ("auto", "always")


def keeps_above_floor(mode: str) -> bool:
    return check_mode(mode) != "never"


def has_floor(extras: Mapping[str, np.ndarray]) -> bool:
    """Whether a trajectory carries the floor the cleaning fitted (its camera pose and the feet's
    flat-foot heights): grounding needs it. A raw file's floor is only a level guess (the lowest
    feet of a camera assumed level), which a tilted camera turns into a slope."""
    return "world_from_camera" in extras and "contact_clearance" in extras


def floor_from_extras(extras: Mapping[str, np.ndarray], person: int) -> dict[str, float] | None:
    """Each foot joint's height on a flat foot (metres above the floor) from a cleaned
    trajectory's ``contact_clearance`` ``(P, C)`` and ``contact_channels``; None without them."""
    if "contact_clearance" not in extras or "contact_channels" not in extras:
        return None
    clearance = np.asarray(extras["contact_clearance"], np.float64)
    names = [str(n) for n in np.asarray(extras["contact_channels"]).reshape(-1)]
    if clearance.ndim != 2 or clearance.shape[1] != len(names) or person >= len(clearance):
        raise RetargetError(
            f"'contact_clearance' has shape {clearance.shape}; expected (people, channels) for "
            f"the channels {names}"
        )
    heights = {n: float(h) for n, h in zip(names, clearance[person], strict=True) if np.isfinite(h)}
    return heights or None


def floor_heights(
    joints: Mapping[str, np.ndarray], clearance: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Height of each foot joint of the posed ``joints`` (name -> ``(T, 3)``) on a flat foot on
    the floor: ``clearance`` where given (the cleaning's, for a rig on the clip's own floor),
    else the 5th percentile height (:data:`FLOOR_PERCENTILE`) of that joint of both feet pooled:
    a foot that is down in few frames (a one-legged stand, a kick) shares the other foot's floor
    instead of getting one of its own in the air."""
    heights = {}
    for name in FOOT_JOINTS:
        if name not in joints:
            continue
        if clearance is not None and name in clearance:
            heights[name] = float(clearance[name])
            continue
        both = [joints[n][:, 2] for n in (name, _other_side(name)) if n in joints]
        heights[name] = float(np.percentile(np.concatenate(both), FLOOR_PERCENTILE))
    return heights


def _other_side(name: str) -> str:
    return {"l": "r", "r": "l"}[name[0]] + name[1:]


def low_feet(joints: Mapping[str, np.ndarray], margin_m: float = 0.03) -> np.ndarray:
    """Frames ``(T, 2)`` (left, right) where the ankle or the toe of posed ``joints`` (name ->
    ``(T, 3)``) is within ``margin_m`` of its floor (:func:`floor_heights`) or below: on or near
    the floor, where reduced keys must keep the foot tighter (``retarget.keys.planted_scales``)."""
    num_frames = len(next(iter(joints.values())))
    floor = floor_heights(joints)
    low = np.zeros((num_frames, 2), bool)
    for s, p in enumerate("lr"):
        for name in (p + "ank", p + "toe"):
            if name in joints:
                low[:, s] |= joints[name][:, 2] <= floor[name] + margin_m
    return low


def ground_feet(
    plan: "Plan",
    deltas: dict[int, np.ndarray],
    joints: dict[str, np.ndarray],
    floor: Mapping[str, float],
    lock: FootLockParams = FootLockParams(),  # noqa: B008 (frozen: shared safely)
) -> np.ndarray:
    """Lift each foot whose ankle or toe is below its ``floor`` height: thigh and shin deltas
    turned in place (two-bone IK, the foot keeps its orientation); returns the frames ``(T, 2)``
    where each foot was lifted. ``joints`` are the posed joints ``(T, 3)`` in armature space."""
    rig = plan.rig
    num_frames = len(next(iter(joints.values())))
    lifted = np.zeros((num_frames, 2), bool)
    up = np.array([0.0, 0.0, 1.0])
    for s, side in enumerate(SIDES):
        p = side.lower()
        slots = (f"thigh.{side}", f"shin.{side}")
        names = (p + "hip", p + "kne", p + "ank")
        if not all(slot in plan.rig_map.bones for slot in slots) or not all(
            n in joints for n in names
        ):
            continue
        need = np.zeros(num_frames)
        for name in (p + "ank", p + "toe"):
            if name in joints and name in floor:
                need = np.maximum(need, floor[name] - joints[name][:, 2])
        if not np.any(need > 1e-9):
            continue
        lift = smooth_drop(need, lock.root_smoothing_frames)  # eased, never below what is needed
        hip, knee, ankle = (joints[n] for n in names)
        upper = float(np.linalg.norm(plan.joints[p + "kne"] - plan.joints[p + "hip"]))
        lower = float(np.linalg.norm(plan.joints[p + "ank"] - plan.joints[p + "kne"]))
        free = np.linalg.norm(ankle - hip, axis=-1)
        goal = ankle + lift[:, None] * up
        new_knee, new_ankle = two_bone_ik(hip, knee, goal, upper, lower, lock.soft_reach, free)
        turns = {
            f"thigh.{side}": rotation_between(knee - hip, new_knee - hip),
            f"shin.{side}": rotation_between(ankle - knee, new_ankle - new_knee),
        }
        for slot, turn in turns.items():
            for bone in plan.rig_map.bones[slot]:
                b = rig.index(bone)
                deltas[b] = turn @ deltas[b]
        lifted[:, s] = need > 1e-9
    return lifted
