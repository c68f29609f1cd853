"""Fault battery, trajectory files and ``python -m retarget clean``: what a user's damaged, odd or
unwritable files do (issue 18). Every test here failed before its fix."""

import json
import warnings

import numpy as np
import pytest

from retarget.contract import ContractError, read_trajectory, write_trajectory
from tests.faults import PYTHON, corrupt_member, no_traceback, run, run_with_read_only

CLEAN = [PYTHON, "-m", "retarget", "clean"]


@pytest.fixture
def trajectory_file(tmp_path, two_person_trajectory):
    return write_trajectory(tmp_path / "clip.npz", two_person_trajectory)


@pytest.mark.slow
def test_a_damaged_compressed_member_is_a_contract_error_naming_the_file(trajectory_file):
    """A corrupt deflate stream inside the .npz raised a raw ``zlib.error``."""
    corrupt_member(trajectory_file)
    with pytest.raises(ContractError, match=f"{trajectory_file}.*damaged"):
        read_trajectory(trajectory_file)
    cleaned = run([*CLEAN, trajectory_file, "-o", trajectory_file.with_name("out.npz")])
    assert cleaned.returncode == 2
    assert "clip.npz" in no_traceback(cleaned) and "damaged" in cleaned.stderr


@pytest.mark.slow
def test_a_full_disk_while_writing_leaves_no_traceback_and_the_old_file(trajectory_file):
    """A write that fails part way (a full disk) printed a traceback and, after it, numpy's
    "Exception ignored ... ValueError" from an archive left open; the earlier file must stay."""
    output = trajectory_file.with_name("cleaned.npz")
    write_trajectory(output, read_trajectory(trajectory_file))
    before = output.read_bytes()
    cleaned = run([*CLEAN, trajectory_file, "-o", output, "--overwrite"], file_size_limit=20_000)
    assert cleaned.returncode == 2
    assert "cannot write" in no_traceback(cleaned) and str(output) in cleaned.stderr
    assert output.read_bytes() == before
    assert sorted(p.name for p in output.parent.iterdir()) == ["cleaned.npz", "clip.npz"]


@pytest.mark.slow
def test_clean_refuses_an_output_it_cannot_write_before_cleaning(tmp_path, trajectory_file):
    """A read-only folder failed with a traceback after the whole cleaning; a file in place of
    the output's folder said only "File exists"."""
    read_only = tmp_path / "read-only"
    refused = run_with_read_only([*CLEAN, trajectory_file, "-o", read_only / "x.npz"], read_only)
    assert refused.returncode == 2
    assert "cannot write" in no_traceback(refused) and "Read-only file system" in refused.stderr
    in_a_file = run([*CLEAN, trajectory_file, "-o", trajectory_file / "x.npz"])
    assert in_a_file.returncode == 2
    assert f"{trajectory_file} is a file, not a folder" in no_traceback(in_a_file)


def test_clean_checks_its_output_before_the_work(monkeypatch, trajectory_file):
    from retarget import __main__ as cli
    from retarget.clean import pipeline

    def must_not_run(*args, **kwargs):
        raise AssertionError("cleaned before the output was checked")

    monkeypatch.setattr(pipeline, "clean_trajectory", must_not_run)
    assert cli.main(["clean", str(trajectory_file), "-o", str(trajectory_file / "x.npz")]) == 2


@pytest.mark.slow
def test_clean_never_replaces_an_existing_file_unless_asked(trajectory_file):
    output = trajectory_file.with_name("cleaned.npz")
    output.write_bytes(b"the user's file")
    refused = run([*CLEAN, trajectory_file, "-o", output])
    assert refused.returncode == 2 and "--overwrite" in no_traceback(refused)
    assert output.read_bytes() == b"the user's file"
    replaced = run([*CLEAN, trajectory_file, "-o", output, "--overwrite"])
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert read_trajectory(output).num_people == 2


def test_a_person_absent_in_some_frames_gives_no_all_nan_warning(two_person_trajectory):
    """Every import printed ``RuntimeWarning: All-NaN slice encountered`` (frames.py)."""
    from retarget import frames

    poses = two_person_trajectory.poses3d.copy()
    poses[:10, 1] = np.nan  # the runner enters late
    names = two_person_trajectory.joint_names
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pose = frames.level_camera_pose(poses, names)
    assert np.isfinite(pose).all() and pose[2, 3] > 0  # the floor under the camera
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert frames.level_camera_pose(np.full_like(poses, np.nan), names)[2, 3] == 0.0


def _flipped(trajectory, people):
    """``trajectory`` with the depth of ``people`` negated: behind the camera."""
    poses = trajectory.poses3d.copy()
    poses[:, people, :, 2] *= -1
    return trajectory.replace(poses3d=poses)


@pytest.mark.slow
def test_clean_names_people_behind_the_camera(tmp_path, two_person_trajectory):
    """A clip whose people are all behind the camera was refused with "no 3D joint in the clip";
    one such person among others is dropped with a warning saying why."""
    behind = write_trajectory(tmp_path / "behind.npz", _flipped(two_person_trajectory, [0, 1]))
    refused = run([*CLEAN, behind, "-o", tmp_path / "out.npz"])
    assert refused.returncode == 2
    assert "behind the camera" in no_traceback(refused) and "z forward" in refused.stderr
    assert "no 3D joint" not in refused.stderr

    from retarget.clean import clean_trajectory

    cleaned = clean_trajectory(_flipped(two_person_trajectory, [1]), "fast")
    warnings_ = json.loads(str(cleaned.extras["clean_report"]))["warnings"]
    assert any("person 1 is behind the camera" in w for w in warnings_)
    assert np.isfinite(cleaned.poses3d[:, 0]).any() and not np.isfinite(cleaned.poses3d[:, 1]).any()
