"""The headless main job's keys and foot contact options (--keys, --key-tolerance-deg/-mm,
--foot-contacts): what it reports, and bad combinations refused before anything is written."""

import sys

import bpy
import numpy as np
import pytest

from retarget.contract import read_trajectory, write_trajectory
from tests.faults import no_traceback, run
from tests.protocol_worker import tilted_scene

HEADLESS = [sys.executable, "-m", "metrabs_blender"]
pytestmark = pytest.mark.slow  # processes


def _keys_line(stderr: str) -> tuple[int, int]:
    line = next(line for line in stderr.splitlines() if "keys:" in line)
    kept, _, dense = line.split("keys:")[1].split("(")[0].split()
    return int(kept), int(dense)


def _held_frames(stderr: str) -> int:
    line = next(line for line in stderr.splitlines() if "a foot held on" in line)
    return int(line.split("a foot held on")[1].split()[0])


def _lowest_toe_m(blend) -> float:
    """The lowest height of the walker's toe joints over the take, in the .blend written."""
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene, rig = bpy.context.scene, bpy.data.objects["MeTRAbs walk P0"]
    feet = [rig.pose.bones[name] for name in ("foot.L", "foot.R")]  # their tails: the toe joints
    lowest = np.inf
    for frame in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(frame)
        lowest = min([lowest] + [(rig.matrix_world @ foot.tail).z for foot in feet])
    return lowest


def test_keys_and_foot_contacts_from_the_command_line(tmp_path):
    clip = write_trajectory(tmp_path / "walk.npz", tilted_scene())
    reduced = run([*HEADLESS, clip, "--out", tmp_path / "a.blend", "--foot-contacts", "grounded"])
    assert reduced.returncode == 0, reduced.stderr[-3000:]
    kept, dense = _keys_line(no_traceback(reduced))
    assert kept < dense
    loose = run([*HEADLESS, clip, "--out", tmp_path / "b.blend", "--key-tolerance-deg", "2",
                 "--key-tolerance-mm", "20"])  # fmt: skip
    assert loose.returncode == 0 and _keys_line(loose.stderr)[0] < kept
    every = run([*HEADLESS, clip, "--out", tmp_path / "c.blend", "--keys", "dense",
                 "--foot-contacts", "always"])  # fmt: skip
    assert every.returncode == 0 and _keys_line(every.stderr) == (dense, dense)
    assert _held_frames(every.stderr) == len(read_trajectory(clip).frame_times)
    assert _held_frames(reduced.stderr) == 0  # nothing held: grounded never holds a foot
    # Grounded keeps the toes on or above the floor the cleaning fitted (the generated rig
    # stands on it at z = 0, a flat toe 2 cm above), Never lets them sink
    lowest = {}
    for mode in ("grounded", "never"):
        done = run([*HEADLESS, clip, "--out", tmp_path / f"{mode}.blend", "--clean", "default",
                    "--foot-contacts", mode])  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        lowest[mode] = _lowest_toe_m(tmp_path / f"{mode}.blend")
    cleaned = read_trajectory(tmp_path / "cleaned" / "walk.npz").extras
    flat_toe = float(
        cleaned["contact_clearance"][0, list(cleaned["contact_channels"]).index("ltoe")]
    )
    assert lowest["grounded"] >= flat_toe - 0.001  # reduced keys: within 1 mm near the floor
    assert lowest["never"] < flat_toe - 0.01, lowest
    for bad, message in (
        (["--keys", "dense", "--key-tolerance-deg", "1"], "bound reduced keys"),
        (["--no-foot-lock", "--foot-contacts", "always"], "contradicts"),
        (["--foot-contacts", "sometimes"], "invalid choice"),
        (["--key-tolerance-mm", "0"], "positive"),
    ):
        refused = run([*HEADLESS, clip, "--out", tmp_path / "d.blend", *bad])
        assert refused.returncode == 2 and message in no_traceback(refused), bad
    assert not (tmp_path / "d.blend").exists()
