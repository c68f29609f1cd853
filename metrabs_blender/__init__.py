# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender side of MeTRAbs Mocap: panel, operators, properties and the scripting API.

Submodules are imported in ``register()``: this package also serves ``python -m metrabs_blender``,
which loads the extension under its own package name first (see ``__main__``), so nothing here may
use a relative import of a sibling package at import time.
"""


def _modules():
    from . import bone_map, bone_map_ui, operators, panels, preferences, properties

    # bone_map's property groups before properties, which points at them; its panel after
    # the main panel it hangs from
    return (bone_map, properties, preferences, operators, panels, bone_map_ui)


def register() -> None:
    import bpy

    for module in _modules():
        for cls in module.CLASSES:
            bpy.utils.register_class(cls)
    from . import operators, properties

    properties.attach()
    operators.register()


def unregister() -> None:
    import bpy

    from . import operators, properties

    operators.unregister()
    properties.detach()
    for module in reversed(_modules()):
        for cls in reversed(module.CLASSES):
            bpy.utils.unregister_class(cls)
