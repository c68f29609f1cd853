"""Each operator does what its ``api`` function does: the panel set up for some inputs and a script
passing the same inputs to the function give the same objects, actions and keys, markers, camera,
collections, results list and files (operators are thin wrappers over the scripting API).

Every case runs the script first and records the scene, starts again from the default file, sets
the panel up, presses the button and compares. Typed errors become reports; bugs are not hidden.
"""

import importlib
import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np
import pytest

from retarget.contract import read_trajectory, write_trajectory
from tests.protocol_worker import tilted_scene

MODULE = "bl_ext.user_default.metrabs_mocap"
REPO = Path(__file__).resolve().parents[2]
PROTOCOL_WORKER = (str(REPO / "tests" / "protocol_worker.py"),)
# The batch needs torch and OpenCV: the project's main environment has them (the 4.2 venv not).
TORCH_PYTHON = str(REPO / ".venv" / "bin" / "python")
BATCH_ENTRY = (str(REPO / "tests" / "batch_entry.py"),)  # the batch with the test analysers
TEST_MODELS = "--analyzer tests.batchclips:make_worker_analyzer"


@pytest.fixture
def addon(extension):
    names = ("api", "backend", "batch_import", "bone_map_ui", "jobs", "operators", "paths",
             "requests")  # fmt: skip
    return SimpleNamespace(
        **{name: importlib.import_module(f"{MODULE}.metrabs_blender.{name}") for name in names}
    )


@pytest.fixture
def prefs(extension):
    """The preferences the buttons read; restored afterwards."""
    preferences = bpy.context.preferences.addons[MODULE].preferences
    names = ("python_path", "device", "model", "pip_options", "torch_variant", "base_python")
    saved = {name: getattr(preferences, name) for name in names}
    yield preferences
    preferences = bpy.context.preferences.addons[MODULE].preferences
    for name, value in saved.items():
        setattr(preferences, name, value)


@pytest.fixture
def clip_file(tmp_path) -> Path:
    """The protocol worker's two people (a gap and an uncertain span in it) as a trajectory."""
    return write_trajectory(tmp_path / "walk.npz", tilted_scene())


def _fcurves(action) -> list:
    if getattr(action, "layers", None):  # layered actions (Blender 4.4+)
        return [fcurve for layer in action.layers for strip in layer.strips
                for bag in strip.channelbags for fcurve in bag.fcurves]  # fmt: skip
    return list(action.fcurves)


def _values(owner) -> dict:
    """An ID's or pose bone's custom properties (what a rig map sets, e.g. IK/FK switches)."""
    return {key: repr(owner[key]) for key in owner.keys()}


def scene_state() -> dict:
    """Everything an import or a button creates or changes, by name, with exact values (the
    animation evaluated at the current frame, however the run left the depsgraph)."""
    scene = bpy.context.scene
    scene.frame_set(scene.frame_current)
    render = scene.render
    state = {
        "scene": (
            scene.frame_start,
            scene.frame_end,
            render.fps,
            render.fps_base,
            render.resolution_x,
            render.resolution_y,
            render.resolution_percentage,
            render.pixel_aspect_x,
            render.pixel_aspect_y,
            scene.camera.name if scene.camera else None,
        ),  # fmt: skip
        "markers": sorted((marker.name, marker.frame) for marker in scene.timeline_markers),
        "collections": sorted(
            (c.name, sorted(o.name for o in c.objects), sorted(child.name for child in c.children))
            for c in bpy.data.collections
        ),
        "scene collection": sorted(o.name for o in scene.collection.objects),
        "movie clips": sorted((clip.name, clip.frame_start) for clip in bpy.data.movieclips),
    }
    for obj in bpy.data.objects:
        entry = {
            "type": obj.type,
            "matrix": [tuple(row) for row in obj.matrix_world],
            "colour": tuple(obj.color),
            "parent": obj.parent.name if obj.parent else None,
            "properties": _values(obj),
        }
        if obj.type == "ARMATURE":
            entry["bones"] = [(bone.name, tuple(bone.head_local), tuple(bone.tail_local),
                               bone.parent.name if bone.parent else None)
                              for bone in obj.data.bones]  # fmt: skip
            entry["pose"] = {bone.name: _values(bone) for bone in obj.pose.bones}
        if obj.type == "CAMERA":
            data = obj.data
            entry["lens"] = (data.lens, data.sensor_width, data.sensor_fit, data.shift_x,
                             data.shift_y, data.clip_start, data.clip_end)  # fmt: skip
            entry["background"] = [(image.source, image.clip.name if image.clip else None,
                                    image.frame_method, image.alpha)
                                   for image in data.background_images]  # fmt: skip
        if obj.type == "EMPTY":
            entry["empty"] = (obj.empty_display_type, obj.empty_display_size)
        animation = obj.animation_data
        if animation is not None:
            entry["action"] = animation.action.name if animation.action else None
            entry["nla"] = [(track.name, [(strip.name, strip.action.name, strip.frame_start)
                                          for strip in track.strips])
                            for track in animation.nla_tracks]  # fmt: skip
        state[f"object {obj.name}"] = entry
    for action in bpy.data.actions:
        state[f"action {action.name}"] = sorted(
            (fcurve.data_path, fcurve.array_index,
             [(tuple(key.co), key.interpolation, tuple(key.handle_left), tuple(key.handle_right),
               key.handle_left_type, key.handle_right_type) for key in fcurve.keyframe_points])
            for fcurve in _fcurves(action)
        )  # fmt: skip
    return state


