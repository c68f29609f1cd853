"""Blender tests: the extension is built with Blender's own tooling, validated, installed from the
zip into this bpy (user folders in a temp dir, see tests/conftest.py) and enabled once per session.
Tests use the installed package, never the source tree."""

import importlib
from pathlib import Path

import bpy
import pytest

MODULE = "bl_ext.user_default.metrabs_mocap"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/blender/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.blender)


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory) -> Path:
    from tools.build_extension import build

    return build(tmp_path_factory.mktemp("dist"))


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


@pytest.fixture
def footage(tmp_path) -> Path:
    """A 1280x720 still saved as PNG: a file the worker accepts and a movie clip Blender loads."""
    image = bpy.data.images.new("footage", 1280, 720)
    path = tmp_path / "footage 01.png"
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)
    return path
