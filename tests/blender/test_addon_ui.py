"""The panels and preferences draw only real properties and registered operators.

Headless Blender draws no UI, so each ``draw()`` runs against a recording layout that checks every
``prop`` against the RNA of its data and every ``operator`` against the registered operators, in
each state the UI can be in (footage source, camera model, a running job, online access off)."""

import importlib
from pathlib import Path
from types import MethodType, SimpleNamespace

import bpy
import numpy as np
import pytest

MODULE = "bl_ext.user_default.metrabs_mocap"


class RecordingLayout:
    """Stands in for ``bpy.types.UILayout``: records what would be drawn, checks names."""

    def __init__(self, log: list) -> None:
        self.log = log

    def _child(self, *args, **kwargs):
        return RecordingLayout(self.log)

    row = column = box = split = _child

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, f"{type(data).__name__} has no property {name!r}"
        self.log.append(("prop", name))

    def operator(self, idname, **kwargs):
        group, name = idname.split(".")
        assert name in dir(getattr(bpy.ops, group)), f"operator {idname} is not registered"
        self.log.append(("operator", idname))
        return SimpleNamespace()  # operator properties are set as attributes

    def prop_search(self, data, name, search_data, search_name, **kwargs):
        self.prop(data, name)
        assert search_name in search_data.bl_rna.properties, f"no collection {search_name!r}"
        self.log.append(("search", name, search_name))

    def operator_menu_enum(self, idname, property, **kwargs):
        group, name = idname.split(".")
        operator = getattr(getattr(bpy.ops, group), name)
        assert property in operator.get_rna_type().properties, f"{idname} has no {property!r}"
        self.log.append(("menu", idname))

    def label(self, text="", **kwargs):
        self.log.append(("label", text))

    def progress(self, factor=0.0, type="BAR", text=""):
        assert 0.0 <= factor <= 1.0
        self.log.append(("progress", text))

    def template_ID(self, data, name, **kwargs):
        self.prop(data, name)

    def template_list(self, list_type, list_id, data, name, active_data, active_name, **kw):
        assert hasattr(bpy.types, list_type), f"UI list {list_type} is not registered"
        self.prop(data, name)
        self.prop(active_data, active_name)

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)  # use_property_split, ui_units_x, ...


def draw(panel_class, context) -> list:
    log = []
    panel = SimpleNamespace(layout=RecordingLayout(log))
    panel_class.draw(panel, context)
    return log


class FakeJob:
    fraction = 0.25

    def text(self):
        return "Frame 120/480"


class StoppableJob(FakeJob):
    stopped = False

    def stop(self):
        self.stopped = True


@pytest.fixture
def modules(extension):
    names = ("panels", "preferences", "operators", "requests", "bone_map_ui")
    return SimpleNamespace(
        **{n: importlib.import_module(f"{MODULE}.metrabs_blender.{n}") for n in names}
    )


@pytest.mark.parametrize("source", ["CLIP", "FILE"])
@pytest.mark.parametrize("camera", ["DEFAULT", "FOV", "FOCAL", "CLIP"])
def test_main_panel_draws_every_state(modules, source, camera):
    settings = bpy.context.scene.metrabs
    settings.footage_source, settings.camera_model, settings.use_frame_range = source, camera, True
    log = draw(modules.panels.VIEW3D_PT_metrabs_import, bpy.context)
    assert ("prop", "clip" if source == "CLIP" else "footage_path") in log
    assert ("prop", "frame_first") in log and ("operator", "metrabs.analyze_footage") in log
    if camera == "FOCAL":
        assert ("prop", "focal_length") in log and ("prop", "sensor_width") in log


def test_running_analysis_shows_progress_and_cancel(modules):
    modules.operators._JOBS["analyze"] = FakeJob()
    try:
        log = draw(modules.panels.VIEW3D_PT_metrabs_import, bpy.context)
    finally:
        del modules.operators._JOBS["analyze"]
    assert ("progress", "Frame 120/480") in log and ("operator", "metrabs.cancel_job") in log
    assert ("operator", "metrabs.analyze_footage") not in log


