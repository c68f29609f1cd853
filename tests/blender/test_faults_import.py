"""Fault battery, the Blender side (issue 18): ``python -m metrabs_blender`` and the scripting API
given the files, paths and objects a new user gives them. Every test here failed before its fix.

The headless command runs as a subprocess of this Python (it has ``bpy``) from the source tree;
the API is the installed extension's."""

import sys

import bpy
import pytest

from retarget.contract import write_trajectory
from tests.faults import corrupt_member, no_traceback, run

HEADLESS = [sys.executable, "-m", "metrabs_blender"]


def _flipped(trajectory, people):
    """``trajectory`` with the depth of ``people`` negated: behind the camera."""
    poses = trajectory.poses3d.copy()
    poses[:, people, :, 2] *= -1
    return trajectory.replace(poses3d=poses)


def test_people_behind_the_camera_are_refused_or_left_out(api, tmp_path, two_person_trajectory):
    """A clip whose people are behind the camera (negative depth) imported as nonsense, exit 0,
    without a word."""
    behind = write_trajectory(tmp_path / "behind.npz", _flipped(two_person_trajectory, [0, 1]))
    out = tmp_path / "scene.blend"
    refused = run([*HEADLESS, behind, "--out", out])
    assert refused.returncode == 1 and not out.exists()
    assert "behind the camera" in no_traceback(refused) and "z forward" in refused.stderr

    one_behind = write_trajectory(tmp_path / "one.npz", _flipped(two_person_trajectory, [1]))
    with pytest.raises(api.MocapError, match="behind the camera"):
        api.import_trajectory(behind)
    results = api.import_trajectory(one_behind)
    assert [r.track_id for r in results] == [int(two_person_trajectory.track_ids[0])]


def test_a_damaged_trajectory_is_an_error_naming_the_file(api, tmp_path, two_person_trajectory):
    """A corrupt compressed member raised a raw ``zlib.error`` from the import and the API."""
    path = corrupt_member(write_trajectory(tmp_path / "clip.npz", two_person_trajectory))
    objects = set(bpy.data.objects)
    with pytest.raises(api.contract.ContractError, match="clip.npz.*damaged"):
        api.import_trajectory(path)
    assert set(bpy.data.objects) == objects
    refused = run([*HEADLESS, path, "--out", tmp_path / "scene.blend"])
    assert refused.returncode == 1 and "damaged" in no_traceback(refused)


@pytest.fixture
def trajectory_file(tmp_path, two_person_trajectory):
    return write_trajectory(tmp_path / "clip.npz", two_person_trajectory)


# ------------------------------------------------------------------------------------------------
# The scripting API's target (item 11)


def test_the_target_is_checked_as_the_script_left_it_and_may_be_a_name(api, trajectory_file):
    """``import_trajectory(target=rig)`` right after the script scaled the rig read a stale
    ``matrix_world`` (no depsgraph update) and skipped its scale check; ``target="Armature"``
    raised AttributeError."""
    rig = api.import_trajectory(trajectory_file, person=0)[0].armature
    rig.scale = (0.01, 0.01, 0.01)  # as an FBX import leaves it; nothing re-evaluated since
    with pytest.raises(api.MocapError, match="apply rotation and scale"):
        api.import_trajectory(trajectory_file, target=rig)
    rig.scale = (1.0, 1.0, 1.0)
    by_name = api.import_trajectory(trajectory_file, target=rig.name)
    assert by_name[0].armature == rig and rig.animation_data.action == by_name[0].action
    with pytest.raises(api.MocapError, match=f"No object named 'Armature'.*{rig.name}"):
        api.import_trajectory(trajectory_file, target="Armature")
    with pytest.raises(api.MocapError, match="armature object or its name"):
        api.import_trajectory(trajectory_file, target=rig.data)
