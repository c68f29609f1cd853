"""The sidebar panels (3D View > Sidebar > Mocap): footage -> Analyze -> results -> Import -> review,
and a folder of clips -> Analyze Folder -> Import Folder.

Panels only draw; every button is an operator. Progress comes from the running job (runtime
state in ``operators``), redrawn by the modal operator's timer.
"""

import bpy

from . import operators
from .preferences import draw_progress


class _MocapPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Mocap"


class METRABS_UL_people(bpy.types.UIList):
    """One row per tracked person: colour, import tick, frames seen, mean score, own rig."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        swatch = row.row()
        swatch.ui_units_x = 1.2
        swatch.prop(item, "colour", text="")
        row.prop(item, "use_import", text=item.name)
        row.label(text=f"{item.frames_visible} fr  {item.first_frame}-{item.last_frame}")
        row.label(text=f"score {item.mean_score:.2f}")
        row.prop(item, "target", text="", icon="ARMATURE_DATA")


class VIEW3D_PT_metrabs_import(_MocapPanel, bpy.types.Panel):
    """Footage and analysis."""

    bl_label = "MeTRAbs Mocap"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.metrabs
        layout.use_property_split = True
        layout.use_property_decorate = False
        col = layout.column()
        col.prop(settings, "footage_source", expand=True)
        if settings.footage_source == "CLIP":
            col.template_ID(settings, "clip", open="clip.open")
        else:
            col.prop(settings, "footage_path")
        col.prop(settings, "use_frame_range")
        if settings.use_frame_range:
            sub = col.column(align=True)
            sub.prop(settings, "frame_first")
            sub.prop(settings, "frame_last")
        col.prop(settings, "camera_model")
        if settings.camera_model == "FOV":
            col.prop(settings, "fov")
        elif settings.camera_model == "FOCAL":
            col.prop(settings, "focal_length")
            col.prop(settings, "sensor_width")
        col.prop(settings, "max_people")
        col.prop(settings, "output_dir")
        job = operators.running_job("analyze")
        if job is None:
            row = layout.row(align=True)
            row.operator("metrabs.analyze_footage", icon="PLAY")
            if settings.analysis_partial:
                row.operator("metrabs.analyze_footage", text="Resume", icon="FF").resume = True
        else:
            draw_progress(layout, job.fraction, job.text())
            layout.operator("metrabs.cancel_job", text="Cancel (keep frames done)", icon="X")


class VIEW3D_PT_metrabs_results(_MocapPanel, bpy.types.Panel):
    """Who was tracked, and the import."""

    bl_label = "Results"
    bl_parent_id = "VIEW3D_PT_metrabs_import"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.metrabs
        row = layout.row(align=True)
        row.prop(settings, "trajectory_path", text="")
        row.operator("metrabs.load_results", text="", icon="FILE_REFRESH")
        if settings.analysis_partial:
            layout.label(text="Partial result (analysis was cancelled)", icon="ERROR")
        layout.template_list("METRABS_UL_people", "", settings, "people", settings, "active_person")
        col = layout.column()
        col.use_property_split = True
        col.use_property_decorate = False
        col.prop(settings, "clean_preset")
        col.prop(settings, "target")
        if settings.target is not None or any(p.target for p in settings.people):
            col.prop(settings, "rig_map")
            if settings.rig_map == "JSON":
                col.prop(settings, "rig_map_path")
            col.prop(settings, "limb_ik")
        col.prop(settings, "root_motion")

        col = layout.column(heading="Import")
        col.use_property_split = True
        col.prop(settings, "foot_contacts")
        col.prop(settings, "use_joint_limits")
        col.prop(settings, "use_nla")
        col.prop(settings, "key_reduction")
        if settings.key_reduction == "REDUCED":
            col.prop(settings, "key_tolerance_deg")
            col.prop(settings, "key_tolerance_mm")
        col.prop(settings, "match_scene")
        col.prop(settings, "use_camera")
        col.prop(settings, "use_review_markers")
        col.prop(settings, "use_raw_joints")
        row = layout.row(align=True)
        row.operator("metrabs.import_results", icon="IMPORT")
        retarget = row.row(align=True)
        retarget.enabled = bool(settings.cleaned_path)
        retarget.operator(
            "metrabs.import_results", text="Re-target", icon="FILE_REFRESH"
        ).retarget = True
        row = layout.row(align=True)
        row.operator("metrabs.import_trajectory", text="Import File...", icon="FILE_FOLDER")
        row.operator("metrabs.export_take", text="Export Take...", icon="EXPORT")


class VIEW3D_PT_metrabs_review(_MocapPanel, bpy.types.Panel):
    """Review aids, and the camera match on its own."""

    bl_label = "Review"
    bl_parent_id = "VIEW3D_PT_metrabs_import"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        settings = context.scene.metrabs
        layout.prop(settings, "uncertainty_threshold")
        row = layout.row(align=True)
        row.operator("metrabs.review_markers", icon="MARKER_HLT")
        row.operator("metrabs.raw_joints", icon="EMPTY_AXIS")
        layout.operator("metrabs.setup_camera", icon="CAMERA_DATA")


class VIEW3D_PT_metrabs_folder(_MocapPanel, bpy.types.Panel):
    """Many clips: the batch command over a folder, then one take per clip and person."""

    bl_label = "Folder of Clips"
    bl_parent_id = "VIEW3D_PT_metrabs_import"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        settings = context.scene.metrabs
        col = layout.column()
        col.use_property_split = True
        col.use_property_decorate = False
        col.prop(settings, "batch_input_dir")
        col.prop(settings, "use_batch_recursive")
        col.prop(settings, "batch_output_dir")
        col.prop(settings, "batch_workers")
        col.prop(settings, "batch_clean_preset")
        col.prop(settings, "batch_options")
        layout.label(text="Camera, Max People, model and device as above", icon="INFO")
        job = operators.running_job("batch")
        if job is None:
            layout.operator("metrabs.analyze_folder", icon="PLAY")
        else:
            draw_progress(layout, job.fraction, job.text())
            cancel = layout.operator(
                "metrabs.cancel_job", text="Cancel (keep finished clips)", icon="X"
            )
            cancel.kind = "batch"
        if settings.batch_result_dir or settings.batch_status:
            box = layout.box()
            box.prop(settings, "batch_result_dir")
            if settings.batch_status:
                cancelled = settings.batch_status.startswith("Cancelled")
                box.label(text=settings.batch_status, icon="ERROR" if cancelled else "CHECKMARK")
            row = box.row()
            row.enabled = job is None and bool(settings.batch_result_dir)
            row.operator("metrabs.import_folder", icon="IMPORT")


CLASSES = (
    METRABS_UL_people,
    VIEW3D_PT_metrabs_import,
    VIEW3D_PT_metrabs_results,
    VIEW3D_PT_metrabs_review,
    VIEW3D_PT_metrabs_folder,
)
