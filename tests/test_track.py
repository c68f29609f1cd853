"""Pose-based multi-person tracking on ground-truth motions (crossing people, occlusions, exits)."""

import numpy as np

from inference.camera import intrinsics_from_fov, look_at, project
from inference.track import (
    Candidates,
    Tracker,
    TrackerParams,
    pose_box,
    select_tracks,
    stack_tracks,
    tracker_from_arrays,
)
from inference.training.synth.motion import generate_motion
from retarget.frames import world_to_camera

FPS = 30.0
SIZE = (640, 360)


def crossing_people(duration_s=3.0):
    """Camera-frame poses (T, 2, J, 3) mm of two people walking past each other, one 2 m behind."""
    near = generate_motion("walk", duration_s, FPS, seed=1, start_xy=(-0.8, 0.0), heading_deg=-90)
    far = generate_motion("walk", duration_s, FPS, seed=2, start_xy=(0.9, 2.0), heading_deg=90)
    camera = look_at(np.array([0.0, -5.0, 1.2]), np.array([0.0, 1.0, 1.2]))
    poses = np.stack([world_to_camera(m.joints, camera) for m in (near, far)], axis=1)
    return poses, near.frame_times, intrinsics_from_fov(55, SIZE)


def candidates_from(poses3d, intrinsics, rng, noise_mm=15.0, proposed_for=None):
    noisy = poses3d + rng.normal(0, noise_mm, poses3d.shape)
    poses2d = project(noisy, intrinsics)
    boxes = np.concatenate([pose_box(poses2d, 0.1), np.ones((len(poses3d), 1))], axis=1)
    flags = np.full(len(poses3d), -1) if proposed_for is None else np.asarray(proposed_for)
    return Candidates(boxes.astype(np.float32), noisy.astype(np.float32), poses2d.astype(np.float32),
                      np.full(poses3d.shape[:2], 30.0, np.float32), flags)  # fmt: skip


def run(tracker, poses, times, intrinsics, visible, seed=0):
    """Feed each frame's visible people in shuffled order; returns (T, P) assigned track ids."""
    rng = np.random.default_rng(seed)
    ids = np.full(visible.shape, -1)
    for t, time in enumerate(times):
        people = rng.permutation(np.flatnonzero(visible[t]))
        assigned = tracker.update(t, time, candidates_from(poses[t, people], intrinsics, rng))
        for index, track_id in assigned.items():
            ids[t, people[index]] = track_id
    return ids


def test_ids_stay_with_people_through_a_crossing_and_an_occlusion():
    poses, times, intrinsics = crossing_people()
    centres = project(poses[:, :, 0], intrinsics)[..., 0]
    # The far person is hidden while the near one passes in front (x closer than 40 px).
    visible = np.ones(poses.shape[:2], bool)
    hidden = np.abs(centres[:, 0] - centres[:, 1]) < 40
    visible[hidden, 1] = False
    assert 5 <= hidden.sum() <= 25, "the scenario should contain a short occlusion"
    ids = run(Tracker(), poses, times, intrinsics, visible)
    assert ids[0, 0] != ids[0, 1]
    for person in range(2):
        seen = ids[visible[:, person], person]
        assert np.all(seen == ids[0, person]), f"person {person} changed id: {np.unique(seen)}"
    assert np.all(ids[~visible] == -1)


def test_absence_longer_than_the_gap_starts_a_new_track():
    poses, times, intrinsics = crossing_people(2.0)
    visible = np.ones(poses.shape[:2], bool)
    visible[:, 1] = False
    visible[10:50, 0] = False  # 1.33 s away with max_gap_s = 1 s
    ids = run(Tracker(TrackerParams(max_gap_s=1.0)), poses, times, intrinsics, visible)
    assert len(np.unique(ids[visible[:, 0], 0])) == 2
    ids = run(Tracker(TrackerParams(max_gap_s=2.0)), poses, times, intrinsics, visible)
    assert len(np.unique(ids[visible[:, 0], 0])) == 1


