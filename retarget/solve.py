"""Joint positions -> bone rotations of any humanoid armature (docs/design.md §6).

For every keyed bone a frame is built from its direction (head joint -> tail joint) and a twist
hint, once from the source motion and once from the *target's own rest pose* (joint positions read
off the rig's rest bones), so T-pose, A-pose and any bone roll need no calibration. The
armature-space change from rest is ``delta = frame_now @ frame_rest.T``; with ``r`` the bone's rest
rotation (``bone.matrix_local``, roll included) the Blender local key is
``q_local = r⁻¹ · delta_parent⁻¹ · delta · r``. The user's rig is never edited.

Twist hints:

- hips: the hip line; spine bones: the hip line blended into the shoulder line along the chain;
  neck: shoulder line into the head's ear line; head: the ear line (face joints);
- upper arm + forearm, thigh + shin: the elbow / knee hinge axis (the limb-plane normal). As the
  limb straightens the plane vanishes, so the hint blends (by the sine of the bend) into a
  fallback: the leg's foot direction, then the twist the bone would have if it only swung from
  its parent;
- foot: the ankle hinge (shin-foot plane), with the same swing fallback;
- clavicles and hands: swing from the parent only; toes follow the foot.

Spine and neck chains of any length are laid along the source chain by arc length. Root motion is
scaled by the ratio of hip heights and re-grounded; feet can be locked during contacts
(:mod:`retarget.ik`). Pure numpy.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from . import RetargetError
from . import ik as ik_tools
from .rigmaps import CHAIN_SLOTS, SIDES, RigMap
from .rotations import (
    frame_from_axes,
    make_continuous,
    matrix_to_quaternion,
    normalize,
    quaternion_to_matrix,
    rotation_between,
)
from .skeletons import Skeleton

log = logging.getLogger(__name__)

ROOT_MOTIONS = ("relative", "camera", "in_place")

# Sided slot -> (head joint, tail joint); joint names are the source's (MeTRAbs smpl) short names
# with an "l"/"r" prefix. "toe_end" exists only on targets (the toe bone's tail).
_SIDED_JOINTS = {
    "shoulder": ("cla", "sho"), "upper_arm": ("sho", "elb"), "forearm": ("elb", "wri"),
    "hand": ("wri", "han"), "thigh": ("hip", "kne"), "shin": ("kne", "ank"),
    "foot": ("ank", "toe"), "toe": ("toe", "toe_end"),
}  # fmt: skip
_CENTRE_JOINTS = {
    "hips": ("pelv", "bell"), "spine": ("bell", "neck"), "neck": ("neck", "head"),
    "head": ("head", "htop"),
}  # fmt: skip
_SOURCE_CHAINS = {"spine": ("bell", "spin", "thor", "neck"), "neck": ("neck", "head")}
# Where the source skeleton lacks a slot's own joints, these source segments (parallel to it in a
# standing pose) stand in for its direction: Human3.6M has no "bell", SMPL-24 no head top.
_STAND_INS = {
    "hips": (("pelv", "spin"), ("pelv", "thor"), ("pelv", "neck")),
    "head": (("neck", "head"),),
}
# Hinges: (upper slot, lower slot or None, (a, b, c) joints); the hinge axis is cross(c-b, b-a).
_HINGES = {
    "elbow": ("upper_arm", "forearm", ("sho", "elb", "wri")),
    "knee": ("thigh", "shin", ("hip", "kne", "ank")),
    "ankle": ("foot", None, ("kne", "ank", "toe")),
}
_SOURCE_BODY = (
    "pelv", "bell", "spin", "thor", "neck", "head", "lhip", "rhip", "lkne", "rkne", "lank", "rank",
    "ltoe", "rtoe", "lcla", "rcla", "lsho", "rsho", "lelb", "relb", "lwri", "rwri", "lhan", "rhan",
)  # fmt: skip
# The body joints every source needs; the others (spine joints, toes, clavicles, hand points)
# are used where the skeleton has them, and their slots follow their parents where it does not.
_SOURCE_REQUIRED = (
    "pelv", "neck", "head", "lhip", "rhip", "lkne", "rkne", "lank", "rank", "lsho", "rsho",
    "lelb", "relb", "lwri", "rwri",
)  # fmt: skip
_LEGS = tuple(side + joint for side in "lr" for joint in ("hip", "kne", "ank"))
FOOT_JOINTS = ("lank", "rank", "ltoe", "rtoe")

# A default table for RetargetParams.joint_limits: largest rotation from rest relative to the
# parent (degrees), generous enough for sport and dance, tight enough to stop flipped limbs.
JOINT_LIMITS_DEG = {
    "hips": 180.0, "spine": 45.0, "neck": 60.0, "head": 80.0, "shoulder": 40.0,
    "upper_arm": 170.0, "forearm": 160.0, "hand": 90.0, "thigh": 140.0, "shin": 165.0,
    "foot": 70.0, "toe": 70.0,
}  # fmt: skip


@dataclass(frozen=True)
class RetargetParams:
    """Settings of one retarget solve."""

    # "relative": the path starts at the rig's rest position; "camera": the path as seen from the
    # camera (world origin under it), scaled about that point; "in_place": no horizontal travel.
    root_motion: str = "relative"
    reground: bool = True  # shift vertically so the lowest foot joints rest on the rig's floor
    straight_limb_deg: float = 20.0  # bends below this blend the limb-plane twist into fallbacks
    # None: no limits; else slot base name -> largest rotation (degrees) of a keyed bone from its
    # rest pose relative to its parent, e.g. JOINT_LIMITS_DEG. Slots not listed are free.
    joint_limits: Mapping[str, float] | None = None
    foot_lock: bool = True  # hold feet during contacts (when contacts are given)
    lock: ik_tools.FootLockParams = field(default_factory=ik_tools.FootLockParams)

    def __post_init__(self) -> None:
        if self.root_motion not in ROOT_MOTIONS:
            raise RetargetError(
                f"root motion {self.root_motion!r} is not one of {', '.join(ROOT_MOTIONS)}"
            )


@dataclass(frozen=True)
class TargetRig:
    """A target armature's rest pose in armature space (metres), read from ``armature.data.bones``.

    ``parents[b]`` is the parent index (-1 root); ``heads``/``tails`` ``(B, 3)``; ``rotations``
    ``(B, 3, 3)`` the rest rotations (``bone.matrix_local``, roll included). ``follow[b]`` is the
    bone whose pose ``b`` copies through a constraint (-1 none), ``follow_location[b]`` whether
    that copy includes location (Copy Transforms) or only rotation. ``local_location[b]`` and
    ``connected[b]`` are Blender's bone flags of the same names.
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    heads: np.ndarray
    tails: np.ndarray
    rotations: np.ndarray
    follow: tuple[int, ...] = ()
    follow_location: tuple[bool, ...] = ()
    local_location: tuple[bool, ...] = ()
    connected: tuple[bool, ...] = ()

    def __post_init__(self) -> None:
        count = len(self.names)
        defaults = {
            "follow": (-1,) * count,
            "follow_location": (False,) * count,
            "local_location": (True,) * count,
            "connected": (False,) * count,
        }
        for key, value in defaults.items():
            if not getattr(self, key):
                object.__setattr__(self, key, value)
        for key in ("heads", "tails", "rotations"):
            object.__setattr__(self, key, np.asarray(getattr(self, key), np.float64))
        assert self.heads.shape == (count, 3) and self.rotations.shape == (count, 3, 3)
        object.__setattr__(self, "_index", {name: b for b, name in enumerate(self.names)})

    def index(self, name: str) -> int:
        return self._index[name]  # type: ignore[attr-defined]

    @classmethod
    def from_bones(
        cls,
        names: list[str],
        parents: list[str | None],
        heads: np.ndarray,
        tails: np.ndarray,
        rolls: np.ndarray | None = None,
    ) -> "TargetRig":
        """A rig from edit-bone data (parent names, heads, tails, rolls in radians), computing
        the rest rotations the way Blender does (see :func:`bone_rest_matrix`)."""
        heads, tails = np.asarray(heads, float), np.asarray(tails, float)
        rolls = np.zeros(len(names)) if rolls is None else np.asarray(rolls, float)
        index = {name: b for b, name in enumerate(names)}
        rotations = np.array(
            [bone_rest_matrix(h, t, r) for h, t, r in zip(heads, tails, rolls, strict=True)]
        )
        parent_ids = tuple(index[p] if p is not None else -1 for p in parents)
        return cls(tuple(names), parent_ids, heads, tails, rotations)


