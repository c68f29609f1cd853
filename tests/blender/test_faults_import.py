"""Fault battery, the Blender side (issue 18): ``python -m metrabs_blender`` and the scripting API
given the files, paths and objects a new user gives them. Every test here failed before its fix.

The headless command runs as a subprocess of this Python (it has ``bpy``) from the source tree;
the API is the installed extension's."""

import os
import subprocess
import sys

import bpy
import numpy as np
import pytest

from retarget.contract import write_trajectory
from tests.faults import ROOT, corrupt_member, no_traceback, run, run_with_read_only

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


# ------------------------------------------------------------------------------------------------
# python -m metrabs_blender: outputs and paths (items 1, 2, 4, 9, 10)


@pytest.fixture
def trajectory_file(tmp_path, two_person_trajectory):
    return write_trajectory(tmp_path / "clip.npz", two_person_trajectory)


def test_an_output_that_is_the_input_is_refused(tmp_path, trajectory_file):
    """``x.npz --out x.npz --overwrite`` exited 0 and left a .blend where the trajectory was."""
    before = trajectory_file.read_bytes()
    same = run([*HEADLESS, trajectory_file, "--out", trajectory_file, "--overwrite"])
    assert same.returncode == 2 and "must be a .blend file" in no_traceback(same)
    link = tmp_path / "scene.blend"
    link.symlink_to(trajectory_file)  # the same file under another name
    spelt = run([*HEADLESS, trajectory_file, "--out", link, "--overwrite"], cwd=tmp_path)
    assert spelt.returncode == 1 and "is the input itself" in no_traceback(spelt)
    assert trajectory_file.read_bytes() == before


def test_outputs_that_cannot_be_written_are_refused_before_the_work(tmp_path, trajectory_file):
    """``--out`` a folder, or on a read-only file system, raised a traceback (the latter after
    the whole import)."""
    folder = tmp_path / "scene.blend"
    folder.mkdir()
    into_folder = run([*HEADLESS, trajectory_file, "--out", folder])
    assert into_folder.returncode == 1 and "is a folder" in no_traceback(into_folder)
    read_only = tmp_path / "read-only"
    refused = run_with_read_only([*HEADLESS, trajectory_file, "--out", read_only / "x.blend"],
                                 read_only)  # fmt: skip
    assert refused.returncode == 1, refused.stderr[-2000:]
    assert "Read-only file system" in no_traceback(refused)
    assert "generated rig" not in refused.stderr  # refused before the import ran


