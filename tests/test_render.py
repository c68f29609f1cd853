"""Synthetic renderer: exact ray casting, ground truth that matches the pixels, determinism, the
scene ranges it promises, and clips with their trajectories."""

import cv2
import numpy as np
import pytest

from inference.camera import intrinsics_from_fov, project
from inference.training.synth import poses
from inference.training.synth.motion import SKELETON, forward_kinematics, rest_pose
from inference.training.synth.raycast import (
    Capsule,
    Ellipsoid,
    Material,
    ZBuffer,
    draw,
    draw_ground,
)
from inference.training.synth.render import (
    ClipConfig,
    RenderError,
    SceneConfig,
    render_clip,
    render_frame,
)
from retarget.contract import read_trajectory

K = intrinsics_from_fov(60.0, (200, 150))
GREY = Material((0.5, 0.5, 0.5))
WINDOW = SceneConfig(window_scale=1.6)  # the training-data setting (fast)


def _mask(primitive) -> tuple[np.ndarray, ZBuffer]:
    zbuffer = ZBuffer.empty(200, 150, K)
    draw(zbuffer, primitive)
    return np.isfinite(zbuffer.depth), zbuffer


def test_sphere_silhouette_and_depth_match_the_pinhole_model():
    centre, radius = np.array([0.2, -0.1, 3.0]), 0.3
    mask, zbuffer = _mask(Ellipsoid(centre, np.eye(3), np.full(3, radius), GREY))
    # The silhouette of a sphere is the cone tangent to it: a pixel is inside when the angle
    # between its ray and the centre direction is below asin(r / |c|).
    u, v = np.meshgrid(np.arange(200.0), np.arange(150.0))
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T
    cosine = rays @ centre / np.linalg.norm(rays, axis=-1) / np.linalg.norm(centre)
    inside = cosine > np.cos(np.arcsin(radius / np.linalg.norm(centre)))
    assert np.mean(mask != inside) < 0.002  # only rounding at the rim
    cx, cy = project(centre, K)
    near = zbuffer.depth[int(round(cy)), int(round(cx))]
    # The nearest surface point along the central ray is |c| - r away; depth is its z.
    assert near == pytest.approx(
        (np.linalg.norm(centre) - radius) * centre[2] / np.linalg.norm(centre), abs=2e-3
    )
    normal = zbuffer.normal[int(round(cy)), int(round(cx))]
    assert normal @ (-centre / np.linalg.norm(centre)) > 0.99


def test_capsule_seen_end_on_is_a_disc_and_side_on_a_stadium():
    end_on, _ = _mask(Capsule(np.array([0, 0, 3.0]), np.array([0, 0, 4.0]), 0.2, GREY))
    disc = np.pi * (K[0, 0] * 0.2 / 3.0) ** 2  # the near cap's sphere at 3 m sets the outline
    assert end_on.sum() == pytest.approx(disc, rel=0.08)
    side_on, _ = _mask(Capsule(np.array([-0.5, 0, 4.0]), np.array([0.5, 0, 4.0]), 0.1, GREY))
    rows = np.flatnonzero(side_on.any(axis=1))
    cols = np.flatnonzero(side_on.any(axis=0))
    f = K[0, 0]
    assert len(cols) == pytest.approx(f * 1.2 / 4.0, abs=3)  # 1 m long + 2 radii
    assert len(rows) == pytest.approx(f * 0.2 / 4.0, abs=2)


def test_nearer_primitive_hides_the_farther_one():
    zbuffer = ZBuffer.empty(200, 150, K)
    draw(zbuffer, Ellipsoid(np.array([0, 0, 5.0]), np.eye(3), np.full(3, 0.5), GREY, owner=1))
    draw(zbuffer, Ellipsoid(np.array([0, 0, 3.0]), np.eye(3), np.full(3, 0.2), GREY, owner=2))
    centre = tuple(int(round(c)) for c in project(np.array([0, 0, 3.0]), K)[::-1])
    assert zbuffer.owner[centre] == 2
    # coverage keeps the hidden pixels of the farther figure
    assert zbuffer.coverage[1][centre] and zbuffer.coverage[1].sum() > (zbuffer.owner == 1).sum()


def test_ground_plane_hits_lie_on_the_floor():
    from inference.camera import look_at

    pose = look_at(np.array([0.0, -4.0, 1.5]), np.array([0.0, 0.0, 0.5]))
    zbuffer = ZBuffer.empty(200, 150, K)
    xy = draw_ground(zbuffer, pose, np.ones((4, 4, 3)), 0.1, 30.0)
    floor = np.isfinite(xy[..., 0])
    assert floor[-1].all() and not floor[0].any()  # camera tilted down: floor below the horizon
    rows, cols = np.nonzero(floor)
    points_cam = zbuffer.rays[rows, cols] * zbuffer.depth[rows, cols][:, None]
    world = points_cam @ pose[:3, :3].T + pose[:3, 3]
    assert np.abs(world[:, 2]).max() < 1e-9
    np.testing.assert_allclose(world[:, :2], xy[rows, cols], atol=1e-9)


def test_frames_are_deterministic_by_seed():
    a, b, c = render_frame(11, WINDOW), render_frame(11, WINDOW), render_frame(12, WINDOW)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.joints3d, b.joints3d)
    assert not np.array_equal(a.joints3d[0], c.joints3d[0])


