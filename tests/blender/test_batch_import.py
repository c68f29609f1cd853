"""Importing a folder of batch results as takes, through the installed extension."""

import importlib

import bpy
import pytest

from inference.batch import ClipJob, ClipRecord, Manifest
from inference.synth.clip import default_camera, motions_to_trajectory
from inference.synth.motion import generate_motion
from retarget.contract import write_trajectory

MODULE = "bl_ext.user_default.metrabs_mocap.metrabs_blender.batch_import"


def _trajectory(people: int, seconds: float, fps: float = 30.0):
    motions = [
        generate_motion("walk", seconds, fps, seed=p, start_xy=(1.5 * p, 0.0))
        for p in range(people)
    ]
    return motions_to_trajectory(motions, default_camera(motions))


@pytest.fixture
def batch_folder(tmp_path):
    """A batch output folder as ``inference.batch`` leaves it: a manifest with two finished clips
    (one also cleaned), one failed clip and one clip whose file is damaged."""
    out = tmp_path / "out"
    manifest = Manifest(out)
    clips = {"walk_a": _trajectory(1, 1.0), "pair_b": _trajectory(2, 2.0)}
    for name in ("walk_a", "pair_b", "broken_c", "failed_d"):
        job = ClipJob(name, str(tmp_path / f"{name}.mp4"), str(out / f"{name}.npz"), "")
        status = "failed" if name == "failed_d" else "done"
        if name in clips:
            write_trajectory(job.output, clips[name])
        elif name == "broken_c":
            (out / "broken_c.npz").write_bytes(b"PK\x03\x04 truncated")
        manifest.update(job, ClipRecord(clip=name, status=status))
    manifest.flush()
    # the cleaned take of walk_a is 1.5 s long, so we can tell which file was imported
    write_trajectory(out / "cleaned" / "walk_a.npz", _trajectory(1, 1.5))
    return out


def test_import_folder_makes_one_take_per_clip_and_person(extension, batch_folder):
    batch_import = importlib.import_module(MODULE)
    result = batch_import.import_folder(batch_folder)

    assert list(result.takes) == ["walk_a", "pair_b"]  # manifest order, complete clips only
    assert list(result.errors) == ["broken_c"] and "broken_c.npz" in result.errors["broken_c"]
    actions = sorted(r.action.name for rs in result.takes.values() for r in rs)
    assert actions == ["MeTRAbs pair_b P0 take", "MeTRAbs pair_b P1 take", "MeTRAbs walk_a P0 take"]
    assert len({id(r.action) for rs in result.takes.values() for r in rs}) == 3
    # the cleaned walk_a (45 frames) was preferred over the raw one (30 frames)
    assert len(result.takes["walk_a"][0].frames) == 45
    clips = {c.name: sorted(o.name for o in c.objects) for c in result.collection.children}
    assert clips == {
        "walk_a": ["MeTRAbs walk_a P0"],
        "pair_b": ["MeTRAbs pair_b P0", "MeTRAbs pair_b P1"],
    }
    scene = bpy.context.scene
    assert scene.render.fps == 30 and scene.frame_end == scene.frame_start + 59  # longest: 2 s


def test_import_folder_without_results_changes_nothing(extension, tmp_path):
    batch_import = importlib.import_module(MODULE)
    before = len(bpy.data.objects), len(bpy.data.collections)
    with pytest.raises(batch_import.MocapError, match="no finished results"):
        batch_import.import_folder(tmp_path)
    assert (len(bpy.data.objects), len(bpy.data.collections)) == before
