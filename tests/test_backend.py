"""Backend process control, without Blender: probing interpreters, command lines, the JSON-lines
reader, cancel, and the set-up command sequence. Every run here starts a real subprocess."""

import ast
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from metrabs_blender import backend, jobs
from retarget.contract import read_trajectory

REPO = Path(__file__).resolve().parents[1]
PROTOCOL_WORKER = REPO / "tests" / "protocol_worker.py"


def protocol_worker(video: Path, output: Path, *extra: str) -> list[str]:
    request = backend.AnalyzeRequest(str(video), str(output), extra_args=extra)
    return backend.analyze_command(sys.executable, request, entry=(str(PROTOCOL_WORKER),))


@pytest.fixture
def video(tmp_path) -> Path:
    path = tmp_path / "clip with späces.mp4"
    path.write_bytes(b"\0" * 16)
    return path


def test_analyze_command_is_an_argument_list():
    request = backend.AnalyzeRequest(
        "/footage/my clip.mov", "/out/a b.npz", frame_start=10, frame_stop=250, fov_deg=62.5,
        max_people=3, device="cuda", model="metrabs_small_synth", resume=True,
    )  # fmt: skip
    assert backend.analyze_command("/venv/bin/python", request) == [
        "/venv/bin/python", "-m", "inference", "analyze", "/footage/my clip.mov", "-o",
        "/out/a b.npz", "--start", "10", "--stop", "250", "--fov", "62.5", "--max-people", "3",
        "--device", "cuda", "--model", "metrabs_small_synth", "--resume",
    ]  # fmt: skip
    focal = backend.AnalyzeRequest("v.mp4", "o.npz", focal_mm=24, sensor_mm=36)
    assert backend.analyze_command("py", focal)[6:] == [
        "o.npz",
        "--focal-mm",
        "24",
        "--sensor-width",
        "36",
    ]
    sequence = backend.AnalyzeRequest("shot_%04d.png", "o.npz", sequence_fps=23.976)
    assert backend.analyze_command("py", sequence)[6:] == ["o.npz", "--sequence-fps", "23.976"]
    with pytest.raises(backend.BackendError, match="either a field of view or a focal length"):
        backend.AnalyzeRequest("v", "o", fov_deg=50, focal_mm=24)
    with pytest.raises(backend.BackendError, match="device must be one of"):
        backend.AnalyzeRequest("v", "o", device="tpu")


@pytest.mark.slow
def test_worker_environment_puts_only_the_extension_on_the_path(tmp_path):
    base = {"PYTHONHOME": "/blender/python", "PYTHONPATH": "/blender/scripts", "HOME": "/h"}
    env = backend.worker_environment(cache_dir=tmp_path, base=base)
    assert env["PYTHONPATH"] == str(REPO) and "PYTHONHOME" not in env and env["HOME"] == "/h"
    assert env[backend.CACHE_ENV] == str(tmp_path) and env["PYTHONUNBUFFERED"] == "1"
    # the path really makes the project's packages importable in a fresh interpreter
    probe = "import inference, retarget.contract; print(inference.__file__)"
    printed = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert Path(printed.stdout.strip()) == REPO / "inference" / "__init__.py"


@pytest.fixture(scope="module")
def this_python() -> backend.BackendInfo:
    """This interpreter, probed once (importing torch takes seconds)."""
    return backend.probe_python(sys.executable)


@pytest.mark.slow
def test_probe_reports_torch_of_this_interpreter(this_python):
    import torch

    info = this_python
    assert info.ok and info.missing == {}
    assert info.torch_version == torch.__version__
    assert info.cuda == torch.cuda.is_available() and info.cuda_version == torch.version.cuda
    assert info.python_version == ".".join(map(str, sys.version_info[:3]))
    assert f"torch {torch.__version__}" in info.summary()


@pytest.mark.slow
def test_python_without_torch_is_refused_with_the_fix(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True
    )
    bare = str(backend.venv_python(tmp_path / "bare"))
    info = backend.probe_python(bare)
    assert not info.ok and info.torch_version is None
    assert set(info.missing) == {"torch", "numpy", "cv2", "scipy", "yaml"}
    assert "no torch" in info.summary()
    with pytest.raises(backend.BackendError, match="press Set up backend"):
        backend.find_backend_python(chosen=bare)
    not_python = tmp_path / "python"
    not_python.write_text("not a program")
    with pytest.raises(backend.BackendError, match="Backend Python not found"):
        backend.probe_python(tmp_path / "missing" / "python")


