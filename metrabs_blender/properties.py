"""Scene properties of the panel, stored in the .blend at ``Scene.metrabs``.

Only settings and results live here; a running analysis (process, thread, queue) is runtime state
kept by the operators, never on scene data.
"""

import bpy

from .bone_map import METRABS_PG_bone_map

# Paths may be relative to the .blend ("//"): Blender 4.5+ asks for the option (and warns without
# it), older versions reject it. Feature-detected, never version-compared.
_RELATIVE_PATH = (
    {"PATH_SUPPORTS_BLEND_RELATIVE"}
    if "is_path_supports_blend_relative" in bpy.types.Property.bl_rna.properties
    else set()
)

FOOTAGE_SOURCES = (
    ("CLIP", "Movie Clip", "Footage loaded as a movie clip in this file"),
    ("FILE", "File", "A video file or image sequence on disk"),
)
CLEAN_PRESETS = (
    (
        "default",
        "Default",
        "Outlier gates, gap filling, motion-adaptive smoothing, bone lengths, foot lock",
    ),
    ("strong", "Strong", "Smoother: slow motion, noisy footage"),
    ("fast", "Fast / Dance", "Keeps more of quick motion: sport, dance"),
    ("none", "Minimal", "Gap filling and the floor fit only; the estimate otherwise"),
    ("OFF", "Off", "The analysis as it is: no gap filling, level camera"),
)
RIG_MAPS = (
    ("auto", "Auto", "Find the body's bones by their names and the hierarchy"),
    ("rigify", "Rigify", "A generated Rigify rig (keys its FK controls)"),
    ("mixamo", "Mixamo", "Mixamo bone names, any prefix"),
    ("smpl", "SMPL", "SMPL body model joints"),
    ("smplx", "SMPL-X", "SMPL-X body model joints"),
    ("metarig", "Human Metarig", "Blender's human metarig"),
    ("metrabs", "MeTRAbs Rig", "A rig this add-on generated"),
    ("JSON", "JSON File", "A rig map file (format metrabs-rigmap)"),
    # (new items go last: a saved scene stores an item's position)
    ("autorigpro", "Auto-Rig Pro", "An Auto-Rig Pro rig (keys its FK controls c_arm_fk.l, ...)"),
    ("EDITOR", "Bone Map", "The map of the Bone Map panel (filled, edited, saved as presets)"),
)
# Which limbs a target rig with IK controls (Rigify) animates in IK (retarget.solve.ik_controls).
LIMB_IK_MODES = (
    ("legs", "IK Legs, FK Arms", "Feet planted with IK controls, arms on FK controls"),
    ("fk", "FK", "FK controls only, every limb switched to FK"),
    ("arms", "IK Arms, FK Legs", "Hands pinned with IK controls, legs on FK controls"),
    ("all", "IK", "IK controls (hands, feet, poles) for every limb"),
)
# The solve's root motions (retarget.solve.ROOT_MOTIONS) after the automatic choice, in the panel's
# order: a saved scene stores an item's position, so new items go at the end.
ROOT_MOTION_ITEMS = (
    ("AUTO", "Auto", "As the camera saw it for new rigs; starting where a target stands"),
    ("camera", "Camera", "The path as the camera saw it"),
    ("relative", "Relative", "The path starts where the rig stands"),
    ("in_place", "In Place", "No travel: the hips stay over the rig's origin"),
)
FOOT_CONTACTS = (
    ("AUTO", "Auto", "Hold the feet while they touch the floor (the contacts the cleaning found) "
     "and keep them above it"),
    ("ALWAYS", "Always", "Hold the feet in place for the whole take (standing, seated or "
     "upper-body takes), above the floor"),
    ("NEVER", "Never", "The motion as solved: feet neither held nor kept above the floor (the "
     "cleaning's foot lock is off too)"),
    ("GROUNDED", "Grounded", "Feet never below the floor, never held"),
)  # fmt: skip
KEY_REDUCTIONS = (
    ("REDUCED", "Reduced", "Few Bezier keys per bone an animator can edit, within the tolerances "
     "of the solved motion on every frame"),
    ("DENSE", "Every Frame", "A linear key on every frame of every bone"),
)  # fmt: skip
CAMERA_MODELS = (
    ("DEFAULT", "Default", "Field of view of 55° on the longer side (the MeTRAbs default)"),
    ("FOV", "Field of View", "Field of view on the longer image side"),
    ("FOCAL", "Focal Length", "Lens focal length and sensor width, e.g. from the footage metadata"),
    ("CLIP", "Clip Camera", "The movie clip's camera data (Movie Clip Editor > Track > Camera)"),
)