def test_proposals_follow_the_pose_and_are_checked():
    poses, times, intrinsics = crossing_people(1.0)
    rng = np.random.default_rng(3)
    tracker = Tracker()
    first = tracker.update(0, times[0], candidates_from(poses[0], intrinsics, rng))
    tracker.update(1, times[1], candidates_from(poses[1], intrinsics, rng))
    proposals = dict(tracker.proposals(times[2], SIZE))
    assert sorted(proposals) == sorted(first.values())
    for person, track_id in first.items():
        truth = pose_box(project(poses[2, person], intrinsics))
        box = proposals[track_id]
        assert box[0] < truth[0] and box[1] < truth[1]  # encloses the true extent
        assert box[0] + box[2] > truth[0] + truth[2] and box[1] + box[3] > truth[1] + truth[3]
        assert box[2] < 1.6 * max(truth[2], 0.5 * truth[3]) and box[3] < 1.6 * truth[3]
    # A proposal whose pose is the *other* person (e.g. a box drifting onto a neighbour) is refused;
    # a proposal with the right person continues the track without a detector box.
    id_a, id_b = first[0], first[1]
    wrong = candidates_from(poses[2, [1, 1]], intrinsics, rng, proposed_for=[-1, id_a])
    assigned = tracker.update(2, times[2], wrong)
    assert assigned == {0: id_b}
    right = candidates_from(poses[3, [0]], intrinsics, rng, proposed_for=[id_a])
    assert tracker.update(3, times[3], right) == {0: id_a}


def test_duplicate_boxes_do_not_make_new_people():
    poses, times, intrinsics = crossing_people(0.5)
    rng = np.random.default_rng(4)
    tracker = Tracker()
    for t in range(3):
        doubled = candidates_from(poses[t, [0, 0, 1]], intrinsics, rng, noise_mm=5.0)
        tracker.update(t, times[t], doubled)
    assert len(tracker.tracks) == 2


def second_box_on_a():
    """Two people tracked for 5 frames, then frame 5's candidates: A, a weaker second detector box
    on A, B (scores 0.9, 0.4, 0.9). Returns (tracker, (A's id, B's id), candidates, the crossing's
    poses, times, intrinsics, rng)."""
    poses, times, intrinsics = crossing_people(0.5)
    rng = np.random.default_rng(6)
    tracker = Tracker()
    for t in range(5):
        first = tracker.update(t, times[t], candidates_from(poses[t], intrinsics, rng))
    c = candidates_from(poses[5, [0, 0, 1]], intrinsics, rng)
    c.boxes[:, 4] = [0.9, 0.4, 0.9]
    return tracker, (first[0], first[1]), c, poses, times, intrinsics, rng


def test_a_partial_second_box_and_a_squeezed_pose_keep_their_person():
    tracker, (id_a, id_b), c, poses, times, intrinsics, rng = second_box_on_a()
    # The second box covers the upper half of A and its crop put A 14 % deeper (the same 2D
    # joints): it must neither take A's track nor start a new one.
    c.poses3d[1] *= 1.14
    c.boxes[1, 3] /= 2
    assert tracker.update(5, times[5], c) == {0: id_a, 2: id_b}
    # A pose whose 2D extent is squeezed to a line (a side-on, legs-together estimate) is still A.
    c = candidates_from(poses[6], intrinsics, rng)
    c.poses2d[0, :, 0] = np.median(c.poses2d[0, :, 0])
    assert tracker.update(6, times[6], c) == {0: id_a, 1: id_b}
    assert len(tracker.tracks) == 2


def test_a_shorter_pose_from_a_partial_box_is_measured_against_the_whole_person():
    tracker, (id_a, id_b), c, _, times, _, _ = second_box_on_a()
    # The second box, on part of A, gives a shorter 2D pose (65 % about its centre) and a 12 %
    # deeper 3D one: its 2D joints are within 10 % of A's height, though not of its own.
    centre = np.median(c.poses2d[1], axis=0)
    c.poses2d[1] = centre + 0.65 * (c.poses2d[1] - centre)
    c.poses3d[1] *= 1.12
    heights = pose_box(c.poses2d[:2])[:, 3]
    distance = np.linalg.norm(c.poses2d[0] - c.poses2d[1], axis=-1).mean()
    assert 0.1 * heights[1] < distance < 0.1 * heights[0]
    assert tracker.update(5, times[5], c) == {0: id_a, 2: id_b}
    assert len(tracker.tracks) == 2


def test_seeded_tracking_ignores_other_people():
    poses, times, intrinsics = crossing_people(0.5)
    rng = np.random.default_rng(5)
    tracker = Tracker(TrackerParams(new_tracks=False))
    tracker.seed(0, times[0], candidates_from(poses[0, [1]], intrinsics, rng))
    for t in range(1, 10):
        assigned = tracker.update(t, times[t], candidates_from(poses[t], intrinsics, rng))
        assert assigned == {1: 0}
    assert len(tracker.tracks) == 1