def panel_state() -> dict:
    """The panel's results list and what it remembers of the last run."""
    settings = bpy.context.scene.metrabs
    people = [(p.name, p.track_id, p.frames_visible, p.first_frame, p.last_frame, p.mean_score,
               p.mean_uncertainty, tuple(p.colour), p.use_import)
              for p in settings.people]  # fmt: skip
    return {
        "people": people,
        "trajectory": settings.trajectory_path,
        "partial": settings.analysis_partial,
        "batch": (settings.batch_result_dir, settings.batch_status),
    }


def pressed_as_scripted(script, press, panel: bool = False) -> tuple[dict, dict]:
    """The scene after ``script()`` and after ``press()`` (which sets the panel up and returns
    the operator's result), each from Blender's default file: (scripted, pressed) states, with
    the panel's state where the button fills it (``panel``; elsewhere it holds the button's
    inputs, which a script passes as arguments)."""
    states = []
    for run in (script, press):
        bpy.ops.wm.read_homefile(app_template="")
        result = run()
        if run is press:
            assert result == {"FINISHED"}
        states.append({**scene_state(), **({"panel": panel_state()} if panel else {})})
    return states[0], states[1]


def test_import_file_is_import_trajectory_then_the_results_list(addon, clip_file):
    def script():
        addon.api.import_trajectory(clip_file, match_scene=True)
        addon.api.load_results(clip_file)

    scripted, pressed = pressed_as_scripted(
        script, lambda: bpy.ops.metrabs.import_trajectory(filepath=str(clip_file)), panel=True
    )
    assert pressed == scripted and "action MeTRAbs walk P1 take 1" in pressed


def test_load_results_is_api_load_results(addon, clip_file):
    def press():
        bpy.context.scene.metrabs.trajectory_path = str(clip_file)
        return bpy.ops.metrabs.load_results()

    scripted, pressed = pressed_as_scripted(
        lambda: addon.api.load_results(clip_file), press, panel=True
    )
    assert pressed == scripted and len(pressed["panel"]["people"]) == 2


def _tick(ticked) -> None:
    """Tick the people ``ticked`` of the results list, untick the others."""
    for person in bpy.context.scene.metrabs.people:
        person.use_import = person.track_id in ticked


def _panel_for_import(clip_file, ticked, **settings_values) -> None:
    """The results of ``clip_file`` listed, the people ``ticked`` and the other settings set."""
    settings = bpy.context.scene.metrabs
    settings.trajectory_path = str(clip_file)
    assert bpy.ops.metrabs.load_results() == {"FINISHED"}
    _tick(ticked)
    for name, value in settings_values.items():
        setattr(settings, name, value)


