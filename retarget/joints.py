"""Joint identity: which canonical joint a name means, whatever its spelling.

Pose models name the same joint differently. The official MeTRAbs release suffixes names with the
dataset they come from (``pelv_smpl``, ``nose_coco``, ``htop_mpi_inf_3dhp``), spells the SMPL spine
``spi1, spi2, spi3`` in ``smpl_24`` and Human3.6M's mid-spine ``tors``, and lists joints in other
orders than ours (its raw joints put the pelvis last). This module is the one place that knows
these spellings: :func:`canonical_name` maps a name to the canonical joint of
:mod:`retarget.skeletons`, :func:`skeleton_order` finds where each canonical joint of a skeleton
sits among a file's or model's names. Pure Python.
"""

from collections.abc import Sequence

import numpy as np

from . import RetargetError
from .skeletons import Skeleton

# Dataset tags the official release appends to joint names ("<joint>_<tag>"): those of its 555
# raw joints and skeleton_infos (PosePile's merge of 28 datasets) and of the 2021 TensorFlow models.
DATASET_TAGS = (
    "smpl", "smplx", "h36m", "sailvos", "coco", "3dhp", "mpi_inf_3dhp", "gpa", "aspset", "3doh",
    "3dpeople", "bmlmovi", "mads", "umpm", "bmhad", "totcap", "jta", "ikea", "human4d", "ghum",
    "kinectv2", "muco", "cmu_panoptic",
)  # fmt: skip
# The 2021 TensorFlow models glue this tag on without an underscore ("learcoco").
_GLUED_TAGS = ("coco",)
# Other spellings of canonical joints: the official smpl_24 spine, Human3.6M's mid-spine, the hand
# points of the hand extension as Kinect v2 (hand tip) and BMLmovi (thumb) spell them.
ALIASES = {"spi1": "bell", "spi2": "spin", "spi3": "thor", "tors": "spin", "lhandtip": "lfin",
           "rhandtip": "rfin", "lthumb": "lthu", "rthumb": "rthu"}  # fmt: skip


class JointNamesError(RetargetError):
    """Joint names that do not fit the skeleton they claim to be; the message names them."""


def canonical_name(name: str) -> str:
    """The canonical spelling of a joint name: dataset suffix dropped, aliases resolved
    (``pelv_smpl`` -> ``pelv``, ``spi1`` -> ``bell``, ``htop_mpi_inf_3dhp`` -> ``htop``,
    ``learcoco`` -> ``lear``)."""
    base = str(name).strip()
    suffixes = ["_" + tag for tag in DATASET_TAGS] + list(_GLUED_TAGS)
    for suffix in sorted(suffixes, key=len, reverse=True):
        if base.endswith(suffix) and len(base) > len(suffix):
            base = base[: -len(suffix)]
            break
    return ALIASES.get(base, base)


def skeleton_order(names: Sequence[str], skeleton: Skeleton) -> np.ndarray:
    """Indices ``(J,)`` into ``names`` of ``skeleton``'s joints in its canonical order.

    ``names[order[j]]`` is canonical joint ``j`` in whatever spelling. Raises
    :class:`JointNamesError` naming the joints that do not fit: unknown names, canonical joints
    missing, or one joint given twice.
    """
    canonical = [canonical_name(name) for name in names]
    wanted = set(skeleton.joint_names)
    unknown = [name for name, known in zip(names, canonical, strict=True) if known not in wanted]
    missing = [joint for joint in skeleton.joint_names if joint not in canonical]
    twice = sorted({known for known in canonical if canonical.count(known) > 1} & wanted)
    problems = []
    if unknown:
        problems.append(f"not joints of {skeleton.name!r}: {', '.join(map(str, unknown))}")
    if missing:
        problems.append(f"missing: {', '.join(missing)}")
    if twice:
        problems.append(f"given more than once: {', '.join(twice)}")
    if problems:
        raise JointNamesError(
            f"the joint names do not fit the {skeleton.name!r} skeleton they declare "
            f"({'; '.join(problems)}); its joints are {', '.join(skeleton.joint_names)}"
        )
    return np.array([canonical.index(joint) for joint in skeleton.joint_names], np.int64)
