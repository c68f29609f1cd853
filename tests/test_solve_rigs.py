"""Test rigs for the retarget tests and benchmark, built from data (no bpy): the generated rig's
layout, a Mixamo-like rig (other proportions, random roll, ``mixamorig:`` prefix), an Unreal-like
rig with 5 spine bones and twist bones, a Blender-metarig A-pose rig with bent elbows and knees,
and a Rigify-like FK control rig (ORG bones following the FK or IK chain through constraints).
Also ground-truth motions beyond the gait generator. The tests at the bottom check the builders.

All rigs face -Y with the character's left on +X (Blender's front view), feet on z = 0.
"""

from dataclasses import dataclass, field

import numpy as np

from inference.training.synth.motion import SKELETON, forward_kinematics, generate_motion, rest_pose
from retarget.rotations import normalize, quaternion_to_matrix
from retarget.solve.target import TargetRig, bone_rest_matrix

FACE_BLENDER_FRONT = np.diag([-1.0, -1.0, 1.0])  # the generator faces +Y; rigs face -Y
UP = np.array([0.0, 0.0, 1.0])
FORWARD = np.array([0.0, -1.0, 0.0])


@dataclass
class RigSpec:
    """Edit-bone data of a test rig plus its constraints and custom properties.

    ``bones``: (name, parent, head, tail, roll) parents first; ``constraints``: (bone, type,
    subtarget, driven_by, influence, space) where ``driven_by`` is None or (bone, property) for an
    influence of 1 - value, and space "WORLD" or "LOCAL" (owner and target);
    ``properties``: bone -> {name: value} custom properties on pose bones.
    """

    name: str
    bones: list[tuple[str, str | None, np.ndarray, np.ndarray, float]]
    constraints: list[tuple] = field(default_factory=list)
    properties: dict[str, dict[str, float]] = field(default_factory=dict)
    joints: dict[str, np.ndarray] = field(default_factory=dict)  # canonical rest joints

    @property
    def names(self) -> list[str]:
        return [b[0] for b in self.bones]

    def target_rig(self, property_values: dict | None = None) -> TargetRig:
        """The numpy rig, with constraint follows resolved as Blender would evaluate them given
        ``property_values`` (bone -> {prop: value}, defaults to ``properties``)."""
        values = {b: dict(p) for b, p in self.properties.items()}
        for bone, props in (property_values or {}).items():
            values.setdefault(bone, {}).update(props)
        rig = TargetRig.from_bones(
            self.names,
            [b[1] for b in self.bones],
            np.array([b[2] for b in self.bones]),
            np.array([b[3] for b in self.bones]),
            np.array([b[4] for b in self.bones]),
        )
        follow = [-1] * len(self.bones)
        location = [False] * len(self.bones)
        for bone, kind, subtarget, driven, influence, space in self.constraints:
            if driven is not None:
                influence = 1.0 - values[driven[0]][driven[1]]
            if influence > 0.999 and space == "WORLD":
                follow[rig.index(bone)] = rig.index(subtarget)
                location[rig.index(bone)] = kind == "COPY_TRANSFORMS"
        return TargetRig(
            rig.names, rig.parents, rig.heads, rig.tails, rig.rotations, tuple(follow),
            tuple(location),
        )  # fmt: skip