class METRABS_PG_person(bpy.types.PropertyGroup):
    """One tracked person of the analysis (``name`` is ``P<track id>``)."""

    track_id: bpy.props.IntProperty(name="Track ID", description="Stable id of this person")
    frames_visible: bpy.props.IntProperty(name="Frames", description="Frames the person is seen in")
    first_frame: bpy.props.IntProperty(
        name="First", description="First footage frame the person is seen in (1 = first)"
    )
    last_frame: bpy.props.IntProperty(
        name="Last", description="Last footage frame the person is seen in"
    )
    mean_score: bpy.props.FloatProperty(
        name="Score", description="Mean detector score over the frames seen", min=0.0, max=1.0
    )
    mean_uncertainty: bpy.props.FloatProperty(
        name="Uncertainty",
        description="Mean joint uncertainty over the frames seen, millimetres (lower is better)",
    )
    colour: bpy.props.FloatVectorProperty(
        name="Colour", subtype="COLOR", size=3, min=0.0, max=1.0, default=(0.8, 0.5, 0.2)
    )
    use_import: bpy.props.BoolProperty(
        name="Import", description="Import this person's motion", default=True
    )
    target: bpy.props.PointerProperty(
        name="Rig",
        type=bpy.types.Object,
        poll=lambda self, obj: obj.type == "ARMATURE",
        description="Put this person's motion on this armature (empty: the Target below, or a "
        "new rig); several people onto several rigs in one import",
    )