@pytest.mark.slow
def test_auto_detection_prefers_the_environment_variable(monkeypatch, tmp_path, this_python):
    monkeypatch.setenv(backend.PYTHON_ENV, sys.executable)
    candidates = backend.candidate_pythons(tmp_path / "no-venv")
    assert candidates[0] == sys.executable
    assert str(backend.venv_python(tmp_path / "no-venv")) not in candidates  # missing: dropped
    probed = []

    def probe(python):
        probed.append(python)
        return this_python

    assert backend.find_backend_python(probe=probe).python == sys.executable
    assert probed == [sys.executable]  # the first working candidate ends the search


def test_parse_json_line_ignores_stray_output():
    assert jobs.parse_json_line('{"event": "progress", "frames_done": 3}\n') == {
        "event": "progress",
        "frames_done": 3,
    }
    for line in ("Loading model...", "{not json", '["event"]', '{"no_event": 1}', ""):
        assert jobs.parse_json_line(line) is None


@pytest.mark.slow
def test_worker_run_to_completion(tmp_path, video):
    output = tmp_path / "out" / "clip.npz"
    process = jobs.BackendProcess(
        protocol_worker(video, output, "--max-people", "1"),
        env=backend.worker_environment(),
    )
    seen = []
    outcome = jobs.run_to_completion(process, on_event=lambda event, state: seen.append(event))
    assert outcome.returncode == 0 and outcome.output == output and not outcome.partial
    assert outcome.error_message is None and not outcome.cancelled
    kinds = [event["event"] for event in seen]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("progress") == 90
    assert outcome.state.warnings == ["2 people seen; kept 1"]
    assert outcome.state.fraction == 1.0 and outcome.state.frames_done == 90
    trajectory = read_trajectory(output)
    assert trajectory.num_frames == 90 and trajectory.num_people == 1


def test_state_text_and_fraction():
    state = jobs.WorkerState()
    assert state.text().startswith("Starting") and state.fraction == 0.0
    state.update({"event": "start", "frames_total": 480})
    state.update({"event": "progress", "frames_done": 120, "frames_total": 480, "fps": 12.34,
                  "eta_s": 29.2, "people": 2})  # fmt: skip
    assert state.fraction == 0.25
    assert state.text() == "Frame 120/480, 12.3 fps, 29 s left, 2 people"


@pytest.mark.slow
def test_cancel_keeps_the_partial_result_and_ends_the_process(tmp_path, video):
    output = tmp_path / "clip.npz"
    process = jobs.BackendProcess(
        protocol_worker(video, output, "--frame-delay", "0.05"), env=backend.worker_environment()
    )
    progress = []

    def on_event(event, state):
        if event["event"] == "progress":
            progress.append(event["frames_done"])

    outcome = jobs.run_to_completion(
        process, on_event=on_event, should_cancel=lambda: len(progress) >= 5
    )
    assert outcome.cancelled and outcome.partial and outcome.output == output
    assert outcome.returncode == 143
    trajectory = read_trajectory(output)
    assert 5 <= trajectory.num_frames < 90 and trajectory.num_frames == progress[-1]
    assert bool(trajectory.extras["partial"])
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)  # gone, and reaped


@pytest.mark.slow
def test_a_worker_that_ignores_sigterm_is_killed(tmp_path):
    script = (
        "import json, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print(json.dumps({'event': 'start', 'frames_total': 10}), flush=True)\n"
        "time.sleep(60)\n"
    )
    process = jobs.BackendProcess([sys.executable, "-c", script])
    while process.events.empty():
        time.sleep(0.01)
    started = time.monotonic()
    code = process.cancel(grace_s=0.5)
    assert code == -signal.SIGKILL and time.monotonic() - started < 5
    outcome = jobs.outcome_of(process, jobs.WorkerState())
    assert outcome.output is None
    assert outcome.error_message.startswith("Cancelled before anything was finished")


@pytest.mark.slow
def test_worker_error_event_becomes_the_message(tmp_path):
    process = jobs.BackendProcess(
        protocol_worker(tmp_path / "nope.mp4", tmp_path / "o.npz"),
        env=backend.worker_environment(),
    )
    outcome = jobs.run_to_completion(process)
    assert outcome.returncode == 1 and outcome.output is None
    assert outcome.error_message == f"Video not found: {tmp_path / 'nope.mp4'}"
    assert outcome.stderr_tail[-1].startswith("error: video not found")


@pytest.mark.slow
def test_crash_without_protocol_reports_exit_code_and_stderr():
    process = jobs.BackendProcess([sys.executable, "-c", "raise SystemExit('no CUDA device')"])
    outcome = jobs.run_to_completion(process)
    assert outcome.error_message == "The backend process stopped with exit code 1: no CUDA device"