def canonical_rest(
    height: float = 1.75,
    arms: float = 1.0,
    legs: float = 1.0,
    torso: float = 1.0,
    a_pose_deg: float = 0.0,
    elbow_bend_deg: float = 0.0,
    knee_bend_deg: float = 0.0,
) -> dict[str, np.ndarray]:
    """Rest joints (name -> (3,)) of the gait generator's person, facing -Y, with limb/torso
    lengths scaled, the arms lowered by ``a_pose_deg`` and optional rest bends."""
    rest = rest_pose(height) @ FACE_BLENDER_FRONT.T
    names = SKELETON.joint_names
    groups = {
        "kne": legs, "ank": legs, "toe": legs, "elb": arms, "wri": arms, "han": arms,
        "sho": arms, "bell": torso, "spin": torso, "thor": torso, "neck": torso, "head": torso,
    }  # fmt: skip
    out = np.array(rest)
    for j, parent in enumerate(SKELETON.parents):
        if parent < 0:
            continue
        name = names[j]
        scale = groups.get(name, groups.get(name[1:], 1.0))
        out[j] = out[parent] + scale * (rest[j] - rest[parent])
    joints = {name: out[j] for j, name in enumerate(names)}
    for side, sign in (("l", 1.0), ("r", -1.0)):
        pivot = joints[side + "sho"]
        down = _axis_rotation(np.array([0.0, 1.0, 0.0]), sign * np.radians(a_pose_deg))
        for name in ("elb", "wri", "han"):
            joints[side + name] = pivot + down @ (joints[side + name] - pivot)
        if elbow_bend_deg:
            # Anatomical flexion: the forearm turns forward about the elbow's hinge.
            hinge = normalize(np.cross(FORWARD, joints[side + "elb"] - pivot))
            bend = _axis_rotation(hinge, np.radians(elbow_bend_deg))
            elbow = joints[side + "elb"]
            for name in ("wri", "han"):
                joints[side + name] = elbow + bend @ (joints[side + name] - elbow)
        if knee_bend_deg:
            knee, hip = joints[side + "kne"], joints[side + "hip"]
            forward = _axis_rotation(np.array([1.0, 0.0, 0.0]), np.radians(knee_bend_deg / 2))
            joints[side + "kne"] = hip + forward @ (knee - hip)
            shift = joints[side + "kne"] - knee
            for name in ("ank", "toe"):
                joints[side + name] = joints[side + name] + shift
    lowest = min(joints[n][2] for n in ("lank", "rank", "ltoe", "rtoe"))
    for name in joints:
        joints[name] = joints[name] - np.array([0.0, 0.0, lowest - 0.02 * height / 1.75])
    return joints


def _axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    half = 0.5 * angle
    return quaternion_to_matrix(np.concatenate([[np.cos(half)], np.sin(half) * normalize(axis)]))


def _spine_points(joints, count: int) -> np.ndarray:
    points = np.array([joints[n] for n in ("bell", "spin", "thor", "neck")])
    lengths = np.linalg.norm(np.diff(points, axis=0), axis=-1)
    cumulative = np.concatenate([[0.0], np.cumsum(lengths)]) / lengths.sum()
    out = []
    for u in np.linspace(0.0, 1.0, count + 1):
        k = min(np.searchsorted(cumulative, u, side="right") - 1, 2)
        t = (u - cumulative[k]) / (cumulative[k + 1] - cumulative[k])
        out.append(points[k] + t * (points[k + 1] - points[k]))
    return np.array(out)


def _toe_end(joints, side: str) -> np.ndarray:
    toe = joints[side + "toe"]
    flat = normalize((toe - joints[side + "ank"]) * np.array([1.0, 1.0, 0.0]))
    return np.array([*(toe[:2] + 0.06 * flat[:2]), 0.0])


def _rolls(rng: np.random.Generator | None, count: int) -> np.ndarray:
    return np.zeros(count) if rng is None else rng.uniform(-np.pi, np.pi, count)


def _with_rolls(bones, rng):
    rolls = _rolls(rng, len(bones))
    return [(n, p, np.asarray(h, float), np.asarray(t, float), float(r))
            for (n, p, h, t), r in zip(bones, rolls, strict=True)]  # fmt: skip


