"""Rig maps: which bones of a target armature play which part of the body.

A map assigns *slots* of a canonical humanoid to target bone names:

- centre slots ``hips``, ``spine`` (a chain, hips side first), ``neck`` (a chain) and ``head``;
- sided slots ``shoulder`` (clavicle), ``upper_arm``, ``forearm``, ``hand``, ``thigh``, ``shin``,
  ``foot``, ``toe`` with the suffix ``.L`` or ``.R`` (the character's own left and right).

``bones`` names the bones that receive keys. ``anchors`` (optional, per slot) names the bones whose
rest heads/tails mark the joints, for rigs whose controls do not sit on the joints (Rigify keys
``upper_arm_fk.L`` but its joints are those of ``ORG-upper_arm.L``). ``root`` is the bone that
carries the root motion, ``properties`` are custom properties set and keyed with the take (Rigify's
IK/FK switches). ``ik`` (optional) names, per limb (``arm.L``, ``leg.R`` ...), the IK controls
keyed from the solved pose when that limb is animated in IK (:class:`IkLimb`). Bones the map does
not name are never keyed.

Maps come from built-in presets (the generated MeTRAbs rig, Rigify, Mixamo with any prefix, SMPL,
SMPL-X, Blender's human metarig, Auto-Rig Pro), from the automatic mapper that reads bone names
and the hierarchy (:mod:`retarget.solve.automap`), or from a user's JSON file. Pure Python: no
``bpy``.
"""

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import RetargetError
from ..files import write_text

SIDES = ("L", "R")
LIMB_SLOTS = ("shoulder", "upper_arm", "forearm", "hand", "thigh", "shin", "foot", "toe")
CHAIN_SLOTS = ("spine", "neck")
CENTRE_SLOTS = ("hips", "spine", "neck", "head")
ALL_SLOTS = CENTRE_SLOTS + tuple(f"{slot}.{side}" for side in SIDES for slot in LIMB_SLOTS)
# Without these the solve has no pelvis, no hip line and no shoulder line to work from.
REQUIRED_SLOTS = ("hips", "thigh.L", "thigh.R", "upper_arm.L", "upper_arm.R")
IK_LIMBS = tuple(f"{limb}.{side}" for limb in ("arm", "leg") for side in SIDES)
JSON_FORMAT = "metrabs-rigmap"
JSON_VERSION = 1


class RigMapError(RetargetError):
    """A rig map that cannot be used with a target armature; the message lists what is missing."""


@dataclass(frozen=True)
class IkLimb:
    """The IK controls of one limb, keyed from the solved (FK) pose so that the limb's IK chain
    lands where the FK result is.

    ``controls``: control bone -> the slot it moves rigidly with (``hand_ik.L`` -> ``hand.L``);
    the first is the limb's end control, the others are optional (``toe_ik.L``: keyed where the
    rig has it). ``poles``: pole target -> the upper slot it turns with about the middle joint
    (``thigh_ik_target.L`` -> ``thigh.L``), location keyed only. A control hangs from bones at
    rest (the take parents it to the rig's root) unless ``carriers`` names the slot whose
    motion its parent chain follows (``toe_ik.L`` -> ``foot.L``, under the foot's roll bones).
    ``properties``: bone -> {custom property: value} set and keyed when the limb is in IK
    (Rigify: ``IK_FK`` 0, ``pole_vector`` on, IK and pole parents the root, no IK stretch);
    ``settings``: bone -> {pose-bone setting: value} keyed with the take (Rigify's IK chain:
    ``ik_stretch`` 0, see ``_rigify_ik``).
    """

    controls: Mapping[str, str]
    poles: Mapping[str, str] = field(default_factory=dict)
    carriers: Mapping[str, str] = field(default_factory=dict)
    properties: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    settings: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def bones(self) -> set[str]:
        return set(self.controls) | set(self.poles) | set(self.properties) | set(self.settings)

    def to_json(self) -> dict:
        data = {"controls": dict(self.controls)}
        for key in ("poles", "carriers"):
            if getattr(self, key):
                data[key] = dict(getattr(self, key))
        for key in ("properties", "settings"):
            if getattr(self, key):
                data[key] = {k: dict(v) for k, v in getattr(self, key).items()}
        return data


