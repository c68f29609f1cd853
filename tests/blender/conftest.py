"""Blender tests: the extension is built with Blender's own tooling, validated, installed from the
zip into this bpy (user folders in a temp dir, see tests/conftest.py) and enabled once per session.
Tests use the installed package, never the source tree."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy", reason="Blender tests run in a Python that has bpy")

REPO = Path(__file__).resolve().parents[2]
MODULE = "bl_ext.user_default.metrabs_mocap"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/blender/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.blender)


def blender_ext_cli() -> Path:
    """Blender's bundled extension command line (build, validate) inside the bpy package."""
    cli = Path(bpy.utils.resource_path("LOCAL")) / "scripts/addons_core/bl_pkg/cli/blender_ext.py"
    assert cli.is_file(), f"this bpy ships no extension command line at {cli}"
    return cli


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    cli = str(blender_ext_cli())
    subprocess.run(
        [sys.executable, cli, "build", "--source-dir", str(REPO), "--output-dir", str(out)],
        check=True,
        capture_output=True,
    )
    (zip_path,) = out.glob("metrabs_mocap-*.zip")
    subprocess.run(
        [sys.executable, cli, "validate", str(zip_path)], check=True, capture_output=True
    )
    return zip_path


@pytest.fixture(scope="session")
def extension(extension_zip):
    """The installed, enabled extension module."""
    result = bpy.ops.extensions.package_install_files(
        filepath=str(extension_zip), repo="user_default", enable_on_install=True
    )
    assert result == {"FINISHED"}
    return importlib.import_module(MODULE)


@pytest.fixture
def api(extension):
    return importlib.import_module(MODULE + ".metrabs_blender.api")


@pytest.fixture(autouse=True)
def fresh_file():
    """Each test starts from Blender's default file and leaves no data behind."""
    bpy.ops.wm.read_homefile(app_template="")
    yield
    bpy.ops.wm.read_homefile(app_template="")
