"""Pure-numpy motion processing: the trajectory contract, cleaning, and the retarget solve.

The two stages are sub-packages, ``clean`` (raw poses -> clean, planted motion; ``python -m
retarget clean``) and ``solve`` (joint positions -> bone rotations of a rig); the modules here are
what both share: the trajectory contract (``contract``), joint names and skeletons (``joints``,
``skeletons``), coordinate frames, rotations, two-bone IK (``ik``) and quality metrics.

Runs inside Blender's own Python (numpy only) and never imports ``bpy``: everything is importable
and testable without Blender (the keyframe writer is ``metrabs_blender.keyframes``).
"""


class RetargetError(Exception):
    """Base class of the errors this package raises; the message says what to do."""
