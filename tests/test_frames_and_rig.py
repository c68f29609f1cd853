import subprocess
import sys

import numpy as np
import pytest

from inference.camera import look_at
from inference.training.synth.motion import SKELETON, generate_motion
from retarget import frames
from retarget.solve import rig


def test_camera_world_round_trip_and_level_floor():
    motion = generate_motion("walk", 3.0, 30.0, seed=2)
    camera = look_at(np.array([0.5, -4.0, 1.3]), np.array([0.5, 0.0, 1.3]))  # level, 1.3 m high
    poses_mm = frames.world_to_camera(motion.joints, camera)[:, None]
    np.testing.assert_allclose(
        frames.camera_to_world(poses_mm[:, 0], camera), motion.joints, atol=1e-9
    )
    estimated = frames.level_camera_pose(poses_mm, SKELETON.joint_names)
    np.testing.assert_allclose(estimated[:3, :3], camera[:3, :3], atol=1e-12)
    # The floor goes under the planted toes (2 cm above the true ground): within 1 cm of truth.
    assert abs(estimated[2, 3] - (1.3 - 0.02)) < 0.01


def test_rest_pose_keeps_the_clip_proportions():
    motion = generate_motion("walk", 2.0, 30.0, seed=3, height_m=1.6)
    rest = rig.rest_joints(SKELETON, motion.joints)
    parents = np.array(SKELETON.parents)
    clip_lengths = np.linalg.norm(motion.joints[0, 1:] - motion.joints[0, parents[1:]], axis=-1)
    rest_lengths = np.linalg.norm(rest[1:] - rest[parents[1:]], axis=-1)
    np.testing.assert_allclose(rest_lengths, clip_lengths, atol=1e-9)
    assert rest[:, 2].min() == 0.0
    left, right = rest[SKELETON.index("lsho")], rest[SKELETON.index("rsho")]
    assert left[0] > 0 > right[0], "Blender rest: the character's left is +X"


@pytest.mark.slow
def test_retarget_imports_without_bpy():
    """Every module of retarget/ runs where bpy cannot be imported at all (the keyframe writer is
    metrabs_blender's)."""
    code = (
        "import sys; sys.modules['bpy'] = None; sys.modules['mathutils'] = None\n"
        "import importlib, pkgutil, retarget\n"
        "names = [m.name for m in pkgutil.walk_packages(retarget.__path__, 'retarget.')]\n"
        "for name in names:\n    importlib.import_module(name)\n"
        "print(' '.join(sorted(names)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    imported = set(result.stdout.split())
    assert {"retarget.contract", "retarget.clean", "retarget.solve", "retarget.frames"} <= imported
    assert "retarget.solve.rig" in imported and "retarget.keyframes" not in imported