def mixamo_like(joints, spine_count: int = 3, prefix: str = "mixamorig:", rng=None) -> RigSpec:
    """Mixamo names and layout: Hips points up to Spine; leaf ``*_End`` bones; finger bones."""
    j = joints
    spine = _spine_points(j, spine_count)
    spine_names = ["Spine"] + [f"Spine{k}" for k in range(1, spine_count)]
    bones = [("Hips", None, j["pelv"], spine[0])]
    parent = "Hips"
    for k, name in enumerate(spine_names):
        bones.append((name, parent, spine[k], spine[k + 1]))
        parent = name
    chest = parent
    bones += [("Neck", chest, j["neck"], j["head"]), ("Head", "Neck", j["head"], j["htop"]),
              ("HeadTop_End", "Head", j["htop"], j["htop"] + 0.05 * UP)]  # fmt: skip
    for side, s in (("Left", "l"), ("Right", "r")):
        hand_dir = normalize(j[s + "han"] - j[s + "wri"])
        bones += [
            (f"{side}Shoulder", chest, j[s + "cla"], j[s + "sho"]),
            (f"{side}Arm", f"{side}Shoulder", j[s + "sho"], j[s + "elb"]),
            (f"{side}ForeArm", f"{side}Arm", j[s + "elb"], j[s + "wri"]),
            (f"{side}Hand", f"{side}ForeArm", j[s + "wri"], j[s + "han"]),
            (f"{side}HandIndex1", f"{side}Hand", j[s + "han"], j[s + "han"] + 0.03 * hand_dir),
            (f"{side}UpLeg", "Hips", j[s + "hip"], j[s + "kne"]),
            (f"{side}Leg", f"{side}UpLeg", j[s + "kne"], j[s + "ank"]),
            (f"{side}Foot", f"{side}Leg", j[s + "ank"], j[s + "toe"]),
            (f"{side}ToeBase", f"{side}Foot", j[s + "toe"], _toe_end(j, s)),
            (f"{side}Toe_End", f"{side}ToeBase", _toe_end(j, s), _toe_end(j, s) + 0.02 * FORWARD),
        ]
    bones = [(prefix + n, prefix + p if p else None, h, t) for n, p, h, t in bones]
    return RigSpec("mixamo", _with_rolls(bones, rng), joints=j)


def unreal_like(joints, spine_count: int = 5, rng=None) -> RigSpec:
    """Unreal-mannequin names: a root bone at the origin, ``spine_01..05``, twist bones."""
    j = joints
    spine = _spine_points(j, spine_count)
    bones = [("root", None, np.zeros(3), 0.1 * FORWARD), ("pelvis", "root", j["pelv"], spine[0])]
    parent = "pelvis"
    for k in range(spine_count):
        bones.append((f"spine_{k + 1:02d}", parent, spine[k], spine[k + 1]))
        parent = f"spine_{k + 1:02d}"
    chest = parent
    bones += [("neck_01", chest, j["neck"], j["head"]), ("head", "neck_01", j["head"], j["htop"])]
    for s in ("l", "r"):
        mid_upper = 0.5 * (j[s + "sho"] + j[s + "elb"])
        bones += [
            (f"clavicle_{s}", chest, j[s + "cla"], j[s + "sho"]),
            (f"upperarm_{s}", f"clavicle_{s}", j[s + "sho"], j[s + "elb"]),
            (f"upperarm_twist_01_{s}", f"upperarm_{s}", mid_upper, j[s + "elb"]),
            (f"lowerarm_{s}", f"upperarm_{s}", j[s + "elb"], j[s + "wri"]),
            (f"hand_{s}", f"lowerarm_{s}", j[s + "wri"], j[s + "han"]),
            (f"thigh_{s}", "pelvis", j[s + "hip"], j[s + "kne"]),
            (f"calf_{s}", f"thigh_{s}", j[s + "kne"], j[s + "ank"]),
            (f"foot_{s}", f"calf_{s}", j[s + "ank"], j[s + "toe"]),
            (f"ball_{s}", f"foot_{s}", j[s + "toe"], _toe_end(j, s)),
        ]
    return RigSpec("unreal", _with_rolls(bones, rng), joints=j)


def metarig_like(joints, rng=None) -> RigSpec:
    """Blender's human metarig names: ``spine`` .. ``spine.006`` (3 spine, 2 neck), ``.L/.R``
    limbs, heel and pelvis bones that stay unmapped."""
    j = joints
    spine = _spine_points(j, 3)
    mid_neck = 0.5 * (j["neck"] + j["head"])
    bones = [("spine", None, j["pelv"], spine[0])]
    names = ["spine.001", "spine.002", "spine.003"]
    parent = "spine"
    for k, name in enumerate(names):
        bones.append((name, parent, spine[k], spine[k + 1]))
        parent = name
    bones += [
        ("spine.004", "spine.003", j["neck"], mid_neck),
        ("spine.005", "spine.004", mid_neck, j["head"]),
        ("spine.006", "spine.005", j["head"], j["htop"]),
    ]
    for side, s in (("L", "l"), ("R", "r")):
        heel = np.array([j[s + "ank"][0], j[s + "ank"][1] + 0.05, 0.0])
        bones += [
            (f"pelvis.{side}", "spine", j["pelv"], j[s + "hip"] + 0.1 * UP),
            (f"shoulder.{side}", "spine.003", j[s + "cla"], j[s + "sho"]),
            (f"upper_arm.{side}", f"shoulder.{side}", j[s + "sho"], j[s + "elb"]),
            (f"forearm.{side}", f"upper_arm.{side}", j[s + "elb"], j[s + "wri"]),
            (f"hand.{side}", f"forearm.{side}", j[s + "wri"], j[s + "han"]),
            (f"thigh.{side}", "spine", j[s + "hip"], j[s + "kne"]),
            (f"shin.{side}", f"thigh.{side}", j[s + "kne"], j[s + "ank"]),
            (f"foot.{side}", f"shin.{side}", j[s + "ank"], j[s + "toe"]),
            (f"toe.{side}", f"foot.{side}", j[s + "toe"], _toe_end(j, s)),
            (f"heel.02.{side}", f"foot.{side}", heel, heel + np.array([0.08, 0.0, 0.0])),
        ]
    return RigSpec("metarig", _with_rolls(bones, rng), joints=j)


