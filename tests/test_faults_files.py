"""Fault battery, trajectory files and ``python -m retarget clean``: what a user's damaged, odd or
unwritable files do (issue 18). Every test here failed before its fix."""

import pytest

from retarget.contract import ContractError, read_trajectory, write_trajectory
from tests.faults import PYTHON, corrupt_member, no_traceback, run

CLEAN = [PYTHON, "-m", "retarget", "clean"]


@pytest.fixture
def trajectory_file(tmp_path, two_person_trajectory):
    return write_trajectory(tmp_path / "clip.npz", two_person_trajectory)


def test_a_damaged_compressed_member_is_a_contract_error_naming_the_file(trajectory_file):
    """A corrupt deflate stream inside the .npz raised a raw ``zlib.error``."""
    corrupt_member(trajectory_file)
    with pytest.raises(ContractError, match=f"{trajectory_file}.*damaged"):
        read_trajectory(trajectory_file)
    cleaned = run([*CLEAN, trajectory_file, "-o", trajectory_file.with_name("out.npz")])
    assert cleaned.returncode == 2
    assert "clip.npz" in no_traceback(cleaned) and "damaged" in cleaned.stderr
