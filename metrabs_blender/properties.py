"""Scene properties of the panel, stored in the .blend at ``Scene.metrabs``."""

import bpy


class METRABS_PG_settings(bpy.types.PropertyGroup):
    trajectory_path: bpy.props.StringProperty(
        name="Trajectory",
        description="Trajectory file (.npz) written by the analysis",
        subtype="FILE_PATH",
    )
    match_scene: bpy.props.BoolProperty(
        name="Match Scene Timing",
        description="Set the scene's frame rate and frame range to the clip's",
        default=True,
    )


CLASSES = (METRABS_PG_settings,)


def attach() -> None:
    bpy.types.Scene.metrabs = bpy.props.PointerProperty(type=METRABS_PG_settings)


def detach() -> None:
    del bpy.types.Scene.metrabs