def test_missing_interpreter_is_a_backend_error(tmp_path):
    with pytest.raises(backend.BackendError, match="Could not start"):
        jobs.BackendProcess([str(tmp_path / "python"), "-V"])


def test_setup_commands_and_their_text(tmp_path):
    commands = backend.setup_commands("/usr/bin/python3.11", tmp_path / "backend env", "cpu")
    python = str(backend.venv_python(tmp_path / "backend env"))
    assert commands[0] == ["/usr/bin/python3.11", "-m", "venv", str(tmp_path / "backend env")]
    assert commands[1][:2] == [python, "-m"] and commands[1][-3:] == [
        "torch",
        "--index-url",
        "https://download.pytorch.org/whl/cpu",
    ]
    assert commands[2][-len(backend.BACKEND_PACKAGES) :] == list(backend.BACKEND_PACKAGES)
    text = jobs.command_text(commands).splitlines()
    assert len(text) == 3 and f"'{tmp_path / 'backend env'}'" in text[0]


def _tiny_wheel(folder: Path) -> Path:
    """A minimal, valid pure-Python wheel (what pip installs from a local mirror)."""
    name, version = "metrabs_probe_pkg", "1.0"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": "VALUE = 42\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in files) + f"{dist}/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in {**files, f"{dist}/RECORD": record}.items():
            archive.writestr(path, text)
    return wheel


@pytest.mark.slow
def test_setup_sequence_creates_an_environment_offline(tmp_path):
    """The set-up runs for real: venv + pip install from a local folder (no network)."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _tiny_wheel(wheels)
    venv = tmp_path / "backend"
    commands = backend.setup_commands(
        sys.executable, venv, packages=("metrabs_probe_pkg==1.0",),
        pip_args=("--no-index", "--find-links", str(wheels)), install_torch=False,
    )  # fmt: skip
    sequence = jobs.CommandSequence(commands, env=backend.worker_environment())
    assert sequence.run() == 0 and sequence.fraction == 1.0
    assert any("Successfully installed metrabs_probe_pkg-1.0" in line for line in sequence.lines)
    python = backend.venv_python(venv)
    check = [str(python), "-c", "import metrabs_probe_pkg; print(metrabs_probe_pkg.VALUE)"]
    assert subprocess.run(check, capture_output=True, text=True).stdout.strip() == "42"


@pytest.mark.slow
def test_setup_sequence_stops_at_the_first_failure(tmp_path):
    fail = [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"]
    never = [sys.executable, "-c", f"open({str(tmp_path / 'ran')!r}, 'w')"]
    sequence = jobs.CommandSequence([fail, never])
    assert sequence.run() == 3 and sequence.step == 0 and "boom" in sequence.lines
    assert not (tmp_path / "ran").exists() and sequence.text().startswith("Step 1/2: boom")


@pytest.mark.slow
def test_setup_sequence_cancelled_between_commands_starts_no_other(tmp_path):
    first = [sys.executable, "-c", "print('first')"]
    never = [sys.executable, "-c", f"open({str(tmp_path / 'ran')!r}, 'w')"]
    sequence = jobs.CommandSequence([first, never])
    while sequence.step == 0:  # until the first command has finished
        sequence.poll()
    sequence.cancel()  # no process is running now
    assert sequence.run() == 1 and not (tmp_path / "ran").exists()


def test_backend_module_needs_no_blender():
    # the reader threads must never touch bpy; the module does not even import it
    tree = ast.parse(Path(backend.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}  # fmt: skip
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {"bpy", "mathutils"} & imported


@pytest.mark.slow
def test_worker_ignores_an_inference_package_in_blenders_working_folder(tmp_path, monkeypatch):
    """``python -m`` searches the working folder first; Blender's can be anything."""
    decoy = tmp_path / "inference"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise SystemExit('decoy imported')\n")
    monkeypatch.chdir(tmp_path)
    command = backend.weights_command(sys.executable, "list", cache_dir=tmp_path / "cache")
    process = jobs.BackendProcess(command, env=backend.worker_environment())
    names = []
    outcome = jobs.run_to_completion(process, on_event=lambda e, state: names.append(e["name"]))
    assert outcome.returncode == 0, outcome.stderr_tail
    assert "metrabs_small_synth" in names
    names = [m["name"] for m in backend.list_models(sys.executable, tmp_path / "cache")]
    assert "metrabs_small_synth" in names