def test_ground_truth_matches_the_pixels():
    torso = [SKELETON.index(n) for n in ("pelv", "spin", "thor", "neck", "lhip", "rhip")]
    hits, boxes_checked = [], 0
    for seed in range(6):
        frame = render_frame(seed)  # whole frames, as a camera sees them
        width, height = frame.camera.image_size
        np.testing.assert_allclose(
            frame.joints2d, project(frame.joints3d, frame.camera.intrinsics), atol=1e-3
        )
        for person in range(len(frame.joints3d)):
            for x, y in frame.joints2d[person, torso]:
                if 0 <= x < width and 0 <= y < height:
                    hits.append(frame.owner[int(y), int(x)] == person)
            box = frame.boxes[person]
            if frame.visible_fraction[person] > 0.995 and frame.in_image_fraction[person] == 1:
                # the visible box of an unoccluded person encloses its projected joints
                low, high = frame.joints2d[person].min(0), frame.joints2d[person].max(0)
                assert np.all(low >= box[:2] - 2) and np.all(high <= box[:2] + box[2:] + 2)
                boxes_checked += 1
    # torso joints are inside the body: their pixel shows that person unless someone occludes it
    assert np.mean(hits) > 0.9 and boxes_checked >= 3


@pytest.mark.slow
def test_scene_ranges_truncation_and_occlusion():
    distances, truncated, occluded = [], 0, 0
    for seed in range(40):
        frame = render_frame(1000 + seed, WINDOW)
        pose = frame.camera.world_from_camera
        pelvis_world = frame.joints3d[0, 0] / 1000 @ pose[:3, :3].T + pose[:3, 3]
        distances.append(np.linalg.norm((pelvis_world - pose[:3, 3])[:2]))
        truncated += frame.in_image_fraction[0] < 1
        occluded += frame.visible_fraction[0] < 0.9
        assert np.all(frame.joints3d[..., 2] > 0)
    # 2-10 m horizontally from the point the camera orbits (the body's mean, jittered 10 cm)
    assert 1.7 < min(distances) and max(distances) < 10.5 and np.ptp(distances) > 5
    assert truncated >= 2 and occluded >= 2


def test_random_poses_keep_bone_lengths_and_scaling_is_exact():
    rng = np.random.default_rng(3)
    rest = rest_pose(1.7)
    parents = np.array(SKELETON.parents)
    rest_lengths = np.linalg.norm(rest[1:] - rest[parents[1:]], axis=1)
    for _ in range(20):
        joints = poses.random_pose(rng, 1.7)
        lengths = np.linalg.norm(joints[1:] - joints[parents[1:]], axis=1)
        np.testing.assert_allclose(lengths, rest_lengths, rtol=1e-9)
        assert joints[:, 2].min() == pytest.approx(0.02 * 1.7 / 1.75)
        scales = poses.random_bone_scales(rng)
        scaled = poses.scale_bones(joints, scales)
        new_lengths = np.linalg.norm(scaled[1:] - scaled[parents[1:]], axis=1)
        np.testing.assert_allclose(new_lengths, lengths * scales[1:], rtol=1e-9)


def test_knees_and_elbows_bend_the_anatomical_way():
    idx = SKELETON.index
    rng = np.random.default_rng(5)
    for _ in range(50):
        rotations = poses.random_local_rotations(rng)
        joints = forward_kinematics(rest_pose(), rotations[None])[0]
        for side in "lr":
            hip, knee, ankle = (joints[idx(side + n)] for n in ("hip", "kne", "ank"))
            # shin folds backwards relative to the thigh: rotate the thigh's frame so that the
            # flexion axis (the thigh's local x) decides the sign
            thigh_rot = rotations[idx("pelv")] @ rotations[idx(side + "hip")]
            axis = thigh_rot[:, 0]
            bend = np.cross(knee - hip, ankle - knee) @ axis
            assert bend <= 1e-9  # knee flexion is a negative rotation about the thigh's x axis


def test_clip_video_and_trajectory(tmp_path):
    config = ClipConfig(num_people=2, duration_s=0.5, fps=10, image_size=(320, 180))
    truth_path = render_clip(tmp_path / "clip.mp4", tmp_path / "clip.npz", seed=4, config=config)
    trajectory = read_trajectory(truth_path)
    assert trajectory.poses3d.shape == (5, 2, SKELETON.num_joints, 3)
    np.testing.assert_allclose(
        trajectory.poses2d,
        project(trajectory.poses3d.astype(float), trajectory.intrinsics),
        atol=1e-2,
    )
    capture = cv2.VideoCapture(str(tmp_path / "clip.mp4"))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 5 and frames[0].shape == (180, 320, 3)
    boxes = trajectory.extras["visible_boxes"]
    for t in range(5):
        for person in range(2):
            # everyone stays in view the whole clip, and the pelvis is inside the visible box
            assert np.all(
                (trajectory.poses2d[t, person] >= 0) & (trajectory.poses2d[t, person] < [320, 180])
            )
            x, y, w, h = boxes[t, person]
            px, py = trajectory.poses2d[t, person, 0]
            assert x <= px <= x + w and y <= py <= y + h
    # the people move: consecutive frames differ inside their boxes
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1.0
    with pytest.raises(RenderError, match="num_people"):
        render_clip(tmp_path / "x.mp4", tmp_path / "x.npz", 0, ClipConfig(num_people=0))
