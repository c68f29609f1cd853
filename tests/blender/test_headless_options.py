"""The headless main job's keys and foot contact options (--keys, --key-tolerance-deg/-mm,
--foot-contacts): what it reports, and bad combinations refused before anything is written."""

import sys

import pytest

from retarget.contract import write_trajectory
from tests.faults import no_traceback, run
from tests.protocol_worker import tilted_scene

HEADLESS = [sys.executable, "-m", "metrabs_blender"]
pytestmark = pytest.mark.slow  # processes


def _keys_line(stderr: str) -> tuple[int, int]:
    line = next(line for line in stderr.splitlines() if "keys:" in line)
    kept, _, dense = line.split("keys:")[1].split("(")[0].split()
    return int(kept), int(dense)


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
    for bad, message in (
        (["--keys", "dense", "--key-tolerance-deg", "1"], "bound reduced keys"),
        (["--no-foot-lock", "--foot-contacts", "always"], "contradicts"),
        (["--foot-contacts", "sometimes"], "invalid choice"),
        (["--key-tolerance-mm", "0"], "positive"),
    ):
        refused = run([*HEADLESS, clip, "--out", tmp_path / "d.blend", *bad])
        assert refused.returncode == 2 and message in no_traceback(refused), bad
    assert not (tmp_path / "d.blend").exists()