@dataclass(frozen=True)
class RigMap:
    """Slot -> target bones. See the module docstring for the meaning of each field."""

    name: str
    bones: Mapping[str, tuple[str, ...]]
    anchors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    root: str | None = None
    properties: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    ik: Mapping[str, IkLimb] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.bones) - set(ALL_SLOTS)) + sorted(
            set(self.anchors) - set(ALL_SLOTS)
        )
        if unknown:
            raise RigMapError(
                f"rig map {self.name!r} uses unknown slot(s) {unknown}; slots are {list(ALL_SLOTS)}"
            )
        object.__setattr__(self, "bones", {k: _as_tuple(v) for k, v in self.bones.items() if v})
        object.__setattr__(self, "anchors", {k: _as_tuple(v) for k, v in self.anchors.items() if v})
        ik = {k: v if isinstance(v, IkLimb) else _ik_limb(v, self.name) for k, v in self.ik.items()}
        for limb, spec in ik.items():
            where = f"rig map {self.name!r}: IK limb {limb!r}"
            if limb not in IK_LIMBS:
                raise RigMapError(f"{where} is not one of {list(IK_LIMBS)}")
            slots = [*spec.controls.values(), *spec.poles.values(), *spec.carriers.values()]
            bad = sorted({s for s in slots if s not in ALL_SLOTS})
            if bad:
                raise RigMapError(
                    f"{where} uses unknown slot(s) {bad}; slots are {list(ALL_SLOTS)}"
                )
            if not spec.controls:
                raise RigMapError(f"{where} names no controls (control bone -> slot)")
        object.__setattr__(self, "ik", ik)

    def anchor(self, slot: str) -> tuple[str, ...]:
        """Bones whose rest pose marks the joints of ``slot`` (its keyed bones by default)."""
        return self.anchors.get(slot) or self.bones.get(slot, ())

    @property
    def root_bone(self) -> str:
        return self.root or self.bones["hips"][0]

    def referenced_bones(self) -> set[str]:
        names = {name for bones in self.bones.values() for name in bones}
        names |= {name for bones in self.anchors.values() for name in bones}
        names |= set(self.properties)
        for limb in self.ik.values():
            names |= limb.bones()
        if self.root:
            names.add(self.root)
        return names

    def keyed_bones(self) -> list[str]:
        """Every keyed bone once, in slot order."""
        seen: dict[str, None] = {}
        for slot in ALL_SLOTS:
            for name in self.bones.get(slot, ()):
                seen.setdefault(name)
        if self.root:
            seen.setdefault(self.root)
        return list(seen)

    def to_json(self) -> dict:
        def plain(mapping):
            return {
                k: (list(v) if len(v) != 1 or k in CHAIN_SLOTS else v[0])
                for k, v in mapping.items()
            }

        data = {
            "format": JSON_FORMAT,
            "version": JSON_VERSION,
            "name": self.name,
            "bones": plain(self.bones),
        }
        if self.anchors:
            data["anchors"] = plain(self.anchors)
        if self.root:
            data["root"] = self.root
        if self.properties:
            data["properties"] = {k: dict(v) for k, v in self.properties.items()}
        if self.ik:
            data["ik"] = {limb: spec.to_json() for limb, spec in self.ik.items()}
        return data


def _as_tuple(value) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _properties(data, source: str) -> dict[str, dict[str, float]]:
    if not isinstance(data, Mapping) or not all(isinstance(v, Mapping) for v in data.values()):
        raise RigMapError(f"{source}: properties must map bones to {{property: number}}")
    return {str(b): {str(k): float(v) for k, v in p.items()} for b, p in data.items()}