def test_loading_another_file_stops_the_running_job(modules):
    job = modules.operators._JOBS["analyze"] = StoppableJob()
    bpy.ops.wm.read_homefile(app_template="")  # as File > New or Open
    assert job.stopped and modules.operators.running_job("analyze") is None


def test_a_modal_job_whose_handler_blender_drops_stops(modules):
    """Blender calls ``cancel`` when it removes a modal handler (its window closed): the job
    must stop and free its slot, or the panel shows "Already running" until a restart."""
    job = modules.operators._JOBS["setup"] = StoppableJob()
    operator = SimpleNamespace(
        job_kind="setup", _timer=bpy.context.window_manager.event_timer_add(0.2)
    )
    modules.operators._ModalJob.cancel(operator, bpy.context)
    assert job.stopped and modules.operators.running_job("setup") is None


def test_partial_result_offers_resume(modules):
    bpy.context.scene.metrabs.analysis_partial = True
    log = draw(modules.panels.VIEW3D_PT_metrabs_import, bpy.context)
    assert log.count(("operator", "metrabs.analyze_footage")) == 2  # Analyze and Resume


def test_results_and_review_panels(modules):
    settings = bpy.context.scene.metrabs
    settings.analysis_partial = True
    log = draw(modules.panels.VIEW3D_PT_metrabs_results, bpy.context)
    assert ("prop", "rig_map") not in log  # only with a target
    settings.target = bpy.data.objects.new("hero", bpy.data.armatures.new("hero"))
    settings.rig_map = "JSON"
    log = draw(modules.panels.VIEW3D_PT_metrabs_results, bpy.context)
    assert ("prop", "rig_map") in log and ("prop", "rig_map_path") in log
    assert ("operator", "metrabs.import_results") in log and ("prop", "people") in log
    assert ("label", "Partial result (analysis was cancelled)") in log
    log = draw(modules.panels.VIEW3D_PT_metrabs_review, bpy.context)
    assert ("operator", "metrabs.setup_camera") in log


def test_bone_map_panel_and_rows(modules, api):
    settings = bpy.context.scene.metrabs
    panel = modules.bone_map_ui.VIEW3D_PT_metrabs_bone_map
    log = draw(panel, bpy.context)
    assert ("label", "Choose a Target in Results to map its bones") in log
    assert ("menu", "metrabs.fill_bone_map") in log and ("prop", "rows") in log
    assert ("menu", "metrabs.load_bone_map") in log and ("prop", "preset_name") in log
    assert ("operator", "metrabs.save_bone_map") in log
    from tests.blender.test_retarget import build_armature
    from tests.test_solve_rigs import canonical_rest, mixamo_like

    settings.target = build_armature(mixamo_like(canonical_rest()), "Hero")
    api.fill_bone_map(settings.target)
    settings.rig_map = "EDITOR"
    log = draw(panel, bpy.context)
    assert ("search", "root", "bones") in log and ("label", "Filled from: preset mixamo") in log
    assert ("label", "Import with it: Rig Map > Bone Map") not in log
    row = settings.bone_map.rows[0]
    log = []
    modules.bone_map_ui.METRABS_UL_bone_slots.draw_item(
        None, bpy.context, RecordingLayout(log), settings.bone_map, row, 0, settings.bone_map,
        "active_row", 0,
    )  # fmt: skip
    assert log == [("label", "Hips"), ("prop", "bone"), ("search", "bone", "bones")]
    log = draw(modules.panels.VIEW3D_PT_metrabs_results, bpy.context)
    assert ("prop", "limb_ik") in log
    settings.target = None  # a rig for one person only: the rig map and limbs still show
    assert ("prop", "limb_ik") not in draw(modules.panels.VIEW3D_PT_metrabs_results, bpy.context)
    settings.people.add().target = bpy.data.objects["Hero"]
    log = draw(modules.panels.VIEW3D_PT_metrabs_results, bpy.context)
    assert ("prop", "rig_map") in log and ("prop", "limb_ik") in log