def rigify_like(joints, rng=None) -> RigSpec:
    """A control rig shaped like a generated Rigify rig (bone names, parents and constraint set-up
    of Rigify 0.6 as bundled with Blender 4.2-5.0, simplified):

    - ``torso`` (pivot at spine.002, pointing back) with ``hips`` and ``chest``; the FK spine
      ``spine_fk.00N`` hangs from MCH bones that copy half of the chest's *local* rotation each;
      ORG spine bones hang from tweak bones under the FK spine;
    - ``neck``/``head`` under MCH-ROT bones that copy the torso's world rotation with influence
      1 - ``neck_follow``/``head_follow`` (drivers), ORG-spine.006 copying ``head``;
    - FK limb controls under MCH parents, IK controls, ORG limb bones copying the FK chain and
      then the IK chain with influence 1 - IK_FK (drivers); IK_FK = 0 (IK) on the ``*_parent``
      property bones, as a freshly generated rig has it.
    """
    meta = metarig_like(joints, rng=None)
    rest = {name: (head, tail) for name, _p, head, tail, _r in meta.bones}
    rolls = iter(_rolls(rng, 300))
    bones = [("root", None, np.zeros(3), 0.3 * FORWARD, 0.0)]
    constraints: list = []
    properties = {"torso": {"neck_follow": 0.5, "head_follow": 0.0}}

    def add(name, parent, head, tail):
        bones.append((name, parent, np.asarray(head, float), np.asarray(tail, float), next(rolls)))

    def copy(bone, kind, subtarget, driven=None, influence=1.0, space="WORLD"):
        constraints.append((bone, kind, subtarget, driven, influence, space))

    pivot = rest["spine.002"][0]
    add("MCH-torso.parent", "root", pivot, pivot - 0.2 * FORWARD)
    add("torso", "MCH-torso.parent", pivot, pivot - 0.25 * FORWARD)
    add("hips", "torso", pivot, rest["spine"][0])
    add("chest", "torso", pivot, rest["spine.004"][0])
    previous = {"hips": "torso", "chest": "torso"}
    for name, control in (("spine.001", "hips"), ("spine", "hips"), ("spine.002", "chest"),
                          ("spine.003", "chest")):  # fmt: skip
        number = name.partition(".")[2]
        fk = "spine_fk" + ("." + number if number else "")
        add(f"MCH-{name}", previous[control], *rest[name])
        copy(f"MCH-{name}", "COPY_TRANSFORMS", control, influence=0.5, space="LOCAL")
        add(fk, f"MCH-{name}", *rest[name])
        tweak = "tweak_" + name.replace(".", "_").replace("spine_", "spine.")
        add(tweak, fk, *_short(*rest[name]))
        add(f"ORG-{name}", tweak, *rest[name])
        previous[control] = fk
    add("MCH-ROT-neck", "spine_fk.003", *rest["spine.004"])
    copy("MCH-ROT-neck", "COPY_ROTATION", "torso", driven=("torso", "neck_follow"))
    add("neck", "MCH-ROT-neck", *rest["spine.004"])
    add("tweak_spine.004", "neck", *_short(*rest["spine.004"]))
    add("ORG-spine.004", "spine_fk.003", *rest["spine.004"])
    copy("ORG-spine.004", "COPY_TRANSFORMS", "tweak_spine.004")
    add("MCH-ROT-head", "neck", *rest["spine.006"])
    copy("MCH-ROT-head", "COPY_ROTATION", "torso", driven=("torso", "head_follow"))
    add("head", "MCH-ROT-head", *rest["spine.006"])
    add("ORG-spine.005", "ORG-spine.004", *rest["spine.005"])
    add("ORG-spine.006", "ORG-spine.005", *rest["spine.006"])
    copy("ORG-spine.006", "COPY_TRANSFORMS", "head")
    for side in ("L", "R"):
        add(f"shoulder.{side}", "ORG-spine.003", *rest[f"shoulder.{side}"])
        add(f"ORG-shoulder.{side}", "ORG-spine.003", *rest[f"shoulder.{side}"])
        copy(f"ORG-shoulder.{side}", "COPY_TRANSFORMS", f"shoulder.{side}")
        for limb, top, parent_org in (
            (("upper_arm", "forearm", "hand"), "upper_arm", f"ORG-shoulder.{side}"),
            (("thigh", "shin", "foot", "toe"), "thigh", "ORG-spine"),
        ):
            prop_bone = f"{top}_parent.{side}"
            add(prop_bone, parent_org, rest[f"{top}.{side}"][0],
                rest[f"{top}.{side}"][0] + 0.05 * UP)  # fmt: skip
            properties[prop_bone] = {"IK_FK": 0.0, "FK_limb_follow": 0.0}
            add(f"MCH-{top}_parent.{side}", parent_org, *rest[f"{top}.{side}"])
            copy(f"MCH-{top}_parent.{side}", "COPY_ROTATION", "root",
                 driven=(prop_bone, "FK_limb_follow"))  # fmt: skip
            fk_parent = ik_parent = f"MCH-{top}_parent.{side}"
            org_parent = parent_org
            for k, part in enumerate(limb):
                head, tail = rest[f"{part}.{side}"]
                fk = f"{part}_fk.{side}"
                if k >= 2:  # hands, feet and toes hang from an MCH bone, like Rigify's
                    add(f"MCH-{fk}", fk_parent, head, tail)
                    fk_parent = f"MCH-{fk}"
                add(fk, fk_parent, head, tail)
                add(f"{part}_ik.{side}", ik_parent, head, tail)
                add(f"ORG-{part}.{side}", org_parent, head, tail)
                copy(f"ORG-{part}.{side}", "COPY_TRANSFORMS", fk)
                copy(f"ORG-{part}.{side}", "COPY_TRANSFORMS", f"{part}_ik.{side}",
                     driven=(prop_bone, "IK_FK"))  # fmt: skip
                fk_parent, ik_parent, org_parent = fk, f"{part}_ik.{side}", f"ORG-{part}.{side}"
    return RigSpec("rigify", bones, constraints, properties, joints=joints)


