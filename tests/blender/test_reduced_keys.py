"""Reduced keys in real Blender (retarget/keys.py written by metrabs_blender/keyframes.py): the
curves Blender plays are the numpy curves, and the pose on every frame stays within the tolerance
of the dense take, in every rotation mode."""

import bpy
import numpy as np
import pytest

from tests.blender.test_retarget import build_armature, write_clip
from tests.test_solve_rigs import canonical_rest, unreal_like, world_motion

MODES = {"thigh_l": "XYZ", "calf_l": "ZXY", "upperarm_r": "YZX", "lowerarm_r": "AXIS_ANGLE",
         "pelvis": "ZYX", "spine_03": "XZY", "head": "YXZ"}  # fmt: skip


def _points(fcurve) -> dict[str, np.ndarray]:
    count = len(fcurve.keyframe_points)
    out = {}
    for name in ("co", "handle_left", "handle_right"):
        values = np.empty(2 * count, np.float32)
        fcurve.keyframe_points.foreach_get(name, values)
        out[name] = values.reshape(count, 2).astype(np.float64)
    return out


def _pose(obj, bones, root) -> tuple[list, np.ndarray]:
    """Each bone's local rotation (as its channels give it, in its own mode) and the root's
    location, on the current frame."""
    rotations = [obj.pose.bones[b].matrix_basis.to_quaternion() for b in bones]
    return rotations, np.array(obj.pose.bones[root].location)


@pytest.mark.parametrize("tolerance", [None, (1.0, 0.01)], ids=["default", "1 deg 10 mm"])
def test_reduced_keys_play_as_computed_and_stay_within_the_tolerance(
    api, extension, tmp_path, tolerance
):
    keyframes, keys = extension.metrabs_blender.keyframes, extension.retarget.keys
    bound = keys.KeyTolerance() if tolerance is None else keys.KeyTolerance(*tolerance)
    motion = world_motion("run", 2.0, seed=13)
    path, world = write_clip(tmp_path, motion, contacts=False)
    spec = unreal_like(canonical_rest(), rng=np.random.default_rng(3))
    dense_rig, reduced_rig = build_armature(spec, "dense"), build_armature(spec, "reduced")
    for rig in (dense_rig, reduced_rig):
        for bone, mode in MODES.items():
            rig.pose.bones[bone].rotation_mode = mode
    (dense,) = api.import_trajectory(path, target=dense_rig, key_reduction="dense")
    options = {} if tolerance is None else {"key_reduction": bound}
    (reduced,) = api.import_trajectory(path, target=reduced_rig, **options)
    assert dense.keys_kept == dense.keys_dense == reduced.keys_dense
    assert reduced.keys_kept < 0.6 * reduced.keys_dense
    assert 0 < reduced.max_key_error_deg <= bound.rotation_deg
    assert 0 < reduced.max_key_error_m <= bound.location_m
    frames = np.asarray(reduced.frames, np.float64)
    between = 0.5 * (frames[1:] + frames[:-1])
    paths, root = set(), None
    for fcurve in keyframes.action_fcurves(reduced.action):
        paths.add(fcurve.data_path.rsplit(".", 1)[1])
        if fcurve.data_path.endswith(".location"):
            root = fcurve.data_path.split('"')[1]
        points = fcurve.keyframe_points
        assert {p.interpolation for p in points} == {"BEZIER"}
        assert {p.handle_left_type for p in points} | {p.handle_right_type for p in points} == {
            "ALIGNED"
        }
        stored = _points(fcurve)
        co, right = stored["co"], stored["handle_right"]
        ours = keys.BezierKeys(co[:, 0], co[:, 1:], ((right[:, 1] - co[:, 1])
                                                     / (right[:, 0] - co[:, 0]))[:, None])  # fmt: skip
        assert set(co[:, 0]) <= set(frames.astype(np.float32).astype(np.float64))
        for query in (frames, between):
            played = np.array([fcurve.evaluate(f) for f in query])
            np.testing.assert_allclose(played, keys.evaluate(ours, query)[:, 0], atol=2e-6)
    assert paths == {"rotation_quaternion", "rotation_euler", "rotation_axis_angle", "location"}
    bones = list(MODES) + ["spine_01", "hand_l", "foot_r"]
    scene = bpy.context.scene
    worst_angle = worst_distance = 0.0
    for frame in frames:
        scene.frame_set(int(frame))
        want, want_root = _pose(dense_rig, bones, root)
        got, got_root = _pose(reduced_rig, bones, root)
        for a, b in zip(want, got, strict=True):
            worst_angle = max(worst_angle, np.degrees(a.rotation_difference(b).angle))
        worst_distance = max(worst_distance, float(np.linalg.norm(got_root - want_root)))
    assert worst_angle <= bound.rotation_deg + 1e-3  # float32 keys
    assert worst_distance <= bound.location_m + 1e-6
    assert worst_angle > 0.2 * bound.rotation_deg  # the bound is used, not far from it
    assert worst_distance > 0.2 * bound.location_m