def test_people_list_row(modules):

    settings = bpy.context.scene.metrabs
    person = settings.people.add()
    person.name, person.frames_visible, person.first_frame, person.last_frame = "P3", 80, 1, 90
    log = []
    modules.panels.METRABS_UL_people.draw_item(
        None, bpy.context, RecordingLayout(log), settings, person, 0, settings, "active_person", 0
    )
    assert ("prop", "use_import") in log and ("label", "80 fr  1-90") in log


@pytest.mark.parametrize("pip_options", ["", '--index-url "https://mirror/simple'])
def test_preferences_draw_offline_with_the_commands(modules, pip_options):
    prefs = bpy.context.preferences.addons[MODULE].preferences
    system = bpy.context.preferences.system
    before = system.use_online_access
    system.use_online_access = False
    prefs.pip_options = pip_options
    modules.operators._JOBS["download"] = FakeJob()
    try:
        log = []
        cls = modules.preferences.METRABS_AddonPreferences
        values = {p.identifier: getattr(prefs, p.identifier) for p in prefs.bl_rna.properties}
        proxy = SimpleNamespace(layout=RecordingLayout(log), bl_rna=prefs.bl_rna, **values)
        proxy._draw_model_status = MethodType(cls._draw_model_status, proxy)
        proxy.registry_name = MethodType(cls.registry_name, proxy)
        cls.draw(proxy, bpy.context)
    finally:
        system.use_online_access = before
        prefs.pip_options = ""
        del modules.operators._JOBS["download"]
    labels = [text for kind, text in log if kind == "label"]
    assert ("progress", "Frame 120/480") in log  # the running download
    if pip_options:  # an unclosed quote: said where the commands would be
        assert any("Pip Options" in text and "check the quotes" in text for text in labels)
        return
    assert any(" -m venv " in text for text in labels) and any("pip" in t for t in labels)
    assert ("operator", "metrabs.copy_setup_command") in log


def test_progress_bar_is_feature_detected(modules):
    assert modules.preferences.has_progress_bar()  # 4.0+: both test versions have it
    log = []
    modules.preferences.draw_progress(RecordingLayout(log), 0.5, "half")
    assert log == [("progress", "half")]


def test_a_new_analysis_keeps_earlier_results_and_resume_continues_the_partial_one(
    modules, tmp_path
):
    settings = bpy.context.scene.metrabs
    video = tmp_path / "take.mp4"
    video.write_bytes(b"footage")
    settings.footage_source, settings.footage_path = "FILE", str(video)
    settings.output_dir = str(tmp_path / "results")
    first = Path(modules.requests.analysis_request(bpy.context).output)
    assert first == tmp_path / "results" / "take.npz"
    first.parent.mkdir()
    first.write_bytes(b"an earlier result")
    second = Path(modules.requests.analysis_request(bpy.context).output)
    assert second == tmp_path / "results" / "take-2.npz"
    settings.trajectory_path, settings.analysis_partial = str(first), True
    assert Path(modules.requests.analysis_request(bpy.context, resume=True).output) == first


@pytest.mark.parametrize("size", [(1280, 720), (720, 1280)])
def test_clip_camera_gives_the_field_of_view_of_the_clips_lens(modules, tmp_path, size):
    """Blender's tracking camera relates its focal length to the clip's width; the worker's
    field of view is on the longer side, so portrait footage must convert through the width."""
    image = bpy.data.images.new("frame", *size)
    image.filepath_raw, image.file_format = str(tmp_path / "frame.png"), "PNG"
    image.save()
    settings = bpy.context.scene.metrabs
    settings.footage_source, settings.camera_model = "CLIP", "CLIP"
    settings.clip = bpy.data.movieclips.load(str(tmp_path / "frame.png"))
    settings.clip.tracking.camera.sensor_width = 36.0
    settings.clip.tracking.camera.focal_length = 24.0
    fx = 24.0 / 36.0 * size[0]  # pixels, relative to the width
    expected = np.degrees(2 * np.arctan(max(size) / 2 / fx))
    options = modules.requests.camera_options(settings)
    assert options == {"fov_deg": pytest.approx(expected, rel=1e-6)}