def _ik_limb(data, source: str) -> IkLimb:
    """An :class:`IkLimb` from its JSON object."""
    if not isinstance(data, Mapping) or not isinstance(data.get("controls"), Mapping):
        raise RigMapError(f'{source}: each IK limb needs a "controls" object (bone -> slot)')
    return IkLimb(
        {str(k): str(v) for k, v in data["controls"].items()},
        {str(k): str(v) for k, v in data.get("poles", {}).items()},
        {str(k): str(v) for k, v in data.get("carriers", {}).items()},
        _properties(data.get("properties", {}), source),
        _properties(data.get("settings", {}), source),
    )


@dataclass(frozen=True)
class MatchReport:
    """How a map was found: ``method`` ("preset NAME", "automatic", "user map"), the bones per slot,
    the slots left empty and how many bones of the armature stay unkeyed."""

    method: str
    matched: Mapping[str, tuple[str, ...]]
    missing: tuple[str, ...]
    unmapped_count: int
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        lines = [f"rig map: {self.method}, {len(self.matched)} slot(s) matched"]
        for slot in ALL_SLOTS:
            if slot in self.matched:
                lines.append(f"  {slot:<12} -> {', '.join(self.matched[slot])}")
        if self.missing:
            lines.append(f"  not found (left untouched): {', '.join(self.missing)}")
        lines.append(f"  {self.unmapped_count} other bone(s) are not keyed")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Presets


def _sided(template: Mapping[str, str], left: str, right: str) -> dict[str, str]:
    """Expand ``{"upper_arm": "{s}Arm"}`` into ``.L``/``.R`` slots with the side spelled in."""
    out = {}
    for side, spelled in (("L", left), ("R", right)):
        for slot, name in template.items():
            out[f"{slot}.{side}"] = name.format(s=spelled)
    return out


def _preset(name: str, centre: dict, limbs: dict, left: str, right: str, **extra) -> RigMap:
    return RigMap(name, {**centre, **_sided(limbs, left, right)}, **extra)


_RIGIFY_LIMBS = {
    "shoulder": "shoulder.{s}",
    "upper_arm": "upper_arm_fk.{s}",
    "forearm": "forearm_fk.{s}",
    "hand": "hand_fk.{s}",
    "thigh": "thigh_fk.{s}",
    "shin": "shin_fk.{s}",
    "foot": "foot_fk.{s}",
    "toe": "toe_fk.{s}",
}
_METARIG_LIMBS = {
    "shoulder": "shoulder.{s}",
    "upper_arm": "upper_arm.{s}",
    "forearm": "forearm.{s}",
    "hand": "hand.{s}",
    "thigh": "thigh.{s}",
    "shin": "shin.{s}",
    "foot": "foot.{s}",
    "toe": "toe.{s}",
}
_METARIG_CENTRE = {
    "hips": "spine",
    "spine": ("spine.001", "spine.002", "spine.003"),
    "neck": ("spine.004", "spine.005"),
    "head": "spine.006",
}


