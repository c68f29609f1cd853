"""``python -m metrabs_blender IN.npz --out scene.blend``: build a scene headless, in a Python that
has ``bpy`` (PyPI ``bpy`` or ``blender --background --python-expr``).

The repo root is the extension package, whose modules import each other relatively. So this entry
first loads the root under the extension's id, then runs the same code Blender runs.
"""

import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path

EXTENSION_ID = "metrabs_mocap"


def load_extension_package():
    """Import the extension root (the folder above this package) as ``metrabs_mocap``."""
    if EXTENSION_ID not in sys.modules:
        root = Path(__file__).resolve().parent.parent
        spec = importlib.util.spec_from_file_location(
            EXTENSION_ID, root / "__init__.py", submodule_search_locations=[str(root)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[EXTENSION_ID] = module
        spec.loader.exec_module(module)
    return sys.modules[EXTENSION_ID]


if __name__ == "__main__":
    load_extension_package()
    code = importlib.import_module(f"{EXTENSION_ID}.metrabs_blender.cli").main()
    # The work is saved: leave without the interpreter's teardown, in which PyPI bpy 4.2 crashes
    # after a glTF export (and after a Rigify generation), which would turn success into SIGSEGV.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
