"""Perspective crop geometry: parity with the official MeTRAbs wrapper and geometric properties.

``fixtures/crops_parity.npz`` holds numbers computed by the official code
(``tools/make_crop_fixtures.py``); the official wrapper runs in float32, so agreement is checked to
float32 precision. Crops are compared in linear light, where both warps interpolate.
"""

from pathlib import Path

import numpy as np
import pytest

from inference.crops import (
    Augmentation,
    CropError,
    LevelBuffers,
    LinearImage,
    TorchLinearImage,
    box_rotation_and_scale,
    crop_geometry,
    decode_srgb8,
    look_at_rotation,
    make_crops,
    mirror_permutation,
    pyramid_level_for_scale,
    pyramid_level_matrix,
    source_region,
    tta_augmentations,
    unflip_joints,
    warp_crop,
    warp_crops_torch,
)

FIXTURE = np.load(Path(__file__).parent / "fixtures" / "crops_parity.npz")
CASES = [str(c) for c in FIXTURE["cases"]]
SIDE = int(FIXTURE["side"])
BOXES = FIXTURE["boxes"]
FRAME_OF_BOX = np.repeat(np.arange(len(FIXTURE["boxes_per_frame"])), FIXTURE["boxes_per_frame"])
IMAGES = FIXTURE["images"].transpose(0, 2, 3, 1)  # (F, H, W, 3) uint8


def case(name: str, key: str) -> np.ndarray:
    return FIXTURE[f"{name}/{key}"]


def box_intrinsics(name: str) -> np.ndarray:
    k = case(name, "intrinsics")
    return k[FRAME_OF_BOX] if len(k) > 1 else np.repeat(k, len(BOXES), axis=0)


