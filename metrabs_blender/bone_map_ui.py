"""The Bone Map panel (3D View > Sidebar > Mocap > Bone Map): each slot of the body and the target
bone that plays it, filled automatically or from a preset, edited with a bone search field, saved
and loaded as named presets in the extension's user folder. The import uses it with Rig Map
*Bone Map*. Buttons are thin operators over ``api`` (``fill_bone_map``, ``edit_bone_map``,
``save_bone_map``, ``load_bone_map``, ``delete_bone_map``); the data is ``bone_map``."""

import bpy

from .operators import report_errors
from .properties import RIG_MAPS

# Fill from: "auto" and the built-in presets of the Rig Map menu
FILL_ITEMS = tuple(item for item in RIG_MAPS if item[0] not in ("JSON", "EDITOR"))
ROW_ACTIONS = (
    ("ADD", "Add Bone", "Add a bone to the selected row's part (a longer spine or neck)"),
    ("REMOVE", "Remove Bone", "Remove the selected row (its part is left untouched)"),
)
_PRESET_ITEMS: list = []  # Blender keeps no reference to dynamic enum items: this one does


def _preset_items(_self, _context):
    from . import api

    _PRESET_ITEMS[:] = [(name, name, f"The saved bone map {name!r}") for name in
                        api.bone_map_presets()] or [("", "(none saved)", "")]  # fmt: skip
    return _PRESET_ITEMS


class METRABS_UL_bone_slots(bpy.types.UIList):
    """One row per slot: the part of the body and the target bone (searched among the target's
    bones)."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        from .bone_map import slot_label

        row = layout.row(align=True)
        split = row.split(factor=0.4, align=True)
        split.label(text=slot_label(item.slot))
        target = context.scene.metrabs.target
        if target is not None and target.type == "ARMATURE":
            split.prop_search(item, "bone", target.data, "bones", text="")
        else:
            split.prop(item, "bone", text="")


class METRABS_OT_fill_bone_map(bpy.types.Operator):
    """Fill the bone map for the target armature: automatically, or from a preset"""

    bl_idname = "metrabs.fill_bone_map"
    bl_label = "Fill Bone Map"
    bl_options = {"REGISTER", "UNDO"}

    rig_map: bpy.props.EnumProperty(name="From", items=FILL_ITEMS, default="auto")

    @report_errors
    def execute(self, context):
        from . import api

        report = api.fill_bone_map(context.scene.metrabs.target, self.rig_map, scene=context.scene)
        self.report({"INFO"}, f"Bone map: {report.method}, {len(report.matched)} part(s) found")
        return {"FINISHED"}


class METRABS_OT_edit_bone_map(bpy.types.Operator):
    """Add a bone to the selected part (chains), or remove the selected row"""

    bl_idname = "metrabs.edit_bone_map"
    bl_label = "Edit Bone Map"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    action: bpy.props.EnumProperty(items=ROW_ACTIONS, default="ADD")

    @report_errors
    def execute(self, context):
        from . import api

        api.edit_bone_map(self.action, scene=context.scene)
        return {"FINISHED"}


class METRABS_OT_save_bone_map(bpy.types.Operator):
    """Save the bone map as a preset in the add-on's user folder (replacing one of that name)"""

    bl_idname = "metrabs.save_bone_map"
    bl_label = "Save Bone Map"

    @report_errors
    def execute(self, context):
        from . import api

        name = context.scene.metrabs.bone_map.preset_name
        path = api.save_bone_map(name, scene=context.scene)
        self.report({"INFO"}, f"Bone map saved: {path}")
        return {"FINISHED"}


class METRABS_OT_load_bone_map(bpy.types.Operator):
    """Load a saved bone map into the editor"""

    bl_idname = "metrabs.load_bone_map"
    bl_label = "Load Bone Map"
    bl_options = {"REGISTER", "UNDO"}

    name: bpy.props.EnumProperty(name="Preset", items=_preset_items)

    @report_errors
    def execute(self, context):
        from . import api

        api.load_bone_map(self.name, scene=context.scene)
        self.report({"INFO"}, f"Bone map {self.name!r} loaded")
        return {"FINISHED"}


class METRABS_OT_delete_bone_map(bpy.types.Operator):
    """Delete a saved bone map preset"""

    bl_idname = "metrabs.delete_bone_map"
    bl_label = "Delete Bone Map"

    name: bpy.props.EnumProperty(name="Preset", items=_preset_items)

    @report_errors
    def execute(self, context):
        from . import api

        api.delete_bone_map(self.name)
        self.report({"INFO"}, f"Bone map {self.name!r} deleted")
        return {"FINISHED"}


class VIEW3D_PT_metrabs_bone_map(bpy.types.Panel):
    """Which bone of the target plays which part of the body."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Mocap"
    bl_label = "Bone Map"
    bl_parent_id = "VIEW3D_PT_metrabs_import"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        settings = context.scene.metrabs
        bone_map = settings.bone_map
        target = settings.target
        if target is None:
            layout.label(text="Choose a Target in Results to map its bones", icon="INFO")
        layout.operator_menu_enum("metrabs.fill_bone_map", "rig_map", text="Fill", icon="AUTO")
        row = layout.row()
        row.template_list(
            "METRABS_UL_bone_slots", "", bone_map, "rows", bone_map, "active_row", rows=8
        )
        buttons = row.column(align=True)
        buttons.operator("metrabs.edit_bone_map", text="", icon="ADD").action = "ADD"
        buttons.operator("metrabs.edit_bone_map", text="", icon="REMOVE").action = "REMOVE"
        col = layout.column()
        col.use_property_split = True
        col.use_property_decorate = False
        if target is not None and target.type == "ARMATURE":
            col.prop_search(bone_map, "root", target.data, "bones")
        else:
            col.prop(bone_map, "root")
        if bone_map.source:
            layout.label(text=f"Filled from: {bone_map.source}")
        if bone_map.extras:
            layout.label(text="Keeps the preset's joint bones, switches and IK", icon="LINKED")
        row = layout.row(align=True)
        row.prop(bone_map, "preset_name", text="")
        row.operator("metrabs.save_bone_map", text="", icon="FILE_TICK")
        row = layout.row(align=True)
        row.operator_menu_enum("metrabs.load_bone_map", "name", text="Load", icon="FILE_FOLDER")
        row.operator_menu_enum("metrabs.delete_bone_map", "name", text="Delete", icon="TRASH")
        if settings.rig_map != "EDITOR":
            layout.label(text="Import with it: Rig Map > Bone Map", icon="INFO")


CLASSES = (
    METRABS_UL_bone_slots,
    METRABS_OT_fill_bone_map,
    METRABS_OT_edit_bone_map,
    METRABS_OT_save_bone_map,
    METRABS_OT_load_bone_map,
    METRABS_OT_delete_bone_map,
    VIEW3D_PT_metrabs_bone_map,
)
