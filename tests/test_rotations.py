import numpy as np
from scipy.spatial.transform import Rotation

from retarget.rotations import (
    frame_from_axes,
    make_continuous,
    matrix_to_quaternion,
    quaternion_to_matrix,
    rotation_between,
)


def test_quaternions_match_scipy():
    rotations = Rotation.random(2000, random_state=1)
    expected = rotations.as_quat()[:, [3, 0, 1, 2]]  # scipy is (x, y, z, w)
    expected *= np.sign(expected[:, :1])
    np.testing.assert_allclose(matrix_to_quaternion(rotations.as_matrix()), expected, atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(expected), rotations.as_matrix(), atol=1e-12)


def test_near_180_degree_rotations_are_stable():
    angles = np.pi - np.array([0.0, 1e-9, 1e-5])
    matrices = Rotation.from_rotvec(angles[:, None] * [[0.0, 0.6, 0.8]]).as_matrix()
    np.testing.assert_allclose(
        quaternion_to_matrix(matrix_to_quaternion(matrices)), matrices, atol=1e-9
    )


def test_rotation_between_maps_source_onto_target(rng):
    source, target = rng.normal(size=(500, 3)), rng.normal(size=(500, 3))
    source[0], target[0] = [1, 0, 0], [-1, 0, 0]  # opposite directions
    matrices = rotation_between(source, target)
    mapped = np.einsum(
        "nij,nj->ni", matrices, source / np.linalg.norm(source, axis=1, keepdims=True)
    )
    np.testing.assert_allclose(
        mapped, target / np.linalg.norm(target, axis=1, keepdims=True), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(matrices), 1.0, atol=1e-12)


def test_frames_are_right_handed_with_y_along_the_axis(rng):
    axis, hint = rng.normal(size=(100, 3)), rng.normal(size=(100, 3))
    frames = frame_from_axes(axis, hint)
    np.testing.assert_allclose(
        frames @ np.swapaxes(frames, 1, 2), np.tile(np.eye(3), (100, 1, 1)), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(frames), 1.0, atol=1e-12)
    np.testing.assert_allclose(
        frames[:, :, 1], axis / np.linalg.norm(axis, axis=1, keepdims=True), atol=1e-12
    )


def test_continuity_removes_sign_flips(rng):
    quaternions = matrix_to_quaternion(
        Rotation.from_rotvec(np.linspace(0, 6, 200)[:, None] * [[0, 0, 1.0]]).as_matrix()
    )
    assert (np.sum(quaternions[1:] * quaternions[:-1], axis=1) < 0).any()  # w >= 0 form does flip
    continuous = make_continuous(quaternions)
    assert (np.sum(continuous[1:] * continuous[:-1], axis=1) > 0).all()
    np.testing.assert_allclose(
        quaternion_to_matrix(continuous), quaternion_to_matrix(quaternions), atol=1e-12
    )
