"""Preferences, backend set-up and check, saved settings and a clean unregister, in real Blender
through the installed extension."""

import functools
import http.server
import importlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import bpy
import pytest

MODULE = "bl_ext.user_default.metrabs_mocap"
REPO = Path(__file__).resolve().parents[2]
# The backend needs torch: the project's main environment has it (the 4.2 test venv has not).
TORCH_PYTHON = REPO / ".venv" / "bin" / "python"
PROTOCOL_WORKER = REPO / "tests" / "protocol_worker.py"


@pytest.fixture
def prefs(extension):
    preferences = bpy.context.preferences.addons[MODULE].preferences
    saved = {name: getattr(preferences, name) for name in ("python_path", "pip_options", "model")}
    yield preferences
    for name, value in saved.items():
        setattr(preferences, name, value)


@pytest.fixture
def online_access(extension):
    """Flip Blender's 'Allow Online Access' for one test."""
    system = bpy.context.preferences.system
    before = system.use_online_access

    def set_access(allowed: bool) -> None:
        system.use_online_access = allowed
        assert bpy.app.online_access == allowed

    yield set_access
    system.use_online_access = before


def test_preferences_belong_to_the_installed_add_on(prefs):
    assert type(prefs).bl_idname == MODULE
    assert prefs.device == "auto" and prefs.model == "AUTO"
    # Automatic: the worker picks (official when installed, else the bundled demo model); the
    # model to check and download is the official one.
    assert prefs.model_spec() is None
    assert prefs.registry_name() == "metrabs_eff2l_384px_800k_28ds_pytorch"
    prefs.model = "CUSTOM"
    prefs.model_path = "/models/my_bundle.tar.gz"
    assert prefs.model_spec() == "/models/my_bundle.tar.gz"


def test_check_backend_reports_torch_and_models(prefs):
    preferences = importlib.import_module(MODULE + ".metrabs_blender.preferences")
    prefs.python_path = str(TORCH_PYTHON)
    assert bpy.ops.metrabs.check_backend() == {"FINISHED"}
    info = preferences.STATUS["backend"]
    assert info.ok and info.torch_version and info.python == str(TORCH_PYTHON)
    names = {model["name"]: model for model in preferences.STATUS["models"]}
    assert {"metrabs_eff2l_384px_800k_28ds_pytorch", "metrabs_small_synth"} <= set(names)
    assert names["metrabs_eff2l_384px_800k_28ds_pytorch"]["installed"] is False


def test_check_backend_names_the_fix_for_a_python_without_torch(prefs, tmp_path):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "v")], check=True)
    prefs.python_path = str(tmp_path / "v" / "bin" / "python")
    with pytest.raises(RuntimeError, match="no torch.*press Set up backend"):
        bpy.ops.metrabs.check_backend()


def test_setup_offline_refuses_and_shows_the_command(prefs, online_access):
    online_access(False)
    prefs.pip_options = ""
    requests = importlib.import_module(MODULE + ".metrabs_blender.requests")
    text = requests.setup_command_text(bpy.context)
    api = importlib.import_module(MODULE + ".metrabs_blender.api")
    venv = api.backend_venv_dir()
    assert f"-m venv {venv}" in text.splitlines()[0] and "pip install" in text.splitlines()[1]
    assert str(venv).startswith(bpy.utils.extension_path_user(MODULE))
    with pytest.raises(RuntimeError, match="Online access is off.*-m venv"):
        bpy.ops.metrabs.setup_backend()
    assert not venv.exists()
    assert bpy.ops.metrabs.copy_setup_command() == {"FINISHED"}


@pytest.mark.slow
def test_setup_from_a_local_folder_runs_and_reports_the_failing_step(
    prefs, online_access, tmp_path
):
    """With --no-index the set-up needs no network: it really creates the environment, then pip
    cannot find torch in the empty folder, and the report says which step failed and why."""
    online_access(False)
    (tmp_path / "wheels").mkdir()
    prefs.pip_options = f"--no-index --find-links '{tmp_path / 'wheels'}'"
    api = importlib.import_module(MODULE + ".metrabs_blender.api")
    try:
        with pytest.raises(RuntimeError, match="failed at step 2: .*No matching distribution"):
            bpy.ops.metrabs.setup_backend()
        assert (api.backend_venv_dir() / "pyvenv.cfg").is_file()  # step 1 ran
    finally:
        shutil.rmtree(api.backend_venv_dir(), ignore_errors=True)


