import os
import stat

import numpy as np
import pytest

from retarget.contract import (
    FORMAT_VERSION,
    ContractError,
    read_trajectory,
    validate,
    write_trajectory,
)


def test_round_trip_keeps_every_key(tmp_path, two_person_trajectory):
    trajectory = two_person_trajectory.replace(extras={"note_mask": np.ones((90, 2), bool)})
    path = write_trajectory(tmp_path / "clip.npz", trajectory)
    loaded = read_trajectory(path)
    np.testing.assert_array_equal(loaded.poses3d, trajectory.poses3d)
    np.testing.assert_array_equal(loaded.frame_times, trajectory.frame_times)
    assert loaded.joint_names == trajectory.joint_names
    assert loaded.skeleton == "smpl+head_30" and loaded.format_version == FORMAT_VERSION
    assert loaded.poses3d.dtype == np.float32 and loaded.track_ids.dtype == np.int32
    np.testing.assert_array_equal(loaded.extras["note_mask"], np.ones((90, 2), bool))
    assert [p.name for p in tmp_path.iterdir()] == ["clip.npz"]  # no temp file left behind


def _saved(tmp_path, trajectory, **overrides):
    """Write the trajectory's arrays with some keys replaced or removed (None), bypassing checks."""
    from retarget.contract import _to_arrays

    arrays = _to_arrays(trajectory)
    for key, value in overrides.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"poses3d": None}, "missing key(s) 'poses3d'"),
        ({"poses2d": np.zeros((90, 2, 30, 3), np.float32)}, "'poses2d' has shape"),
        ({"track_ids": np.zeros(3, np.int32)}, "'track_ids' has shape"),
        ({"boxes": np.zeros((90, 2, 5), np.int64)}, "'boxes' must be a float array"),
        ({"intrinsics": np.eye(4)}, "'intrinsics' has shape"),
        ({"format_version": np.array("2.0")}, "newer than this add-on understands"),
        ({"format_version": np.array("one")}, "not MAJOR.MINOR"),
        ({"frame_times": np.zeros(90)}, "strictly increasing"),
        ({"fps": np.array(0.0)}, "'fps' must be a positive number"),
        ({"joint_edges": np.array([[0, 99]], np.int32)}, "outside 0..29"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, two_person_trajectory, overrides, message):
    path = _saved(tmp_path, two_person_trajectory, **overrides)
    with pytest.raises(ContractError) as error:
        read_trajectory(path)
    assert message in str(error.value) and "bad.npz" in str(error.value)


def test_not_an_npz(tmp_path):
    path = tmp_path / "clip.npz"
    path.write_text("this is not a zip archive")
    with pytest.raises(ContractError, match="is not a trajectory .npz file"):
        read_trajectory(path)
    with pytest.raises(ContractError, match="not found"):
        read_trajectory(tmp_path / "missing.npz")


def test_failed_write_keeps_the_earlier_file(tmp_path, two_person_trajectory):
    path = write_trajectory(tmp_path / "clip.npz", two_person_trajectory)
    before = path.read_bytes()
    broken = two_person_trajectory.replace(poses2d=np.zeros((5, 2), np.float32))
    with pytest.raises(ContractError):
        write_trajectory(path, broken)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["clip.npz"]


def test_a_written_file_has_the_usual_permissions(tmp_path, two_person_trajectory):
    """Not the private mode of the temporary file it was written as: others in a team (or a
    render farm user) read results as they read any file made here."""
    mask = os.umask(0o027)
    try:
        path = write_trajectory(tmp_path / "clip.npz", two_person_trajectory)
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_validate_rejects_infinite_poses_and_clashing_extras(two_person_trajectory):
    poses = two_person_trajectory.poses3d.copy()
    poses[3, 0, 4] = np.inf
    with pytest.raises(ContractError, match="infinite"):
        validate(two_person_trajectory.replace(poses3d=poses))
    with pytest.raises(ContractError, match="extras may not reuse"):
        validate(two_person_trajectory.replace(extras={"fps": np.array(1.0)}))
