"""The source side of the solve: the motion's joints by name (:class:`Source`), its spine and neck
chains resampled by arc length, stand-ins for joints a skeleton lacks, and the leg length that
scales the root motion. Pure numpy."""

from collections.abc import Mapping

import numpy as np

from .. import RetargetError
from ..rotations import normalize
from ..skeletons import Skeleton
from .target import Unit, chain_point

_SOURCE_CHAINS = {"spine": ("bell", "spin", "thor", "neck"), "neck": ("neck", "head")}
# Where the source skeleton lacks a slot's own joints, these source segments (parallel to it in a
# standing pose) stand in for its direction: Human3.6M has no "bell", SMPL-24 no head top.
_STAND_INS = {
    "hips": (("pelv", "spin"), ("pelv", "thor"), ("pelv", "neck")),
    "head": (("neck", "head"),),
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


class Source:
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
        return chain_point(points, fractions, where)

    def segment(self, unit: "Unit") -> tuple[str | float, str | float] | None:
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
