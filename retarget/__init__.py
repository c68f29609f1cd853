"""Pure-numpy motion processing: the trajectory contract, cleaning, and the retarget solve.

Runs inside Blender's own Python (numpy only). ``retarget.keyframes`` is the one module that
touches ``bpy``; everything else is importable and testable without Blender.
"""


class RetargetError(Exception):
    """Base class of the errors this package raises; the message says what to do."""