def test_setup_with_a_remote_find_links_needs_online_access(prefs, online_access):
    online_access(False)
    prefs.pip_options = "--no-index --find-links https://mirror.example/wheels"
    try:
        with pytest.raises(RuntimeError, match="Online access is off"):
            bpy.ops.metrabs.setup_backend()
    finally:
        prefs.pip_options = ""


def test_download_needs_online_access(prefs, online_access):
    online_access(False)
    prefs.python_path = str(TORCH_PYTHON)
    prefs.model = "metrabs_small_synth"
    with pytest.raises(RuntimeError, match="Online access is off.*weights download"):
        bpy.ops.metrabs.download_model()


def test_panel_settings_survive_save_and_reload(extension, tmp_path):
    image = bpy.data.images.new("footage", 64, 36)
    image.filepath_raw = str(tmp_path / "still.png")
    image.file_format = "PNG"
    image.save()
    clip = bpy.data.movieclips.load(str(tmp_path / "still.png"))
    settings = bpy.context.scene.metrabs
    values = {
        "footage_source": "FILE", "footage_path": "//clips/take 1.mp4", "use_frame_range": True,
        "frame_first": 12, "frame_last": 480, "camera_model": "FOCAL", "fov": 62.5,
        "focal_length": 24.0, "sensor_width": 23.5, "max_people": 3, "output_dir": "//out/",
        "trajectory_path": "//out/take 1.npz", "analysis_partial": True, "match_scene": False,
        "use_camera": False, "use_review_markers": False, "use_raw_joints": True,
        "uncertainty_threshold": 75.0, "active_person": 1, "clean_preset": "strong",
        "cleaned_path": "//out/cleaned/take 1.npz", "rig_map": "JSON",
        "rig_map_path": "//maps/hero.json", "root_motion": "in_place", "foot_contacts": "GROUNDED",
        "key_reduction": "DENSE", "key_tolerance_deg": 1.5, "key_tolerance_mm": 12.0,
        "use_nla": True, "use_joint_limits": True,
    }  # fmt: skip
    for name, value in values.items():
        setattr(settings, name, value)
    settings.clip = clip
    hero = bpy.data.objects.new("hero", bpy.data.armatures.new("hero"))
    bpy.context.scene.collection.objects.link(hero)
    settings.target = hero
    for track_id in (4, 9):
        person = settings.people.add()
        person.name, person.track_id, person.frames_visible = f"P{track_id}", track_id, 7 * track_id
        person.first_frame, person.last_frame, person.mean_score = 3, 40, 0.5
        person.mean_uncertainty, person.colour, person.use_import = 33.0, (0.1, 0.2, 0.3), False
    path = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.read_homefile(app_template="")
    assert bpy.context.scene.metrabs.people.__len__() == 0
    bpy.ops.wm.open_mainfile(filepath=str(path))
    settings = bpy.context.scene.metrabs
    for name, value in values.items():
        assert getattr(settings, name) == pytest.approx(value), name
    assert settings.clip.name == "still.png" and settings.target.name == "hero"
    assert [(p.name, p.track_id, p.frames_visible, p.use_import) for p in settings.people] == [
        ("P4", 4, 28, False),
        ("P9", 9, 63, False),
    ]
    assert tuple(settings.people[1].colour) == pytest.approx((0.1, 0.2, 0.3))
    assert settings.people[0].mean_uncertainty == 33.0 and settings.people[0].last_frame == 40


def our_handlers() -> list[str]:
    """``"<handler list>: <function>"`` of the add-on's functions in Blender's handler lists."""
    lists = {name: getattr(bpy.app.handlers, name) for name in dir(bpy.app.handlers)}
    return [f"{name}: {handler.__name__}" for name, functions in lists.items()
            if isinstance(functions, list) for handler in functions
            if getattr(handler, "__module__", "").startswith(MODULE)]  # fmt: skip


