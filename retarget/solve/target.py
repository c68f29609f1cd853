"""The target side of the solve: a rig's rest pose (:class:`TargetRig`) and everything the solve
needs from the target alone (:func:`build_plan`): its rest joints, the rest frame of every keyed
bone, the order the bones are evaluated in, and which bone carries which joint.

Rest frames are built from the *target's own rest joints* (read off its rest bones through the rig
map), the same way the source frames are built from the motion (:mod:`retarget.solve.bone_frames`),
so T-pose, A-pose and any bone roll need no calibration. Pure numpy.
"""

from dataclasses import dataclass

import numpy as np

from .. import RetargetError
from ..rotations import normalize, rotation_between
from .params import RetargetParams
from .rigmaps import CHAIN_SLOTS, SIDES, RigMap

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
# Hinges: (upper slot, lower slot or None, (a, b, c) joints); the hinge axis is cross(c-b, b-a).
HINGES = {
    "elbow": ("upper_arm", "forearm", ("sho", "elb", "wri")),
    "knee": ("thigh", "shin", ("hip", "kne", "ank")),
    "ankle": ("foot", None, ("kne", "ank", "toe")),
}


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
    if "hips" in rig_map.bones and "bell" in joints:
        # A hips bone pointing down from the spine's start to the pelvis (Auto-Rig Pro's
        # c_root.x, some game rigs' pelvis): its tail is the pelvis.
        hips = rig.index(rig_map.anchor("hips")[-1])
        if np.linalg.norm(joints["pelv"] - joints["bell"]) < 1e-6 * max(
            1.0, float(np.linalg.norm(rig.tails[hips] - rig.heads[hips]))
        ):
            joints["pelv"] = rig.tails[hips]
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


def chain_point(points: np.ndarray, fractions: np.ndarray, u: float) -> np.ndarray:
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
class Unit:
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
class Plan:
    """Everything the solve needs from the target alone (:func:`build_plan`)."""

    rig: TargetRig
    rig_map: RigMap
    joints: dict[str, np.ndarray]  # target rest joints
    chains: dict[str, np.ndarray]  # target rest polylines (N, 3) per chain slot
    units: list[Unit]
    unit_of: dict[int, Unit]
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


def build_plan(
    rig: TargetRig,
    rig_map: RigMap,
    params: RetargetParams = RetargetParams(),  # noqa: B008 (frozen: shared safely)
) -> Plan:
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
        for name, (_upper, _lower, names) in HINGES.items():
            if all(p + n in joints for n in names):
                a, b, c = (joints[p + n] for n in names)
                hinge_rest[f"{p}.{name}"] = _rest_hinge(name, a, b, c, laterals, forward, s0)

    units: list[Unit] = []
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
    return Plan(rig, rig_map, joints, chains, units, unit_of, order, attach, laterals, forward,
                 hinge_rest, root)  # fmt: skip


def _chain_unit(slot: str, bone: int, u0: float, u1: float, points: np.ndarray) -> Unit:
    fractions = _fractions(points)
    direction = chain_point(points, fractions, u1) - chain_point(points, fractions, u0)
    if np.linalg.norm(direction) < 1e-9:
        return Unit(slot, [bone], "inherit", u0, u1)
    lower, upper = ("hip", "shoulder") if slot == "spine" else ("shoulder", "head")
    lateral = ((1.0 - u1, lower), (u1, upper))
    return Unit(slot, [bone], "frame", u0, u1, normalize(direction), None, lateral)


def _limb_unit(slot, ids, joints, hinge_rest, laterals, rig) -> Unit:
    head, tail = _slot_joints(slot)
    if tail not in joints or head not in joints or tail == head:
        return Unit(slot, ids, "inherit", head, None)
    direction = joints[tail] - joints[head]
    if np.linalg.norm(direction) < 1e-9 or tail.endswith("toe_end"):
        return Unit(slot, ids, "inherit", head, None)
    direction = normalize(direction)
    if slot == "hips":
        return Unit(slot, ids, "frame", head, tail, direction, None, ((1.0, "hip"),))
    if slot == "head":
        return Unit(slot, ids, "frame", head, tail, direction, None, ((1.0, "head"),))
    base, side = slot.split(".")
    for name, (upper, lower, _names) in HINGES.items():
        if base in (upper, lower) and f"{side.lower()}.{name}" in hinge_rest:
            rest = hinge_rest[f"{side.lower()}.{name}"]
            return Unit(slot, ids, "hinge", head, tail, direction, rest, None, name)
    return Unit(slot, ids, "swing", head, tail, direction)


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
    by_slot: dict[str, list[Unit]] = {}
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
