"""Import a folder of batch results (``python -m inference batch ... -o FOLDER``) as takes.

Every clip becomes its own takes: one new rig and one new action per person, named after the clip
(``MeTRAbs <clip> P<id> take``), through :func:`api.import_trajectory`; the rigs of a clip are
gathered in a collection named after the clip, under one collection for the folder. Nothing of the
user's is modified. The folder's ``batch_manifest.json`` decides which clips are complete and in
which order; without it every ``.npz`` in the folder is imported. Cleaned results
(``cleaned/<clip>.npz``) are preferred when present.
"""

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from ..retarget import RetargetError
from .errors import MocapError

# The batch output layout, shared with inference/batch.py by these names only (Blender's Python
# never imports the inference package).
MANIFEST_JSON = "batch_manifest.json"
MANIFEST_FORMAT = "metrabs-batch-manifest"
CLEANED_DIR = "cleaned"
COMPLETE_STATUSES = ("done", "skipped")


@dataclass
class FolderImport:
    """What :func:`import_folder` created, and what it could not import."""

    collection: "bpy.types.Collection"  # holds one child collection per clip
    takes: dict[str, list] = field(default_factory=dict)  # clip -> api.ImportResult per person
    errors: dict[str, str] = field(default_factory=dict)  # clip -> why it was not imported


def result_files(folder: str | os.PathLike, prefer_cleaned: bool = True) -> list[tuple[str, Path]]:
    """``(clip, path)`` of every complete result in ``folder``, in manifest order (or by name).

    Raises :class:`MocapError` when the folder does not exist or holds no result.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MocapError(f"{folder} is not a folder; choose the batch output folder")
    manifest = folder / MANIFEST_JSON
    if manifest.is_file():
        clips = _manifest_clips(manifest)
    else:
        clips = [(path.stem, path) for path in sorted(folder.glob("*.npz"))]
    if not clips:
        raise MocapError(
            f"no finished results in {folder}; run `python -m inference batch VIDEOS -o {folder}` "
            f"first (or wait until it has finished some clips)"
        )
    if prefer_cleaned:
        clips = [(name, _cleaned(folder, name, path)) for name, path in clips]
    return clips


def _manifest_clips(manifest: Path) -> list[tuple[str, Path]]:
    try:
        document = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise MocapError(f"{manifest} cannot be read ({error}); run the batch again") from error
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise MocapError(f"{manifest} is not a MeTRAbs batch manifest")
    return [
        (str(row["clip"]), manifest.parent / row["output"])
        for row in document.get("clips", [])
        if row.get("status") in COMPLETE_STATUSES and row.get("output")
    ]


def _cleaned(folder: Path, name: str, path: Path) -> Path:
    cleaned = folder / CLEANED_DIR / f"{name}.npz"
    return cleaned if cleaned.is_file() else path


def import_folder(
    folder: str | os.PathLike,
    *,
    context: "bpy.types.Context | None" = None,
    prefer_cleaned: bool = True,
    match_scene: bool = True,
) -> FolderImport:
    """Import every finished clip of a batch output ``folder`` as takes (see the module docstring).

    A clip whose file is invalid is skipped and listed in :attr:`FolderImport.errors`; the others
    are imported. With ``match_scene`` the scene takes the first clip's frame rate and its end
    frame covers the longest clip.
    """
    from . import api  # here, so that api may re-export this function

    context = context or bpy.context
    clips = result_files(folder, prefer_cleaned)
    parent = bpy.data.collections.new(f"MeTRAbs {Path(folder).resolve().name}")
    context.scene.collection.children.link(parent)
    imported = FolderImport(parent)
    for name, path in clips:
        first = match_scene and not imported.takes
        try:
            results = api.import_trajectory(path, context=context, match_scene=first)
        except (MocapError, RetargetError) as error:
            imported.errors[name] = str(error)
            continue
        imported.takes[name] = results
        _gather(parent, name, results)
    if not imported.takes:
        bpy.data.collections.remove(parent)
        problems = "; ".join(f"{name}: {error}" for name, error in imported.errors.items())
        raise MocapError(f"no clip of {folder} could be imported ({problems})")
    if match_scene:
        last = max(float(r.frames.max()) for rs in imported.takes.values() for r in rs)
        context.scene.frame_end = max(context.scene.frame_end, math.ceil(last - 1e-6))
    return imported


def _gather(parent: "bpy.types.Collection", clip: str, results: list) -> None:
    """Move a clip's rigs into a new collection named after the clip, inside ``parent``."""
    collection = bpy.data.collections.new(clip)
    parent.children.link(collection)
    for result in results:
        obj = result.armature
        for owner in list(obj.users_collection):
            owner.objects.unlink(obj)
        collection.objects.link(obj)
