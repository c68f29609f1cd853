"""Errors of the Blender side; operators turn them into reports."""


class MocapError(Exception):
    """A problem the user can fix; the message says how."""


class BackendError(MocapError):
    """The backend Python is missing, broken or failed; the message says what to do."""
