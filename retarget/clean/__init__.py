"""The cleaning stage: raw per-frame 3D poses -> smooth, planted, physically plausible motion
(docs/design.md §4–5), ``python -m retarget clean`` on the command line.

:func:`clean_trajectory` (``pipeline.py``) runs, per person, the outlier gates (``outliers.py``,
over the robust statistics of ``robust.py``), gap filling (``gaps.py``: PCHIP, ``kalman.py``
bridges), smoothing (``filters.py`` low-pass, ``kalman.py`` root), bone lengths (``bones.py``);
then, over all people, the floor fit (``floor.py``) and the foot contacts and joint-level foot lock
(``contacts.py``). ``params.py`` holds the settings and presets, ``cli.py`` the command line.
"""

from .params import PRESETS, CleanError, CleanParams, resolve_params
from .pipeline import CLEAN_KEYS, clean_trajectory

__all__ = [
    "CLEAN_KEYS",
    "PRESETS",
    "CleanError",
    "CleanParams",
    "clean_trajectory",
    "resolve_params",
]