class METRABS_PG_settings(bpy.types.PropertyGroup):
    # -- footage
    footage_source: bpy.props.EnumProperty(name="Footage", items=FOOTAGE_SOURCES, default="CLIP")
    clip: bpy.props.PointerProperty(
        name="Movie Clip", type=bpy.types.MovieClip, description="Footage to analyse"
    )
    footage_path: bpy.props.StringProperty(
        name="File",
        description="Video file or image sequence to analyse",
        subtype="FILE_PATH",
        options=_RELATIVE_PATH,
    )
    use_frame_range: bpy.props.BoolProperty(
        name="Frame Range", description="Analyse only part of the footage", default=False
    )
    frame_first: bpy.props.IntProperty(
        name="First", description="First footage frame to analyse (1 = first)", min=1, default=1
    )
    frame_last: bpy.props.IntProperty(
        name="Last", description="Last footage frame to analyse", min=1, default=250
    )
    # -- camera
    camera_model: bpy.props.EnumProperty(name="Camera", items=CAMERA_MODELS, default="DEFAULT")
    fov: bpy.props.FloatProperty(
        name="Field of View", description="On the longer image side, degrees",
        min=1.0, max=179.0, default=55.0,
    )  # fmt: skip
    focal_length: bpy.props.FloatProperty(
        name="Focal Length", description="Lens focal length, mm", min=0.1, default=35.0
    )
    sensor_width: bpy.props.FloatProperty(
        name="Sensor Width", description="Width of the camera sensor, mm", min=0.1, default=36.0
    )
    max_people: bpy.props.IntProperty(
        name="Max People", description="Track at most this many people", min=1, default=1
    )
    output_dir: bpy.props.StringProperty(
        name="Results Folder",
        description="Where trajectories are written (// = next to the .blend file)",
        subtype="DIR_PATH",
        default="//mocap/",
        options=_RELATIVE_PATH,
    )
    # -- results
    trajectory_path: bpy.props.StringProperty(
        name="Trajectory",
        description="Trajectory file (.npz) written by the analysis",
        subtype="FILE_PATH",
        options=_RELATIVE_PATH,
    )
    analysis_partial: bpy.props.BoolProperty(
        name="Partial", description="The last analysis was cancelled and covers part of the clip"
    )
    people: bpy.props.CollectionProperty(type=METRABS_PG_person)
    active_person: bpy.props.IntProperty(name="Active Person")
    # -- import
    target: bpy.props.PointerProperty(
        name="Target",
        type=bpy.types.Object,
        poll=lambda self, obj: obj.type == "ARMATURE",
        description="Put one person's motion on this armature (empty: a new rig per person)",
    )
    rig_map: bpy.props.EnumProperty(name="Rig Map", items=RIG_MAPS, default="auto")
    bone_map: bpy.props.PointerProperty(type=METRABS_PG_bone_map)
    rig_map_path: bpy.props.StringProperty(
        name="Rig Map File", subtype="FILE_PATH", options=_RELATIVE_PATH,
        description="JSON rig map (for Rig Map: JSON File)",
    )  # fmt: skip
    root_motion: bpy.props.EnumProperty(name="Root Motion", items=ROOT_MOTION_ITEMS, default="AUTO")
    limb_ik: bpy.props.EnumProperty(
        name="Limbs", items=LIMB_IK_MODES, default="legs",
        description="On a rig with IK controls (Rigify): the limbs animated in IK. Their hand, "
        "foot and pole controls are keyed from the motion too, so either switch position shows it",
    )  # fmt: skip
    foot_contacts: bpy.props.EnumProperty(
        name="Foot Contacts", items=FOOT_CONTACTS, default="AUTO",
        description="How the feet meet the floor",
    )  # fmt: skip
    key_reduction: bpy.props.EnumProperty(
        name="Keys", items=KEY_REDUCTIONS, default="REDUCED",
        description="How the motion is keyed",
    )  # fmt: skip
    key_tolerance_deg: bpy.props.FloatProperty(
        name="Rotation Tolerance", default=0.5, min=0.01, soft_max=5.0, precision=2,
        description="Reduced keys: the largest rotation error of a bone on any frame (degrees)",
    )  # fmt: skip
    key_tolerance_mm: bpy.props.FloatProperty(
        name="Root Tolerance", default=5.0, min=0.1, soft_max=50.0, precision=1,
        description="Reduced keys: the largest error of the root's location on any frame (mm)",
    )  # fmt: skip
    use_nla: bpy.props.BoolProperty(
        name="NLA Track",
        description="Put each take on a new NLA track (the active action stays as it is)",
        default=False,
    )
    use_joint_limits: bpy.props.BoolProperty(
        name="Joint Limits", description="Clamp joint rotations to human limits", default=False
    )
    clean_preset: bpy.props.EnumProperty(
        name="Cleaning", items=CLEAN_PRESETS, default="default",
        description="How the motion is cleaned before it is put on the rigs",
    )  # fmt: skip
    cleaned_path: bpy.props.StringProperty(
        name="Cleaned Trajectory",
        description="The cleaned trajectory the last import used (reused by Re-target)",
        subtype="FILE_PATH",
        options=_RELATIVE_PATH,
    )
    match_scene: bpy.props.BoolProperty(
        name="Match Scene Timing",
        description="Set the scene's frame rate and frame range to the clip's",
        default=True,
    )
    use_camera: bpy.props.BoolProperty(
        name="Match Camera",
        description="Add a camera with the analysis' lens and pose, the footage as background",
        default=True,
    )
    use_review_markers: bpy.props.BoolProperty(
        name="Review Markers",
        description="Mark gaps and low-confidence spans on the timeline",
        default=True,
    )
    use_raw_joints: bpy.props.BoolProperty(
        name="Raw Joints",
        description="Add animated empties at the raw joints, to compare with the cleaned motion",
        default=False,
    )
    uncertainty_threshold: bpy.props.FloatProperty(
        name="Low Confidence Above",
        description="Mean joint uncertainty (mm) above which a frame is marked for review",
        min=0.0, default=100.0,
    )  # fmt: skip
    # -- a folder of clips (the batch command)
    batch_input_dir: bpy.props.StringProperty(
        name="Videos Folder",
        description="Folder of video files to analyse, one result per video",
        subtype="DIR_PATH",
        options=_RELATIVE_PATH,
    )
    use_batch_recursive: bpy.props.BoolProperty(
        name="Include Subfolders", description="Also analyse the videos in subfolders"
    )
    batch_output_dir: bpy.props.StringProperty(
        name="Output Folder",
        description="Where the folder's results go (empty: the Results Folder, in a subfolder "
        "named after the videos folder). Analysing again into it skips finished clips",
        subtype="DIR_PATH",
        options=_RELATIVE_PATH,
    )
    batch_workers: bpy.props.IntProperty(
        name="Workers",
        description="Clips analysed at the same time, each worker loading the model once "
        "(0: one per GPU, or one per CPU core up to 8)",
        min=0, soft_max=8, default=1,
    )  # fmt: skip
    batch_clean_preset: bpy.props.EnumProperty(
        name="Cleaning", items=CLEAN_PRESETS, default="default",
        description="Also write each clip cleaned with this preset (Import Folder prefers it)",
    )  # fmt: skip
    batch_options: bpy.props.StringProperty(
        name="Extra Options",
        description="More options of the batch command, e.g. --ray ray://head:10001 or "
        "--gpus 0,1 (python -m inference batch --help)",
    )
    batch_result_dir: bpy.props.StringProperty(
        name="Results",
        description="Batch results folder that Import Folder imports (set by Analyze Folder)",
        subtype="DIR_PATH",
        options=_RELATIVE_PATH,
    )
    batch_status: bpy.props.StringProperty(
        name="Batch Status", description="How the last folder analysis ended"
    )


CLASSES = (METRABS_PG_person, METRABS_PG_settings)


def attach() -> None:
    bpy.types.Scene.metrabs = bpy.props.PointerProperty(type=METRABS_PG_settings)


def detach() -> None:
    del bpy.types.Scene.metrabs
