"""Video analysis with MeTRAbs: runs in a Python that has torch, never inside Blender.

Started by the add-on as a subprocess (``python -m inference ...``); writes the trajectory contract
(``retarget.contract``) and streams JSON-lines progress on stdout.
"""


class InferenceError(Exception):
    """Base class of the errors this package raises; the message says what to do."""
