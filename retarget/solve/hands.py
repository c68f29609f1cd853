"""Hands: the roll of the hand (wrist twist) from the thumb, and a coarse whole-hand curl of the
target's finger chains (docs/design.md §6).

The source's hand points are those of the hand extension (``retarget.skeletons.HAND_POINTS``):
per hand the thumb (``lthu``) and the end of the hand (``lfin``), both children of the wrist.

**Roll.** The hand bone keeps its direction (wrist -> hand joint, as without the extension); its
twist hint is the *thumb side*: the part of the wrist -> thumb offset across the hand's axis. The
target's rest thumb side comes from its own thumb bones, found by name below its hand (Mixamo
``LeftHandThumb1..``, Rigify ``thumb.01.L`` and its ORG/DEF copies, the metarig, SMPL-X
``left_thumb1``, the generated rig's ``thumb.L``: the centroid of their heads and tails), else
from its knuckle line (the index finger's bones against the little finger's). As for the limb
hinges, the observed thumb side weighs by the sine of the thumb's angle off the hand axis over
the straight-limb threshold, and where it is weak the previous frame's twist is carried along
(:func:`~retarget.solve.bone_frames.filter_hinge`); a hand whose thumb lies on its axis in most
frames (a model that does not tell them apart) keeps the swing-only hand, as does a target without
thumb or finger bones (no rest to compare with).

**Curl.** The fingers' curl is measured from the hand's *opening*: the wrist -> hand end distance
against its open length (the take's 95th percentile); a fist brings the hand end to about
:data:`FIST_OPENING` of it. It is used only where it is measurable: where the opening varies by
at least :data:`MIN_OPENING_SPREAD` over the take (between its 5th and 95th percentiles). Points
on the hand's back (the official model's Human3.6M hand end is a rigid marker, and the cleaning
keeps every bone's length) do not vary, so with the official model the fingers stay at rest: no
finger keys are written. Where it is measurable, each finger chain of the target (index, middle,
ring, little; found by name below the hand: Mixamo ``LeftHandIndex1..3``, Rigify and the metarig
``f_index.01.L..03``, SMPL-X ``left_index1..3``; mechanism bones ORG/DEF/MCH and Rigify's master
controls left out) curls its first three bones towards the palm by :data:`CURL_DEG` times the
curl (0 open .. 1 fist): one coarse whole-hand grip, no per-finger articulation. The thumb does
not curl. Pure numpy.
"""

import numpy as np

from ..rotations import normalize
from .automap import name_tokens
from .rigmaps import SIDES
from .source import Source
from .target import Plan

FIST_OPENING = 0.6  # wrist -> fingertip distance of a fist, a share of the open hand's
MIN_OPENING_SPREAD = 0.15  # the opening must vary this much over a take to be measured
CURL_DEG = (70.0, 90.0, 60.0)  # full curl of a finger's first, second and third bone
FINGERS = (("index",), ("middle",), ("ring",), ("pinky", "little"))
_MECHANISM = ("org", "def", "mch", "vis", "wgt", "tweak")
_PALM_SIGN = {"L": -1.0, "R": 1.0}  # palm normal = sign * (thumb side x hand direction)


def _descendants(plan: Plan, roots: set[int]) -> list[int]:
    """Bones below any of ``roots`` (not the roots themselves)."""
    parents = plan.rig.parents
    out = []
    for b in range(len(parents)):
        p = parents[b]
        while p >= 0:
            if p in roots:
                out.append(b)
                break
            p = parents[p]
    return out


def _hand_bones(plan: Plan, side: str) -> set[int]:
    slot = f"hand.{side}"
    if slot not in plan.rig_map.bones:
        return set()
    names = set(plan.rig_map.bones[slot]) | set(plan.rig_map.anchor(slot))
    return {plan.rig.index(name) for name in names}


def _centroid(plan: Plan, bones: list[int]) -> np.ndarray | None:
    if not bones:
        return None
    rig = plan.rig
    return np.concatenate([rig.heads[bones], rig.tails[bones]]).mean(axis=0)