def test_a_full_disk_keeps_the_earlier_blend(tmp_path, trajectory_file):
    """Blender reports nothing when its write stops part way (a full disk): the command said
    "saved", exit 0, and left a cut .blend in place of the earlier one."""
    out = tmp_path / "scene.blend"
    assert run([*HEADLESS, trajectory_file, "--out", out]).returncode == 0
    before = out.read_bytes()
    full = run([*HEADLESS, trajectory_file, "--out", out, "--overwrite"],
               file_size_limit=len(before) // 2)  # fmt: skip
    # Blender 5.0 reports nothing (the file is checked, "cut short"); 4.2 an error of its own
    assert full.returncode == 1 and "cannot save" in no_traceback(full)
    assert "disk full" in full.stderr
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.npz", "scene.blend"]


@pytest.mark.parametrize(
    ("arguments", "phrase"),
    [
        (["--target", "rigs.blend"], "FILE.blend:OBJECT"),
        (["--out-suffix", "foo.txt"], "must be a .blend file"),
        (["--fov", "500"], "between 0 and 180"),
        (["--max-people", "0"], ">= 1"),
    ],
)
def test_bad_arguments_exit_2(tmp_path, trajectory_file, arguments, phrase):
    """``--target rigs.blend`` without ``:OBJECT`` exited 1; ``--out foo.txt`` wrote a .blend
    named foo.txt."""
    out = tmp_path / "scene.blend"
    if arguments[0] == "--out-suffix":
        out, arguments = tmp_path / arguments[1], []
    refused = run([*HEADLESS, trajectory_file, "--out", out, *arguments])
    assert refused.returncode == 2 and phrase in no_traceback(refused)
    assert not out.exists()


def test_video_input_with_relative_paths_from_the_users_folder(tmp_path):
    """Run from a folder other than the repository with relative paths, as the README shows: the
    worker ran in the extension's folder with the user's relative paths ("video not found" for a
    file that exists; a relative --out put the trajectory into the extension's own folder and
    the command failed with "backend process stopped with exit code 0")."""
    backend = ROOT / ".venv" / "bin" / "python"  # the test venv with torch (`make test` makes it)
    assert backend.exists(), "run through `make test`, which creates .venv"
    user = tmp_path / "user folder"
    (user / "in").mkdir(parents=True)
    make_clip = (
        "import sys; from tests.synthvideo import walking_people, write_clip; "
        "write_clip(sys.argv[1], walking_people(1, 0.6))"
    )
    subprocess.run([backend, "-c", make_clip, user / "in" / "clip.mp4"], cwd=ROOT, check=True)
    python = os.path.relpath(backend, user)  # a relative --python too
    before = set(ROOT.iterdir())
    common = ["--python", python, "--device", "cpu", "--no-camera"]

    relative = run([*HEADLESS, "in/clip.mp4", "--out", "blend/x.blend", *common], cwd=user)
    assert relative.returncode == 0, relative.stderr[-3000:]
    assert (user / "blend" / "x.blend").is_file() and (user / "blend" / "x.npz").is_file()

    mixed = [*HEADLESS, user / "in" / "clip.mp4", "--out", "y.blend", *common]
    assert run(mixed, cwd=user).returncode == 0
    assert (user / "y.npz").is_file() and (user / "y.blend").is_file()
    assert set(ROOT.iterdir()) == before  # nothing written into the extension's folder

    again = run(mixed, cwd=user)  # the analysis beside --out is never replaced unless asked
    assert again.returncode == 1 and "y.blend exists" in no_traceback(again)
    (user / "y.blend").unlink()
    analysis = (user / "y.npz").read_bytes()
    kept = run(mixed, cwd=user)
    assert kept.returncode == 1 and "y.npz exists" in no_traceback(kept)
    assert (user / "y.npz").read_bytes() == analysis


# ------------------------------------------------------------------------------------------------
# The scripting API's target (item 11)


def test_the_target_is_checked_as_the_script_left_it_and_may_be_a_name(api, trajectory_file):
    """``import_trajectory(target=rig)`` right after the script scaled the rig read a stale
    ``matrix_world`` (no depsgraph update) and skipped its scale check; ``target="Armature"``
    raised AttributeError."""
    rig = api.import_trajectory(trajectory_file, person=0)[0].armature
    rig.scale = (-1.0, 1.0, 1.0)  # mirrored; nothing re-evaluated since
    with pytest.raises(api.MocapError, match="mirrored by a negative scale"):
        api.import_trajectory(trajectory_file, target=rig)
    rig.scale = (1.0, 1.0, 1.0)
    by_name = api.import_trajectory(trajectory_file, target=rig.name)
    assert by_name[0].armature == rig and rig.animation_data.action == by_name[0].action
    with pytest.raises(api.MocapError, match=f"No object named 'Armature'.*{rig.name}"):
        api.import_trajectory(trajectory_file, target="Armature")
    with pytest.raises(api.MocapError, match="armature object or its name"):
        api.import_trajectory(trajectory_file, target=rig.data)


def test_an_import_prints_no_numpy_warnings(tmp_path, two_person_trajectory):
    """Every import printed ``RuntimeWarning: All-NaN slice encountered`` (frames.py:59)."""
    poses = two_person_trajectory.poses3d.copy()
    poses[:20, 1] = np.nan  # the runner enters late
    path = write_trajectory(tmp_path / "late.npz", two_person_trajectory.replace(poses3d=poses))
    imported = run([*HEADLESS, path, "--out", tmp_path / "scene.blend"])
    assert imported.returncode == 0, imported.stderr[-2000:]
    assert "RuntimeWarning" not in imported.stderr and "All-NaN" not in imported.stderr