def autorigpro_like(joints, spine_count: int = 3, rng=None) -> RigSpec:
    """A rig named like one Auto-Rig Pro generates (its public bone names only: ``c_`` controls,
    ``.x`` centre and ``.l``/``.r`` side suffixes; none of its code), simplified:

    - controls ``c_pos`` > ``c_traj`` > ``c_root_master.x`` (the hips) > ``c_root.x`` (the
      pelvis, carrying the thighs through ``c_thigh_b``) and ``c_spine_01.x`` ..
      ``c_spine_0N.x`` > ``c_neck.x`` > ``c_head.x``; FK limbs ``c_shoulder``, ``c_arm_fk``,
      ``c_forearm_fk``, ``c_hand_fk``, ``c_thigh_fk``, ``c_leg_fk``, ``c_foot_fk``, ``c_toes_fk``;
    - IK controls ``c_hand_ik``, ``c_foot_ik`` (under ``c_traj``, carrying the ``ik_fk_switch``
      property, 0 = IK as a new rig has it) with an IK chain ``c_arm_ik``/``c_forearm_ik``,
      ``c_thigh_ik``/``c_leg_ik`` and poles ``c_arms_pole``, ``c_leg_pole``;
    - deform bones in a hierarchy of their own (``root.x``, ``spine_01.x``, ``arm_stretch``,
      ``forearm_stretch``, ``hand``, ``thigh_stretch``, ``leg_stretch``, ``foot``, ``toes_01``
      ...) copying the FK controls, and the IK chain with influence 1 - ``ik_fk_switch``.
    """
    j = joints
    spine = _spine_points(j, spine_count)
    rolls = iter(_rolls(rng, 300))
    bones, constraints = [], []
    properties = {}

    def add(name, parent, head, tail):
        bones.append((name, parent, np.asarray(head, float), np.asarray(tail, float), next(rolls)))

    ground = np.array([j["pelv"][0], j["pelv"][1], 0.0])
    add("c_pos", None, ground, ground + 0.3 * FORWARD)
    add("c_traj", "c_pos", ground, ground + 0.25 * FORWARD)
    add("c_root_master.x", "c_traj", j["pelv"], j["pelv"] + 0.15 * FORWARD)
    add("c_root.x", "c_root_master.x", spine[0], j["pelv"])  # points down to the pelvis
    deform = [("root.x", None, spine[0], j["pelv"], "c_root.x")]
    parent, deform_parent = "c_root_master.x", "root.x"
    for k in range(spine_count):
        name = f"spine_{k + 1:02d}.x"
        add("c_" + name, parent, spine[k], spine[k + 1])
        deform.append((name, deform_parent, spine[k], spine[k + 1], "c_" + name))
        parent, deform_parent = "c_" + name, name
    chest, deform_chest = parent, deform_parent
    add("c_neck.x", chest, j["neck"], j["head"])
    add("c_head.x", "c_neck.x", j["head"], j["htop"])
    deform += [("neck.x", deform_chest, j["neck"], j["head"], "c_neck.x"),
               ("head.x", "neck.x", j["head"], j["htop"], "c_head.x")]  # fmt: skip
    for s in ("l", "r"):
        switch = {"ik_fk_switch": 0.0}
        add(f"c_shoulder.{s}", chest, j[s + "cla"], j[s + "sho"])
        add(f"c_arm_fk.{s}", f"c_shoulder.{s}", j[s + "sho"], j[s + "elb"])
        add(f"c_forearm_fk.{s}", f"c_arm_fk.{s}", j[s + "elb"], j[s + "wri"])
        add(f"c_hand_fk.{s}", f"c_forearm_fk.{s}", j[s + "wri"], j[s + "han"])
        add(f"c_arm_ik.{s}", f"c_shoulder.{s}", j[s + "sho"], j[s + "elb"])
        add(f"c_forearm_ik.{s}", f"c_arm_ik.{s}", j[s + "elb"], j[s + "wri"])
        add(f"c_hand_ik.{s}", "c_traj", j[s + "wri"], j[s + "han"])
        add(f"c_arms_pole.{s}", "c_traj", j[s + "elb"] + 0.4 * (-FORWARD),
            j[s + "elb"] + 0.45 * (-FORWARD))  # fmt: skip
        hip_top = j[s + "hip"] + 0.08 * UP
        add(f"c_thigh_b.{s}", "c_root.x", hip_top, j[s + "hip"])
        add(f"c_thigh_fk.{s}", f"c_thigh_b.{s}", j[s + "hip"], j[s + "kne"])
        add(f"c_leg_fk.{s}", f"c_thigh_fk.{s}", j[s + "kne"], j[s + "ank"])
        add(f"c_foot_fk.{s}", f"c_leg_fk.{s}", j[s + "ank"], j[s + "toe"])
        add(f"c_toes_fk.{s}", f"c_foot_fk.{s}", j[s + "toe"], _toe_end(j, s))
        add(f"c_thigh_ik.{s}", f"c_thigh_b.{s}", j[s + "hip"], j[s + "kne"])
        add(f"c_leg_ik.{s}", f"c_thigh_ik.{s}", j[s + "kne"], j[s + "ank"])
        add(f"c_foot_ik.{s}", "c_traj", j[s + "ank"], j[s + "toe"])
        add(
            f"c_leg_pole.{s}", "c_traj", j[s + "kne"] + 0.5 * FORWARD, j[s + "kne"] + 0.55 * FORWARD
        )
        properties[f"c_hand_ik.{s}"] = dict(switch)
        properties[f"c_foot_ik.{s}"] = dict(switch)
        for name, dparent, head, tail, fk, ik, prop in (
            (f"shoulder.{s}", deform_chest, j[s + "cla"], j[s + "sho"], f"c_shoulder.{s}", None, None),
            (f"arm_stretch.{s}", f"shoulder.{s}", j[s + "sho"], j[s + "elb"], f"c_arm_fk.{s}",
             f"c_arm_ik.{s}", f"c_hand_ik.{s}"),
            (f"forearm_stretch.{s}", f"arm_stretch.{s}", j[s + "elb"], j[s + "wri"],
             f"c_forearm_fk.{s}", f"c_forearm_ik.{s}", f"c_hand_ik.{s}"),
            (f"hand.{s}", f"forearm_stretch.{s}", j[s + "wri"], j[s + "han"], f"c_hand_fk.{s}",
             f"c_hand_ik.{s}", f"c_hand_ik.{s}"),
            (f"thigh_stretch.{s}", "root.x", j[s + "hip"], j[s + "kne"], f"c_thigh_fk.{s}",
             f"c_thigh_ik.{s}", f"c_foot_ik.{s}"),
            (f"leg_stretch.{s}", f"thigh_stretch.{s}", j[s + "kne"], j[s + "ank"], f"c_leg_fk.{s}",
             f"c_leg_ik.{s}", f"c_foot_ik.{s}"),
            (f"foot.{s}", f"leg_stretch.{s}", j[s + "ank"], j[s + "toe"], f"c_foot_fk.{s}",
             f"c_foot_ik.{s}", f"c_foot_ik.{s}"),
            (f"toes_01.{s}", f"foot.{s}", j[s + "toe"], _toe_end(j, s), f"c_toes_fk.{s}", None, None),
        ):  # fmt: skip
            deform.append((name, dparent, head, tail, fk))
            if ik is not None:
                constraints.append(
                    (name, "COPY_TRANSFORMS", ik, (prop, "ik_fk_switch"), 1.0, "WORLD")
                )
    for name, dparent, head, tail, control in deform:
        add(name, dparent, head, tail)
        constraints.insert(0, (name, "COPY_TRANSFORMS", control, None, 1.0, "WORLD"))
    return RigSpec("autorigpro", bones, constraints, properties, joints=joints)


