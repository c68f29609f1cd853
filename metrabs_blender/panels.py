"""The sidebar panel (3D View > Sidebar > Mocap)."""

import bpy


class VIEW3D_PT_metrabs_import(bpy.types.Panel):
    bl_label = "MeTRAbs Mocap"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Mocap"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.metrabs
        layout.prop(settings, "trajectory_path")
        layout.prop(settings, "match_scene")
        layout.operator("metrabs.import_trajectory", icon="IMPORT")


CLASSES = (VIEW3D_PT_metrabs_import,)