def bone_rest_matrix(head: np.ndarray, tail: np.ndarray, roll: float) -> np.ndarray:
    """Rest rotation ``(3, 3)`` of a bone from head, tail and roll, as Blender builds it: the
    shortest rotation taking +Y onto the bone, then ``roll`` radians about the bone's own axis."""
    direction = normalize(np.asarray(tail, float) - np.asarray(head, float))
    align = rotation_between(np.array([0.0, 1.0, 0.0]), direction)
    c, s = np.cos(roll), np.sin(roll)
    twist = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return align @ twist


@dataclass
class RetargetResult:
    """A solved take: ``rotations`` ``(T, K, 4)`` local quaternions (w, x, y, z) of ``bone_names``;
    ``root_location`` ``(T, 3)`` the pose-bone location of ``root_bone``; ``joints`` maps canonical
    joint names to posed positions ``(T, 3)`` in armature space (after foot locking);
    ``hip_ratio`` target/source hip height; ``locked`` the frames ``(T, 2)`` held per foot."""

    bone_names: list[str]
    rotations: np.ndarray
    root_bone: str
    root_location: np.ndarray
    joints: dict[str, np.ndarray]
    hip_ratio: float
    locked: np.ndarray
    deltas: dict[str, np.ndarray] = field(repr=False, default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Plan: everything that depends on the target only


def _slot_joints(slot: str) -> tuple[str, str]:
    if "." in slot:
        base, side = slot.split(".")
        head, tail = _SIDED_JOINTS[base]
        return side.lower() + head, side.lower() + tail
    return _CENTRE_JOINTS[slot]


def target_rest_joints(rig: TargetRig, rig_map: RigMap) -> dict[str, np.ndarray]:
    """Canonical joint positions ``name -> (3,)`` of the target's rest pose, from the anchors.

    A joint is the head of the slot that starts there; where no mapped slot starts at a joint it
    is the tail of the slot that ends there.
    """
    joints: dict[str, np.ndarray] = {}
    for slot, anchors in ((s, rig_map.anchor(s)) for s in rig_map.bones):
        bone = anchors[0] if slot in CHAIN_SLOTS else anchors[-1]
        joints.setdefault(_slot_joints(slot)[0], rig.heads[rig.index(bone)])
    for slot, anchors in ((s, rig_map.anchor(s)) for s in rig_map.bones):
        joints.setdefault(_slot_joints(slot)[1], rig.tails[rig.index(anchors[-1])])
    return joints


def _polyline_parameter(points: np.ndarray, query: np.ndarray) -> float:
    """Arc-length parameter in [0, 1] of the point of polyline ``points`` nearest ``query``."""
    starts, ends = points[:-1], points[1:]
    segments = ends - starts
    lengths = np.linalg.norm(segments, axis=-1)
    total = lengths.sum()
    if total < 1e-9:
        return 0.0
    along = np.clip(
        np.sum((query - starts) * segments, -1) / np.maximum(lengths**2, 1e-18), 0.0, 1.0
    )
    nearest = starts + along[:, None] * segments
    k = int(np.argmin(np.linalg.norm(nearest - query, axis=-1)))
    return float((lengths[:k].sum() + along[k] * lengths[k]) / total)


def _chain_point(points: np.ndarray, fractions: np.ndarray, u: float) -> np.ndarray:
    """Point at arc-length parameter ``u`` of a polyline ``(..., N, 3)`` whose vertices sit at the
    cumulative ``fractions`` ``(N,)`` (0 ... 1)."""
    k = int(np.clip(np.searchsorted(fractions, u, side="right") - 1, 0, len(fractions) - 2))
    span = max(fractions[k + 1] - fractions[k], 1e-12)
    t = np.clip((u - fractions[k]) / span, 0.0, 1.0)
    return points[..., k, :] + t * (points[..., k + 1, :] - points[..., k, :])


def _fractions(points: np.ndarray) -> np.ndarray:
    """Cumulative normalised arc length ``(N,)`` of a polyline ``(N, 3)``."""
    lengths = np.linalg.norm(np.diff(points, axis=0), axis=-1)
    total = max(lengths.sum(), 1e-12)
    return np.concatenate([[0.0], np.cumsum(lengths) / total])


@dataclass
class _Unit:
    """One keyed slot (or one bone of a chain slot) and how its rotation is found."""

    slot: str
    bones: list[int]  # keyed bones sharing this rotation (Rigify's torso + hips)
    kind: str  # "frame", "hinge", "swing", "inherit"
    head: str | float  # joint name, or chain parameter u for chain bones
    tail: str | float | None
    rest_direction: np.ndarray | None = None
    rest_hint: np.ndarray | None = None
    lateral: tuple | None = None  # for "frame": ((weight, lateral name), ...)
    hinge: str | None = None


@dataclass
class _Plan:
    rig: TargetRig
    rig_map: RigMap
    joints: dict[str, np.ndarray]  # target rest joints
    chains: dict[str, np.ndarray]  # target rest polylines (N, 3) per chain slot
    units: list[_Unit]
    unit_of: dict[int, _Unit]
    order: list[int]  # bones to evaluate, parents and followed bones first
    attach: dict[str, int]  # canonical joint -> keyed bone it moves with
    laterals: dict[str, np.ndarray]  # target rest lateral lines
    forward: np.ndarray
    hinge_rest: dict[str, np.ndarray]  # "l.elbow" -> rest hinge axis
    root: int


def _evaluation_order(rig: TargetRig, wanted: list[int]) -> list[int]:
    order, state = [], {}

    def visit(b: int) -> None:
        if state.get(b) == 2:
            return
        if state.get(b) == 1:
            raise RetargetError(f"bone {rig.names[b]!r} depends on itself through constraints")
        state[b] = 1
        for dep in (rig.parents[b], rig.follow[b]):
            if dep >= 0:
                visit(dep)
        state[b] = 2
        order.append(b)

    for b in wanted:
        visit(b)
    return order


def _target_laterals(joints: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    hip = normalize(joints["lhip"] - joints["rhip"])
    if "lcla" in joints and "rcla" in joints:
        shoulder = normalize(joints["lcla"] - joints["rcla"])
    else:
        shoulder = normalize(joints["lsho"] - joints["rsho"])
    up_end = joints.get("neck", joints.get("lsho"))
    up = normalize(up_end - joints["pelv"])
    forward = normalize(np.cross(hip, up))
    return {"hip": hip, "shoulder": shoulder, "head": shoulder}, forward


def _rest_hinge(
    name: str, a: np.ndarray, b: np.ndarray, c: np.ndarray, plan_laterals, forward, s0: float
) -> np.ndarray:
    """Rest hinge axis of a target limb; straight limbs use the anatomical convention."""
    first, second = normalize(b - a), normalize(c - b)
    bend = np.cross(second, first)
    if name == "elbow":
        fallback = normalize(np.cross(forward, first))
    elif name == "knee":
        fallback = -plan_laterals["hip"]
    else:  # ankle
        fallback = plan_laterals["hip"]
    if np.dot(bend, fallback) < 0:
        bend = -bend  # a rest pose bent the wrong way is a hyperextension: same anatomical axis
    size = np.linalg.norm(bend)
    return normalize(bend + max(0.0, 1.0 - size / s0) * fallback)


def build_plan(rig: TargetRig, rig_map: RigMap, params: RetargetParams = RetargetParams()) -> _Plan:
    """Everything the solve needs from the target alone (rest joints, frames, order)."""
    joints = target_rest_joints(rig, rig_map)
    for required in ("pelv", "lhip", "rhip", "lsho", "rsho"):
        if required not in joints:
            raise RetargetError(f"the rig map gives no position for joint {required!r}")
    chains = {}
    for slot in CHAIN_SLOTS:
        if slot in rig_map.bones:
            anchors = rig_map.anchor(slot)
            end = joints[_slot_joints(slot)[1]]
            chains[slot] = np.array([rig.heads[rig.index(a)] for a in anchors] + [end])
    laterals, forward = _target_laterals(joints)
    s0 = np.sin(np.radians(params.straight_limb_deg))
    hinge_rest = {}
    for side in SIDES:
        p = side.lower()
        for name, (_upper, _lower, names) in _HINGES.items():
            if all(p + n in joints for n in names):
                a, b, c = (joints[p + n] for n in names)
                hinge_rest[f"{p}.{name}"] = _rest_hinge(name, a, b, c, laterals, forward, s0)

    units: list[_Unit] = []
    for slot, keyed in rig_map.bones.items():
        ids = [rig.index(n) for n in keyed]
        if slot in CHAIN_SLOTS:
            points = chains[slot]
            us = [_polyline_parameter(points, rig.heads[b]) for b in ids]
            ends = us[1:] + [1.0]
            for b, u0, u1 in zip(ids, us, ends, strict=True):
                units.append(_chain_unit(slot, b, u0, u1, points))
            continue
        units.append(_limb_unit(slot, ids, joints, hinge_rest, laterals, rig))

    unit_of = {b: unit for unit in units for b in unit.bones}
    root = rig.index(rig_map.root_bone)
    keyed = sorted(unit_of) + ([root] if root not in unit_of else [])
    order = _evaluation_order(rig, keyed)
    _check_root(rig, root, unit_of, order)
    attach = _attachments(rig_map, rig, joints, units, unit_of)
    return _Plan(rig, rig_map, joints, chains, units, unit_of, order, attach, laterals, forward,
                 hinge_rest, root)  # fmt: skip


def _chain_unit(slot: str, bone: int, u0: float, u1: float, points: np.ndarray) -> _Unit:
    fractions = _fractions(points)
    direction = _chain_point(points, fractions, u1) - _chain_point(points, fractions, u0)
    if np.linalg.norm(direction) < 1e-9:
        return _Unit(slot, [bone], "inherit", u0, u1)
    lower, upper = ("hip", "shoulder") if slot == "spine" else ("shoulder", "head")
    lateral = ((1.0 - u1, lower), (u1, upper))
    return _Unit(slot, [bone], "frame", u0, u1, normalize(direction), None, lateral)


def _limb_unit(slot, ids, joints, hinge_rest, laterals, rig) -> _Unit:
    head, tail = _slot_joints(slot)
    if tail not in joints or head not in joints or tail == head:
        return _Unit(slot, ids, "inherit", head, None)
    direction = joints[tail] - joints[head]
    if np.linalg.norm(direction) < 1e-9 or tail.endswith("toe_end"):
        return _Unit(slot, ids, "inherit", head, None)
    direction = normalize(direction)
    if slot == "hips":
        return _Unit(slot, ids, "frame", head, tail, direction, None, ((1.0, "hip"),))
    if slot == "head":
        return _Unit(slot, ids, "frame", head, tail, direction, None, ((1.0, "head"),))
    base, side = slot.split(".")
    for name, (upper, lower, _names) in _HINGES.items():
        if base in (upper, lower) and f"{side.lower()}.{name}" in hinge_rest:
            rest = hinge_rest[f"{side.lower()}.{name}"]
            return _Unit(slot, ids, "hinge", head, tail, direction, rest, None, name)
    return _Unit(slot, ids, "swing", head, tail, direction)


def _check_root(rig: TargetRig, root: int, unit_of: dict, order: list[int]) -> None:
    b = rig.parents[root]
    while b >= 0:
        if b in unit_of:
            raise RetargetError(
                f"the root bone {rig.names[root]!r} sits below the keyed bone {rig.names[b]!r}; "
                "pick the topmost keyed bone as root in the rig map"
            )
        b = rig.parents[b]
    if rig.connected[root]:
        raise RetargetError(
            f"the root bone {rig.names[root]!r} is connected to its parent, so it cannot move; "
            "choose another root bone in the rig map"
        )
    for b in unit_of:
        above, c = [], b
        while c >= 0 and c != root:
            above.append(c)
            c = rig.parents[c]
        if c != root and rig.follow[b] < 0:
            raise RetargetError(
                f"keyed bone {rig.names[b]!r} is not below the root bone {rig.names[root]!r}; "
                "the root motion would leave it behind"
            )


def _attachments(rig_map, rig, joints, units, unit_of) -> dict[str, int]:
    """Canonical joint -> the keyed bone that carries it (the slot starting there, else ending)."""
    attach: dict[str, int] = {}
    by_slot: dict[str, list[_Unit]] = {}
    for unit in units:
        by_slot.setdefault(unit.slot, []).append(unit)
    for slot, slot_units in by_slot.items():
        head, tail = _slot_joints(slot)
        if slot in CHAIN_SLOTS:
            first = min(slot_units, key=lambda u: u.head)
            last = max(slot_units, key=lambda u: u.head)
            if first.head <= 1e-6:
                attach.setdefault(head, first.bones[-1])
            attach[f"{slot}_end"] = last.bones[-1]
        else:
            attach.setdefault(head, slot_units[0].bones[-1])
    for slot, slot_units in by_slot.items():
        head, tail = _slot_joints(slot)
        bone = attach.get(f"{slot}_end", slot_units[-1].bones[-1])
        attach.setdefault(tail, bone)
    if "bell" not in attach and "hips" in by_slot:
        attach["bell"] = by_slot["hips"][0].bones[-1]
    return {j: b for j, b in attach.items() if j in joints}


# ---------------------------------------------------------------------------------------------
# Source side


class _Source:
    """Source joints ``(T, J, 3)`` by name, with the chains resampled by arc length."""

    def __init__(self, joints: np.ndarray, skeleton: Skeleton) -> None:
        missing = [n for n in _SOURCE_REQUIRED if n not in skeleton.joint_names]
        if missing:
            raise RetargetError(f"skeleton {skeleton.name!r} lacks body joints {missing}")
        if joints.shape[1:] != (skeleton.num_joints, 3):
            raise RetargetError(
                f"joints have shape {joints.shape}; expected (T, {skeleton.num_joints}, 3)"
            )
        body = [skeleton.index(n) for n in _SOURCE_BODY if n in skeleton.joint_names]
        if not np.all(np.isfinite(joints[:, body])):
            raise RetargetError("source joints contain NaN; fill or drop incomplete frames first")
        self.joints = joints
        self.skeleton = skeleton
        self.chains = {}
        for slot, names in _SOURCE_CHAINS.items():
            # The chain runs through the joints the skeleton has (Human3.6M: spine -> neck).
            names = [n for n in names if n in skeleton.joint_names]
            points = np.stack([self(n) for n in names], axis=1)  # (T, N, 3)
            lengths = np.median(np.linalg.norm(np.diff(points, axis=1), axis=-1), axis=0)
            fractions = np.concatenate([[0.0], np.cumsum(lengths) / max(lengths.sum(), 1e-12)])
            self.chains[slot] = (points, fractions)

    def has(self, name: str) -> bool:
        return name in self.skeleton.joint_names and bool(
            np.all(np.isfinite(self.joints[:, self.skeleton.index(name)]))
        )

    def __call__(self, name: str) -> np.ndarray:
        return self.joints[:, self.skeleton.index(name)]

    def point(self, slot: str, where: str | float) -> np.ndarray:
        if isinstance(where, str):
            return self(where)
        points, fractions = self.chains[slot]
        return _chain_point(points, fractions, where)

    def segment(self, unit: "_Unit") -> tuple[str | float, str | float] | None:
        """The source (head, tail) that gives ``unit``'s direction: its own joints (or chain
        parameters), else a stand-in segment (:data:`_STAND_INS`); None if the source has none."""
        if not isinstance(unit.head, str):
            return unit.head, unit.tail
        for head, tail in ((unit.head, unit.tail),) + _STAND_INS.get(unit.slot, ()):
            if self.has(head) and self.has(tail):
                return head, tail
        return None

    def laterals(self) -> dict[str, np.ndarray]:
        hip = normalize(self("lhip") - self("rhip"))
        left, right = (
            ("lcla", "rcla") if self.has("lcla") and self.has("rcla") else ("lsho", "rsho")
        )
        shoulder = normalize(self(left) - self(right))
        head = shoulder
        for left, right in (("lear", "rear"), ("leye", "reye")):
            if self.has(left) and self.has(right):
                head = normalize(self(left) - self(right))
                break
        return {"hip": hip, "shoulder": shoulder, "head": head}


def leg_length(joints: Mapping[str, np.ndarray]) -> float:
    """Mean thigh + shin length (metres) of joints ``name -> (3,)`` or ``(T, 3)`` (median over T).

    The hip height of a standing person up to a constant (pelvis offset and ankle height), and
    unlike a rest-pose height it does not depend on how the rest pose holds the legs or feet.
    """
    lengths = []
    for side in "lr":
        hip, knee, ankle = (np.asarray(joints[side + n]) for n in ("hip", "kne", "ank"))
        length = np.linalg.norm(knee - hip, axis=-1) + np.linalg.norm(ankle - knee, axis=-1)
        lengths.append(np.median(length))
    return float(np.mean(lengths))


# ---------------------------------------------------------------------------------------------
# Rotations


def _blend_weight(size: np.ndarray, s0: float) -> np.ndarray:
    return np.clip(1.0 - size / s0, 0.0, 1.0)[..., None]


def _swing(parent: np.ndarray, rest_direction: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """``(T, 3, 3)`` rotation that carries the bone along with its parent, then swings it onto
    ``direction`` by the shortest arc (no twist of its own)."""
    carried = np.einsum("tij,j->ti", parent, rest_direction)
    return rotation_between(carried, direction) @ parent


def _from_frames(direction, hint, rest_direction, rest_hint) -> np.ndarray:
    now = frame_from_axes(direction, hint)
    rest = frame_from_axes(rest_direction, rest_hint)
    return now @ rest.T


class _Solver:
    def __init__(self, plan: _Plan, source: _Source, params: RetargetParams) -> None:
        self.plan, self.source, self.params = plan, source, params
        self.s0 = float(np.sin(np.radians(params.straight_limb_deg)))
        self.source_laterals = source.laterals()
        self.num_frames = source.joints.shape[0]
        self.hinge_hints: dict[str, np.ndarray] = {}

    def lateral(self, spec, rest: bool) -> np.ndarray:
        table = self.plan.laterals if rest else self.source_laterals
        return normalize(sum(w * table[name] for w, name in spec))

    def deltas(self) -> dict[int, np.ndarray]:
        deltas: dict[int, np.ndarray] = {}
        slot_delta: dict[str, np.ndarray] = {}
        for b in self.plan.order:
            unit = self.plan.unit_of.get(b)
            if unit is None:
                deltas[b] = self._inherited(b, deltas)
                continue
            key = unit.slot if unit.slot not in CHAIN_SLOTS else f"{unit.slot}:{b}"
            if key not in slot_delta:
                slot_delta[key] = self._unit_delta(unit, self._parent_delta(b, deltas))
            deltas[b] = slot_delta[key]
        return deltas

    def _parent_delta(self, b: int, deltas) -> np.ndarray:
        p = self.plan.rig.parents[b]
        return deltas[p] if p >= 0 else np.broadcast_to(np.eye(3), (self.num_frames, 3, 3))

    def _inherited(self, b: int, deltas) -> np.ndarray:
        rig = self.plan.rig
        followed = rig.follow[b]
        if followed >= 0:
            # Copy Transforms/Rotation (world): the bone's orientation becomes the followed one's.
            return deltas[followed] @ (rig.rotations[followed] @ rig.rotations[b].T)
        return self._parent_delta(b, deltas)

    def _unit_delta(self, unit: _Unit, parent: np.ndarray) -> np.ndarray:
        if unit.kind == "inherit":
            return np.array(parent)
        src = self.source
        segment = src.segment(unit)
        if segment is None:
            return np.array(parent)  # e.g. clavicles or hand points the source skeleton lacks
        head, tail = segment
        direction = src.point(unit.slot, tail) - src.point(unit.slot, head)
        rest_direction = unit.rest_direction
        known = self.plan.joints
        if (head, tail) != (unit.head, unit.tail) and head in known and tail in known:
            rest_direction = normalize(known[tail] - known[head])  # the stand-in's own rest
        if unit.kind == "frame":
            hint = self.lateral(unit.lateral, rest=False)
            rest_hint = self.lateral(unit.lateral, rest=True)
            return _from_frames(direction, hint, rest_direction, rest_hint)
        swing = _swing(parent, unit.rest_direction, direction)
        if unit.kind == "swing":
            return swing
        hint = self._hinge_hint(unit, swing)
        return _from_frames(direction, hint, unit.rest_direction, unit.rest_hint)

    def _hinge_hint(self, unit: _Unit, swing: np.ndarray) -> np.ndarray:
        side = unit.slot.split(".")[1].lower()
        key = f"{side}.{unit.hinge}"
        if key in self.hinge_hints:  # the lower bone of a pair shares the upper bone's axis
            return self.hinge_hints[key]
        names = [side + n for n in _HINGES[unit.hinge][2]]
        a, b, c = (self.source(n) for n in names)
        observed = np.cross(normalize(c - b), normalize(b - a))
        if unit.hinge == "knee" and self.source.has(side + "toe"):
            # A straight leg still shows its knee axis through the foot (ankles barely twist).
            foot = np.cross(normalize(c - a), normalize(self.source(side + "toe") - c))
            observed = observed + _blend_weight(np.linalg.norm(observed, axis=-1), self.s0) * foot
        reference = np.einsum("tij,j->ti", swing, unit.rest_hint)
        hint = filter_hinge(normalize(b - a), reference, observed, self.s0)
        self.hinge_hints[key] = hint
        return hint


def filter_hinge(
    direction: np.ndarray, reference: np.ndarray, observed: np.ndarray, s0: float
) -> np.ndarray:
    """Hinge axes ``(T, 3)`` of a limb, continuous in time.

    ``direction`` ``(T, 3)`` unit upper-bone directions; ``reference`` ``(T, 3)`` the axis the bone
    would have with no twist of its own (swing from its parent); ``observed`` ``(T, 3)`` the
    limb-plane normal (its length the sine of the bend, so it fades as the limb straightens).

    Where the bend is clear (observed length >= ``s0``) the axis is the observed one. Elsewhere the
    previous frame's axis is carried along with the bone (parallel transport: the minimal rotation
    between the two directions, i.e. no spin about the bone) and turned towards the observation in
    proportion to its length. A backward pass first brings the first clearly bent frame's axis to
    the start, so a clip that begins straight-armed takes the twist its arms show later. The
    reference only sets the start of a clip that is never bent; its own jumps (when the bone
    points opposite its rest direction) never reach the result.
    """
    g = normalize(reference - np.sum(reference * direction, -1, keepdims=True) * direction)
    b = np.cross(direction, g)
    confidence = np.clip(np.linalg.norm(observed, axis=-1) / s0, 0.0, 1.0)
    psi_observed = np.arctan2(np.sum(observed * b, -1), np.sum(observed * g, -1))
    # Angle of the previous frame's reference carried onto this frame, in this frame's basis.
    carry = rotation_between(direction[:-1], direction[1:])
    moved = np.einsum("tij,tj->ti", carry, g[:-1])
    step_forward = np.arctan2(np.sum(moved * b[1:], -1), np.sum(moved * g[1:], -1))
    back = np.einsum("tji,tj->ti", carry, g[1:])  # carried from t+1 back to t
    step_backward = np.arctan2(np.sum(back * b[:-1], -1), np.sum(back * g[:-1], -1))

    def run(observed: list, weight: list, steps: list, start: float) -> list:
        # Plain floats: this recursion is sequential, and numpy scalars would make it 10x slower.
        out, current, pi, tau = [], start, np.pi, 2 * np.pi
        for k, (seen, trust) in enumerate(zip(observed, weight, strict=True)):
            if k:
                current += steps[k - 1]
            current += trust * ((seen - current + pi) % tau - pi)
            out.append(current)
        return out

    observed_list, confidence_list = psi_observed.tolist(), confidence.tolist()
    backward = run(observed_list[::-1], confidence_list[::-1], step_backward[::-1].tolist(), 0.0)[
        ::-1
    ]
    forward = np.array(run(observed_list, confidence_list, step_forward.tolist(), backward[0]))
    return np.cos(forward)[:, None] * g + np.sin(forward)[:, None] * b


def _heads(plan: _Plan, deltas: dict[int, np.ndarray], num_frames: int) -> dict[int, np.ndarray]:
    """Posed heads ``(T, 3)`` of the evaluated bones, with the root bone at its rest position."""
    rig = plan.rig
    heads: dict[int, np.ndarray] = {}
    for b in plan.order:
        followed, p = rig.follow[b], rig.parents[b]
        if followed >= 0 and rig.follow_location[b]:
            heads[b] = heads[followed]
        elif p < 0 or p not in heads:
            heads[b] = np.broadcast_to(rig.heads[b], (num_frames, 3))
        else:
            heads[b] = heads[p] + np.einsum("tij,j->ti", deltas[p], rig.heads[b] - rig.heads[p])
    return heads


def posed_joints(plan: _Plan, deltas, heads) -> dict[str, np.ndarray]:
    """Canonical joints ``(T, 3)`` moved rigidly with the keyed bone each is attached to."""
    rig = plan.rig
    return {
        joint: heads[b] + np.einsum("tij,j->ti", deltas[b], plan.joints[joint] - rig.heads[b])
        for joint, b in plan.attach.items()
    }


def _root_targets(
    plan: _Plan, source: _Source, ratio: float, params: RetargetParams, origin: np.ndarray
) -> np.ndarray:
    """Where the target's pelvis joint should be ``(T, 3)``, armature space, before grounding."""
    pelvis = source("pelv")
    target = np.empty_like(pelvis)
    target[:, 2] = ratio * pelvis[:, 2]
    rest_xy = plan.joints["pelv"][:2]
    if params.root_motion == "camera":
        target[:, :2] = ratio * pelvis[:, :2] - origin[:2]
        target[:, 2] -= origin[2]
    elif params.root_motion == "relative":
        target[:, :2] = ratio * (pelvis[:, :2] - pelvis[0, :2]) + rest_xy
    else:
        target[:, :2] = rest_xy
    return target


def _lock_feet(plan, solver_deltas, joints, contacts, params, offset) -> np.ndarray:
    """Foot locking in place: updates thigh/shin deltas and the root offset; returns the frames
    (T, 2) where each foot was held. ``contacts`` is (T, 2) per foot (the ankle is held) or
    (T, 4) heel/toe channels in ``ik.CHANNELS`` order."""
    rig, lock = plan.rig, params.lock
    held = np.zeros((len(offset), 2), bool)
    goals, drops, legs = {}, [], []
    for s, side in enumerate(SIDES):
        p = side.lower()
        slots = (f"thigh.{side}", f"shin.{side}")
        if not all(slot in plan.rig_map.bones for slot in slots):
            continue
        if not all(p + j in joints for j in ("hip", "kne", "ank")):
            continue
        ankle = joints[p + "ank"]
        if contacts.shape[1] == 2:
            foot = ik_tools.foot_goals(ankle, None, contacts[:, s], None, lock)
        else:
            toe = joints.get(p + "toe")
            foot = ik_tools.foot_goals(ankle, toe, contacts[:, s], contacts[:, 2 + s], lock)
        goal, held[:, s] = foot.ankle, foot.held
        upper = float(np.linalg.norm(plan.joints[p + "kne"] - plan.joints[p + "hip"]))
        lower = float(np.linalg.norm(plan.joints[p + "ank"] - plan.joints[p + "kne"]))
        # The leg may reach as far as it did unlocked, and at least to the soft-reach limit.
        free = np.linalg.norm(ankle - joints[p + "hip"], axis=-1)
        reach = np.maximum(free, (upper + lower) * (1.0 - lock.soft_reach))
        drops.append(ik_tools.required_drop(joints[p + "hip"], goal, reach))
        goals[side] = (goal, free, foot)
        legs.append((side, p, upper, lower))
    if not legs:
        return held
    drop = ik_tools.smooth_drop(np.max(drops, axis=0), lock.root_smoothing_frames)
    offset[:, 2] -= drop
    for name in joints:
        joints[name] = joints[name] - drop[:, None] * np.array([0.0, 0.0, 1.0])
    for side, p, upper, lower in legs:
        hip, knee, ankle = joints[p + "hip"], joints[p + "kne"], joints[p + "ank"]
        goal, free, foot = goals[side]
        new_knee, new_ankle = ik_tools.two_bone_ik(
            hip, knee, goal, upper, lower, lock.soft_reach, free
        )
        turns = {
            f"thigh.{side}": rotation_between(knee - hip, new_knee - hip),
            f"shin.{side}": rotation_between(ankle - knee, new_ankle - new_knee),
        }
        if foot.toe is not None and f"foot.{side}" in plan.rig_map.bones and np.any(foot.orient):
            # Heel and toe planted: turn the foot (about its ankle) so the toe lands on its spot;
            # the foot is rigid, so its pitch is what puts the toe at the spot's distance.
            toe = joints[p + "toe"]
            length = np.linalg.norm(plan.joints[p + "toe"] - plan.joints[p + "ank"])
            aim = foot.toe - new_ankle
            across = np.linalg.norm(aim[:, :2], axis=-1)
            drop = np.sqrt(np.maximum(length**2 - across**2, 0.0))
            aim[:, 2] = np.where(toe[:, 2] < ankle[:, 2], -drop, drop)
            turn = rotation_between(toe - ankle, aim)
            turns[f"foot.{side}"] = _partial(turn, foot.orient)
        for slot, turn in turns.items():
            for name in plan.rig_map.bones[slot]:
                b = rig.index(name)
                solver_deltas[b] = turn @ solver_deltas[b]
    return held


def _partial(rotations: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``rotations`` ``(T, 3, 3)`` scaled to ``weights`` ``(T,)`` of their angle."""
    q = matrix_to_quaternion(rotations)
    half = np.arccos(np.clip(q[:, 0], -1.0, 1.0)) * weights
    axis = normalize(q[:, 1:])
    return quaternion_to_matrix(np.concatenate([np.cos(half)[:, None],
                                                np.sin(half)[:, None] * axis], 1))  # fmt: skip


def _propagate(plan: _Plan, deltas: dict[int, np.ndarray], num_frames: int) -> None:
    """Recompute the deltas of bones that only follow others, keyed toes included (after foot
    locking turned the legs and feet)."""
    rig = plan.rig
    eye = np.broadcast_to(np.eye(3), (num_frames, 3, 3))
    for b in plan.order:
        unit = plan.unit_of.get(b)
        if unit is not None and unit.kind != "inherit":
            continue
        followed, p = rig.follow[b], rig.parents[b]
        if followed >= 0:
            deltas[b] = deltas[followed] @ (rig.rotations[followed] @ rig.rotations[b].T)
        else:
            deltas[b] = deltas[p] if p >= 0 else eye


def _clamp(quaternions: np.ndarray, max_angle: float) -> np.ndarray:
    """Limit the rotation angle of quaternions ``(T, 4)`` (w >= 0 assumed) to ``max_angle`` rad."""
    q = np.where(quaternions[:, :1] < 0, -quaternions, quaternions)
    half = np.arccos(np.clip(q[:, 0], -1.0, 1.0))
    limit = 0.5 * max_angle
    over = half > limit
    axis = normalize(q[:, 1:])
    clamped = np.concatenate([np.cos(limit) * np.ones((len(q), 1)), np.sin(limit) * axis], 1)
    return np.where(over[:, None], clamped, q)


def _local_rotations(plan: _Plan, deltas, params: RetargetParams, num_frames: int):
    """Local quaternions ``(T, 4)`` per keyed bone, parents first; with joint limits on, each
    child aims at its target relative to its parent's *clamped* pose."""
    rig = plan.rig
    posed: dict[int, np.ndarray] = {}
    local: dict[int, np.ndarray] = {}
    eye = np.broadcast_to(np.eye(3), (num_frames, 3, 3))
    for b in plan.order:
        followed, p = rig.follow[b], rig.parents[b]
        if b not in plan.unit_of:
            if followed >= 0:
                posed[b] = posed[followed] @ (rig.rotations[followed] @ rig.rotations[b].T)
            else:
                posed[b] = posed[p] if p >= 0 else eye
            continue
        parent = posed[p] if p >= 0 else eye
        rest = rig.rotations[b]
        matrix = rest.T @ np.swapaxes(parent, -1, -2) @ deltas[b] @ rest
        q = matrix_to_quaternion(matrix)
        limit = (params.joint_limits or {}).get(plan.unit_of[b].slot.split(".")[0])
        if limit is not None:
            q = _clamp(q, np.radians(limit))
            posed[b] = parent @ rest @ quaternion_to_matrix(q) @ rest.T
        else:
            posed[b] = deltas[b]
        local[b] = make_continuous(q)
    return local, posed


def retarget(
    joints: np.ndarray,
    skeleton: Skeleton,
    rig: TargetRig,
    rig_map: RigMap,
    params: RetargetParams = RetargetParams(),
    contacts: np.ndarray | None = None,
    origin: np.ndarray | None = None,
) -> RetargetResult:
    """Solve a take: source ``joints`` ``(T, J, 3)`` world metres (Z up) onto ``rig``.

    Root motion is scaled by the target/source ratio of leg lengths (:func:`leg_length`, the
    hip-height ratio without the rest pose's feet in it). ``contacts`` ``(T, 2)`` bool per
    (left, right) foot, or ``(T, 4)`` heel/toe channels (``ik.CHANNELS``), enables foot locking; ``origin`` ``(3,)``
    is the armature object's world location (the object must have no rotation or scale).
    """
    origin = np.zeros(3) if origin is None else np.asarray(origin, float)
    plan = build_plan(rig, rig_map, params)
    source = _Source(np.asarray(joints, np.float64), skeleton)
    num_frames = len(joints)
    solver = _Solver(plan, source, params)
    deltas = solver.deltas()
    heads = _heads(plan, deltas, num_frames)
    joints_now = posed_joints(plan, deltas, heads)

    if not all(n in plan.joints for n in ("lkne", "rkne", "lank", "rank")):
        raise RetargetError("the rig map gives no knees and ankles, so the leg length is unknown")
    ratio = leg_length(plan.joints) / leg_length({n: source(n) for n in _LEGS})
    offset = _root_targets(plan, source, ratio, params, origin) - joints_now["pelv"]
    if params.reground:
        # In contact the lowest foot joint stands as high as it does in the rig's rest pose.
        feet = [joints_now[n][:, 2] for n in FOOT_JOINTS if n in joints_now]
        lowest = np.min(feet, axis=0) + offset[:, 2]
        rest_lowest = min(plan.joints[n][2] for n in FOOT_JOINTS if n in plan.joints)
        offset[:, 2] += rest_lowest - np.percentile(lowest, 5)
    joints_now = {name: value + offset for name, value in joints_now.items()}

    held = np.zeros((num_frames, 2), bool)
    if params.foot_lock and contacts is not None:
        contacts = np.asarray(contacts, bool)
        if contacts.ndim != 2 or contacts.shape[0] != num_frames or contacts.shape[1] not in (2, 4):
            raise RetargetError(
                f"contacts must be (T, 2) per foot or (T, 4) heel/toe channels with T = "
                f"{num_frames}, got {contacts.shape}"
            )
        held = _lock_feet(plan, deltas, joints_now, contacts, params, offset)
        _propagate(plan, deltas, num_frames)
        heads = _heads(plan, deltas, num_frames)
        joints_now = {k: v + offset for k, v in posed_joints(plan, deltas, heads).items()}

    local, posed = _local_rotations(plan, deltas, params, num_frames)
    if params.joint_limits:
        heads = _heads(plan, posed, num_frames)
        joints_now = {k: v + offset for k, v in posed_joints(plan, posed, heads).items()}
    keyed = [b for b in plan.order if b in plan.unit_of]
    root_rotation = rig.rotations[plan.root]
    location = offset @ root_rotation if rig.local_location[plan.root] else offset
    if plan.root not in plan.unit_of:
        keyed.insert(0, plan.root)
        local[plan.root] = np.tile([1.0, 0.0, 0.0, 0.0], (num_frames, 1))
    return RetargetResult(
        bone_names=[rig.names[b] for b in keyed],
        rotations=np.stack([local[b] for b in keyed], axis=1),
        root_bone=rig.names[plan.root],
        root_location=location,
        joints=joints_now,
        hip_ratio=ratio,
        locked=held,
        deltas={rig.names[b]: posed[b] for b in keyed},
    )


# ---------------------------------------------------------------------------------------------
# Quality measures on a solved take


def sign_flips(quaternions: np.ndarray) -> int:
    """Consecutive frames whose quaternions ``(T, ..., 4)`` have a negative dot product."""
    return int(np.sum(np.sum(quaternions[1:] * quaternions[:-1], axis=-1) < 0))


def twist_angles(quaternions: np.ndarray) -> np.ndarray:
    """Twist about the bone's own Y axis (radians) of local quaternions ``(..., 4)``."""
    return 2.0 * np.arctan2(quaternions[..., 2], quaternions[..., 0])


def twist_jumps(quaternions: np.ndarray, limit_deg: float = 90.0) -> int:
    """Frame-to-frame twist changes larger than ``limit_deg`` in quaternions ``(T, ..., 4)``."""
    twist = twist_angles(quaternions)
    step = np.angle(np.exp(1j * np.diff(twist, axis=0)))
    return int(np.sum(np.abs(step) > np.radians(limit_deg)))


def direction_errors_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angles (degrees) between direction vectors ``(..., 3)``."""
    cos = np.sum(normalize(a) * normalize(b), axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