def test_import_is_api_import_analysis(addon, clip_file, footage, tmp_path):
    """One of two people, strong cleaning, the footage file behind the matched camera, markers
    above 160 mm (the person's uncertain span is 150 mm: not marked), raw joints, no travel, NLA
    takes; then Re-target of the file that Import cleaned."""

    def script():
        addon.api.load_results(clip_file)
        _tick({0})  # what the panel shows; import_analysis takes the people as an argument
        created = addon.api.import_analysis(
            clip_file, [0], clean_preset="strong", match_scene=True, camera=True,
            clip=addon.api.load_footage(footage), sensor_width_mm=24.0, review_markers=True,
            uncertainty_mm=160.0, raw_joints=True, target=None, rig_map="auto",
            root_motion="in_place", foot_lock=True, use_nla=True, joint_limits=False,
        )  # fmt: skip
        assert created.trajectory_path == tmp_path / "cleaned" / "walk.npz"
        scripted_files.append(read_trajectory(created.trajectory_path))

    def press():
        _panel_for_import(
            clip_file, {0}, clean_preset="strong", footage_source="FILE",
            footage_path=str(footage), sensor_width=24.0, uncertainty_threshold=160.0,
            use_raw_joints=True, root_motion="in_place", use_nla=True,
        )  # fmt: skip
        return bpy.ops.metrabs.import_results()

    scripted_files = []
    scripted, pressed = pressed_as_scripted(script, press, panel=True)
    assert pressed == scripted
    assert {"object MeTRAbs walk P0", "object MeTRAbs camera"} <= set(pressed)
    assert "object MeTRAbs walk P1" not in pressed and pressed["markers"]
    assert not any("low confidence" in name for name, _ in pressed["markers"])
    cleaned = bpy.context.scene.metrabs.cleaned_path
    assert cleaned == str(tmp_path / "cleaned" / "walk.npz")
    again = read_trajectory(cleaned)  # written again by the button: the same file
    for key in ("poses3d", "poses2d", "uncertainty", "boxes", "track_ids", "frame_times"):
        np.testing.assert_array_equal(getattr(again, key), getattr(scripted_files[0], key))
    assert sorted(again.extras) == sorted(scripted_files[0].extras)

    def script_again():
        addon.api.import_analysis(
            cleaned, [0, 1], clean_preset=None, camera=False, review_markers=False,
            root_motion="camera", foot_lock=False,
        )  # fmt: skip

    def retarget():
        _panel_for_import(clip_file, {0, 1}, use_camera=False, use_review_markers=False,
                          root_motion="camera", foot_contacts="NEVER")  # fmt: skip
        bpy.context.scene.metrabs.cleaned_path = cleaned  # as the Import above left it
        return bpy.ops.metrabs.import_results(retarget=True)

    scripted, pressed = pressed_as_scripted(
        lambda: (addon.api.load_results(clip_file), script_again()), retarget, panel=True
    )
    assert pressed == scripted and {"object MeTRAbs walk P0", "object MeTRAbs walk P1"} <= set(
        pressed
    )


def test_import_onto_a_target_is_api_import_analysis(addon, clip_file, tmp_path):
    """One person onto a rig of the scene (made by an earlier import in both runs), with a rig
    map preset, joint limits and the path relative to the rig."""
    other = write_trajectory(tmp_path / "other.npz", tilted_scene())

    def rig():
        armature = addon.api.import_trajectory(other, person=0)[0].armature
        armature.location = (1.0, 2.0, 0.0)
        return armature

    def script():
        addon.api.load_results(clip_file)
        _tick({1})
        addon.api.import_analysis(
            clip_file, [1], clean_preset="fast", camera=False, target=rig(), rig_map="metrabs",
            root_motion=None, foot_lock=True, use_nla=False, joint_limits=True,
        )  # fmt: skip

    def press():
        _panel_for_import(
            clip_file, {1}, clean_preset="fast", use_camera=False, target=rig(),
            rig_map="metrabs", use_joint_limits=True,
        )  # fmt: skip
        return bpy.ops.metrabs.import_results()

    scripted, pressed = pressed_as_scripted(script, press)
    assert pressed == scripted
    assert pressed["object MeTRAbs other P0"]["action"] == "MeTRAbs other P0 walk P1 take 1"


