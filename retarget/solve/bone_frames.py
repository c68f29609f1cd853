"""Joint positions -> the armature-space rotation of every keyed bone (docs/design.md §6).

For every keyed bone a frame is built from its direction (head joint -> tail joint) and a twist
hint, once from the source motion and once from the target's rest joints
(:mod:`retarget.solve.target`); the armature-space change from rest is
``delta = frame_now @ frame_rest.T``. Twist hints:

- hips: the hip line; spine bones: the hip line blended into the shoulder line along the chain;
  neck: shoulder line into the head's ear line; head: the ear line (face joints);
- upper arm + forearm, thigh + shin: the elbow / knee hinge axis (the limb-plane normal). As the
  limb straightens the plane vanishes, so the hint blends (by the sine of the bend) into a
  fallback: the leg's foot direction, then the twist the bone would have if it only swung from
  its parent (:func:`filter_hinge`);
- foot: the ankle hinge (shin-foot plane), with the same swing fallback;
- hands: the thumb side where the source has the hand extension's thumb and the target thumb or
  finger bones (:mod:`retarget.solve.hands`), else swing from the parent only;
- clavicles: swing from the parent only; toes follow the foot.

Pure numpy.
"""

import numpy as np

from ..rotations import frame_from_axes, normalize, rotation_between
from . import hands
from .params import RetargetParams
from .rigmaps import CHAIN_SLOTS
from .source import Source
from .target import HINGES, Plan, Unit


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


class Solver:
    """The armature-space rotation from rest ``(T, 3, 3)`` of each evaluated bone, parents first."""

    def __init__(self, plan: Plan, source: Source, params: RetargetParams) -> None:
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

    def _unit_delta(self, unit: Unit, parent: np.ndarray) -> np.ndarray:
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
            return self._hand_roll(unit, swing, direction) if unit.slot[:5] == "hand." else swing
        hint = self._hinge_hint(unit, swing)
        return _from_frames(direction, hint, unit.rest_direction, unit.rest_hint)

    def _hand_roll(self, unit: Unit, swing: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """The hand turned about its axis to the source's thumb side (retarget.solve.hands), with
        the swing as the fallback of weak frames; the swing alone without a thumb on either side."""
        side = unit.slot.split(".")[1]
        p, src = side.lower(), self.source
        if not (src.has(p + "thu") and src.has(p + "wri")):
            return swing
        rest_hint = hands.rest_thumb_side(self.plan, side, unit.rest_direction)
        if rest_hint is None:
            return swing
        wrist = src(p + "wri")
        axis, observed = hands.observed_thumb_side(wrist, wrist + direction, src(p + "thu"))
        if not hands.thumb_is_seen(observed, self.s0):
            return swing
        reference = np.einsum("tij,j->ti", swing, rest_hint)
        hint = filter_hinge(axis, reference, observed, self.s0)
        return _from_frames(direction, hint, unit.rest_direction, rest_hint)

    def _hinge_hint(self, unit: Unit, swing: np.ndarray) -> np.ndarray:
        side = unit.slot.split(".")[1].lower()
        key = f"{side}.{unit.hinge}"
        if key in self.hinge_hints:  # the lower bone of a pair shares the upper bone's axis
            return self.hinge_hints[key]
        names = [side + n for n in HINGES[unit.hinge][2]]
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