def _rigify_ik(top: str, middle: str, end: str, tail: tuple[str, ...], side: str) -> IkLimb:
    """A Rigify limb's IK controls (Rigify 0.6, Blender 4.2-5.0: rigs/limbs/limb_rigs.py and
    leg.py): the end control ``hand_ik.L`` / ``foot_ik.L`` (a copy of the ORG bone, or the flat
    foot control whose roll bones carry the IK target), ``toe_ik.L`` under the foot, the pole
    ``upper_arm_ik_target.L`` / ``thigh_ik_target.L``; on the limb's property bone the IK/FK
    switch to IK, the pole target on, and IK and pole parents 1 = the rig's root (Rigify's
    switch-parent list starts with the root: utils/switch_parent.py).

    Rigify's IK chain (``thigh_ik.L`` > ``MCH-shin_ik.L``) has an IK stretch of 0.1, and
    Blender's IK solver then shortens a leg by up to 3% to reach a foot it could reach bent (the
    knee 2-3 cm off the solved knee): the take keys the chain's stretch and the IK Stretch slider
    to 0, so the IK chain keeps its lengths and lands on the solved limb."""
    no_stretch = {"ik_stretch": 0.0}
    switches = {"IK_FK": 0.0, "pole_vector": 1.0, "IK_parent": 1.0, "pole_parent": 1.0}
    return IkLimb(
        controls={
            f"{end}_ik.{side}": f"{end}.{side}",
            **{f"{t}_ik.{side}": f"{t}.{side}" for t in tail},
        },
        poles={f"{top}_ik_target.{side}": f"{top}.{side}"},
        carriers={f"{t}_ik.{side}": f"{end}.{side}" for t in tail},
        properties={f"{top}_parent.{side}": {**switches, "IK_Stretch": 0.0}},
        settings={f"{top}_ik.{side}": no_stretch, f"MCH-{middle}_ik.{side}": no_stretch},
    )


