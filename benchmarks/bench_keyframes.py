"""Keyframe writing: the bulk ``foreach_set`` writer vs per-frame ``keyframe_insert``, same data,
same armature, one run. Prints times and the speed-up (target >= 30x), then the bulk writer on a
10-minute take (30 fps, 24 bones; target < 2 s).

Key reduction (``retarget.keys``, default tolerance 0.5° per bone, 5 mm on the root): the
DeepMimic clips of bench_motion_quality through the estimator error model and the default
cleaning, solved onto the generated rig, then keyed: the keys kept and the largest error on any
frame, in quaternion and in XYZ Euler channels; and the time to write a 1-minute take (a recorded
walk, 30 fps) dense and reduced, both in bulk (target: reduced < 0.5 s, most of it the reduction's
numpy work)."""

import sys
import time
from pathlib import Path

import bpy
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import retarget.solve as solve  # noqa: E402
from inference.training.synth.mocap import (  # noqa: E402
    MOCAP_CASES,
    MocapCase,
    make_mocap_scenario,
)
from metrabs_blender.__main__ import load_extension_package  # noqa: E402
from retarget import keys  # noqa: E402
from retarget.clean import clean_trajectory  # noqa: E402
from retarget.rotations import make_continuous, quaternion_to_euler  # noqa: E402
from retarget.skeletons import get_rig_skeleton  # noqa: E402
from retarget.solve import people, rigmaps  # noqa: E402

# The writer imports its package relatively: load it as the extension does.
keyframes = __import__(load_extension_package().__name__ + ".metrabs_blender.keyframes",
                       fromlist=["keyframes"])  # fmt: skip
action_fcurves, write_take = keyframes.action_fcurves, keyframes.write_take
scene_tools = __import__(load_extension_package().__name__ + ".metrabs_blender.scene",
                         fromlist=["scene"])  # fmt: skip

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
    write_take(obj, "bulk", frames, rotations)
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


def solved_take(case: MocapCase, seed: int = 0):
    """The case through the error model and the default cleaning, solved onto a generated rig in
    the scene: (armature, scene frames, {bone: (T, 4) quaternions}, root bone, root (T, 3))."""
    scenario = make_mocap_scenario(case, seed=seed)
    cleaned = clean_trajectory(scenario.raw, "default")
    motion = people.person_motions(cleaned)[0]
    context = bpy.context
    armature = scene_tools.create_armature(context, case.name, motion.bones)
    mapping = rigmaps.restrict(rigmaps.PRESETS["metrabs"], {b.name for b in motion.bones})[0]
    rig = scene_tools.read_target_rig(context, armature)
    skeleton = get_rig_skeleton(cleaned.skeleton)
    result = solve.retarget(motion.joints, skeleton, rig, mapping,
                            solve.RetargetParams(root_motion="camera", reground=False))  # fmt: skip
    frames = 1.0 + (motion.times - motion.times[0]) * 30.0
    rotations = {bone: result.rotations[:, k] for k, bone in enumerate(result.bone_names)}
    return armature, frames, rotations, result.root_bone, result.root_location


def reduction_table() -> None:
    tolerance = keys.KeyTolerance()
    print(f"\nkey reduction, tolerance {tolerance.rotation_deg} deg per bone, "
          f"{1000 * tolerance.location_m:g} mm root (cleaned DeepMimic clips, generated rig)")  # fmt: skip
    print(f"{'clip':11s}{'frames':>7s}{'kept quat':>11s}{'max deg':>9s}{'kept XYZ':>10s}"
          f"{'max deg':>9s}{'root kept':>10s}{'max mm':>8s}")  # fmt: skip
    totals = np.zeros(4)
    for case in MOCAP_CASES:
        bpy.ops.wm.read_homefile(use_empty=True)
        _, frames, rotations, _, root = solved_take(case)
        row = {"quat": [0, 0, 0.0], "XYZ": [0, 0, 0.0]}
        for quaternions in rotations.values():
            for mode, values in (
                ("quat", quaternions),
                ("XYZ", quaternion_to_euler(quaternions, "XYZ")),
            ):
                reduced = keys.reduce_rotation(frames, values, "QUATERNION" if mode == "quat" else mode,
                                               tolerance.rotation_deg)  # fmt: skip
                row[mode][0] += reduced.keys.values.size
                row[mode][1] += values.size
                row[mode][2] = max(row[mode][2], reduced.max_error)
        located = keys.reduce_location(frames, root, tolerance.location_m)
        totals += [row["quat"][0], row["quat"][1], row["XYZ"][0], row["XYZ"][1]]
        print(f"{case.name:11s}{len(frames):7d}{100 * row['quat'][0] / row['quat'][1]:10.1f}%"
              f"{row['quat'][2]:9.3f}{100 * row['XYZ'][0] / row['XYZ'][1]:9.1f}%{row['XYZ'][2]:9.3f}"
              f"{100 * len(located.keys.frames) / len(frames):9.1f}%"
              f"{1000 * located.max_error:8.2f}")  # fmt: skip
    print(f"{'all':11s}{'':7s}{100 * totals[0] / totals[1]:10.1f}%{'':9s}"
          f"{100 * totals[2] / totals[3]:9.1f}%")  # fmt: skip


def writing_minute() -> None:
    """Dense vs reduced writing of a 1-minute take onto the same generated rig."""
    bpy.ops.wm.read_homefile(use_empty=True)
    case = MocapCase("minute", "walk", cycles=60, direction="left", duration_s=60.0)
    armature, frames, rotations, root_bone, root = solved_take(case)
    times = {}
    for label, reduction in (("dense", None), ("reduced", keys.KeyTolerance())):
        best = np.inf
        for _ in range(3):
            start = time.perf_counter()
            written = keyframes.write_take(armature, label, frames, rotations, {root_bone: root},
                                           reduction=reduction)  # fmt: skip
            best = min(best, time.perf_counter() - start)
        times[label] = (best, written)
    print(f"\n1-minute take ({len(frames)} frames, {len(rotations)} bones + root), best of 3:")
    for label, (seconds, written) in times.items():
        print(f"  {label:8s}{seconds:7.3f} s  {written.keys_kept:7d} keys "
              f"({100 * written.keys_kept / written.keys_dense:5.1f} %), max error "
              f"{written.max_rotation_error_deg:.3f} deg, {1000 * written.max_location_error:.2f} mm")  # fmt: skip
    print(f"  reduced: {times['reduced'][0]:.2f} s (target < 0.5 s)")


if __name__ == "__main__":
    main()
    reduction_table()
    writing_minute()
