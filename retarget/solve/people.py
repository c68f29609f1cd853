"""The people of a trajectory, as the import takes them: chosen by track id, the ones behind the
camera left out, each one's motion in the world frame with the rig of its own proportions.

The numpy half of ``metrabs_blender.api``'s import (the Blender half creates armatures and keys
actions from :class:`PersonMotion`). Track ids are the contract's ``track_ids``; a person's index
is its position along the trajectory's person axis.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import RetargetError, frames
from ..contract import Trajectory
from ..skeletons import get_rig_skeleton
from . import footlock, rig

log = logging.getLogger(__name__)

#: extras indexed by person along their first axis (the cleaning's), besides the (T, P, ...) ones
PER_PERSON_EXTRAS = ("contact_clearance",)


class PeopleError(RetargetError):
    """A person asked for is not in the trajectory, or nobody in it can be imported."""


@dataclass
class PersonMotion:
    """One person's motion, ready for the solve."""

    person: int  # index into the trajectory's people
    track_id: int
    joints: np.ndarray  # (T_valid, J, 3) world metres
    times: np.ndarray  # (T_valid,) seconds
    complete: np.ndarray  # (T,) bool: the frames kept
    rest: np.ndarray  # (J, 3) rest joints, world metres
    bones: list[rig.RigBone]  # the generated rig of these rest joints


def person_indices(trajectory: Trajectory, track_ids: Sequence[int]) -> list[int]:
    """Indices along the person axis of the people ``track_ids`` (in that order); an unknown id
    raises :class:`PeopleError` naming the ids the trajectory has."""
    known = [int(t) for t in trajectory.track_ids]
    unknown = sorted(set(track_ids) - set(known))
    if unknown:
        raise PeopleError(f"No person with track id {unknown} in this trajectory (ids: {known})")
    return [known.index(int(t)) for t in track_ids]


def select_people(trajectory: Trajectory, track_ids: Sequence[int]) -> Trajectory:
    """The trajectory of only the people ``track_ids`` (in that order), extras included: arrays
    shaped ``(T, P, ...)`` and the per-person ones are sliced, ``contact_intervals`` re-indexed."""
    people = person_indices(trajectory, track_ids)
    leading = trajectory.poses3d.shape[:2]
    extras = {}
    for key, value in trajectory.extras.items():
        if np.ndim(value) >= 2 and np.shape(value)[:2] == leading:
            value = np.asarray(value)[:, people]
        elif key in PER_PERSON_EXTRAS and np.shape(value)[:1] == (trajectory.num_people,):
            value = np.asarray(value)[people]
        elif key == "contact_intervals" and np.ndim(value) == 2:
            rows = [row for row in np.asarray(value) if int(row[0]) in people]
            value = np.array(
                [(people.index(int(row[0])), *row[1:]) for row in rows], np.int32
            ).reshape(-1, np.shape(value)[1])
        extras[key] = value
    return trajectory.replace(
        poses3d=trajectory.poses3d[:, people],
        poses2d=trajectory.poses2d[:, people],
        uncertainty=trajectory.uncertainty[:, people],
        boxes=trajectory.boxes[:, people],
        track_ids=trajectory.track_ids[people],
        extras=extras,
    )


def people_in_front(trajectory: Trajectory, name: str) -> Trajectory:
    """``trajectory`` without the people behind the camera (a warning names them); refused when
    nobody is left: such poses are in another frame and would import as nonsense. ``name`` names
    the trajectory in the message (its file name)."""
    behind = frames.behind_camera(trajectory.poses3d)
    if not behind.any():
        return trajectory
    seen = np.isfinite(trajectory.poses3d).any(axis=(0, 2, 3))
    if not (seen & ~behind).any():
        raise PeopleError(
            f"Every person in {name} is behind the camera (negative depth); "
            f"{frames.BEHIND_CAMERA_ADVICE}"
        )
    dropped = ", ".join(str(int(i)) for i in trajectory.track_ids[behind])
    log.warning("%s: person %s is behind the camera and is not imported", name, dropped)
    return select_people(trajectory, [int(i) for i in trajectory.track_ids[~behind]])


def person_motions(trajectory: Trajectory) -> list[PersonMotion]:
    """World-frame motion and rig of every person seen in at least one complete frame (all the
    joints of the generated rig's bones finite); :class:`PeopleError` when there is none."""
    skeleton = get_rig_skeleton(trajectory.skeleton)
    if tuple(trajectory.joint_names) != skeleton.joint_names:
        raise PeopleError(
            f"joint names in the file do not match the {skeleton.name!r} skeleton it declares"
        )
    # The cleaning stage stores the camera pose of its floor fit; raw files get a level camera.
    world_from_camera = trajectory.extras.get("world_from_camera")
    if world_from_camera is None or np.shape(world_from_camera) != (4, 4):
        world_from_camera = frames.level_camera_pose(trajectory.poses3d, skeleton.joint_names)
    joints_world = frames.camera_to_world(trajectory.poses3d.astype(np.float64), world_from_camera)
    body = [skeleton.index(joint) for joint in rig.BONE_NAMES if joint in skeleton.joint_names]
    motions = []
    for person, track_id in enumerate(trajectory.track_ids):
        joints = joints_world[:, person]
        complete = np.isfinite(joints[:, body]).all(axis=(1, 2))
        if not complete.any():
            continue
        rest = rig.rest_joints(skeleton, joints[complete])
        bones = rig.generated_rig(skeleton, rest)
        motions.append(
            PersonMotion(
                person,
                int(track_id),
                joints[complete],
                trajectory.frame_times[complete],
                complete,
                rest,
                bones,
            )
        )
    if not motions:
        raise PeopleError("No person has a complete pose in any frame of this trajectory")
    return motions


def pick_person(motions: list[PersonMotion], track_id: int | None) -> PersonMotion:
    """The motion of the person ``track_id``, or with None the person seen longest."""
    if track_id is None:
        return max(motions, key=lambda m: len(m.times))
    for motion in motions:
        if motion.track_id == track_id:
            return motion
    raise PeopleError(
        f"No person with track id {track_id} in this trajectory; "
        f"it has {', '.join(str(m.track_id) for m in motions)}"
    )


def motion_contacts(trajectory: Trajectory, motion: PersonMotion) -> np.ndarray | None:
    """The foot contacts the cleaning stored for ``motion``'s person, on its kept frames
    (``(T_valid, C)`` bool, see ``footlock.contacts_from_extras``), or None when the file has none."""
    contacts = footlock.contacts_from_extras(
        trajectory.extras, motion.person, trajectory.num_frames
    )
    return None if contacts is None else contacts[motion.complete]