PRESETS: dict[str, RigMap] = {
    "metrabs": _preset(
        "metrabs",
        {
            "hips": "pelvis",
            "spine": ("spine", "spine.001", "chest"),
            "neck": "neck",
            "head": "head",
        },
        _METARIG_LIMBS,
        "L",
        "R",
    ),
    "rigify": _preset(
        "rigify",
        # The torso carries the pelvis; hips and chest stay at rest relative to it (their
        # rotation reaches the spine only in part, through MCH bones copying half their local
        # rotation), and the FK spine controls bend the upper spine.
        {
            "hips": ("torso", "hips", "chest"),
            "spine": ("spine_fk.002", "spine_fk.003"),
            "neck": "neck",
            "head": "head",
        },
        _RIGIFY_LIMBS,
        "L",
        "R",
        anchors={
            "hips": "ORG-spine",
            "spine": ("ORG-spine.001", "ORG-spine.002", "ORG-spine.003"),
            "neck": ("ORG-spine.004", "ORG-spine.005"),
            "head": "ORG-spine.006",
            **_sided({k: "ORG-" + v for k, v in _METARIG_LIMBS.items()}, "L", "R"),
        },
        root="torso",
        properties={
            # IK_FK = 1 is FK: the ORG bones copy the FK chain; the IK copy's influence is 1 - IK_FK.
            **{
                f"{limb}_parent.{s}": {"IK_FK": 1.0}
                for limb in ("upper_arm", "thigh")
                for s in SIDES
            },
            # follow = 1: neck and head inherit the torso's rotation like plain child bones.
            "torso": {"neck_follow": 1.0, "head_follow": 1.0},
        },
        ik={
            **{f"arm.{s}": _rigify_ik("upper_arm", "forearm", "hand", (), s) for s in SIDES},
            **{f"leg.{s}": _rigify_ik("thigh", "shin", "foot", ("toe",), s) for s in SIDES},
        },
    ),
    "mixamo": _preset(
        "mixamo",
        {"hips": "Hips", "spine": ("Spine", "Spine1", "Spine2"), "neck": "Neck", "head": "Head"},
        {
            "shoulder": "{s}Shoulder",
            "upper_arm": "{s}Arm",
            "forearm": "{s}ForeArm",
            "hand": "{s}Hand",
            "thigh": "{s}UpLeg",
            "shin": "{s}Leg",
            "foot": "{s}Foot",
            "toe": "{s}ToeBase",
        },
        "Left",
        "Right",
    ),
    # SMPL names its bones after their head joints: "L_Hip" is the thigh, "L_Foot" the toes.
    "smpl": _preset(
        "smpl",
        {"hips": "Pelvis", "spine": ("Spine1", "Spine2", "Spine3"), "neck": "Neck", "head": "Head"},
        {
            "shoulder": "{s}_Collar",
            "upper_arm": "{s}_Shoulder",
            "forearm": "{s}_Elbow",
            "hand": "{s}_Wrist",
            "thigh": "{s}_Hip",
            "shin": "{s}_Knee",
            "foot": "{s}_Ankle",
            "toe": "{s}_Foot",
        },
        "L",
        "R",
    ),
    "smplx": _preset(
        "smplx",
        {"hips": "pelvis", "spine": ("spine1", "spine2", "spine3"), "neck": "neck", "head": "head"},
        {
            "shoulder": "{s}_collar",
            "upper_arm": "{s}_shoulder",
            "forearm": "{s}_elbow",
            "hand": "{s}_wrist",
            "thigh": "{s}_hip",
            "shin": "{s}_knee",
            "foot": "{s}_ankle",
            "toe": "{s}_foot",
        },
        "left",
        "right",
    ),
    "metarig": _preset("metarig", _METARIG_CENTRE, _METARIG_LIMBS, "L", "R"),
    # Auto-Rig Pro is proprietary: this uses only its published bone naming (the control names
    # of its user manual and of the public retargeting presets and forum scripts written for
    # it; none of its code): ``c_`` controls, ``.x`` centre and ``.l``/``.r`` side suffixes,
    # the FK limbs ``c_arm_fk.l`` .. ``c_toes_fk.l``, and the IK/FK switch ``ik_fk_switch`` on
    # ``c_hand_ik.l`` / ``c_foot_ik.l`` (1 = FK, 0 = IK).
    "autorigpro": _preset(
        "autorigpro",
        # c_root_master.x moves the hips and everything above them; c_root.x (the pelvis,
        # which the thighs hang from) turns with it and keeps its rest pose relative to it.
        {
            "hips": ("c_root_master.x", "c_root.x"),
            "spine": ("c_spine_01.x", "c_spine_02.x", "c_spine_03.x"),
            "neck": "c_neck.x",
            "head": "c_head.x",
        },
        {
            "shoulder": "c_shoulder.{s}",
            "upper_arm": "c_arm_fk.{s}",
            "forearm": "c_forearm_fk.{s}",
            "hand": "c_hand_fk.{s}",
            "thigh": "c_thigh_fk.{s}",
            "shin": "c_leg_fk.{s}",
            "foot": "c_foot_fk.{s}",
            "toe": "c_toes_fk.{s}",
        },
        "l",
        "r",
        root="c_root_master.x",
        properties={
            f"c_{end}_ik.{s}": {"ik_fk_switch": 1.0} for end in ("hand", "foot") for s in "lr"
        },  # fmt: skip
    ),
}
# Presets whose names often come with a namespace prefix ("mixamorig:Hips", "m_avg_Pelvis").
_PREFIXABLE = {"mixamo", "smpl", "smplx"}


def _prefixed(rig_map: RigMap, prefix: str) -> RigMap:
    def add(mapping):
        return {slot: tuple(prefix + n for n in names) for slot, names in mapping.items()}

    def limb(spec: IkLimb) -> IkLimb:
        return IkLimb(
            {prefix + b: slot for b, slot in spec.controls.items()},
            {prefix + b: slot for b, slot in spec.poles.items()},
            {prefix + b: slot for b, slot in spec.carriers.items()},
            {prefix + b: props for b, props in spec.properties.items()},
            {prefix + b: values for b, values in spec.settings.items()},
        )

    return RigMap(
        rig_map.name,
        add(rig_map.bones),
        add(rig_map.anchors),
        prefix + rig_map.root if rig_map.root else None,
        {prefix + bone: props for bone, props in rig_map.properties.items()},
        {name: limb(spec) for name, spec in rig_map.ik.items()},
    )