def test_default_keys_are_reduced_and_dense_keys_every_frame(api, extension, tmp_path):
    motion = world_motion("walk", 1.0, seed=2)
    path, _ = write_clip(tmp_path, motion, contacts=False)
    (reduced,) = api.import_trajectory(path)
    (dense,) = api.import_trajectory(path, key_reduction="dense")
    fcurves = extension.metrabs_blender.keyframes.action_fcurves
    assert {len(f.keyframe_points) for f in fcurves(dense.action)} == {len(motion.joints)}
    assert {p.interpolation for f in fcurves(dense.action) for p in f.keyframe_points} == {"LINEAR"}
    assert min(len(f.keyframe_points) for f in fcurves(reduced.action)) == 2  # a bone at rest
    assert reduced.keys_kept < reduced.keys_dense == dense.keys_kept
    with pytest.raises(extension.metrabs_blender.errors.MocapError, match="key_reduction"):
        api.import_trajectory(path, key_reduction="sparse")
    with pytest.raises(extension.retarget.RetargetError, match="positive"):
        api.import_trajectory(path, key_reduction=api.KeyTolerance(rotation_deg=0.0))


def test_the_location_tolerance_is_in_metres_on_a_scaled_rig(api, extension, tmp_path):
    """An FBX import's rig (bones in centimetres, object scale 0.01): its pose locations are in
    armature units, so a 5 cm bound is 5 of them. The same world motion reduces to the same root
    keys as on an unscaled rig, and the error is reported in metres."""
    from tests.blender.test_retarget_rigs import FBX_ROTATION, FBX_SCALE, fbx_like
    from tests.test_solve_rigs import mixamo_like

    motion = world_motion("walk", 3.0, seed=5)
    path, _ = write_clip(tmp_path, motion, contacts=False)
    spec = mixamo_like(canonical_rest(1.8), rng=np.random.default_rng(8))
    plain, scaled = build_armature(spec, "plain"), build_armature(fbx_like(spec), "fbx")
    scaled.rotation_euler, scaled.scale = FBX_ROTATION, (FBX_SCALE,) * 3
    bpy.context.view_layer.update()
    fcurves = extension.metrabs_blender.keyframes.action_fcurves

    def root_keys(result) -> int:
        (count,) = {len(f.keyframe_points) for f in fcurves(result.action)
                    if f.data_path.endswith(".location")}  # fmt: skip
        return count

    bound = api.KeyTolerance(0.5, 0.05)  # loose: the root keeps few keys (1 cm while planted)
    (on_plain,) = api.import_trajectory(path, target=plain, limb_ik="fk", key_reduction=bound)
    (on_scaled,) = api.import_trajectory(path, target=scaled, limb_ik="fk", key_reduction=bound)
    assert root_keys(on_plain) < 0.5 * len(motion.joints)
    assert abs(root_keys(on_scaled) - root_keys(on_plain)) <= 2
    assert 0.002 < on_scaled.max_key_error_m <= 0.05
    assert on_scaled.max_key_error_m == pytest.approx(on_plain.max_key_error_m, rel=0.05)
