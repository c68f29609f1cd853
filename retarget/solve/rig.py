"""The generated MeTRAbs rig: one bone per body joint of the clip's skeleton, with the clip's own
proportions, in a T-pose facing -Y (Blender's front view), feet on z = 0.

Each bone's head sits on its joint and its tail on the joint's primary child, so the bone points
where the limb points. Leaf bones (toes, hands) extend their parent's direction. Joints that are
not a primary child (hips, collar bones, face points, the hand extension's thumb and hand end)
keep the clip's median offset as seen in their parent bone's frame, so the rig reproduces the
person's own build; a clip with the hand extension gets a thumb bone on each hand, with the palms
down in the T-pose (thumbs forward). Toe bones lie flat.
"""

from dataclasses import dataclass

import numpy as np

from .. import RetargetError
from ..rotations import frame_from_axes, normalize
from ..skeletons import Skeleton

# Blender-style names (".L"/".R" mirror in Blender's tools) for the smpl_24 body joints.
BONE_NAMES = {
    "pelv": "pelvis", "bell": "spine", "spin": "spine.001", "thor": "chest", "neck": "neck",
    "head": "head", "lhip": "thigh.L", "rhip": "thigh.R", "lkne": "shin.L", "rkne": "shin.R",
    "lank": "foot.L", "rank": "foot.R", "ltoe": "toe.L", "rtoe": "toe.R", "lcla": "shoulder.L",
    "rcla": "shoulder.R", "lsho": "upper_arm.L", "rsho": "upper_arm.R", "lelb": "forearm.L",
    "relb": "forearm.R", "lwri": "hand.L", "rwri": "hand.R", "lhan": "fingers.L", "rhan": "fingers.R",
}  # fmt: skip

# joint -> the child joint its bone points at
PRIMARY_CHILD = {
    "pelv": "bell", "bell": "spin", "spin": "thor", "thor": "neck", "neck": "head", "head": "htop",
    "lhip": "lkne", "lkne": "lank", "lank": "ltoe", "rhip": "rkne", "rkne": "rank", "rank": "rtoe",
    "lcla": "lsho", "lsho": "lelb", "lelb": "lwri", "lwri": "lhan",
    "rcla": "rsho", "rsho": "relb", "relb": "rwri", "rwri": "rhan",
}  # fmt: skip

# Skeletons without some SMPL spine joints (Human3.6M has no "bell" or "thor"): a joint's bone
# points at the first of these children the skeleton has when its PRIMARY_CHILD is missing.
_SPINE_CHILDREN = {"pelv": ("spin", "thor", "neck"), "bell": ("thor", "neck"), "spin": ("neck",)}

# Rest T-pose direction of each joint's bone, and of its twist hint, for left-side / centre joints
# (right side mirrors x). Blender rest: the character faces -Y, its left is +X.
_REST_AXES = {
    "pelv": ((0, 0, 1), (1, 0, 0)), "bell": ((0, 0, 1), None), "spin": ((0, 0, 1), None),
    "thor": ((0, 0, 1), (1, 0, 0)), "neck": ((0, 0, 1), (1, 0, 0)), "head": ((0, 0, 1), (1, 0, 0)),
    "hip": ((0, 0, -1), (0, -1, 0)), "kne": ((0, 0, -1), (0, -1, 0)), "ank": ((0, -1, -1), (0, 0, 1)),
    "toe": ((0, -1, 0), None), "cla": ((1, 0, 0), None), "sho": ((1, 0, 0), None),
    "elb": ((1, 0, 0), None), "wri": ((1, 0, 0), (0, -1, 0)), "han": ((1, 0, 0), None),
}  # fmt: skip
# The rest pose of a joint that is not a primary child keeps its median offset in the parent
# bone's frame: the bone axis and this twist hint.
# joint -> (a, b): the twist hint of the joint's bone is position(a) - position(b)
TWIST_HINTS = {
    "pelv": ("lhip", "rhip"),
    "thor": ("lcla", "rcla"),
    "neck": ("lsho", "rsho"),  # skeletons whose shoulders hang from the neck (Human3.6M)
    "head": ("lear", "rear"),
    "lhip": ("ltoe", "lank"),
    "rhip": ("rtoe", "rank"),
    "lkne": ("ltoe", "lank"),
    "rkne": ("rtoe", "rank"),
    "lank": ("lkne", "lank"),
    "rank": ("rkne", "rank"),
    "lwri": ("lthu", "lwri"),  # the hand extension: thumb and hand end in the hand's frame
    "rwri": ("rthu", "rwri"),
}
# Bones for the hand extension's thumbs (skeletons.HAND_POINTS): never keyed, they show the hand's
# roll. Kept apart from BONE_NAMES, whose joints every frame of a generated rig's motion needs.
THUMB_BONE_NAMES = {"lthu": "thumb.L", "rthu": "thumb.R"}
_LEAF_LENGTH_FRACTION = 0.5  # leaf bone length relative to its parent bone


@dataclass(frozen=True)
class RigBone:
    """A bone of the generated rig: name, the joint at its head, parent bone, rest head/tail (m)."""

    name: str
    joint: str
    parent: str | None
    head: np.ndarray
    tail: np.ndarray