def restrict(rig_map: RigMap, names: set[str]) -> tuple[RigMap, tuple[str, ...]]:
    """Drop entries whose bones are absent; returns the map and the slots lost."""
    bones, lost = {}, []
    for slot, keyed in rig_map.bones.items():
        present = tuple(n for n in keyed if n in names)
        anchors = rig_map.anchors.get(slot, ())
        if present and all(a in names for a in anchors):
            bones[slot] = present
        else:
            lost.append(slot)
    anchors = {s: a for s, a in rig_map.anchors.items() if s in bones}
    properties = {b: p for b, p in rig_map.properties.items() if b in names}
    root = rig_map.root if rig_map.root in names else None
    ik = {}
    for limb, spec in rig_map.ik.items():
        # The end control, the poles and the property bones are needed; more controls
        # (Rigify's toe_ik) are keyed where the rig has them. Slots must be mapped.
        controls = {b: slot for b, slot in spec.controls.items() if b in names}
        needed = [next(iter(spec.controls)), *spec.poles, *spec.properties, *spec.settings]
        slots = [*controls.values(), *spec.poles.values(), *spec.carriers.values()]
        if all(b in names for b in needed) and all(slot in bones for slot in slots):
            carriers = {b: slot for b, slot in spec.carriers.items() if b in controls}
            ik[limb] = IkLimb(
                controls, dict(spec.poles), carriers, dict(spec.properties), dict(spec.settings)
            )

    return RigMap(rig_map.name, bones, anchors, root, properties, ik), tuple(lost)


def _preset_candidates(names: set[str]) -> list[tuple[RigMap, tuple[str, ...]]]:
    """Every preset (with every plausible prefix) restricted to the bones present."""
    out = []
    for key, preset in PRESETS.items():
        prefixes = {""}
        if key in _PREFIXABLE:
            hips = preset.bones["hips"][0]
            prefixes |= {n[: -len(hips)] for n in names if n.endswith(hips)}
        for prefix in sorted(prefixes):
            out.append(restrict(_prefixed(preset, prefix), names))
    return out


# ---------------------------------------------------------------------------------------------
# JSON user maps


