"""Export of a take: one minute at 30 fps of a walk retargeted onto a Mixamo-style rig (66 bones,
a Mixamo FBX's names and layout), exported by ``metrabs_blender.export`` (the deform skeleton,
evaluated once per frame, then Blender's exporter) as FBX, BVH and glTF binary, side by side with
Blender's own FBX exporter run directly on the rig (baking the animation itself). Target: FBX in
< 10 s. Prints seconds, file sizes and the ratio to the direct export."""

import importlib
import sys
import tempfile
import time
from pathlib import Path

import bpy
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from metrabs_blender.__main__ import load_extension_package  # noqa: E402
from retarget.contract import write_trajectory  # noqa: E402
from tests.blender.test_retarget import build_armature  # noqa: E402
from tests.test_solve_rigs import canonical_rest, mixamo_like, world_motion  # noqa: E402

SECONDS, FPS = 60.0, 30.0


FINGERS = ("Thumb", "Index", "Middle", "Ring", "Pinky")


def with_fingers(spec):
    """A Mixamo rig's 4 bones per finger (3 + an end bone) on each hand: 65 bones in all."""
    bones = [b for b in spec.bones if "HandIndex1" not in b[0]]
    for side in ("Left", "Right"):
        hand = next(b for b in bones if b[0].endswith(f"{side}Hand"))
        prefix = hand[0][: -len(f"{side}Hand")]
        along = (hand[3] - hand[2]) / np.linalg.norm(hand[3] - hand[2])
        for f, finger in enumerate(FINGERS):
            start = hand[3] + np.array([0.0, 0.02 * (f - 2), 0.0])
            parent = hand[0]
            for k in range(1, 5):
                name = f"{prefix}{side}Hand{finger}{k}"
                head, tail = start + 0.025 * (k - 1) * along, start + 0.025 * k * along
                bones.append((name, parent, head, tail, 0.0))
                parent = name
    spec.bones[:] = bones
    return spec


def one_minute_take(folder: Path):
    """A new Mixamo-style rig keyed with one minute of walking (the extension's own import)."""
    from inference.training.synth.clip import default_camera, motions_to_trajectory

    motion = world_motion("walk", SECONDS, seed=3, turn_deg_per_s=15.0)
    trajectory = motions_to_trajectory([motion], default_camera([motion]))
    path = write_trajectory(folder / "walk.npz", trajectory)
    rig = build_armature(with_fingers(mixamo_like(canonical_rest())), "character")
    api = importlib.import_module("metrabs_mocap.metrabs_blender.api")
    (take,) = api.import_trajectory(path, target=rig)
    return rig, take


def main() -> None:
    load_extension_package()
    export = importlib.import_module("metrabs_mocap.metrabs_blender.export")
    bpy.ops.wm.read_homefile(use_empty=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rig, take = one_minute_take(folder)
        first, last = int(np.ceil(take.frames.min())), int(np.floor(take.frames.max()))
        print(f"take: {last - first + 1} frames, {len(rig.data.bones)} bones (Mixamo-style)")
        bpy.context.scene.frame_start, bpy.context.scene.frame_end = first, last
        for other in bpy.context.view_layer.objects:
            other.select_set(other == rig)
        bpy.context.view_layer.objects.active = rig
        started = time.perf_counter()
        bpy.ops.export_scene.fbx(filepath=str(folder / "direct.fbx"), use_selection=True,
                                 object_types={"ARMATURE"}, add_leaf_bones=False,
                                 bake_anim=True, bake_anim_use_all_actions=False,
                                 bake_anim_use_nla_strips=False)  # fmt: skip
        direct = time.perf_counter() - started
        size = (folder / "direct.fbx").stat().st_size / 1e6
        print(f"{'Blender FBX exporter on the rig':34s} {direct:6.2f} s  {size:6.1f} MB")
        for suffix in export.FORMATS:
            result = export.export_take(rig, folder / f"take{suffix}", first, last)
            size = result.path.stat().st_size / 1e6
            ratio = direct / result.seconds
            print(f"{'export_take ' + suffix:34s} {result.seconds:6.2f} s  {size:6.1f} MB  "
                  f"({ratio:.1f}x the direct FBX export's speed)")  # fmt: skip


if __name__ == "__main__":
    main()
