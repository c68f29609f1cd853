"""Rigs under any object transform (pure numpy): an FBX import's armature (turned 90° about X,
scale 0.01, bones in centimetres with Y up), with and without a parent, solves to the same local
keys and the same world motion as the same rig with an identity transform; transforms without a
meaning are refused with the reason."""

import numpy as np
import pytest

from inference.training.synth.motion import SKELETON
from retarget import metrics, solve
from retarget.solve import rigmaps
from retarget.solve.target import TargetRig
from retarget.solve.transforms import TransformError, from_matrix, translation
from tests.test_solve import direction_errors
from tests.test_solve_rigs import canonical_rest, mixamo_like, unreal_like, world_motion


def matrix(rotation_deg=(0.0, 0.0, 0.0), scale=1.0, location=(0.0, 0.0, 0.0)) -> np.ndarray:
    """A ``(4, 4)`` object matrix from XYZ Euler degrees (Blender's default order), a scale (one
    number, or one per axis) and a location."""
    x, y, z = np.radians(rotation_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    out = np.eye(4)
    out[:3, :3] = rz @ ry @ rx @ np.diag(np.broadcast_to(scale, 3))
    out[:3, 3] = location
    return out


FBX = matrix((90.0, 0.0, 0.0), 0.01)  # what Blender's FBX importer leaves on a Mixamo armature
PARENT = matrix((0.0, 0.0, 35.0), 2.0, (1.5, -0.5, 0.25))  # e.g. a scaled, turned "Character" empty


def in_armature_space(rig: TargetRig, world: np.ndarray) -> TargetRig:
    """The armature-space rest pose that ``world`` (4x4) carries onto ``rig``'s (world) rest."""
    transform = from_matrix(world)
    back = lambda p: (p - transform.translation) @ transform.rotation / transform.scale  # noqa: E731
    return TargetRig(
        rig.names,
        rig.parents,
        back(rig.heads),
        back(rig.tails),
        np.einsum("ji,bjk->bik", transform.rotation, rig.rotations),
    )


def posed_root_head(rig: TargetRig, result, transform) -> np.ndarray:
    """The root bone's posed head ``(T, 3)`` in the world from its location key (armature units,
    in the bone's rest axes: Local Location)."""
    b = rig.index(result.root_bone)
    head = rig.heads[b] + result.root_location @ rig.rotations[b].T
    return transform.point(head)


@pytest.mark.parametrize("world", [FBX, PARENT @ FBX, PARENT], ids=["fbx", "fbx+parent", "parent"])
@pytest.mark.parametrize("root_motion", ["relative", "camera", "in_place"])
def test_any_object_transform_gives_the_same_keys_and_world_motion(world, root_motion):
    motion = world_motion("walk", 2.0, seed=21, turn_deg_per_s=25.0).joints
    spec = mixamo_like(canonical_rest(1.8, legs=0.95), rng=np.random.default_rng(21))
    plain = spec.target_rig()
    mapping = rigmaps.resolve_rig_map("auto", plain.names, plain.parents, plain.heads)[0]
    params = solve.RetargetParams(root_motion=root_motion)
    contacts = np.zeros((len(motion), 2), bool)
    contacts[::2, 0] = True
    reference = solve.retarget(motion, SKELETON, plain, mapping, params, contacts)
    transform = from_matrix(world)
    armature = in_armature_space(plain, world)
    result = solve.retarget(motion, SKELETON, armature, mapping, params, contacts,
                            transform=transform)  # fmt: skip
    # The same local keys: the rotations do not depend on the object transform.
    assert result.bone_names == reference.bone_names
    np.testing.assert_allclose(result.rotations, reference.rotations, atol=1e-9)
    assert metrics.sign_flips(result.rotations) == 0
    for name, joints in reference.joints.items():
        np.testing.assert_allclose(result.joints[name], joints, atol=1e-9)
    # The root key, in armature units, puts the root bone's head where the reference puts it.
    np.testing.assert_allclose(
        posed_root_head(armature, result, transform),
        posed_root_head(plain, reference, translation(np.zeros(3))),
        atol=1e-9,
    )
    # In the bone's own rest axes the location is the reference's in armature units (cm on FBX).
    np.testing.assert_allclose(
        result.root_location, reference.root_location / transform.scale, atol=1e-9
    )
    errors = direction_errors(result, motion)
    assert np.median(errors) <= 2.0 and np.percentile(errors, 95) <= 8.0


def test_origin_is_the_translation_only_transform():
    motion = world_motion("run", 1.0, seed=22).joints
    rig = unreal_like(canonical_rest(), rng=np.random.default_rng(22)).target_rig()
    mapping = rigmaps.resolve_rig_map("auto", rig.names, rig.parents, rig.heads)[0]
    params = solve.RetargetParams(root_motion="camera")
    by_origin = solve.retarget(motion, SKELETON, rig, mapping, params, origin=(0.5, -1.0, 0.2))
    by_matrix = solve.retarget(
        motion,
        SKELETON,
        rig,
        mapping,
        params,
        transform=from_matrix(matrix(location=(0.5, -1.0, 0.2))),
    )
    np.testing.assert_allclose(by_origin.root_location, by_matrix.root_location, atol=1e-12)
    np.testing.assert_allclose(by_origin.rotations, by_matrix.rotations, atol=1e-12)


def test_from_matrix_reads_float32_fbx_transforms():
    transform = from_matrix(FBX.astype(np.float32))
    assert transform.scale == pytest.approx(0.01, rel=1e-6)
    np.testing.assert_allclose(transform.rotation.T @ transform.rotation, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(transform.rotation @ [0, 1, 0], [0, 0, 1], atol=1e-6)  # Y up -> Z up
    assert from_matrix(np.eye(4)).is_identity and not transform.is_identity


@pytest.mark.parametrize(
    "world, message",
    [
        (matrix(scale=0.0), "zero scale"),
        (matrix(scale=(1.0, 0.0, 1.0)), "zero scale"),
        (matrix(scale=-1.0), "mirrored by a negative scale"),
        (matrix((90.0, 0, 0), (0.01, 0.01, -0.01)), "mirrored by a negative scale"),
        (matrix(scale=(1.0, 1.0, 2.0)), r"non-uniform scale .*scale \[1.0, 1.0, 2.0\]"),
        # a parent scaled unevenly, the child turned 45° under it: equal axis lengths, sheared
        (matrix(scale=(2.0, 1.0, np.sqrt(2.5))) @ matrix((0, 0, 45.0)), "non-uniform .*shear"),
        (np.full((4, 4), np.nan), "no usable world matrix"),
    ],  # fmt: skip
    ids=["zero", "zero-axis", "negative", "negative-axis", "non-uniform", "shear", "nan"],
)
def test_transforms_without_meaning_are_refused_with_the_reason(world, message):
    with pytest.raises(TransformError, match=message) as raised:
        from_matrix(world, "Hero")
    assert "'Hero'" in str(raised.value)