@pytest.mark.parametrize(
    ("panel", "reduction"),
    [({"key_reduction": "DENSE"}, "dense"),
     ({"key_tolerance_deg": 1.5, "key_tolerance_mm": 20.0}, (1.5, 0.02))],
    ids=["every frame", "tolerances"],
)  # fmt: skip
def test_import_keys_as_the_panel_says(addon, clip_file, panel, reduction):
    """Keys: Every Frame is key_reduction="dense"; the tolerances are a KeyTolerance (mm ->
    metres). The Import File button keys as the panel says too."""
    if isinstance(reduction, tuple):
        reduction = addon.api.KeyTolerance(*reduction)

    def script():
        addon.api.load_results(clip_file)
        addon.api.import_analysis(clip_file, [0, 1], camera=False, key_reduction=reduction)

    def press():
        _panel_for_import(clip_file, {0, 1}, use_camera=False, **panel)
        return bpy.ops.metrabs.import_results()

    scripted, pressed = pressed_as_scripted(script, press, panel=True)
    assert pressed == scripted
    counts = {len(points) for _, _, points in pressed["action MeTRAbs walk P0 take 1"]}
    assert (len(counts) == 1) == (reduction == "dense")  # dense: every curve keys every frame

    def press_file():
        for name, value in panel.items():
            setattr(bpy.context.scene.metrabs, name, value)
        return bpy.ops.metrabs.import_trajectory(filepath=str(clip_file))

    scripted, pressed = pressed_as_scripted(
        lambda: (
            addon.api.import_trajectory(clip_file, match_scene=True, key_reduction=reduction),
            addon.api.load_results(clip_file),
        ),
        press_file,
    )
    assert pressed == scripted


@pytest.mark.parametrize("mode", ["ALWAYS", "NEVER", "GROUNDED"])
def test_import_with_a_foot_contact_mode(addon, clip_file, mode):
    """Foot Contacts is import_analysis(foot_contacts=...); the modes that do not hold the feet
    clean without the joint-level foot lock too."""

    def script():
        addon.api.load_results(clip_file)
        addon.api.import_analysis(clip_file, [0, 1], camera=False, foot_contacts=mode.lower())
        cleaned.append(read_trajectory(bpy.context.scene.metrabs.cleaned_path or
                                       clip_file.parent / "cleaned" / "walk.npz"))  # fmt: skip

    def press():
        _panel_for_import(clip_file, {0, 1}, use_camera=False, foot_contacts=mode)
        return bpy.ops.metrabs.import_results()

    cleaned = []
    scripted, pressed = pressed_as_scripted(script, press, panel=True)
    assert pressed == scripted
    lock = json.loads(str(cleaned[0].extras["clean_params"]))["params"]["lock_feet"]
    assert lock == (mode == "ALWAYS")


def _bone_map_state(folder: Path) -> dict:
    """The editor's rows and root, and the saved bone maps (file name -> JSON)."""
    editor = bpy.context.scene.metrabs.bone_map
    return {
        "rows": [(row.slot, row.bone) for row in editor.rows],
        "root": editor.root,
        "extras": editor.extras,
        "source": editor.source,
        "files": {path.name: path.read_text() for path in sorted(folder.glob("*.json"))},
    }


def test_bone_map_buttons_are_their_api_functions(addon, clip_file, tmp_path):
    """Fill, remove a row, save as a preset, then Import with Rig Map *Bone Map*; then Load and
    Delete a preset."""
    other = write_trajectory(tmp_path / "other.npz", tilted_scene())
    folder = Path(addon.api.extension_user_dir("rig_maps"))

    def rig():
        return addon.api.import_trajectory(other, person=0)[0].armature

    def spine_row() -> int:
        return [row.slot for row in bpy.context.scene.metrabs.bone_map.rows].index("spine")

    def script():
        target = rig()
        addon.api.fill_bone_map(target, "auto")
        bpy.context.scene.metrabs.bone_map.active_row = spine_row()
        addon.api.edit_bone_map("REMOVE")
        addon.api.save_bone_map("take rig")
        addon.api.load_results(clip_file)
        _tick({1})
        addon.api.import_analysis(
            clip_file, [1], clean_preset=None, camera=False, target=target,
            rig_map=addon.api.edited_rig_map(), root_motion=None, foot_lock=True,
        )  # fmt: skip
        states.append(_bone_map_state(folder))

    def press():
        target = rig()
        settings = bpy.context.scene.metrabs
        settings.target = target
        assert bpy.ops.metrabs.fill_bone_map(rig_map="auto") == {"FINISHED"}
        settings.bone_map.active_row = spine_row()
        assert bpy.ops.metrabs.edit_bone_map(action="REMOVE") == {"FINISHED"}
        settings.bone_map.preset_name = "take rig"
        assert bpy.ops.metrabs.save_bone_map() == {"FINISHED"}
        _panel_for_import(clip_file, {1}, clean_preset="OFF", use_camera=False, rig_map="EDITOR")
        result = bpy.ops.metrabs.import_results()
        states.append(_bone_map_state(folder))
        return result

    states = []
    try:
        scripted, pressed = pressed_as_scripted(script, press, panel=True)
        assert pressed == scripted and states[0] == states[1]
        assert "action MeTRAbs other P0 walk P1 take 1" in pressed
        assert list(states[0]["files"]) == ["take rig.json"]
        assert [slot for slot, _ in states[0]["rows"]].count("spine") == 2  # one removed

        def load():
            addon.api.load_bone_map("take rig")
            return {"FINISHED"}

        loaded = []
        for run in (load, lambda: bpy.ops.metrabs.load_bone_map(name="take rig")):
            bpy.ops.wm.read_homefile(app_template="")
            assert run() == {"FINISHED"}
            loaded.append(_bone_map_state(folder))
        assert loaded[0] == loaded[1] and loaded[0]["rows"] == states[0]["rows"]
        assert bpy.ops.metrabs.delete_bone_map(name="take rig") == {"FINISHED"}
        assert not list(folder.glob("*.json"))
        addon.api.save_bone_map("take rig")
        addon.api.delete_bone_map("take rig")
        assert not list(folder.glob("*.json"))
    finally:
        for path in folder.glob("*.json"):
            path.unlink()


