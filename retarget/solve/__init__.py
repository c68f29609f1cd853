"""The solve: joint positions -> bone rotations of any humanoid armature (docs/design.md §5–6).

:func:`retarget` (``pipeline.py``) solves one person's take onto a target: the target's rest pose
and plan (``target.py``), the source motion (``source.py``), each keyed bone's rotation from its
direction and twist hint (``bone_frames.py``), foot locking during contacts (``footlock.py``) and
the local keys (``output.py``). ``rig.py`` builds the generated rig, ``rigmaps.py`` says which bones
of a rig play which part of the body; ``params.py`` holds the settings.
"""

from .params import JOINT_LIMITS_DEG, ROOT_MOTIONS, FootLockParams, RetargetParams
from .pipeline import RetargetResult, retarget
from .target import TargetRig

__all__ = [
    "JOINT_LIMITS_DEG",
    "ROOT_MOTIONS",
    "FootLockParams",
    "RetargetParams",
    "RetargetResult",
    "TargetRig",
    "retarget",
]
