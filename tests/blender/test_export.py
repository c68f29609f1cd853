"""Export of a take (FBX, BVH, glTF binary): the deform skeleton as it moves, written by Blender's
own exporters, read back by Blender's own importers with the same limb directions and frames."""

import importlib

import bpy
import numpy as np
import pytest

from retarget.contract import write_trajectory

MODULE = "bl_ext.user_default.metrabs_mocap"
# Limbs of the generated rig: bone -> child bone (the limb runs between their heads).
LIMBS = {
    "thigh.L": "shin.L", "shin.L": "foot.L", "thigh.R": "shin.R", "shin.R": "foot.R",
    "upper_arm.L": "forearm.L", "forearm.L": "hand.L", "upper_arm.R": "forearm.R",
    "forearm.R": "hand.R", "spine": "spine.001", "neck": "head",
}  # fmt: skip
IMPORTERS = {
    ".fbx": lambda path: bpy.ops.import_scene.fbx(filepath=str(path), axis_forward="-Y",
                                                  axis_up="Z"),
    ".bvh": lambda path: bpy.ops.import_anim.bvh(filepath=str(path), axis_forward="Y",
                                                 axis_up="Z", update_scene_fps=False,
                                                 update_scene_duration=True),
    ".glb": lambda path: bpy.ops.import_scene.gltf(filepath=str(path)),
}  # fmt: skip


@pytest.fixture
def export(extension):
    return importlib.import_module(MODULE + ".metrabs_blender.export")


def _limb_directions(armature, frames) -> np.ndarray:
    """(T, L, 3) world directions of the limbs over ``frames``."""
    scene, out = bpy.context.scene, []
    for frame in frames:
        scene.frame_set(int(frame))
        world = armature.matrix_world
        heads = {b.name: np.array(world @ b.head) for b in armature.pose.bones}
        out.append([heads[child] - heads[bone] for bone, child in LIMBS.items()])
    directions = np.array(out)
    return directions / np.linalg.norm(directions, axis=-1, keepdims=True)


@pytest.mark.parametrize("suffix", [".fbx", ".bvh", ".glb"])
def test_an_exported_take_reads_back_with_the_same_motion(api, export, tmp_path, suffix,
                                                          two_person_trajectory):  # fmt: skip
    path = write_trajectory(tmp_path / "walk.npz", two_person_trajectory)
    take = api.import_trajectory(path, person=0)[0]  # reduced keys: Bezier, few
    first, last = int(np.ceil(take.frames[0])), int(np.floor(take.frames[-1]))
    frames = np.arange(first, last + 1, 7)
    source = _limb_directions(take.armature, frames)
    out = tmp_path / f"walk{suffix}"
    result = export.export_take(take.armature, out, first, last)
    assert result.path == out and out.stat().st_size > 0 and result.frames == (first, last)
    assert result.bones == len(take.armature.data.bones)
    assert not [o for o in bpy.data.objects if o.name.startswith(take.armature.name + ".")]

    fps = bpy.context.scene.render.fps
    bpy.ops.wm.read_homefile(app_template="")
    bpy.context.scene.render.fps = fps  # glTF stores seconds: read back at the take's rate
    IMPORTERS[suffix](out)
    armature = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    action = armature.animation_data.action
    start, end = (round(v) for v in action.frame_range)
    assert end - start == last - first  # the same frames, one key each
    read_back = _limb_directions(armature, frames - first + start)
    angles = np.degrees(np.arccos(np.clip(np.sum(read_back * source, axis=-1), -1.0, 1.0)))
    assert angles.max() < 1.0, angles.max()


def test_exports_refused_before_anything_is_written(api, export, tmp_path, two_person_trajectory):
    path = write_trajectory(tmp_path / "walk.npz", two_person_trajectory)
    rig = api.import_trajectory(path, person=0)[0].armature
    with pytest.raises(Exception, match="must end in .fbx, .bvh, .glb"):
        export.export_take(rig, tmp_path / "take.obj", 1, 10)
    with pytest.raises(Exception, match="walk.npz is a file, not a folder"):
        export.export_take(rig, path / "take.fbx", 1, 10)
    for bone in rig.data.bones:
        bone.use_deform = False
    with pytest.raises(Exception, match="no deform bones"):
        export.export_take(rig, tmp_path / "take.fbx", 1, 10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.npz"]


def test_headless_export_writes_one_file_per_person_or_nothing(tmp_path, two_person_trajectory):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    path = write_trajectory(tmp_path / "walk.npz", two_person_trajectory)

    def run(*extra):
        command = [sys.executable, "-m", "metrabs_blender", str(path), "--out",
                   str(tmp_path / "scene.blend"), *extra]  # fmt: skip
        return subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=300)

    refused = run("--export", str(tmp_path / "take.obj"))
    assert refused.returncode == 2 and "must end in .fbx, .bvh, .glb" in refused.stderr
    refused = run("--export", str(path / "take.fbx"))  # a folder that is a file
    assert refused.returncode == 1 and "cannot write --export" in refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.npz"]  # not even the .blend
    done = run("--export", str(tmp_path / "take.fbx"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert {"take_P0.fbx", "take_P1.fbx", "scene.blend"} <= {p.name for p in tmp_path.iterdir()}