def load_rig_map(path: str | os.PathLike) -> RigMap:
    """Read a user map written by :func:`save_rig_map` (or by hand, same keys)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RigMapError(f"rig map file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RigMapError(f"{path.name} is not a JSON rig map ({error})") from None
    return rig_map_from_dict(data, source=path.name)


def rig_map_from_dict(data: Mapping, source: str = "rig map") -> RigMap:
    if not isinstance(data, Mapping) or data.get("format") != JSON_FORMAT:
        raise RigMapError(f'{source}: not a rig map (expected "format": "{JSON_FORMAT}")')
    if int(data.get("version", 0)) > JSON_VERSION:
        raise RigMapError(
            f"{source}: rig map version {data['version']} is newer than this add-on reads "
            f"({JSON_VERSION}); update MeTRAbs Mocap"
        )
    if not isinstance(data.get("bones"), Mapping):
        raise RigMapError(f'{source}: needs a "bones" object mapping slots to bone names')
    ik = data.get("ik", {})
    if not isinstance(ik, Mapping):
        raise RigMapError(f'{source}: "ik" must map limbs ({", ".join(IK_LIMBS)}) to controls')
    return RigMap(
        str(data.get("name", source)),
        dict(data["bones"]),
        dict(data.get("anchors", {})),
        data.get("root"),
        _properties(data.get("properties", {}), source),
        {str(limb): _ik_limb(spec, source) for limb, spec in ik.items()},
    )


def save_rig_map(rig_map: RigMap, path: str | os.PathLike) -> Path:
    """Write ``rig_map`` as JSON (``JSON_FORMAT``) to ``path``, whole or not at all."""
    path = Path(path)
    write_text(path, json.dumps(rig_map.to_json(), indent=2) + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# Resolution against a target


def check_rig_map(rig_map: RigMap, names: Sequence[str]) -> None:
    """Raise :class:`RigMapError` if bones are missing or required slots are empty."""
    present = set(names)
    absent = sorted(rig_map.referenced_bones() - present)
    if absent:
        raise RigMapError(
            f"rig map {rig_map.name!r} names bones the armature does not have: {absent[:12]}"
            + (" ..." if len(absent) > 12 else "")
        )
    missing = [slot for slot in REQUIRED_SLOTS if slot not in rig_map.bones]
    if missing:
        raise RigMapError(
            f"rig map {rig_map.name!r} leaves required slot(s) empty: {missing}; a map needs "
            f"bones for {list(REQUIRED_SLOTS)}"
        )


def _expected_message(names: Sequence[str]) -> str:
    examples = ", ".join(
        f"{p}: {PRESETS[p].bones['hips'][0]}/{PRESETS[p].bones['thigh.L'][0]}"
        for p in ("mixamo", "rigify", "metarig", "smplx")
    )
    return (
        f"no humanoid bones found among the armature's {len(names)} bone(s) "
        f"(e.g. {', '.join(list(names)[:6])}). Expected bones for the slots "
        f"{list(REQUIRED_SLOTS)} - hips, thighs and upper arms, with hands and feet named "
        f"'hand'/'wrist' and 'foot'/'ankle' plus a side (.L/_l/Left...), or a preset rig ({examples}). "
        "Choose a preset or load a JSON rig map."
    )


def resolve_rig_map(
    spec: "str | os.PathLike | RigMap",
    names: Sequence[str],
    parents: Sequence[int],
    heads,
) -> tuple[RigMap, MatchReport]:
    """A usable map for an armature with bones ``names`` (parent indices, rest heads ``(B, 3)``).

    ``spec`` is "auto", a preset name (see :data:`PRESETS`), a path to a JSON map or a
    :class:`RigMap`. "auto" tries every preset (with any name prefix) and the automatic mapper and
    keeps the one that fills the most slots.
    """
    names = list(names)
    present = set(names)
    if isinstance(spec, RigMap):
        rig_map, method = spec, "user map"
    elif isinstance(spec, os.PathLike) or str(spec).lower().endswith(".json"):
        rig_map, method = load_rig_map(spec), f"user map {Path(spec).name}"
    elif spec in PRESETS:
        candidates = [c for c in _preset_candidates(present) if c[0].name == spec]
        rig_map, _lost = max(candidates, key=lambda c: len(c[0].bones))
        method = f"preset {spec}"
    elif spec == "auto":
        return _auto(names, parents, heads)
    else:
        raise RigMapError(
            f"unknown rig map {spec!r}: use 'auto', a preset ({', '.join(PRESETS)}) or a .json file"
        )
    check_rig_map(rig_map, names)
    report = _report(rig_map, method, names, [])
    return rig_map, report


def _report(rig_map: RigMap, method: str, names: Sequence[str], notes: list[str]) -> MatchReport:
    keyed = set(rig_map.keyed_bones())
    return MatchReport(
        method,
        dict(rig_map.bones),
        tuple(s for s in ALL_SLOTS if s not in rig_map.bones),
        len([n for n in names if n not in keyed]),
        tuple(notes),
    )


def _auto(names: list[str], parents: Sequence[int], heads) -> tuple[RigMap, MatchReport]:
    from .automap import auto_map  # it builds on this module's RigMap

    candidates = [(m, f"preset {m.name}", []) for m, _ in _preset_candidates(set(names))]
    automatic, notes = auto_map(names, parents, heads)
    candidates.append((automatic, "automatic (names + hierarchy)", notes))
    usable = [c for c in candidates if all(s in c[0].bones for s in REQUIRED_SLOTS)]
    if not usable:
        raise RigMapError(_expected_message(names))
    # Most slots wins; on a tie a preset (listed first) beats the automatic guess.
    rig_map, method, notes = max(usable, key=lambda c: len(c[0].bones))
    return rig_map, _report(rig_map, method, names, notes)
