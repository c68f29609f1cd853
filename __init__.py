# SPDX-License-Identifier: GPL-3.0-or-later
"""MeTRAbs Mocap: the extension's entry point; everything lives in ``metrabs_blender``."""

from . import metrabs_blender


def register() -> None:
    metrabs_blender.register()


def unregister() -> None:
    metrabs_blender.unregister()