def _across(vector: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """The part of ``vector`` ``(..., 3)`` across the unit ``axis`` ``(..., 3)``."""
    return vector - np.sum(vector * axis, axis=-1, keepdims=True) * axis


def rest_thumb_side(plan: Plan, side: str, hand_direction: np.ndarray) -> np.ndarray | None:
    """The target's rest thumb side ``(3,)`` (unit, across its rest hand direction) of hand
    ``side`` ("L"/"R"), from its thumb bones, else its knuckle line; None without either."""
    wrist = plan.joints.get(side.lower() + "wri")
    if wrist is None:
        return None
    below = _descendants(plan, _hand_bones(plan, side))
    words = [name_tokens(plan.rig.names[b])[1] for b in below]
    thumb = _centroid(plan, [b for b, w in zip(below, words, strict=True) if "thumb" in w])
    if thumb is not None:
        offset = thumb - wrist
    else:
        index = _centroid(plan, [b for b, w in zip(below, words, strict=True) if "index" in w])
        little = _centroid(
            plan, [b for b, w in zip(below, words, strict=True) if "pinky" in w or "little" in w]
        )
        if index is None or little is None:
            return None
        offset = index - little
    across = _across(offset, hand_direction)
    size = np.linalg.norm(across)
    return None if size < 1e-4 * max(np.linalg.norm(offset), 1e-9) else across / size


def observed_thumb_side(
    wrist: np.ndarray, hand: np.ndarray, thumb: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per frame the hand's unit direction ``(T, 3)`` and the observed thumb side ``(T, 3)``:
    across the hand's axis, its length the sine of the thumb's angle off that axis."""
    direction = normalize(hand - wrist)
    offset = thumb - wrist
    distance = np.maximum(np.linalg.norm(offset, axis=-1, keepdims=True), 1e-12)
    return direction, _across(offset, direction) / distance


def thumb_is_seen(observed: np.ndarray, s0: float) -> bool:
    """Whether the thumb stands clearly off the hand's axis (by ``s0``, the sine of the
    straight-limb threshold) in at least half the frames."""
    return bool(np.mean(np.linalg.norm(observed, axis=-1) >= s0) >= 0.5)


def opening_curl(wrist: np.ndarray, end: np.ndarray) -> np.ndarray | None:
    """The hand's curl ``(T,)`` in [0, 1] (0 open, 1 fist) from the wrist -> hand end distance,
    or None where the opening is not measurable (it does not vary by MIN_OPENING_SPREAD)."""
    distance = np.linalg.norm(end - wrist, axis=-1)
    open_length = np.percentile(distance, 95)
    if not open_length > 0:
        return None
    opening = distance / open_length
    if np.percentile(opening, 95) - np.percentile(opening, 5) < MIN_OPENING_SPREAD:
        return None
    return np.clip((1.0 - opening) / (1.0 - FIST_OPENING), 0.0, 1.0)


def finger_chains(plan: Plan, side: str) -> list[list[int]]:
    """Per finger of hand ``side`` the bones that are keyed to curl it (up to three, from the
    hand outwards): named after the finger, below the hand, not mechanism bones."""
    keyed = set(plan.rig_map.bones.get(f"hand.{side}", ()))
    below = _descendants(plan, {plan.rig.index(n) for n in keyed} | _hand_bones(plan, side))
    chains = []
    for words in FINGERS:
        bones = []
        for b in below:
            name = plan.rig.names[b]
            raw = name.split(":")[-1].lower()
            if raw.startswith(_MECHANISM) or "master" in raw:
                continue
            base = name_tokens(name)[1]
            if any(word in base for word in words) and "thumb" not in base:
                bones.append(b)
        depth = {b: _depth(plan, b) for b in bones}
        chain = sorted(bones, key=lambda b: depth[b])[:3]
        if chain:
            chains.append(chain)
    return chains


def _depth(plan: Plan, b: int) -> int:
    depth, p = 0, plan.rig.parents[b]
    while p >= 0:
        depth, p = depth + 1, plan.rig.parents[p]
    return depth


def finger_curl_keys(
    plan: Plan, side: str, curl: np.ndarray, hand_direction: np.ndarray
) -> dict[int, np.ndarray]:
    """Local quaternions ``(T, 4)`` per finger bone of hand ``side`` for the curl ``(T,)``:
    each bone turns towards the palm about the axis across its rest direction and the palm's
    normal, by :data:`CURL_DEG` of its place in the chain times the curl. Empty without a rest
    thumb side (no palm to curl towards) or finger chains."""
    thumb = rest_thumb_side(plan, side, hand_direction)
    if thumb is None:
        return {}
    palm = _PALM_SIGN[side] * normalize(np.cross(thumb, hand_direction))
    rig = plan.rig
    keys = {}
    for chain in finger_chains(plan, side):
        for place, b in enumerate(chain):
            direction = normalize(rig.tails[b] - rig.heads[b])
            axis = normalize(np.cross(direction, palm))
            local_axis = rig.rotations[b].T @ axis
            half = 0.5 * np.radians(CURL_DEG[place]) * curl
            keys[b] = np.concatenate([np.cos(half)[:, None],
                                      np.sin(half)[:, None] * local_axis[None]], axis=1)  # fmt: skip
    return keys


def finger_keys(plan: Plan, source: Source) -> dict[int, np.ndarray]:
    """Local quaternions ``(T, 4)`` of the finger bones of both hands, where the source's hand
    opening is measurable (:func:`opening_curl`) and the target has finger chains; else none."""
    keys: dict[int, np.ndarray] = {}
    for side in SIDES:
        p = side.lower()
        if not (source.has(p + "fin") and source.has(p + "wri")):
            continue
        if p + "wri" not in plan.joints or p + "han" not in plan.joints:
            continue
        curl = opening_curl(source(p + "wri"), source(p + "fin"))
        if curl is None:
            continue
        direction = normalize(plan.joints[p + "han"] - plan.joints[p + "wri"])
        keys.update(finger_curl_keys(plan, side, curl, direction))
    return {b: q for b, q in keys.items() if b not in plan.unit_of}