def _short(head, tail, fraction=0.3):
    """A tweak bone: same head and direction as the bone it shapes, shorter (as Rigify's)."""
    return head, head + fraction * (tail - head)


def generated_like(joints) -> RigSpec:
    """The generated MeTRAbs rig's names and layout (roll 0) for arbitrary rest joints."""
    from retarget.solve.rig import BONE_NAMES, PRIMARY_CHILD

    rest = np.array([joints[n] for n in SKELETON.joint_names])
    bones = []
    for j, joint in enumerate(SKELETON.joint_names):
        if joint not in BONE_NAMES:
            continue
        parent = SKELETON.parents[j]
        child = PRIMARY_CHILD.get(joint)
        if child is not None:
            tail = joints[child]
        else:
            axis = rest[j] - rest[parent]
            if joint.endswith("toe"):
                axis[2] = 0.0
            tail = rest[j] + 0.5 * axis
        parent_name = BONE_NAMES.get(SKELETON.joint_names[parent]) if parent >= 0 else None
        bones.append((BONE_NAMES[joint], parent_name, rest[j], tail, 0.0))
    return RigSpec("metrabs", bones, joints=joints)


# ---------------------------------------------------------------------------------------------
# Ground-truth motions


def world_motion(kind: str = "walk", seconds: float = 2.0, seed: int = 0, **kwargs):
    """A gait from the generator, turned to face -Y at the start like the rigs."""
    motion = generate_motion(kind, seconds, 30.0, seed=seed, heading_deg=180.0, **kwargs)
    return motion