def test_a_movie_clip_of_numbered_images_is_analysed_as_the_whole_sequence(modules, tmp_path):
    image = bpy.data.images.new("frame", 64, 48)
    image.file_format = "PNG"
    for number in range(1, 6):
        image.filepath_raw = str(tmp_path / f"shot_{number:04d}.png")
        image.save()
    settings = bpy.context.scene.metrabs
    settings.footage_source = "CLIP"
    settings.clip = bpy.data.movieclips.load(str(tmp_path / "shot_0001.png"))
    assert settings.clip.source == "SEQUENCE" and settings.clip.frame_duration == 5
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = 24, 1.001
    request = modules.requests.analysis_request(bpy.context)
    assert request.video == str(tmp_path / "shot_%04d.png")
    assert request.sequence_fps == pytest.approx(24 / 1.001)
    assert modules.requests.sequence_pattern("/a/take 2/img.png") == "/a/take 2/img.png"


def test_the_model_status_says_the_download_sizes_and_the_detector_that_comes_with_it(modules):
    official = modules.preferences.OFFICIAL_MODEL
    models = [
        {"name": official, "installed": False, "size": None, "approx_size": "about 440 MB",
         "license": "non-commercial use only (training-data licences)"},
        {"name": "yolox_s", "installed": False, "size": None, "approx_size": "about 70 MB"},
    ]  # fmt: skip
    saved = modules.preferences.STATUS["models"]
    modules.preferences.STATUS["models"] = models
    try:
        log = []
        cls = modules.preferences.METRABS_AddonPreferences
        proxy = SimpleNamespace(layout=RecordingLayout(log), model="AUTO")
        proxy.registry_name = MethodType(cls.registry_name, proxy)
        cls._draw_model_status(proxy, proxy.layout)
        models[1]["installed"] = True  # a YOLOX is there: only the model is mentioned
        cls._draw_model_status(proxy, proxy.layout)
    finally:
        modules.preferences.STATUS["models"] = saved
    labels = [text for kind, text in log if kind == "label"]
    assert (
        labels.count(
            "Not downloaded (about 440 MB); licence: non-commercial use only (training-data licences)"
        )
        == 2
    )
    detector = [text for text in labels if "person detector" in text]
    assert detector == ["Download Model also installs the person detector yolox_s (about 70 MB; "
                        "Apache-2.0)"]  # fmt: skip
    assert ("operator", "metrabs.download_model") in log


def test_the_download_progress_names_the_file_in_flight(modules):
    jobs = importlib.import_module(f"{MODULE}.metrabs_blender.jobs")
    state = jobs.DownloadState()
    official = modules.preferences.OFFICIAL_MODEL
    for event in (
        {"event": "download_start", "name": official},
        {"event": "progress", "name": official, "downloaded": 2_000_000, "total": 8_000_000},
    ):
        state.update(event)
    assert state.text() == f"Downloading {official}: 2.0/8.0 MB" and state.fraction == 0.25
    for event in (
        {"event": "installed", "name": official, "path": "/cache/models/official"},
        {"event": "progress", "name": "yolox_s", "downloaded": 1_000_000, "total": 4_000_000},
    ):
        state.update(event)
    assert state.text() == "Downloading yolox_s: 1.0/4.0 MB" and state.fraction == 0.25
    state.update({"event": "installed", "name": "yolox_s", "path": "/cache/models/yolox_s"})
    assert state.path is None  # not done until the model's own path comes last
    state.update({"event": "path", "name": official, "path": "/cache/models/official"})
    assert state.path == "/cache/models/official" and state.fraction == 1.0
