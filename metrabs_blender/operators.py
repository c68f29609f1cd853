"""Operators: read properties, call one function of ``api``, report."""

import bpy

from .errors import MocapError


class METRABS_OT_import_trajectory(bpy.types.Operator):
    """Import a trajectory file (.npz) as animated armatures, one new action per person"""

    bl_idname = "metrabs.import_trajectory"
    bl_label = "Import Trajectory"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})
    filter_glob: bpy.props.StringProperty(default="*.npz", options={"HIDDEN"})

    def invoke(self, context, event):
        if not self.filepath and context.scene.metrabs.trajectory_path:
            self.filepath = bpy.path.abspath(context.scene.metrabs.trajectory_path)
            return self.execute(context)
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        from .. import retarget
        from . import api

        settings = context.scene.metrabs
        try:
            results = api.import_trajectory(
                bpy.path.abspath(self.filepath), match_scene=settings.match_scene
            )
        except (MocapError, retarget.RetargetError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        settings.trajectory_path = self.filepath
        names = ", ".join(result.armature.name for result in results)
        self.report({"INFO"}, f"Imported {len(results)} person(s): {names}")
        return {"FINISHED"}


CLASSES = (METRABS_OT_import_trajectory,)