def reach_motion(
    seconds: float = 2.0, fps: float = 30.0, height: float = 1.75, elbow_flex_deg: float = 0.0
) -> np.ndarray:
    """Joints ``(T, J, 3)`` of a person standing still and raising both arms from the sides over
    the head and forward, with the trunk twisting and the head turning: with straight elbows
    (the default) it exercises the straight-limb fallbacks through large swings; ``elbow_flex_deg``
    bends the elbows up to that angle on the way. Facing -Y, feet on the floor."""
    frames = int(round(seconds * fps))
    phase = np.linspace(0.0, 1.0, frames)
    rest = rest_pose(height)
    rotations = np.tile(np.eye(3), (frames, SKELETON.num_joints, 1, 1))
    index = SKELETON.index

    def about(axis, angles):
        half = 0.5 * angles
        q = np.concatenate([np.cos(half)[:, None], np.sin(half)[:, None] * np.asarray(axis)], 1)
        return quaternion_to_matrix(q)

    raise_angle = np.radians(170.0) * np.sin(np.pi * phase) ** 2
    forward_swing = np.radians(60.0) * np.sin(2 * np.pi * phase)
    for side, sign in (("l", -1.0), ("r", 1.0)):
        # Generator frame: +X is the right, +Y forward; a roll about +Y lowers the left arm.
        rotations[:, index(side + "sho")] = about((1.0, 0, 0), -forward_swing) @ about(
            (0, 1.0, 0), sign * (np.radians(80.0) - raise_angle)
        )
        flex = np.radians(elbow_flex_deg) * np.sin(np.pi * phase) ** 2
        rotations[:, index(side + "elb")] = about((0, 0, 1.0), sign * flex)  # forearm forward
    rotations[:, index("spin")] = about((0, 0, 1.0), np.radians(35.0) * np.sin(2 * np.pi * phase))
    rotations[:, index("neck")] = about((0, 0, 1.0), np.radians(50.0) * np.sin(2 * np.pi * phase))
    joints = forward_kinematics(rest, rotations) @ FACE_BLENDER_FRONT.T
    joints[..., 2] += 0.95 * height / 1.75
    lowest = joints[:, [index(n) for n in ("lank", "rank", "ltoe", "rtoe")], 2].min()
    joints[..., 2] -= lowest
    return joints


