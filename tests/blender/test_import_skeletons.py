"""Every skeleton the contract can declare imports, in the spellings and orders of the official
release, and files from other tools with only the required keys import too."""

import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest

from retarget import frames
from retarget.contract import read_trajectory, write_trajectory
from retarget.joints import canonical_name
from retarget.skeletons import H36M_17, SMPL_24
from retarget.solve.rig import BONE_NAMES
from tests.official_names import SKELETON_INFOS

REPO = Path(__file__).resolve().parents[2]


def _as_official(trajectory, skeleton) -> dict:
    """The trajectory's joints as the release's ``skeleton`` spells and orders them (smpl_24:
    spi1..3; h36m_17: its '' names pelv_h36m, ..., in the release's order), the arrays a file of
    another tool would hold."""
    info = SKELETON_INFOS[skeleton.name]
    if skeleton is H36M_17:
        names = [SKELETON_INFOS[""]["names"][i] for i in info["indices"]]
    else:
        names = list(info["names"])
    columns = [trajectory.joint_names.index(canonical_name(n)) for n in names]
    return {
        "poses3d": trajectory.poses3d[:, :, columns],
        "frame_times": trajectory.frame_times,
        "joint_names": np.array(names),
        "skeleton": np.array(skeleton.name),
    }


def _bone_errors(armature, expected, skeleton, person, frames_to_check) -> list[float]:
    errors = []
    for frame in frames_to_check:
        bpy.context.scene.frame_set(frame)
        for joint, bone in BONE_NAMES.items():
            if joint in skeleton.joint_names:
                head = np.array(armature.matrix_world @ armature.pose.bones[bone].head)
                errors.append(
                    np.linalg.norm(head - expected[frame - 1, person, skeleton.index(joint)])
                )
    return errors


@pytest.mark.parametrize("skeleton", [SMPL_24, H36M_17], ids=lambda s: s.name)
def test_smaller_skeletons_import_in_the_releases_spelling(
    api, tmp_path, two_person_trajectory, skeleton
):
    path = tmp_path / f"{skeleton.name}.npz"
    np.savez(path, **_as_official(two_person_trajectory, skeleton))
    read = read_trajectory(path)
    assert read.joint_names == skeleton.joint_names and np.isnan(read.uncertainty).all()
    results = api.import_trajectory(path, key_reduction="dense")  # exact, to 1 mm
    assert len(results) == 2
    expected = frames.camera_to_world(
        read.poses3d.astype(np.float64), frames.level_camera_pose(read.poses3d, read.joint_names)
    )
    for person, result in enumerate(results):
        bones = {b.name for b in result.armature.data.bones}
        assert bones == {BONE_NAMES[j] for j in skeleton.joint_names if j in BONE_NAMES}
        errors = _bone_errors(result.armature, expected, skeleton, person, (1, 40, 90))
        assert len(errors) >= 3 * 14 and max(errors) < 0.001  # metres


def test_a_file_with_only_the_required_keys_imports_headless_without_a_camera(
    tmp_path, two_person_trajectory
):
    path = tmp_path / "other_tool.npz"
    np.savez(path, **_as_official(two_person_trajectory, SMPL_24))
    out = tmp_path / "scene.blend"
    command = [sys.executable, "-m", "metrabs_blender", str(path), "--out", str(out), "--clean",
               "default"]  # fmt: skip
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "no image size or intrinsics: no camera is made" in finished.stderr
    bpy.ops.wm.open_mainfile(filepath=str(out))
    assert {"MeTRAbs other_tool P0", "MeTRAbs other_tool P1"} <= set(bpy.data.objects.keys())
    assert bpy.context.scene.camera is None or not bpy.context.scene.camera.name.startswith(
        "MeTRAbs"
    )


def test_a_skeleton_that_cannot_drive_a_rig_is_refused_with_the_ones_that_can(
    api, tmp_path, two_person_trajectory
):
    trajectory = two_person_trajectory.replace(skeleton="coco_19")
    path = write_trajectory(tmp_path / "coco.npz", trajectory)
    objects_before = set(bpy.data.objects)
    with pytest.raises(Exception, match="cannot drive a rig.*smpl\\+head_30, smpl_24, h36m_17"):
        api.import_trajectory(path)
    assert set(bpy.data.objects) == objects_before