def random_setup(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` boxes anywhere in (and partly outside) a 1280x720 frame and varied intrinsics."""
    xy = rng.uniform([-100, -100], [1200, 650], size=(n, 2))
    wh = rng.uniform(20, 600, size=(n, 2))
    f = rng.uniform(400, 1500, size=n)
    k = np.zeros((n, 3, 3))
    k[:, 0, 0], k[:, 1, 1] = f, f * rng.uniform(0.95, 1.05, size=n)
    k[:, 0, 2], k[:, 1, 2] = rng.uniform(600, 680, size=n), rng.uniform(330, 390, size=n)
    k[:, 2, 2] = 1
    return np.concatenate([xy, wh], axis=1), k


def random_augmentations(rng: np.random.Generator, n: int) -> list[Augmentation]:
    return [
        Augmentation(rng.uniform(-40, 40), rng.uniform(0.7, 1.3), bool(rng.integers(2)), 1.0)
        for _ in range(n)
    ]


# --- parity with the official wrapper ---------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_augmentation_schedule_matches_official(name):
    num_aug = int(case(name, "num_aug"))
    augs = tta_augmentations(num_aug)
    np.testing.assert_allclose([a.scale for a in augs], case(name, "aug_scales"), atol=1e-6)
    np.testing.assert_allclose([a.gamma for a in augs], case(name, "aug_gammas"), atol=1e-6)
    geometry = crop_geometry(np.repeat([[100.0, 50, 80, 120]], num_aug, 0), np.eye(3), 64, augs)
    look_at, _ = box_rotation_and_scale([[100.0, 50, 80, 120]], np.eye(3), 64)
    aug_rotflip = geometry.rotation @ look_at[0].T
    np.testing.assert_allclose(aug_rotflip, case(name, "aug_rotflipmat"), atol=1e-6)


@pytest.mark.parametrize("name", CASES)
def test_look_at_rotation_and_box_zoom_match_official(name):
    rotation, scale = box_rotation_and_scale(BOXES, box_intrinsics(name), SIDE, up=case(name, "up"))
    np.testing.assert_allclose(rotation, case(name, "lookat"), atol=1e-6)
    np.testing.assert_allclose(scale, case(name, "box_scales"), rtol=1e-6)


@pytest.mark.parametrize("name", CASES)
def test_crop_intrinsics_rotation_and_homography_match_official(name):
    k = box_intrinsics(name)
    for a, aug in enumerate(tta_augmentations(int(case(name, "num_aug")))):
        geometry = crop_geometry(BOXES, k, SIDE, aug, up=case(name, "up"))
        np.testing.assert_allclose(geometry.intrinsics, case(name, "crop_intrinsics")[a], rtol=1e-6)
        np.testing.assert_allclose(geometry.rotation, case(name, "rotation")[a], atol=1e-6)
        np.testing.assert_allclose(geometry.scale, case(name, "crop_scales")[a], rtol=1e-6)
        # the official warp maps crop pixels to normalised original coordinates
        official = k @ case(name, "invprojmat")[a]
        ours = geometry.inverse_homography
        np.testing.assert_allclose(
            ours / ours[:, 2:, 2:], official / official[:, 2:, 2:], rtol=1e-5, atol=1e-4
        )


def test_crop_pixels_match_official_in_linear_light():
    levels_seen = set()
    for a, aug in enumerate(tta_augmentations(int(case("aug5", "num_aug")))):
        geometry = crop_geometry(BOXES, box_intrinsics("aug5"), SIDE, aug)
        reference = case("aug5", "crops_q10")[a] / float(FIXTURE["crop_levels"])
        for b in range(len(BOXES)):
            levels_seen.add(pyramid_level_for_scale(geometry.scale[b]))
            one = crop_geometry(BOXES[b : b + 1], box_intrinsics("aug5")[b], SIDE, aug)
            ours = make_crops(IMAGES[FRAME_OF_BOX[b]], one)[0]
            to_linear = 2.2 / aug.gamma
            linear_error = np.abs(ours**to_linear - reference[b] ** to_linear)
            # OpenCV interpolates at 1/32 pixel steps, grid_sample exactly: sharp edges differ
            # by up to (step / 64); the reference is stored to 10 bits
            assert linear_error.max() < 0.02
            assert linear_error.mean() < 1.5e-3
            assert np.abs(ours - reference[b]).mean() < 1.5e-3
    assert levels_seen == {0, 1, 2}  # every pyramid level took part


def test_torch_warp_reproduces_official_crops_to_storage_precision():
    """``warp_crops_torch`` samples like the official grid_sample warp: equal up to the 10-bit
    rounding of the stored reference (one step = 9.8e-4) and float32 sample positions."""
    step = 1.0 / float(FIXTURE["crop_levels"])
    for a, aug in enumerate(tta_augmentations(int(case("aug5", "num_aug")))):
        geometry = crop_geometry(BOXES, box_intrinsics("aug5"), SIDE, aug)
        reference = case("aug5", "crops_q10")[a] * step
        for f, frame in enumerate(IMAGES):
            index = np.flatnonzero(FRAME_OF_BOX == f)
            linear = warp_crops_torch(
                TorchLinearImage(frame), geometry.homography[index], geometry.scale[index], SIDE
            ).numpy()
            encoded = linear ** (aug.gamma / 2.2)
            assert np.abs(encoded - reference[index]).max() < step
            assert np.abs(encoded - reference[index]).mean() < 0.25 * step
            # and OpenCV agrees with it as with the official crops
            ours = make_crops(
                frame, crop_geometry(BOXES[index], box_intrinsics("aug5")[index], SIDE, aug)
            )
            assert np.abs(ours - encoded).mean() < 1.5e-3


# --- geometric properties ---------------------------------------------------------------------


def test_box_centre_lands_on_crop_centre_with_any_augmentation():
    rng = np.random.default_rng(1)
    boxes, k = random_setup(rng, 200)
    geometry = crop_geometry(boxes, k, 256, random_augmentations(rng, 200))
    centre = boxes[:, None, :2] + boxes[:, None, 2:] / 2
    np.testing.assert_allclose(geometry.original_to_crop_2d(centre), 128.0, atol=1e-8)


def test_unaugmented_box_fills_the_crop():
    rng = np.random.default_rng(2)
    boxes, k = random_setup(rng, 200)
    geometry = crop_geometry(boxes, k, 256)
    x, y, w, h = boxes.T
    midpoints = np.stack(
        [
            np.c_[x + w / 2, y],
            np.c_[x + w, y + h / 2],
            np.c_[x + w / 2, y + h],
            np.c_[x, y + h / 2],
        ],
        axis=1,
    )
    crop = geometry.original_to_crop_2d(midpoints)
    vertical = np.linalg.norm(crop[:, 0] - crop[:, 2], axis=-1)
    horizontal = np.linalg.norm(crop[:, 1] - crop[:, 3], axis=-1)
    np.testing.assert_allclose(np.maximum(vertical, horizontal), 256.0, rtol=1e-9)
    # the look-at keeps the crop upright: the box's vertical midline stays vertical
    np.testing.assert_allclose(crop[:, 0, 0], crop[:, 2, 0], atol=1e-8)
    padded = crop_geometry(boxes, k, 256, box_padding=1.25)
    np.testing.assert_allclose(padded.scale, geometry.scale / 1.25, rtol=1e-12)


def test_crop_and_original_round_trips_are_identity():
    rng = np.random.default_rng(3)
    boxes, k = random_setup(rng, 100)
    geometry = crop_geometry(boxes, k, 192, random_augmentations(rng, 100))
    points2d = rng.uniform(-50, 1300, size=(100, 17, 2))
    back = geometry.crop_to_original_2d(geometry.original_to_crop_2d(points2d))
    np.testing.assert_allclose(back, points2d, atol=1e-7)
    points3d = rng.normal(size=(100, 17, 3)) * 400 + [0, 0, 4000]
    back3d = geometry.crop_to_original_3d(geometry.original_to_crop_3d(points3d))
    np.testing.assert_allclose(back3d, points3d, atol=1e-8)
    # the homography is the crop camera's projection of the same 3D points
    crop3d = geometry.original_to_crop_3d(points3d)
    projected = np.einsum("nij,nkj->nki", geometry.intrinsics, crop3d)
    orig = np.einsum("nij,nkj->nki", geometry.source_intrinsics, points3d)
    np.testing.assert_allclose(
        projected[..., :2] / projected[..., 2:],
        geometry.original_to_crop_2d(orig[..., :2] / orig[..., 2:]),
        atol=1e-7,
    )
    # rotations are orthogonal; flips are reflections
    eye = np.einsum("nij,nkj->nik", geometry.rotation, geometry.rotation)
    np.testing.assert_allclose(eye, np.broadcast_to(np.eye(3), eye.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(geometry.rotation), np.where(geometry.flip, -1, 1))


def test_flip_mirrors_the_crop_and_twice_is_identity():
    rng = np.random.default_rng(4)
    y, x = np.mgrid[0:360, 0:480].astype(np.float64)
    frame = np.stack([np.sin(x / 11 + c) * np.cos(y / 8 - c) for c in (0.0, 1.0, 2.0)], axis=-1)
    frame = np.round(127.5 + 120 * frame).astype(np.uint8)
    k = np.array([[500.0, 0, 240], [0, 500, 180], [0, 0, 1]])
    box = np.array([[300.0, 40.0, 120, 260]])
    plain = crop_geometry(box, k, 96, Augmentation(rotation_deg=12.0, scale=1.1))
    flipped = crop_geometry(box, k, 96, Augmentation(rotation_deg=12.0, scale=1.1, flip=True))
    a, b = make_crops(frame, plain)[0], make_crops(frame, flipped)[0]
    # the mirror of crop column x about the principal point side/2 is column side - x
    np.testing.assert_allclose(b[:, :, 1:], a[:, :, :0:-1], atol=0.02)
    assert np.abs(b[:, :, 1:] - a[:, :, :0:-1]).mean() < 1e-3
    # in 3D the flipped crop camera only negates x
    points = rng.normal(size=(1, 5, 3)) * 300 + [0, 0, 3000]
    np.testing.assert_allclose(
        flipped.original_to_crop_3d(points), plain.original_to_crop_3d(points) * [-1, 1, 1]
    )
    # undoing a flip twice (with the joint swap) is the identity
    names = ["pelv", "lhip", "rhip", "lsho", "rsho", "head"]
    perm = mirror_permutation(names)
    values = rng.normal(size=(4, 6, 3))
    flip = np.array([True, False, True, True])
    np.testing.assert_array_equal(
        unflip_joints(unflip_joints(values, flip, perm), flip, perm), values
    )
    np.testing.assert_array_equal(
        unflip_joints(values, flip, perm)[0], values[0][[0, 2, 1, 4, 3, 5]]
    )
    np.testing.assert_array_equal(unflip_joints(values, flip, perm)[1], values[1])


def test_mirror_permutation_recognises_naming_styles():
    names = ["pelv", "lhip_smpl", "rhip_smpl", "left_knee", "right_knee", "Hand.L", "Hand.R",
             "foot_l", "foot_r", "head", "rear"]  # fmt: skip
    perm = mirror_permutation(names)
    assert [names[i] for i in perm] == [
        "pelv", "rhip_smpl", "lhip_smpl", "right_knee", "left_knee", "Hand.R", "Hand.L",
        "foot_r", "foot_l", "head", "rear",
    ]  # fmt: skip
    np.testing.assert_array_equal(perm[perm], np.arange(len(names)))
    with pytest.raises(CropError, match="unique"):
        mirror_permutation(["lhip", "lhip"])


def _sphere_coverage(intrinsics, size, centre, radius, rotation=None, supersample=4):
    """Linear-light coverage (H, W) of a sphere seen by camera ``intrinsics`` rotated by
    ``rotation`` (camera coords = rotation @ original coords), by supersampled ray tests."""
    width, height = size
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    coverage = np.zeros((height, width))
    inv = np.linalg.inv(intrinsics)
    rotation = np.eye(3) if rotation is None else rotation
    for dy in offsets:
        for dx in offsets:
            pix = np.stack([xs + dx, ys + dy, np.ones_like(xs)], axis=-1)
            rays = pix @ inv.T @ rotation  # back into the original frame: R.T @ ray
            rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
            along = rays @ centre
            miss = np.linalg.norm(centre - along[..., None] * rays, axis=-1)
            coverage += (miss < radius) & (along > 0)
    return coverage / supersample**2


def _ellipse_axes(weights):
    ys, xs = np.nonzero(weights > 0)
    w = weights[ys, xs]
    mean = np.array([np.sum(w * xs), np.sum(w * ys)]) / w.sum()
    d = np.stack([xs, ys], axis=1) - mean
    cov = (d * w[:, None]).T @ d / w.sum()
    return np.sqrt(np.linalg.eigvalsh(cov))  # ascending; a disc of radius r has r / 2 each


def test_off_axis_sphere_becomes_a_circle_in_the_crop():
    """A ball 48 degrees off-axis in a wide-angle frame is a stretched ellipse; in the perspective
    crop it is the circle a camera pointed at it sees, of the predicted size."""
    width, height = 800, 600
    k = np.array([[300.0, 0, 400], [0, 300, 300], [0, 0, 1]])  # 106 degrees horizontal FOV
    centre, radius = np.array([2000.0, 1000.0, 2000.0]), 350.0
    coverage = _sphere_coverage(k, (width, height), centre, radius)
    axes = _ellipse_axes(coverage)
    assert axes[1] / axes[0] > 1.4  # stretched radially in the original frame

    frame = np.round(255 * coverage ** (1 / 2.2)).astype(np.uint8)  # encoded: linear = coverage
    frame = np.repeat(frame[..., None], 3, axis=2)
    ys, xs = np.nonzero(coverage > 0)
    box = np.array([[xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]], np.float64)
    geometry = crop_geometry(box, k, 128, box_padding=1.3)
    crop = make_crops(frame, geometry, encode=False)[0].mean(axis=0)
    crop_axes = _ellipse_axes(crop)
    assert crop_axes[1] / crop_axes[0] < 1.003  # measured 1.0002
    # a sphere at distance d subtends asin(r / d): its image radius is f * tan(asin(r / d))
    expected_radius = geometry.intrinsics[0, 0, 0] * np.tan(
        np.arcsin(radius / np.linalg.norm(centre))
    )
    np.testing.assert_allclose(np.sqrt(crop.sum() / np.pi), expected_radius, rtol=0.003)
    # and it matches a direct rendering by the crop camera pixel for pixel
    direct = _sphere_coverage(
        geometry.intrinsics[0], (128, 128), centre, radius, geometry.rotation[0]
    )
    assert np.abs(crop - direct).mean() < 0.01


# --- warping details --------------------------------------------------------------------------


def test_pyramid_levels_are_box_averages_and_level_choice_follows_the_zoom():
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, size=(61, 83, 3), dtype=np.uint8)
    image = LinearImage(frame)
    linear = decode_srgb8(frame).astype(np.float64)
    expected = linear[:60, :82].reshape(30, 2, 41, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(image.level(1), expected, rtol=1e-6)
    assert image.level(2).shape == (15, 20, 3)
    assert [pyramid_level_for_scale(s) for s in (2.0, 1.0, 0.51, 0.5, 0.26, 0.25, 0.01)] == [
        0, 0, 0, 1, 1, 2, 2,
    ]  # fmt: skip
    # level matrices keep pixel centres: full-res pixels 0 and 1 average to level-1 pixel 0
    np.testing.assert_allclose(pyramid_level_matrix(1) @ [0.5, 0.5, 1], [0, 0, 1])
    np.testing.assert_allclose(pyramid_level_matrix(2) @ [1.5, 1.5, 1], [0, 0, 1])


def test_zoomed_out_crops_from_the_pyramid_agree_with_full_resolution_sampling():
    """Sampling level 1 for a zoom of 0.45 gives the same picture as a (blurrier-aliased) full
    resolution warp of a smooth image, so the level matrices line up."""
    y, x = np.mgrid[0:400, 0:600].astype(np.float64)
    smooth = 0.5 + 0.4 * np.sin(x / 37.0) * np.cos(y / 29.0)
    frame = np.round(np.stack([smooth, smooth[::-1], smooth[:, ::-1]], -1) * 255).astype(np.uint8)
    k = np.array([[500.0, 0, 300], [0, 500, 200], [0, 0, 1]])
    geometry = crop_geometry([[150.0, 50, 250, 280]], k, 120)
    assert pyramid_level_for_scale(geometry.scale[0]) == 1
    pyramid = warp_crop(LinearImage(frame), geometry.homography[0], geometry.scale[0], 120)
    full = warp_crop(LinearImage(frame, n_levels=1), geometry.homography[0], geometry.scale[0], 120)
    assert np.abs(pyramid - full).max() < 0.02


def poisoned_buffers() -> LevelBuffers:
    """Level buffers full of NaN, so that a crop reading outside its decoded region shows."""
    buffers = LevelBuffers()
    for level in range(4):
        shape = (720 >> level, 1280 >> level, 3)
        buffers.get(level, shape)[...] = np.nan
    return buffers


def test_decoding_only_the_region_crops_read_gives_identical_crops():
    """Random frames, boxes anywhere (partly outside, tiny to frame-filling: every pyramid level),
    rotated/zoomed/flipped crops: the region-decoded crops equal the whole-frame ones bit for bit,
    with buffers that start as NaN and are reused from frame to frame."""
    rng = np.random.default_rng(6)
    buffers = poisoned_buffers()
    levels_seen = set()
    for _ in range(16):
        frame = rng.integers(0, 256, size=(720, 1280, 3), dtype=np.uint8)
        n = int(rng.integers(1, 5))
        boxes, k = random_setup(rng, n)
        boxes[:, 2:] *= rng.choice([0.2, 1.0, 2.0], size=(n, 1))  # 4 px .. 1200 px boxes
        side = int(rng.choice([64, 128, 256]))
        geometry = crop_geometry(boxes, k[0], side, random_augmentations(rng, n))
        region = source_region(geometry.homography, geometry.scale, side, (1280, 720))
        x0, y0, x1, y1 = region
        assert x0 % 4 == 0 and y0 % 4 == 0 and 0 <= x0 <= x1 <= 1280 and 0 <= y0 <= y1 <= 720
        whole, part = LinearImage(frame), LinearImage(frame, region=region, buffers=buffers)
        for h, scale in zip(geometry.homography, geometry.scale, strict=True):
            levels_seen.add(pyramid_level_for_scale(scale))
            expected = warp_crop(whole, h, float(scale), side)
            np.testing.assert_array_equal(warp_crop(part, h, float(scale), side), expected)
    assert levels_seen == {0, 1, 2}


def test_source_region_is_small_for_small_people_and_whole_when_needed():
    k = np.array([[900.0, 0, 640], [0, 900, 360], [0, 0, 1]])
    geometry = crop_geometry([[600.0, 300, 60, 150]] * 5, k, 256, tta_augmentations(5))
    x0, y0, x1, y1 = source_region(geometry.homography, geometry.scale, 256, (1280, 720))
    # the 5 crops read around the box only: the widest is 150 / 0.8 = 187.5 px square turned by
    # 25 degrees, 187.5 * (cos 25 + sin 25) = 249 px across, plus margins and alignment
    assert x0 <= 630 - 124 and x1 >= 630 + 124 and y0 <= 375 - 124 and y1 >= 375 + 124
    assert x1 - x0 <= 249 + 16 and y1 - y0 <= 249 + 16
    assert source_region(geometry.homography[:0], geometry.scale[:0], 256, (1280, 720)) == (
        0, 0, 0, 0,
    )  # fmt: skip
    # a crop wider than 180 degrees reaches the horizon: the whole frame
    wide = crop_geometry([[-5000.0, -5000, 11280, 10720]], k, 256)
    assert source_region(wide.homography, wide.scale, 256, (1280, 720)) == (0, 0, 1280, 720)
    # a box beyond the frame edge: the region stops at the frame
    edge = crop_geometry([[1200.0, 600, 200, 300]], k, 256)
    assert source_region(edge.homography, edge.scale, 256, (1280, 720))[2:] == (1280, 720)
    with pytest.raises(CropError, match="multiples of 4"):
        LinearImage(np.zeros((720, 1280, 3), np.uint8), region=(2, 0, 100, 100))


def test_gamma_encoding_round_trips_with_gamma_one():
    frame = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    geometry = crop_geometry([[0.0, 0, 16, 16]], [[16.0, 0, 8], [0, 16, 8], [0, 0, 1]], 16)
    crop = make_crops(frame, geometry)[0].transpose(1, 2, 0)
    np.testing.assert_allclose(crop[1:-1, 1:-1] * 255, frame[1:-1, 1:-1], atol=1e-3)
    darker = crop_geometry(
        [[0.0, 0, 16, 16]], [[16.0, 0, 8], [0, 16, 8], [0, 0, 1]], 16, Augmentation(gamma=0.6)
    )
    crop06 = make_crops(frame, darker)[0].transpose(1, 2, 0)
    np.testing.assert_allclose(crop06[1:-1, 1:-1], (frame[1:-1, 1:-1] / 255.0) ** 0.6, atol=1e-5)


def test_look_at_rotation_handles_forward_along_up():
    forward = np.array([[0.0, -1.0, 0.0], [0.0, 2.0, 0.0], [0.3, -0.4, 0.0], [0.0, 0.0, 5.0]])
    r = look_at_rotation(forward, (0.0, -1.0, 0.0))
    np.testing.assert_allclose(
        r @ np.swapaxes(r, 1, 2), np.broadcast_to(np.eye(3), r.shape), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(r), 1.0)
    np.testing.assert_allclose(r[:, 2], forward / np.linalg.norm(forward, axis=1, keepdims=True))
    np.testing.assert_allclose(r[3], np.eye(3), atol=1e-12)
    tilted = look_at_rotation(np.array([[0.3, -1.0, 0.2]]), (0.3, -1.0, 0.2))
    np.testing.assert_allclose(tilted[0] @ tilted[0].T, np.eye(3), atol=1e-12)


@pytest.mark.parametrize(
    "boxes, message",
    [
        ([[0.0, 0, 0, 10]], "positive width"),
        ([[np.nan, 0, 10, 10]], "finite"),
        ([0.0, 0, 10, 10], r"\(N, 4\)"),
    ],
)
def test_bad_boxes_are_refused_with_a_clear_message(boxes, message):
    with pytest.raises(CropError, match=message):
        crop_geometry(boxes, np.eye(3), 64)


def test_bad_intrinsics_and_augmentations_are_refused():
    with pytest.raises(CropError, match="invertible"):
        crop_geometry([[0.0, 0, 10, 10]], np.zeros((3, 3)), 64)
    with pytest.raises(CropError, match="one per box"):
        crop_geometry([[0.0, 0, 10, 10]], np.eye(3), 64, [Augmentation(), Augmentation()])
    with pytest.raises(CropError, match="at least 1"):
        tta_augmentations(0)
    with pytest.raises(CropError, match="uint8"):
        LinearImage(np.zeros((4, 4, 3), np.float32))