def test_selection_stacking_and_resume_give_the_same_ids():
    poses, times, intrinsics = crossing_people(2.0)
    visible = np.ones(poses.shape[:2], bool)
    visible[20:23, 1] = False
    whole = Tracker()
    ids = run(whole, poses, times, intrinsics, visible, seed=7)
    # Interrupt after frame 30, rebuild from the stacked arrays, continue: same ids as in one go.
    first = Tracker()
    run(first, poses[:31], times[:31], intrinsics, visible[:31], seed=7)
    arrays = stack_tracks(first.tracks, 31, poses.shape[2])
    resumed = tracker_from_arrays(arrays, times[:31])
    assert resumed.next_id == first.next_id
    rng = np.random.default_rng(11)
    for t in range(31, len(times)):
        assigned = resumed.update(t, times[t], candidates_from(poses[t], intrinsics, rng))
        for index, track_id in assigned.items():
            assert track_id == ids[t, index]
    stacked = stack_tracks(select_tracks(resumed.tracks, 5, None), len(times), poses.shape[2])
    assert stacked["poses3d"].shape == (len(times), 2) + poses.shape[2:]
    assert np.isnan(stacked["poses3d"][20:23, list(stacked["track_ids"]).index(ids[0, 1])]).all()
    np.testing.assert_allclose(
        stacked["poses3d"][0, list(stacked["track_ids"]).index(ids[0, 0]), 0],
        poses[0, 0, 0],
        atol=80,
    )
    short = Tracker()
    short.tracks = resumed.tracks
    assert [t.track_id for t in select_tracks(resumed.tracks, 5, 1)] == [ids[0, 0]]
    assert select_tracks(resumed.tracks, len(times) + 1, None) == []


def test_3d_distance_separates_people_with_the_same_2d_box():
    # B is A scaled towards the camera centre: the same image, 1 m closer and 20 % smaller (a child
    # in front of an adult). Only the 3D term can tell them apart; box IoU is identical.
    poses, times, intrinsics = crossing_people(1.0)
    adult = poses[:, 0]
    child = adult * 0.8
    both = np.stack([adult, child], axis=1)
    for params, expect_stable in (
        (TrackerParams(), True),
        (TrackerParams(pose_scale_mm=1e12, max_pose_distance_mm=1e12), False),
    ):
        ids = run(Tracker(params), both, times, intrinsics, np.ones((len(times), 2), bool), seed=2)
        stable = all(len(np.unique(ids[:, p])) == 1 for p in range(2))
        assert stable == expect_stable


def side_by_side(offset_mm: float, duration_s: float = 0.5):
    """A walker A and B, the same motion ``offset_mm`` to A's right (camera x), (T, 2, J, 3)."""
    poses, times, intrinsics = crossing_people(duration_s)
    a = poses[:, 0]
    return np.stack([a, a + np.array([offset_mm, 0.0, 0.0])], axis=1), times, intrinsics


def test_where_two_proposals_show_one_person_the_closer_track_takes_the_pose():
    """No detection; A's proposed box drifted onto B, who is 0.5 m away (within A's 3D gate), and
    B's own box shows B: B keeps B's pose whatever the order of the candidates."""
    poses, times, intrinsics = side_by_side(500.0)
    rng = np.random.default_rng(8)
    for order in ([0, 1], [1, 0]):
        tracker = Tracker()
        for t in range(5):
            first = tracker.update(t, times[t], candidates_from(poses[t], intrinsics, rng, 5.0))
        ids = [first[0], first[1]]
        proposed_for = [ids[k] for k in order]
        c = candidates_from(poses[5, [1, 1]], intrinsics, rng, 5.0, proposed_for=proposed_for)
        assert tracker.update(5, times[5], c) == {order.index(1): ids[1]}


def test_the_frame_after_a_seed_needs_an_overlap_as_any_other():
    """Someone else 0.75 m beside the seeded person (3D pose within the gate, box IoU 0.05) does
    not take the seeded track on the next frame."""
    poses, times, intrinsics = side_by_side(750.0)
    rng = np.random.default_rng(9)
    tracker = Tracker()
    tracker.seed(0, times[0], candidates_from(poses[0, [0]], intrinsics, rng, 5.0))
    assert tracker.update(1, times[1], candidates_from(poses[1, [1]], intrinsics, rng, 5.0)) == {
        0: 1
    }


def test_resume_rebuilds_the_motion_state_with_the_same_speed_cap():
    poses, times, intrinsics = crossing_people(0.5)
    rng = np.random.default_rng(10)
    live = Tracker()
    for t in range(8):
        frame = poses[t, [0]].copy()
        if t == 7:
            frame[..., 2] += 600.0  # one depth outlier: a jump far beyond walking speed
        live.update(t, times[t], candidates_from(frame, intrinsics, rng, 5.0))
    resumed = tracker_from_arrays(stack_tracks(live.tracks, 8, poses.shape[2]), times[:8])
    np.testing.assert_allclose(resumed.tracks[0].root_velocity, live.tracks[0].root_velocity)
    assert np.linalg.norm(resumed.tracks[0].root_velocity) <= live.params.max_speed_mm_s + 1e-6
