"""Keyframe writing: the bulk ``foreach_set`` writer vs per-frame ``keyframe_insert``, same data,
same armature, one run. Prints times and the speed-up (target >= 30x), then the bulk writer on a
10-minute take (30 fps, 24 bones; target < 2 s)."""

import sys
import time
from pathlib import Path

import bpy
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from metrabs_blender.__main__ import load_extension_package  # noqa: E402
from retarget.rotations import make_continuous  # noqa: E402

# The writer imports its package relatively: load it as the extension does.
keyframes = __import__(load_extension_package().__name__ + ".metrabs_blender.keyframes",
                       fromlist=["keyframes"])  # fmt: skip
action_fcurves, write_bone_action = keyframes.action_fcurves, keyframes.write_bone_action

NUM_BONES = 24


def make_armature() -> bpy.types.Object:
    armature = bpy.data.armatures.new("bench")
    obj = bpy.data.objects.new("bench", armature)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for b in range(NUM_BONES):
        bone = armature.edit_bones.new(f"bone{b}")
        bone.head, bone.tail = (0, 0, b * 0.1), (0, 0, b * 0.1 + 0.1)
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


def random_rotations(num_frames: int, rng) -> dict[str, np.ndarray]:
    quaternions = rng.normal(size=(num_frames, NUM_BONES, 4))
    quaternions /= np.linalg.norm(quaternions, axis=-1, keepdims=True)
    quaternions = make_continuous(quaternions)
    return {f"bone{b}": quaternions[:, b] for b in range(NUM_BONES)}


def bulk(obj, rotations, frames) -> float:
    start = time.perf_counter()
    write_bone_action(obj, "bulk", frames, rotations)
    return time.perf_counter() - start


def per_frame(obj, rotations, frames) -> float:
    obj.animation_data_clear()
    start = time.perf_counter()
    for t, frame in enumerate(frames):
        for name, quaternions in rotations.items():
            bone = obj.pose.bones[name]
            bone.rotation_mode = "QUATERNION"
            bone.rotation_quaternion = quaternions[t]
            bone.keyframe_insert("rotation_quaternion", frame=frame, group=name)
    return time.perf_counter() - start


def main() -> None:
    rng = np.random.default_rng(0)
    bpy.ops.wm.read_homefile(use_empty=True)
    obj = make_armature()
    num_frames = 600
    rotations = random_rotations(num_frames, rng)
    frames = np.arange(1, num_frames + 1, dtype=float)
    slow = per_frame(obj, rotations, frames)
    fast = bulk(obj, rotations, frames)
    # Same keys either way: compare the values both paths wrote.
    written = {
        fc.data_path + str(fc.array_index): fc for fc in action_fcurves(bpy.data.actions["bulk"])
    }
    sample = written['pose.bones["bone3"].rotation_quaternion2']
    assert abs(sample.evaluate(101) - rotations["bone3"][100, 2]) < 1e-6
    print(f"{NUM_BONES} bones x 4 channels x {num_frames} frames")
    print(f"{'method':<28}{'seconds':>10}")
    print(f"{'per-frame keyframe_insert':<28}{slow:>10.3f}")
    print(f"{'bulk foreach_set':<28}{fast:>10.3f}")
    print(f"speed-up: {slow / fast:.0f}x (target >= 30x)")
    long_frames = np.arange(1, 10 * 60 * 30 + 1, dtype=float)
    long_take = bulk(obj, random_rotations(len(long_frames), rng), long_frames)
    print(f"10 min @ 30 fps x {NUM_BONES} bones, bulk: {long_take:.2f} s (target < 2 s)")


if __name__ == "__main__":
    main()
