"""Shared test set-up. Blender's user folders go to a temporary directory before ``bpy`` is first
imported anywhere, so tests never touch the real user configuration.

Two groups: ``make test`` runs everything; ``make test-fast`` (``pytest --fast``) runs the
pure-numpy and unit tests only, leaving out the ``blender`` tests (not even collected, so ``bpy``
is not imported) and those marked ``slow``. A test is ``slow`` when it is marked so (long numerics,
training, big models), when it uses a fixture of :data:`SLOW_FIXTURES`, or when it starts a
process: the worker, a batch pool, Ray, a backend probe. The last rule keeps itself: under
``--fast`` a test that starts a process without being marked ``slow`` fails and says so.
"""

import multiprocessing.process
import os
import subprocess
import tempfile
from pathlib import Path

os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="metrabs-blender-user-")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Fixtures that start processes (a Ray instance, the sample renderer): their users are slow.
SLOW_FIXTURES = {"local_ray", "bundled_sample"}
BLENDER_TESTS = "blender"  # tests/blender: the installed extension in bpy


def pytest_addoption(parser):
    parser.addoption(
        "--fast",
        action="store_true",
        help="the quick loop (make test-fast): skip the blender and slow tests; a test that "
        "starts a process without being marked slow fails",
    )


def pytest_ignore_collect(collection_path, config):
    if config.getoption("--fast") and collection_path == Path(__file__).parent / BLENDER_TESTS:
        return True  # not collected at all: bpy stays unimported
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
    if not config.getoption("--fast"):
        return
    fast, left_out = [], []
    for item in items:
        slow = item.get_closest_marker("slow") or item.get_closest_marker("blender")
        (left_out if slow else fast).append(item)
    config.hook.pytest_deselected(items=left_out)
    items[:] = fast


class _ProcessWatch:
    """Notes every process started (subprocess, multiprocessing; Ray starts its own through
    subprocess) while installed; see the module docstring."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self._popen_init = subprocess.Popen.__init__
        self._process_start = multiprocessing.process.BaseProcess.start

    def install(self) -> None:
        watch = self

        def popen_init(popen, args, *more, **options):
            watch._popen_init(popen, args, *more, **options)
            watch.started.append(f"subprocess {str(args)[:120]}")  # started (did not raise)

        def process_start(process):
            watch._process_start(process)
            watch.started.append(f"multiprocessing {process.name}")

        subprocess.Popen.__init__ = popen_init
        multiprocessing.process.BaseProcess.start = process_start

    def check(self, item) -> None:
        started, self.started = self.started, []
        if started and not item.get_closest_marker("slow"):
            pytest.fail(
                f"{item.nodeid} starts a process ({started[0]}), so it belongs to the slow "
                "group that `make test-fast` leaves out: mark it @pytest.mark.slow",
                pytrace=False,
            )


_WATCH = _ProcessWatch()


def pytest_configure(config):
    if config.getoption("--fast"):
        _WATCH.install()


def _watched(item):
    """A hook wrapper's body: fail the test if it started a process in this phase (processes
    started while collecting or by another test's clean-up are not its doing)."""
    _WATCH.started.clear()
    try:
        result = yield
    except BaseException:  # the phase failed anyway; its own error is the one to see
        _WATCH.started.clear()
        raise
    if item.config.getoption("--fast"):
        _WATCH.check(item)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _watched(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _watched(item))


SLOW_REPORT_S = 2.0  # under --fast, tests that took longer are listed at the end (not failed)
_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    if report.when in ("setup", "call"):
        _SECONDS[report.nodeid] = _SECONDS.get(report.nodeid, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter, config):
    """Under --fast, name the tests that made the loop slow (timing varies: a hint, never a
    failure), so that they can be marked slow."""
    if not config.getoption("--fast"):
        return
    slow = sorted((s, n) for n, s in _SECONDS.items() if s > SLOW_REPORT_S)
    for seconds, nodeid in reversed(slow):
        terminalreporter.write_line(
            f"took {seconds:.1f} s, over {SLOW_REPORT_S:g} s: {nodeid} (mark it slow?)"
        )


@pytest.fixture
def two_person_trajectory():
    """Exact (noise-free) trajectory of a walker and a runner crossing in front of a level camera,
    3 s @ 30 fps."""
    from inference.training.synth.clip import default_camera, motions_to_trajectory
    from inference.training.synth.motion import generate_motion

    motions = [
        generate_motion("walk", 3.0, 30.0, seed=0, start_xy=(-1.0, 0.0)),
        generate_motion("run", 3.0, 30.0, seed=1, start_xy=(4.0, 2.0), heading_deg=90.0),
    ]
    return motions_to_trajectory(motions, default_camera(motions))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def bundled_sample(tmp_path_factory):
    """The bundled sample clip (``inference.training.synth.sample``) and its ground truth, rendered
    once per session by the project's main environment (the Blender 4.2 test venv has no OpenCV)."""
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    folder = tmp_path_factory.mktemp("bundled sample")
    render = (
        "import sys; from inference.training.synth.sample import render_sample; "
        "render_sample(sys.argv[1])"
    )
    python = repo / ".venv" / "bin" / "python"
    subprocess.run([str(python), "-c", render, str(folder)], cwd=repo, check=True)
    return folder / "sample.mp4", folder / "sample_truth.npz"