# ---------------------------------------------------------------------------------------------
# Checks of the builders themselves


def test_rest_matrix_puts_y_along_the_bone_and_roll_turns_x():
    head, tail = np.array([0.1, 0.2, 0.3]), np.array([0.4, -0.1, 0.9])
    plain, rolled = bone_rest_matrix(head, tail, 0.0), bone_rest_matrix(head, tail, 0.7)
    np.testing.assert_allclose(plain[:, 1], normalize(tail - head), atol=1e-12)
    np.testing.assert_allclose(rolled[:, 1], plain[:, 1], atol=1e-12)
    np.testing.assert_allclose(np.dot(plain[:, 0], rolled[:, 0]), np.cos(0.7), atol=1e-12)
    np.testing.assert_allclose(rolled.T @ rolled, np.eye(3), atol=1e-12)


def test_builders_make_the_intended_rest_poses():
    t_pose, a_pose = canonical_rest(), canonical_rest(a_pose_deg=45.0, elbow_bend_deg=12.0)
    arm = a_pose["lelb"] - a_pose["lsho"]
    assert abs(np.degrees(np.arctan2(-arm[2], arm[0])) - 45.0) < 1e-9
    assert t_pose["lsho"][0] > 0 > t_pose["rsho"][0], "left is +X"
    assert t_pose["ltoe"][1] < t_pose["lank"][1], "toes point to -Y (front)"
    tall = canonical_rest(1.9, arms=1.1, legs=0.92)
    assert tall["head"][2] > t_pose["head"][2]
    for spec in (
        mixamo_like(t_pose),
        unreal_like(t_pose),
        metarig_like(a_pose),
        rigify_like(t_pose),
    ):
        names = spec.names
        assert len(set(names)) == len(names), spec.name
        for _name, parent, head, tail, _roll in spec.bones:
            assert parent is None or names.index(parent) < names.index(_name)
            assert np.linalg.norm(tail - head) > 1e-3
        rig = spec.target_rig()
        assert np.allclose(np.einsum("bij,bik->bjk", rig.rotations, rig.rotations), np.eye(3))


def noisy(joints: np.ndarray, rng: np.random.Generator, drift: float = 0.015, white: float = 0.003):
    """Joints with estimator-like error: slow correlated drift per joint (std ``drift`` m, ~0.2 s
    correlation) plus white noise (std ``white`` m)."""
    num_frames, num_joints, _ = joints.shape
    kernel = np.exp(-0.5 * (np.arange(-20, 21) / 6.0) ** 2)
    kernel /= np.sqrt(np.sum(kernel**2))
    raw = rng.normal(size=(num_frames + 40, num_joints, 3))
    smooth = np.apply_along_axis(lambda x: np.convolve(x, kernel, mode="valid"), 0, raw)
    return joints + drift * smooth[:num_frames] + white * rng.normal(size=joints.shape)