def _rest_axes(joint: str) -> tuple[np.ndarray, np.ndarray | None]:
    key = joint if joint in _REST_AXES else joint[1:]
    direction, hint = (np.array(v, float) if v is not None else None for v in _REST_AXES[key])
    if joint.startswith("r") and key != joint:
        direction[0] *= -1
        hint = None if hint is None else hint * np.array([-1.0, 1, 1])
    return normalize(direction), hint


def primary_child(skeleton: Skeleton, joint: str) -> str | None:
    """The child joint ``joint``'s bone points at (:data:`PRIMARY_CHILD`, else the next spine joint
    the skeleton has); None for a leaf."""
    j = skeleton.index(joint)
    children = {n for n, p in zip(skeleton.joint_names, skeleton.parents, strict=True) if p == j}
    candidates = (PRIMARY_CHILD.get(joint),) + _SPINE_CHILDREN.get(joint, ())
    return next((child for child in candidates if child in children), None)


def _median_local_offset(
    skeleton: Skeleton, joints: np.ndarray, joint: str, parent: str
) -> np.ndarray:
    """Median offset of ``joint`` from ``parent`` in the parent bone's frame (its y = bone axis)."""
    index = skeleton.index
    hint = TWIST_HINTS[parent]
    frames = frame_from_axes(
        joints[:, index(primary_child(skeleton, parent))] - joints[:, index(parent)],
        joints[:, index(hint[0])] - joints[:, index(hint[1])],
    )
    offsets = joints[:, index(joint)] - joints[:, index(parent)]
    return np.nanmedian(np.einsum("tji,tj->ti", frames, offsets), axis=0)


def _placed_by_offset(skeleton: Skeleton, joint: str, parent: str) -> bool:
    """Whether ``joint`` keeps its median offset in its parent bone's frame (it is not the joint
    the parent bone points at, and that frame is defined); else it lies along the parent's rest
    direction."""
    if primary_child(skeleton, parent) in (joint, None) or _rest_axes(parent)[1] is None:
        return False
    missing = [n for n in TWIST_HINTS.get(parent, ()) if n not in skeleton.joint_names]
    if parent not in TWIST_HINTS or missing:
        raise RetargetError(
            f"skeleton {skeleton.name!r} lacks the joints {missing or '(a twist hint)'} that "
            f"place {joint!r} relative to {parent!r}"
        )
    return True


def rest_joints(skeleton: Skeleton, joints: np.ndarray) -> np.ndarray:
    """Rest T-pose positions ``(J, 3)`` metres of every joint, from the clip ``(T, J, 3)``."""
    parents = np.array(skeleton.parents)
    with np.errstate(all="ignore"):
        lengths = np.nanmedian(np.linalg.norm(joints[:, 1:] - joints[:, parents[1:]], axis=-1), 0)
    lengths = np.concatenate([[0.0], lengths])
    rest = np.zeros((skeleton.num_joints, 3))
    for j, name in enumerate(skeleton.joint_names):
        if parents[j] < 0:
            continue
        parent = skeleton.joint_names[parents[j]]
        direction, hint = _rest_axes(parent)
        if _placed_by_offset(skeleton, name, parent):
            local = _median_local_offset(skeleton, joints, name, parent)
            rest[j] = rest[parents[j]] + frame_from_axes(direction, hint) @ local
        else:
            rest[j] = rest[parents[j]] + lengths[j] * direction
    if not np.all(np.isfinite(rest)):
        bad = [skeleton.joint_names[j] for j in np.flatnonzero(~np.isfinite(rest).all(axis=1))]
        raise RetargetError(f"joints never seen in the clip, cannot build a rig: {bad}")
    rest[:, 2] -= rest[:, 2].min()
    return rest


def generated_rig(skeleton: Skeleton, rest: np.ndarray) -> list[RigBone]:
    """Bones (parent first) of the generated rig for rest joint positions ``(J, 3)``.

    A joint whose usual child the skeleton lacks (a foot without toes, a hand without a hand
    point, a head without its top) ends in a leaf bone along its own rest direction."""
    bones = []
    names = {**BONE_NAMES, **THUMB_BONE_NAMES}
    for j, joint in enumerate(skeleton.joint_names):
        if joint not in names:
            continue
        parent_index = skeleton.parents[j]
        parent = skeleton.joint_names[parent_index] if parent_index >= 0 else None
        child = primary_child(skeleton, joint)
        parent_axis = rest[j] - rest[parent_index]
        if child is not None:
            tail = rest[skeleton.index(child)]
        elif joint in PRIMARY_CHILD:
            length = np.linalg.norm(parent_axis)
            tail = rest[j] + _LEAF_LENGTH_FRACTION * length * _rest_axes(joint)[0]
        else:
            if joint.endswith("toe"):
                # Toes lie flat on the floor: the rig's lowest points stay its feet's joints.
                parent_axis = np.array([parent_axis[0], parent_axis[1], 0.0])
            tail = rest[j] + _LEAF_LENGTH_FRACTION * parent_axis
        bones.append(RigBone(names[joint], joint, BONE_NAMES.get(parent), rest[j], tail))
    return bones
