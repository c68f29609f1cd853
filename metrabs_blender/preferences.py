"""Add-on preferences: the backend Python (with torch), its set-up, device, model and cache.

``bl_idname`` is the add-on's module name (``bl_ext.<repo>.metrabs_mocap`` once installed), the
package above this one. What "Check backend" finds is runtime state kept in :data:`STATUS`, not
saved anywhere.
"""

import bpy

from .errors import MocapError

#: the add-on's module name (the extension root package)
ADDON_PACKAGE = __package__.rpartition(".")[0]

OFFICIAL_MODEL = "metrabs_eff2l_384px_800k_28ds_pytorch"
DETECTOR_WITH_MODEL = "yolox_s"  # the weights manager installs it with a pose model
MODELS = (
    (
        "AUTO",
        "Automatic",
        "The official model once downloaded; until then the small demo model that ships with the "
        "add-on (trained on synthetic people: not for real footage)",
    ),
    (
        OFFICIAL_MODEL,
        "MeTRAbs L 384 px (official)",
        "Official MeTRAbs, EfficientNetV2-L, 28 datasets; non-commercial use only",
    ),
    (
        "metrabs_small_synth",
        "Small (synthetic data)",
        "The project's small model trained on synthetic people: demo and tests only",
    ),
    ("CUSTOM", "File or Folder", "A model folder or .tar.gz downloaded by hand"),
)
TORCH_VARIANTS = (
    ("default", "PyPI Default", "CUDA build on Linux, CPU build on Windows, MPS on macOS"),
    ("cu126", "CUDA 12.6", "NVIDIA GPUs (Linux and Windows), from download.pytorch.org"),
    ("cpu", "CPU Only", "Smallest download; slow analysis"),
)
DEVICES = (
    ("auto", "Auto", "CUDA when available, else the CPU"),
    ("cuda", "CUDA", "NVIDIA GPU (fails if torch sees none)"),
    ("cpu", "CPU", "Slow, but always works"),
)

#: runtime results of "Check backend": ``backend`` (BackendInfo or error text), ``models`` (list)
STATUS: dict[str, object] = {"backend": None, "models": None}


def has_progress_bar() -> bool:
    """``UILayout.progress`` exists (Blender 4.0+)."""
    return "progress" in bpy.types.UILayout.bl_rna.functions


def draw_progress(layout: "bpy.types.UILayout", fraction: float, text: str) -> None:
    """A progress bar where Blender has one, else a label with the percentage."""
    if has_progress_bar():
        layout.progress(factor=fraction, type="BAR", text=text)
    else:
        layout.label(text=f"{100 * fraction:.0f}%  {text}")


