"""Joint positions -> bone rotations of any humanoid armature: :func:`retarget` runs the solve's
steps in order (docs/design.md §6).

1. the plan, from the target alone (:mod:`retarget.solve.target`);
2. the armature-space rotation of every keyed bone from the source motion
   (:mod:`retarget.solve.source`, :mod:`retarget.solve.bone_frames`);
3. the root: the motion scaled by the ratio of leg lengths and re-grounded on the rig's feet;
4. feet locked during contacts (:mod:`retarget.solve.footlock`), then kept above the floor
   (:mod:`retarget.solve.grounding`);
5. the local keys of the keyed bones (:mod:`retarget.solve.output`): with the bone's rest rotation
   ``r`` (``bone.matrix_local``, roll included) ``q_local = r⁻¹ · delta_parent⁻¹ · delta · r``.

The user's rig is never edited. Pure numpy.
"""

from dataclasses import dataclass, field

import numpy as np

from .. import RetargetError
from ..frames import FOOT_JOINTS
from ..skeletons import Skeleton
from .bone_frames import Solver
from .footlock import lock_feet
from .grounding import floor_heights, ground_feet
from .hands import finger_keys
from .output import bone_heads, local_rotations, posed_joints, propagate
from .params import RetargetParams
from .rigmaps import RigMap
from .source import Source, leg_length
from .target import Plan, TargetRig, build_plan
from .transforms import ObjectTransform, location_to_armature, rig_in_world, translation

_LEGS = tuple(side + joint for side in "lr" for joint in ("hip", "kne", "ank"))


@dataclass
class RetargetResult:
    """A solved take: ``rotations`` ``(T, K, 4)`` local quaternions (w, x, y, z) of ``bone_names``;
    ``root_location`` ``(T, 3)`` the pose-bone location of ``root_bone`` (armature units);
    ``joints`` maps canonical joint names to posed positions ``(T, 3)`` in the frame the solve ran
    in (the world, metres; armature space for an identity transform), after foot locking;
    ``hip_ratio`` target/source hip height; ``locked`` the frames ``(T, 2)`` held per foot;
    ``deltas`` the change from rest ``(T, 3, 3)`` of each keyed bone in that frame; ``transform``
    the armature's object transform the solve ran through."""

    bone_names: list[str]
    rotations: np.ndarray
    root_bone: str
    root_location: np.ndarray
    joints: dict[str, np.ndarray]
    hip_ratio: float
    locked: np.ndarray
    deltas: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    transform: ObjectTransform = field(repr=False, default_factory=lambda: translation((0, 0, 0)))


def _root_targets(plan: Plan, source: Source, ratio: float, params: RetargetParams) -> np.ndarray:
    """Where the target's pelvis joint should be ``(T, 3)``, world frame, before grounding."""
    pelvis = source("pelv")
    target = np.empty_like(pelvis)
    target[:, 2] = ratio * pelvis[:, 2]
    rest_xy = plan.joints["pelv"][:2]
    if params.root_motion == "camera":
        target[:, :2] = ratio * pelvis[:, :2]
    elif params.root_motion == "relative":
        target[:, :2] = ratio * (pelvis[:, :2] - pelvis[0, :2]) + rest_xy
    else:
        target[:, :2] = rest_xy
    return target


def _joints_at(plan: Plan, deltas: dict[int, np.ndarray], offset: np.ndarray):
    """The joints posed by the armature-space ``deltas`` of every bone, moved by the root
    ``offset`` ``(T, 3)``."""
    heads = bone_heads(plan, deltas, len(offset))
    return {k: v + offset for k, v in posed_joints(plan, deltas, heads).items()}


def retarget(
    joints: np.ndarray,
    skeleton: Skeleton,
    rig: TargetRig,
    rig_map: RigMap,
    params: RetargetParams = RetargetParams(),  # noqa: B008 (frozen: shared safely)
    contacts: np.ndarray | None = None,
    origin: np.ndarray | None = None,
    floor: "dict[str, float] | None" = None,
    transform: ObjectTransform | None = None,
) -> RetargetResult:
    """Solve a take: source ``joints`` ``(T, J, 3)`` world metres (Z up) onto ``rig``.

    Root motion is scaled by the target/source ratio of leg lengths (:func:`leg_length`, the
    hip-height ratio without the rest pose's feet in it). ``contacts`` ``(T, 2)`` bool per
    (left, right) foot, or ``(T, 4)`` heel/toe channels (:data:`~retarget.frames.FOOT_JOINTS`),
    enables foot locking. ``transform`` is the armature object's world transform
    (:func:`~retarget.solve.transforms.from_matrix` of its ``matrix_world``: any rotation, one
    positive scale, a translation); ``origin`` ``(3,)`` is the short form for an object that is
    only moved. The solve runs in the world frame (:mod:`retarget.solve.transforms`); the local
    rotations do not depend on the transform, the root location comes back in armature units.
    With ``params.grounded`` feet are kept above the floor: without re-grounding ``floor`` gives
    the foot joints' flat-foot heights (metres above the world's z = 0, the cleaning's
    ``contact_clearance``); otherwise where the feet stand in the take (``floor_heights``)
    (:mod:`retarget.solve.grounding`).
    """
    if transform is None:
        transform = translation(np.zeros(3) if origin is None else origin)
    armature_rig = rig
    rig = rig_in_world(rig, transform)
    plan = build_plan(rig, rig_map, params)
    source = Source(np.asarray(joints, np.float64), skeleton)
    num_frames = len(joints)
    solver = Solver(plan, source, params)
    deltas = solver.deltas()
    heads = bone_heads(plan, deltas, num_frames)
    joints_now = posed_joints(plan, deltas, heads)

    if not all(n in plan.joints for n in ("lkne", "rkne", "lank", "rank")):
        raise RetargetError("the rig map gives no knees and ankles, so the leg length is unknown")
    ratio = leg_length(plan.joints) / leg_length({n: source(n) for n in _LEGS})
    offset = _root_targets(plan, source, ratio, params) - joints_now["pelv"]
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
        held = lock_feet(plan, deltas, joints_now, contacts, params.lock, offset)
        propagate(plan, deltas, num_frames)
        joints_now = _joints_at(plan, deltas, offset)
    if params.grounded:
        heights = floor_heights(joints_now, None if params.reground else floor)
        if ground_feet(plan, deltas, joints_now, heights, params.lock).any():
            propagate(plan, deltas, num_frames)
            joints_now = _joints_at(plan, deltas, offset)

    local, posed = local_rotations(plan, deltas, params, num_frames)
    if params.joint_limits:
        joints_now = _joints_at(plan, posed, offset)
    keyed = [b for b in plan.order if b in plan.unit_of]
    fingers = finger_keys(plan, source)  # a coarse curl where the hand's opening is measurable
    local.update(fingers)
    keyed += list(fingers)
    location = location_to_armature(
        offset, transform, armature_rig.rotations[plan.root], rig.local_location[plan.root]
    )
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
        deltas={rig.names[b]: posed[b] for b in keyed if b not in fingers},
        transform=transform,
    )
