"""Skeleton definitions: joint names and the kinematic tree of the trajectory files.

The canonical skeleton of this project is ``smpl+head_30``: the 24 SMPL body joints followed by six
head points (head top, ears, eyes, nose), with the MeTRAbs short joint names. Left/right are the
person's own sides. Its hand extension ``smpl+head+hands_34`` adds four hand points after those
30 (:data:`HAND_POINTS`: each hand's thumb and hand end, children of the wrist), which give the
hand its roll; the worker writes it when the model predicts them (docs/trajectory.md).
"""

from dataclasses import dataclass

import numpy as np

from . import RetargetError


@dataclass(frozen=True)
class Skeleton:
    """A joint set with its tree: ``parents[j]`` is the parent joint index of ``j`` (-1 for the root)."""

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]

    def __post_init__(self) -> None:
        assert len(self.joint_names) == len(self.parents)
        assert all(p < j for j, p in enumerate(self.parents)), "parents must precede children"

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def edges(self) -> np.ndarray:
        """``(E, 2)`` int32 pairs (parent, child) for every non-root joint."""
        return np.array([(p, j) for j, p in enumerate(self.parents) if p >= 0], np.int32)

    def index(self, joint_name: str) -> int:
        return self.joint_names.index(joint_name)

    def left_right_permutation(self) -> np.ndarray:
        """Joint index permutation that swaps left and right (``l*`` <-> ``r*``)."""

        def mirror(name: str) -> str:
            swapped = {"l": "r", "r": "l"}.get(name[0], "") + name[1:]
            return swapped if swapped in self.joint_names else name

        return np.array([self.joint_names.index(mirror(n)) for n in self.joint_names])


_SMPL_24_NAMES = (
    "pelv", "lhip", "rhip", "bell", "lkne", "rkne", "spin", "lank", "rank", "thor", "ltoe", "rtoe",
    "neck", "lcla", "rcla", "head", "lsho", "rsho", "lelb", "relb", "lwri", "rwri", "lhan", "rhan",
)  # fmt: skip
_SMPL_24_PARENTS = (
    -1,
    0,
    0,
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    9,
    9,
    12,
    13,
    14,
    16,
    17,
    18,
    19,
    20,
    21,
)
_HEAD = 15

SMPL_24 = Skeleton("smpl_24", _SMPL_24_NAMES, _SMPL_24_PARENTS)
SMPL_HEAD_30 = Skeleton(
    "smpl+head_30",
    _SMPL_24_NAMES + ("htop", "lear", "leye", "nose", "rear", "reye"),
    _SMPL_24_PARENTS + (_HEAD,) * 6,
)

# Human3.6M's 17 joints, pelvis first (parents before children). Its pelvis and hips sit a little
# higher and wider than SMPL's, ``spin`` is its mid-spine ("tors" in MeTRAbs' raw names), ``neck``
# the base of the neck, ``head`` a point between the ears and ``htop`` the top of the head.
H36M_17 = Skeleton(
    "h36m_17",
    ("pelv", "rhip", "rkne", "rank", "lhip", "lkne", "lank", "spin", "neck", "head", "htop",
     "lsho", "lelb", "lwri", "rsho", "relb", "rwri"),
    (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
)  # fmt: skip

# The hand extension: per hand the thumb ("lthu": Human3.6M's thumb point) and the end of the
# hand ("lfin": Human3.6M's hand end, Kinect's hand tip), after the 30 joints of smpl+head_30.
HAND_POINTS = ("lthu", "lfin", "rthu", "rfin")
_WRISTS = {"l": 20, "r": 21}  # lwri, rwri in smpl_24 order
SMPL_HEAD_HANDS_34 = Skeleton(
    "smpl+head+hands_34",
    SMPL_HEAD_30.joint_names + HAND_POINTS,
    SMPL_HEAD_30.parents + tuple(_WRISTS[name[0]] for name in HAND_POINTS),
)

SKELETONS = {
    skeleton.name: skeleton for skeleton in (SMPL_24, SMPL_HEAD_30, H36M_17, SMPL_HEAD_HANDS_34)
}
# Skeletons whose joints can drive a rig (a pelvis, hips, knees, ankles, a spine to the neck, a
# head, shoulders, elbows and wrists); the others can be cleaned but not imported.
RIG_SKELETONS = ("smpl+head_30", "smpl_24", "h36m_17", "smpl+head+hands_34")


def get_skeleton(name: str) -> Skeleton:
    try:
        return SKELETONS[name]
    except KeyError:
        raise RetargetError(
            f"Unknown skeleton {name!r}; known skeletons: {', '.join(sorted(SKELETONS))}"
        ) from None


def get_rig_skeleton(name: str) -> Skeleton:
    """The skeleton ``name`` if it can drive a rig; else an error listing those that can."""
    if name not in RIG_SKELETONS:
        raise RetargetError(
            f"a {name!r} skeleton cannot drive a rig; analyse the clip with one of "
            f"{', '.join(RIG_SKELETONS)} (the worker's --skeleton)"
        )
    return SKELETONS[name]