class METRABS_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    python_path: bpy.props.StringProperty(
        name="Backend Python",
        description="Python with torch that runs the analysis (empty: find one automatically)",
        subtype="FILE_PATH",
    )
    base_python: bpy.props.StringProperty(
        name="Set-up Python",
        description="Python 3.10+ used to create the backend environment (empty: Blender's own)",
        subtype="FILE_PATH",
    )
    torch_variant: bpy.props.EnumProperty(name="Torch", items=TORCH_VARIANTS, default="default")
    pip_options: bpy.props.StringProperty(
        name="Pip Options",
        description="Extra pip options for the set-up, e.g. --no-index --find-links /wheels "
        "to install from a local folder without network access",
    )
    device: bpy.props.EnumProperty(name="Device", items=DEVICES, default="auto")
    model: bpy.props.EnumProperty(name="Model", items=MODELS, default=MODELS[0][0])
    model_path: bpy.props.StringProperty(
        name="Model File", description="Model folder or .tar.gz (for File or Folder)",
        subtype="FILE_PATH",
    )  # fmt: skip
    cache_dir: bpy.props.StringProperty(
        name="Model Cache",
        description="Where models are downloaded (empty: the user cache folder)",
        subtype="DIR_PATH",
    )

    def model_spec(self) -> str | None:
        """What the worker's ``--model`` gets: a model name, a path, or None (its own default)."""
        if self.model == "CUSTOM":
            return bpy.path.abspath(self.model_path) or None
        return None if self.model == "AUTO" else self.model

    def registry_name(self) -> str | None:
        """The weights manager's name of the model to check or download (None: a user file)."""
        if self.model == "CUSTOM":
            return None
        return OFFICIAL_MODEL if self.model == "AUTO" else self.model

    def draw(self, context):
        from . import operators, requests

        layout = self.layout
        box = layout.box()
        box.label(text="Backend", icon="CONSOLE")
        box.prop(self, "python_path")
        info = STATUS["backend"]
        if info is not None:
            box.label(text=str(info if isinstance(info, str) else info.summary()), icon="INFO")
        row = box.row()
        row.operator("metrabs.check_backend", icon="CHECKMARK")
        job = operators.running_job("setup")
        if job is None:
            row.operator("metrabs.setup_backend", icon="IMPORT")
        else:
            draw_progress(box, job.fraction, job.text())
            box.operator("metrabs.cancel_job", text="Cancel Set-up", icon="X").kind = "setup"
        sub = box.column(align=True)
        sub.prop(self, "base_python")
        sub.prop(self, "torch_variant")
        sub.prop(self, "pip_options")
        if not bpy.app.online_access:
            col = box.column(align=True)
            col.label(text="Online access is off: Set up backend runs only with --no-index pip")
            col.label(text="options. To install by hand, run these commands in a terminal:")
            try:
                for line in requests.setup_command_text(context).splitlines():
                    col.label(text=line)
                col.operator("metrabs.copy_setup_command", icon="COPYDOWN")
            except MocapError as error:
                col.label(text=str(error), icon="ERROR")
        box.prop(self, "device")

        box = layout.box()
        box.label(text="Model", icon="MOD_ARMATURE")
        box.prop(self, "model")
        if self.model == "CUSTOM":
            box.prop(self, "model_path")
        else:
            self._draw_model_status(box)
        box.prop(self, "cache_dir")

    def _draw_model_status(self, layout) -> None:
        from . import operators

        models = STATUS["models"]
        name = self.registry_name()
        entry = next((m for m in models or () if m.get("name") == name), None)
        if entry is None:
            layout.label(text="Status unknown: press Check Backend", icon="QUESTION")
        elif entry.get("installed"):
            layout.label(text=f"Installed: {entry.get('path')}", icon="CHECKMARK")
        else:
            layout.label(text=f"Not downloaded ({_size(entry)}); licence: {entry.get('license')}",
                         icon="X")  # fmt: skip
            detector = next((m for m in models if m.get("name") == DETECTOR_WITH_MODEL), None)
            if detector is not None and not detector.get("installed"):
                layout.label(text=f"Download Model also installs the person detector "
                                  f"{DETECTOR_WITH_MODEL} ({_size(detector)}; Apache-2.0)")  # fmt: skip
            if self.model == "AUTO":
                layout.label(text="Until then the small demo model runs (not for real footage)")
        job = operators.running_job("download")
        if job is not None:
            draw_progress(layout, job.fraction, job.text())
            layout.operator(
                "metrabs.cancel_job", text="Cancel Download", icon="X"
            ).kind = "download"
        elif entry is None or not entry.get("installed"):
            layout.operator("metrabs.download_model", icon="URL")


def _size(entry: dict) -> str:
    """A model's download size for the panel (published, else the registry's approximation)."""
    if entry.get("size"):
        return f"{entry['size'] / 1e6:.0f} MB"
    return entry.get("approx_size") or "size not published"


def get(context: "bpy.types.Context | None" = None) -> "METRABS_AddonPreferences | None":
    """The add-on's preferences, or None when it is not registered as an add-on (source tree)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon is not None else None


CLASSES = (METRABS_AddonPreferences,)