def test_people_onto_their_own_rigs_is_api_import_analysis(addon, clip_file, tmp_path):
    """Each ticked person's Rig in the results list: two people onto two rigs of the scene in
    one Import, IK legs/FK arms by default (these rigs have no IK controls: FK)."""
    other = write_trajectory(tmp_path / "other.npz", tilted_scene())

    def rigs():
        made = addon.api.import_trajectory(other)
        return {0: made[1].armature, 1: made[0].armature}  # swapped, to be sure

    def script():
        addon.api.load_results(clip_file)
        _tick({0, 1})
        addon.api.import_analysis(
            clip_file, [0, 1], clean_preset="fast", camera=False, targets=rigs(),
            rig_map="auto", root_motion="in_place",
        )  # fmt: skip

    def press():
        targets = rigs()
        _panel_for_import(clip_file, {0, 1}, clean_preset="fast", use_camera=False,
                          root_motion="in_place")  # fmt: skip
        for person in bpy.context.scene.metrabs.people:
            person.target = targets[person.track_id]
        return bpy.ops.metrabs.import_results()

    scripted, pressed = pressed_as_scripted(script, press)
    assert pressed == scripted
    assert pressed["object MeTRAbs other P1"]["action"] == "MeTRAbs other P1 walk P0 take 1"
    assert pressed["object MeTRAbs other P0"]["action"] == "MeTRAbs other P0 walk P1 take 1"
    assert "object MeTRAbs walk P0" not in pressed  # nobody got a new rig


def test_match_camera_is_api_setup_camera(addon, clip_file, footage):

    def script():
        addon.api.setup_camera(
            clip_file, clip=addon.api.load_footage(footage), sensor_width_mm=30.0, match_scene=True
        )

    def press():
        settings = bpy.context.scene.metrabs
        settings.trajectory_path, settings.footage_source = str(clip_file), "FILE"
        settings.footage_path, settings.sensor_width = str(footage), 30.0
        return bpy.ops.metrabs.setup_camera()

    scripted, pressed = pressed_as_scripted(script, press)
    assert pressed == scripted and pressed["object MeTRAbs camera"]["background"]


def test_review_markers_and_raw_joints_are_their_api_functions(addon, clip_file):
    def press_markers():
        settings = bpy.context.scene.metrabs
        settings.trajectory_path, settings.uncertainty_threshold = str(clip_file), 120.0
        return bpy.ops.metrabs.review_markers()

    scripted, pressed = pressed_as_scripted(
        lambda: addon.api.add_review_markers(clip_file, uncertainty_mm=120.0), press_markers
    )
    assert pressed == scripted and pressed["markers"]

    def press_joints():
        _panel_for_import(clip_file, {1})
        return bpy.ops.metrabs.raw_joints()

    scripted, pressed = pressed_as_scripted(
        lambda: (
            addon.api.load_results(clip_file),
            _tick({1}),
            addon.api.add_raw_joints(clip_file, track_ids=[1]),
        ),
        press_joints,
    )
    assert pressed == scripted and "object MeTRAbs raw joints P1 pelv" in pressed