def test_unregister_leaves_nothing_behind(extension, tmp_path):
    package = importlib.import_module(MODULE + ".metrabs_blender")
    backend = importlib.import_module(MODULE + ".metrabs_blender.backend")
    jobs = importlib.import_module(MODULE + ".metrabs_blender.jobs")
    operators = importlib.import_module(MODULE + ".metrabs_blender.operators")
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0")
    request = backend.AnalyzeRequest(
        str(video), str(tmp_path / "o.npz"), extra_args=("--frame-delay", "1")
    )
    command = backend.analyze_command(sys.executable, request, entry=(str(PROTOCOL_WORKER),))
    worker = jobs.BackendProcess(command, env=backend.worker_environment())
    operators._JOBS["analyze"] = jobs.WorkerJob(worker)  # as a running modal analysis leaves it
    modules = [
        importlib.import_module(f"{MODULE}.metrabs_blender.{name}")
        for name in ("properties", "preferences", "operators", "panels")
    ]
    classes = [cls for module in modules for cls in module.CLASSES]
    assert len(classes) >= 18 and all(cls.is_registered for cls in classes)
    assert our_handlers() == ["load_pre: _stop_jobs_on_load"]
    package.unregister()
    try:
        assert not hasattr(bpy.types.Scene, "metrabs")
        assert not [cls.__name__ for cls in classes if cls.is_registered]
        assert not [name for name in dir(bpy.types) if "metrabs" in name.lower()]
        assert not [name for name in dir(bpy.ops.metrabs) if not name.startswith("_")]
        assert not our_handlers()
        assert not operators._JOBS and worker.process.returncode is not None  # worker stopped
        with pytest.raises(ProcessLookupError):
            os.kill(worker.pid, 0)
    finally:
        package.register()
    assert hasattr(bpy.types.Scene, "metrabs") and all(cls.is_registered for cls in classes)
    assert our_handlers() == ["load_pre: _stop_jobs_on_load"]


QUIT_WITH_A_RUNNING_JOB = """
import sys
sys.path.insert(0, {repo!r})
from metrabs_blender.__main__ import load_extension_package
load_extension_package()
from metrabs_mocap.metrabs_blender import backend, jobs, operators
operators.register()  # the exit hook register() installs (PyPI bpy 4.2 crashes at exit
# while add-on preferences or Python handlers stay registered: the classes are left out, and
# the file-load handler is taken out again)
import bpy
bpy.app.handlers.load_pre.remove(operators._stop_jobs_on_load)
request = backend.AnalyzeRequest({video!r}, {output!r}, extra_args=("--frame-delay", "1"))
command = backend.analyze_command(sys.executable, request, entry=({worker!r},))
job = jobs.WorkerJob(jobs.BackendProcess(command, env=backend.worker_environment()))
operators._JOBS["analyze"] = job
while job.state.start is None:  # the worker is up and analysing
    job.poll()
print(job.process.pid, flush=True)
"""  # Blender quits (the interpreter exits) while the analysis runs, without unregistering


def test_quitting_blender_stops_a_running_worker(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0")
    script = QUIT_WITH_A_RUNNING_JOB.format(
        repo=str(REPO), video=str(video), output=str(tmp_path / "o.npz"),
        worker=str(PROTOCOL_WORKER),
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split()[-1])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # it was stopped, not killed: the frames done were written as a partial result
    assert (tmp_path / "o.npz").is_file()


@pytest.fixture
def local_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path / "www"`` (the only network in tests)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_model_installs_from_a_mirror(
    prefs, online_access, local_server, tmp_path, monkeypatch
):
    """Download Model runs the weights manager in the backend: fetch, unpack, load, verify,
    install the model and the YOLOX-S person detector that comes with it; then the preferences
    show the model as installed."""
    root, url = local_server
    name = "metrabs_eff2l_384px_800k_28ds_pytorch"
    build = (
        "import sys; from pathlib import Path; from tests.official_layout import "
        "official_layout_bundle; official_layout_bundle(Path(sys.argv[1]), archive=True)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([str(TORCH_PYTHON), "-c", build, str(root)], check=True, env=env, cwd=REPO)
    detector = (REPO / "models" / "yolox_synth" / "yolox_synth.pth").read_bytes()
    (root / "yolox_s.pth").write_bytes(detector)  # stands in for YOLOX-S's weights
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"models": [
        {"name": name, "urls": [f"{url}/{name}.tar.gz"]},
        {"name": "yolox_s", "urls": [f"{url}/yolox_s.pth"]},
    ]}))  # fmt: skip
    monkeypatch.setenv("METRABS_MOCAP_REGISTRY", str(registry))
    online_access(True)
    prefs.python_path, prefs.model, prefs.cache_dir = (
        str(TORCH_PYTHON),
        "AUTO",  # downloads the official model
        str(tmp_path / "cache"),
    )
    try:
        assert bpy.ops.metrabs.download_model() == {"FINISHED"}
    finally:
        prefs.cache_dir = ""
    preferences = importlib.import_module(MODULE + ".metrabs_blender.preferences")
    entry = {m["name"]: m for m in preferences.STATUS["models"]}[name]
    assert entry["installed"] and Path(entry["path"]).is_relative_to(tmp_path / "cache")
    installed = Path(entry["path"]) / "joint_info.npz"
    assert installed.read_bytes() == (root / name / "joint_info.npz").read_bytes()
    assert (tmp_path / "cache" / "models" / "yolox_s" / "yolox_s.pth").read_bytes() == detector
