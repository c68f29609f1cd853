"""``retarget.solve.people``: who the Blender import takes and each person's world-frame motion, without
Blender; and that a cleaned trajectory is what its file reads back (the panel's Import cleans, writes
``cleaned/<name>.npz`` and imports the object it holds instead of reading that file again)."""

import dataclasses
import logging

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from inference.training.synth.clip import default_camera, motions_to_trajectory
from inference.training.synth.motion import generate_motion
from retarget import clean, frames
from retarget.contract import read_trajectory, write_trajectory
from retarget.solve import people


def _flipped(trajectory, persons):
    """``trajectory`` with the depth of ``persons`` negated: behind the camera."""
    poses = trajectory.poses3d.copy()
    poses[:, persons, :, 2] *= -1
    return trajectory.replace(poses3d=poses)


@pytest.fixture(scope="module")
def cleaned():
    """The conftest's walker and runner (module scope here), cleaned."""
    motions = [
        generate_motion("walk", 3.0, 30.0, seed=0, start_xy=(-1.0, 0.0)),
        generate_motion("run", 3.0, 30.0, seed=1, start_xy=(4.0, 2.0), heading_deg=90.0),
    ]
    raw = motions_to_trajectory(motions, default_camera(motions))
    return clean.clean_trajectory(raw, preset="default")


def test_selecting_people_slices_their_arrays_and_extras_in_the_order_asked(cleaned):
    both = people.select_people(cleaned, [1, 0])
    assert list(both.track_ids) == [1, 0]
    assert_array_equal(both.poses3d, cleaned.poses3d[:, [1, 0]])
    assert_array_equal(both.boxes, cleaned.boxes[:, [1, 0]])
    assert_array_equal(both.extras["contacts"], cleaned.extras["contacts"][:, [1, 0]])
    assert_array_equal(
        both.extras["contact_clearance"], cleaned.extras["contact_clearance"][[1, 0]]
    )
    intervals, swapped = cleaned.extras["contact_intervals"], both.extras["contact_intervals"]
    assert len(swapped) == len(intervals) and set(intervals[:, 0]) == {0, 1}
    assert_array_equal(  # person 1 is now the first, person 0 the second
        swapped[swapped[:, 0] == 0, 1:], intervals[intervals[:, 0] == 1, 1:]
    )
    assert_array_equal(swapped[swapped[:, 0] == 1, 1:], intervals[intervals[:, 0] == 0, 1:])
    assert_array_equal(both.extras["world_from_camera"], cleaned.extras["world_from_camera"])
    assert people.person_indices(cleaned, [1]) == [1]
    with pytest.raises(people.PeopleError, match=r"track id \[7\].*ids: \[0, 1\]"):
        people.select_people(cleaned, [0, 7])


def test_people_behind_the_camera_are_left_out_or_refused(two_person_trajectory, caplog):
    with caplog.at_level(logging.WARNING, logger="retarget.solve.people"):
        kept = people.people_in_front(_flipped(two_person_trajectory, [1]), "clip.npz")
    assert list(kept.track_ids) == [0]
    assert "clip.npz: person 1 is behind the camera and is not imported" in caplog.text
    assert people.people_in_front(two_person_trajectory, "clip.npz") is two_person_trajectory
    with pytest.raises(people.PeopleError, match="Every person in clip.npz is behind the camera"):
        people.people_in_front(_flipped(two_person_trajectory, [0, 1]), "clip.npz")


def test_each_person_moves_in_the_world_frame_over_their_complete_frames(cleaned):
    motions = people.person_motions(cleaned)
    assert [m.track_id for m in motions] == [0, 1]
    pose = cleaned.extras["world_from_camera"]  # the cleaning's floor fit places the camera
    for motion in motions:
        assert motion.complete.all() and len(motion.times) == cleaned.num_frames
        world = frames.camera_to_world(cleaned.poses3d[:, motion.person].astype(float), pose)
        assert_allclose(motion.joints, world)
        assert motion.rest.shape == (cleaned.num_joints, 3) and motion.bones
    contacts = people.motion_contacts(cleaned, motions[1])
    assert contacts.shape == (cleaned.num_frames, 4) and contacts.any()

    poses = cleaned.poses3d.copy()
    poses[:30, 0, 0] = np.nan  # the walker's pelvis unseen for a second
    poses[:, 1] = np.nan  # the runner never seen
    partly = cleaned.replace(poses3d=poses)
    (walker,) = people.person_motions(partly)
    assert walker.track_id == 0 and walker.complete.sum() == cleaned.num_frames - 30
    assert_array_equal(walker.times, cleaned.frame_times[30:])
    assert people.motion_contacts(partly, walker).shape == (cleaned.num_frames - 30, 4)
    assert people.pick_person(people.person_motions(cleaned), 1).track_id == 1
    longest = people.pick_person([walker, *people.person_motions(cleaned)[1:]], None)
    assert longest.track_id == 1  # seen in every frame, the walker in 60
    with pytest.raises(people.PeopleError, match="No person with track id 5.*it has 0"):
        people.pick_person([walker], 5)
    with pytest.raises(people.PeopleError, match="No person has a complete pose"):
        people.person_motions(cleaned.replace(poses3d=np.full_like(poses, np.nan)))


@pytest.mark.parametrize("preset", ["default", "strong", "fast", "none"])
def test_a_cleaned_trajectory_is_what_its_file_reads_back(two_person_trajectory, tmp_path, preset):
    """Every key and extra of the cleaning's output has the dtype, shape and values the file
    written from it gives back, so importing the object is importing the file."""
    cleaned = clean.clean_trajectory(two_person_trajectory, preset=preset)
    back = read_trajectory(write_trajectory(tmp_path / "clip.npz", cleaned))
    assert sorted(cleaned.extras) == sorted(back.extras)
    pairs = [(f.name, getattr(cleaned, f.name), getattr(back, f.name))
             for f in dataclasses.fields(cleaned) if f.name != "extras"]  # fmt: skip
    pairs += [(key, value, back.extras[key]) for key, value in cleaned.extras.items()]
    for key, ours, theirs in pairs:
        assert type(ours) is type(theirs), key
        if isinstance(ours, np.ndarray):
            assert (ours.dtype, ours.shape) == (theirs.dtype, theirs.shape), key
            assert_array_equal(ours, theirs, err_msg=key)
        else:
            assert ours == theirs, key