def test_import_folder_is_api_import_folder(addon, tmp_path, two_person_trajectory):
    folder = tmp_path / "day 1"
    write_trajectory(folder / "take_a.npz", tilted_scene())
    write_trajectory(folder / "take_b.npz", two_person_trajectory)

    def press():
        settings = bpy.context.scene.metrabs
        settings.batch_result_dir, settings.use_nla, settings.root_motion = (
            str(folder),
            True,
            "relative",
        )
        return bpy.ops.metrabs.import_folder()

    scripted, pressed = pressed_as_scripted(
        lambda: addon.api.import_folder(
            folder,
            match_scene=True,
            target=None,
            rig_map="auto",
            root_motion="relative",
            foot_lock=True,
            use_nla=True,
            joint_limits=False,
        ),  # fmt: skip
        press,
    )
    assert pressed == scripted and "MeTRAbs day 1" in str(pressed["collections"])


def test_analyze_is_api_analyze_video_then_the_results_list(
    addon, prefs, footage, tmp_path, monkeypatch
):
    """Run synchronously (as from a script), Analyze starts the worker with the request a script
    gives api.analyze_video and lists the people of its result as api.load_results does."""
    monkeypatch.setattr(addon.backend, "WORKER_ENTRY", PROTOCOL_WORKER)  # no model, exact poses
    requests = []
    command = addon.backend.analyze_command
    monkeypatch.setattr(
        addon.backend,
        "analyze_command",
        lambda python, request, entry: requests.append(request) or command(python, request, entry),
    )
    # the button checks that its Python can run the analysis: the 4.2 venv's cannot
    prefs.python_path, prefs.device, prefs.model = TORCH_PYTHON, "cpu", "metrabs_small_synth"

    def script():
        result = addon.api.analyze_video(
            footage, tmp_path / "script" / "footage 01.npz", python=TORCH_PYTHON,
            frame_start=10, frame_stop=70, fov_deg=60.0, max_people=2, device="cpu",
            model="metrabs_small_synth", worker=PROTOCOL_WORKER,
        )  # fmt: skip
        addon.api.load_results(result.path)

    def press():
        settings = bpy.context.scene.metrabs
        settings.footage_source, settings.footage_path = "FILE", str(footage)
        settings.use_frame_range, settings.frame_first, settings.frame_last = True, 11, 70
        settings.camera_model, settings.fov, settings.max_people = "FOV", 60.0, 2
        settings.output_dir = str(tmp_path / "panel")
        return bpy.ops.metrabs.analyze_footage()

    scripted, pressed = pressed_as_scripted(script, press, panel=True)
    outputs = [Path(request.output) for request in requests]
    assert outputs == [
        tmp_path / "script" / "footage 01.npz",
        tmp_path / "panel" / "footage 01.npz",
    ]
    script_request, panel_request = (vars(request) | {"output": ""} for request in requests)
    assert panel_request == script_request
    scripted["panel"]["trajectory"] = pressed["panel"]["trajectory"] = ""  # the two outputs
    assert pressed == scripted and len(pressed["panel"]["people"]) == 2
    first, second = (read_trajectory(path) for path in outputs)
    for key in ("poses3d", "poses2d", "uncertainty", "boxes", "track_ids", "frame_times"):
        np.testing.assert_array_equal(getattr(second, key), getattr(first, key))


