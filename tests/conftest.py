"""Shared test set-up. Blender's user folders go to a temporary directory before ``bpy`` is first
imported anywhere, so tests never touch the real user configuration."""

import os
import tempfile

os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="metrabs-blender-user-")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def two_person_trajectory():
    """Exact (noise-free) trajectory of a walker and a runner crossing in front of a level camera,
    3 s @ 30 fps."""
    from inference.synth.clip import default_camera, motions_to_trajectory
    from inference.synth.motion import generate_motion

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
    """The bundled sample clip (``inference.synth.sample``) and its ground truth, rendered once per
    session by the project's main environment (the Blender 4.2 test venv has no OpenCV)."""
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    folder = tmp_path_factory.mktemp("bundled sample")
    render = (
        "import sys; from inference.synth.sample import render_sample; render_sample(sys.argv[1])"
    )
    python = repo / ".venv" / "bin" / "python"
    subprocess.run([str(python), "-c", render, str(folder)], cwd=repo, check=True)
    return folder / "sample.mp4", folder / "sample_truth.npz"
