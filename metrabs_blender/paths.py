"""Where the Blender side writes: the extension's user folder, the backend environment in it, and
the default names of new analysis results."""

import os
from pathlib import Path

import bpy


def extension_user_dir(subfolder: str = "") -> str:
    """The extension's writable user folder (created), e.g. for the backend environment."""
    package = __package__.rpartition(".")[0]
    if not package.startswith(
        "bl_ext."
    ):  # running from the source tree (python -m metrabs_blender)
        package = "bl_ext.user_default." + package.rpartition(".")[2]
    return bpy.utils.extension_path_user(package, path=subfolder, create=True)


def backend_venv_dir() -> Path:
    """Where "Set up backend" puts the backend's virtual environment."""
    return Path(extension_user_dir()) / "backend-venv"


def default_output_path(video: str | os.PathLike, output_dir: str | os.PathLike) -> Path:
    """``output_dir/<video name>.npz``; a Blender-relative ``//`` folder is resolved against the
    saved .blend, or the extension's user folder ``analyses`` while the file is unsaved."""
    output_dir = str(output_dir)
    if output_dir.startswith("//") and not bpy.data.filepath:
        base = Path(extension_user_dir("analyses"))
    else:
        base = Path(bpy.path.abspath(output_dir or "//"))
    return base / (Path(video).stem + ".npz")


def unused_output_path(video: str | os.PathLike, output_dir: str | os.PathLike) -> Path:
    """:func:`default_output_path`, numbered (``<name>-2.npz``, ``-3`` ...) when that file exists:
    a new analysis never overwrites an earlier result."""
    path = default_output_path(video, output_dir)
    number = 2
    while path.exists():
        path = path.with_name(f"{Path(video).stem}-{number}.npz")
        number += 1
    return path