def test_analyze_folder_and_import_folder_are_api_analyze_folder(
    addon, prefs, tmp_path, monkeypatch
):
    """The two folder buttons, one after the other, are api.analyze_folder with the request the
    panel's settings spell (the batch command with the test analysers, one short clip)."""
    monkeypatch.setattr(addon.batch_import, "BATCH_ENTRY", BATCH_ENTRY)
    videos = tmp_path / "shoot"
    videos.mkdir()
    write_clip = ("import sys; from tests.synthvideo import walking_people, write_clip; "
                  "write_clip(sys.argv[1], walking_people(1, 0.6, seed=2))")  # fmt: skip
    subprocess.run([TORCH_PYTHON, "-c", write_clip, str(videos / "take.mkv")], cwd=REPO, check=True)
    prefs.python_path, prefs.device, prefs.model = TORCH_PYTHON, "cpu", "metrabs_small_synth"

    def script():
        addon.api.analyze_folder(
            addon.api.BatchRequest(
                inputs=(str(videos),), output=str(tmp_path / "script" / "results"), workers=1,
                clean_preset="fast", extra_args=tuple(TEST_MODELS.split()),
                analyze_args=addon.api.analysis_options(
                    device="cpu", model="metrabs_small_synth", fov_deg=50.0, max_people=1
                ),
            ),
            python=TORCH_PYTHON, entry=BATCH_ENTRY, match_scene=True, use_nla=False,
        )  # fmt: skip

    def press():
        settings = bpy.context.scene.metrabs
        settings.batch_input_dir = str(videos)
        settings.batch_output_dir = str(tmp_path / "panel" / "results")
        settings.batch_workers, settings.batch_clean_preset = 1, "fast"
        settings.batch_options = TEST_MODELS
        settings.camera_model, settings.fov, settings.max_people = "FOV", 50.0, 1
        assert bpy.ops.metrabs.analyze_folder() == {"FINISHED"}
        return bpy.ops.metrabs.import_folder()

    scripted, pressed = pressed_as_scripted(script, press)
    settings = bpy.context.scene.metrabs  # the panel remembers the run for Import Folder
    assert settings.batch_result_dir == str(tmp_path / "panel" / "results")
    assert settings.batch_status == "1/1 clips done"
    assert pressed == scripted and "action MeTRAbs take P0 take 1" in pressed


def test_copy_commands_copies_the_backend_set_up_commands(addon, prefs, tmp_path):
    """The preferences' set-up commands are ``backend.setup_commands`` for their values (Copy
    Commands puts this text on the clipboard, which a headless Blender does not keep)."""
    prefs.base_python, prefs.torch_variant = str(tmp_path / "python3"), "cpu"
    prefs.pip_options = "--no-index --find-links '/wheels here'"
    assert bpy.ops.metrabs.copy_setup_command() == {"FINISHED"}
    commands = addon.backend.setup_commands(
        str(tmp_path / "python3"), addon.paths.backend_venv_dir(), torch_variant="cpu",
        pip_args=("--no-index", "--find-links", "/wheels here"),
    )  # fmt: skip
    copied = addon.requests.setup_command_text(bpy.context)
    assert copied == addon.jobs.command_text(commands)


def test_operators_report_typed_errors_and_let_bugs_through(addon, clip_file, monkeypatch):
    """A refusal is the error's message in the report and CANCELLED (bpy.ops raises it as
    "Error: ..."); any other exception keeps its traceback instead of becoming a report."""
    for module in (addon.operators, addon.bone_map_ui):
        for name, cls in vars(module).items():
            if name.startswith("METRABS_OT_"):
                assert hasattr(cls.execute, "__wrapped__"), f"{name}.execute reports no errors"

    assert hasattr(addon.operators._ModalJob.modal, "__wrapped__")
    assert hasattr(addon.operators._ModalJob.invoke, "__wrapped__")

    def refuse(*args, **kwargs):
        raise addon.api.MocapError("No person with track id [7]; tick another")

    monkeypatch.setattr(addon.api, "import_trajectory", refuse)
    with pytest.raises(RuntimeError, match=r"^Error: No person with track id \[7\]; tick") as ok:
        bpy.ops.metrabs.import_trajectory(filepath=str(clip_file))
    assert "Traceback" not in str(ok.value)

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(addon.api, "import_trajectory", bug)
    with pytest.raises(RuntimeError, match="(?s)Traceback.*ZeroDivisionError: a bug"):
        bpy.ops.metrabs.import_trajectory(filepath=str(clip_file))


def test_export_take_is_api_export_take(addon, clip_file, tmp_path):
    """The same BVH (a text format: byte for byte) from the script and from the button, on the
    active armature's action range."""
    written = {}
    for how in ("script", "button"):
        bpy.ops.wm.read_homefile(app_template="")
        armature = addon.api.import_trajectory(clip_file, person=0)[0].armature
        path = tmp_path / f"{how}.bvh"
        if how == "script":
            result = addon.api.export_take(armature, path)
        else:
            bpy.context.view_layer.objects.active = armature
            assert bpy.ops.metrabs.export_take(filepath=str(path)) == {"FINISHED"}
        written[how] = path.read_bytes().replace(b"script", b"").replace(b"button", b"")
    first, last = (round(v) for v in armature.animation_data.action.frame_range)
    assert result.frames == (first, last) and written["script"] == written["button"]
