"""Pure-numpy motion processing: the trajectory contract, cleaning, and the retarget solve.

Runs inside Blender's own Python (numpy only) and never imports ``bpy``: everything is importable
and testable without Blender (the keyframe writer is ``metrabs_blender.keyframes``).
"""


class RetargetError(Exception):
    """Base class of the errors this package raises; the message says what to do."""
