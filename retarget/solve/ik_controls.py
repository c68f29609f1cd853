"""IK controls keyed from the solved pose (docs/design.md §6, "IK controls").

The solve is FK: it gives every keyed bone's rotation. A rig that animates a limb in IK (Rigify's
``IK_FK`` = 0) ignores those keys and poses the limb from its IK controls: the hand or foot
control, the pole target, a toe control. Keying those from the solved pose keeps the motion and
lets an animator edit a planted foot or a pinned hand.

Each control moves rigidly with a slot of the solve: slot ``S`` with armature-space change from
rest ``Δ_S`` (the rotation of its keyed bone) and head joint ``j_S`` (rest ``j⁰_S``) moves a
point ``x`` to ``M_S(x) = j_S + Δ_S (x − j⁰_S)``. The control ``C`` (rest frame ``C⁰``: rotation
``r_C``, head ``h_C``) should be posed at ``D = M_S ∘ C⁰``: the hand control on the solved hand,
the foot control on the solved foot, the pole turned with the upper limb about the middle
joint, so that the IK chain's plane and bend are those of the solved limb. Its parent chain is
at rest (the take parents it to the rig's root), or moves rigidly with a *carrier* slot ``P``
(Rigify's toe control hangs from the foot's roll bones): its local transform is then
``L = C⁰⁻¹ ∘ M_P⁻¹ ∘ D``, keyed as a rotation and a location, the location in the bone's own rest
axes (Blender's *Local Location*) or else in its parent's posed axes. Everything runs in the frame
the solve ran in (the world, :mod:`retarget.solve.transforms`) and comes back in armature units.
Pure numpy.
"""

from dataclasses import dataclass

import numpy as np

from .. import RetargetError
from ..rotations import make_continuous, matrix_to_quaternion
from .pipeline import RetargetResult
from .rigmaps import RigMap
from .target import TargetRig, _slot_joints, target_rest_joints
from .transforms import rig_in_world

LIMB_MODES = {"fk": (), "legs": ("leg",), "arms": ("arm",), "all": ("arm", "leg")}


@dataclass
class IkKeys:
    """What to key for the limbs in IK: ``rotations`` bone -> ``(T, 4)`` local quaternions
    (w, x, y, z), ``locations`` bone -> ``(T, 3)`` pose locations (armature units),
    ``properties`` bone -> {property: value} (the switches, keyed once), ``settings`` bone ->
    {pose-bone setting: value} (keyed once), ``limbs`` the limbs
    animated in IK, ``heads`` control -> ``(T, 3)`` where its head should be (the solve's frame,
    for checks) and ``missing`` the limbs asked for that the rig map gives no IK controls."""

    rotations: dict[str, np.ndarray]
    locations: dict[str, np.ndarray]
    properties: dict[str, dict[str, float]]
    settings: dict[str, dict[str, float]]
    limbs: tuple[str, ...]
    heads: dict[str, np.ndarray]
    missing: tuple[str, ...] = ()


def ik_limbs(rig_map: RigMap, mode: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The limbs ``mode`` animates in IK that ``rig_map`` has controls for, and those it has not."""
    if mode not in LIMB_MODES:
        raise RetargetError(f"limb IK mode {mode!r} is not one of {', '.join(LIMB_MODES)}")
    wanted = [f"{limb}.{side}" for limb in LIMB_MODES[mode] for side in ("L", "R")]
    return tuple(w for w in wanted if w in rig_map.ik), tuple(
        w for w in wanted if w not in rig_map.ik
    )


class _SlotMotion:
    """``M_S`` of every slot: rotation ``Δ_S`` ``(T, 3, 3)`` and head joint (posed, rest)."""

    def __init__(self, rig_map: RigMap, result: RetargetResult, rest: dict[str, np.ndarray]):
        self.rig_map, self.result, self.rest = rig_map, result, rest

    def __call__(self, slot: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        bone = self.rig_map.bones[slot][-1]
        joint = _slot_joints(slot)[0]
        if bone not in self.result.deltas or joint not in self.result.joints:
            raise RetargetError(f"slot {slot!r} was not solved, so its IK control cannot follow it")
        return self.result.deltas[bone], self.result.joints[joint], self.rest[joint]


def ik_control_keys(
    rig: TargetRig, rig_map: RigMap, result: RetargetResult, mode: str = "legs"
) -> IkKeys:
    """The IK control keys of the limbs ``mode`` puts in IK (:data:`LIMB_MODES`) for a solved
    take ``result`` of ``rig`` (its armature-space rest pose) with ``rig_map``."""
    limbs, missing = ik_limbs(rig_map, mode)
    transform = result.transform
    world = rig_in_world(rig, transform)
    motion = _SlotMotion(rig_map, result, target_rest_joints(world, rig_map))
    keys = IkKeys({}, {}, {}, {}, limbs, {}, missing)
    for limb in limbs:
        spec = rig_map.ik[limb]
        for bone, props in spec.properties.items():
            keys.properties.setdefault(bone, {}).update(props)
        for bone, values in spec.settings.items():
            keys.settings.setdefault(bone, {}).update(values)

        for bone, slot in [*spec.controls.items(), *spec.poles.items()]:
            b = rig.index(bone)
            delta, joint, joint_rest = motion(slot)
            rest_rotation, rest_head = world.rotations[b], world.heads[b]
            # D = M_S ∘ C⁰: where the control should be (rotation, head), world frame
            rotation = delta @ rest_rotation
            head = joint + np.einsum("tij,j->ti", delta, rest_head - joint_rest)
            keys.heads[bone] = head.copy()
            carrier = spec.carriers.get(bone)
            if carrier is not None:  # undo the carrier's motion: M_P⁻¹ ∘ D
                carried, carried_joint, carried_rest = motion(carrier)
                rotation = np.swapaxes(carried, -1, -2) @ rotation
                head = carried_rest + np.einsum(
                    "tji,tj->ti", carried, head - carried_joint
                )  # Δ_Pᵀ (head − j_P) + j⁰_P
            local = rest_rotation.T @ rotation  # C⁰⁻¹: rotation part
            moved = (head - rest_head) @ transform.rotation / transform.scale  # armature axes
            # Local Location: along the bone's own rest axes. Without it Blender applies the
            # location along the parent's posed axes, Δ_P r_parent; the head's offset from where
            # the parent alone puts it is Δ_P·moved, so the location is r_parentᵀ·moved either
            # way (the armature's axes for a bone without parent).
            parent = rig.parents[b]
            axes = rig.rotations[b] if rig.local_location[b] else (
                rig.rotations[parent] if parent >= 0 else np.eye(3)
            )  # fmt: skip
            keys.locations[bone] = moved @ axes
            if bone in spec.controls:  # a pole's rotation means nothing: location only
                keys.rotations[bone] = make_continuous(matrix_to_quaternion(local))
    return keys
