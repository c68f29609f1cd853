# SPDX-License-Identifier: GPL-3.0-or-later
"""MeTRAbs Mocap: the extension's entry point; everything lives in ``metrabs_blender``.

The import is deferred to ``register()`` so that importing this file outside Blender's extension
system (pytest treats the repo root as a package) has no side effects.
"""


def register() -> None:
    from . import metrabs_blender

    metrabs_blender.register()


def unregister() -> None:
    from . import metrabs_blender

    metrabs_blender.unregister()
