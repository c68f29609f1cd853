"""Synthetic images and videos of people with exact ground truth, deterministic by seed.

A person is an articulated figure of capsules and ellipsoids hung on the ``smpl+head_30`` joints
(so the ground truth is the joints the figure was built around), with varied proportions, girth,
skin, hair and clothing. Scenes have a textured floor, a procedural background (gradients,
multi-scale noise, stripes, checks, clutter), 1–3 people that occlude each other, a light, and a
true pinhole camera with random intrinsics, 2–10 m from the main person, at varied heights, tilts
and rolls; people may be cut by the image border. Rendering is exact ray casting
(:mod:`.raycast`), OpenCV only for texture synthesis, blur and video writing.

Ground truth: joints in the camera frame (OpenCV axes, millimetres) and their pixel projections,
in the trajectory contract's skeleton. Images are uint8 BGR (OpenCV's order).
"""

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from retarget.contract import write_trajectory

from ...camera import intrinsics_from_fov, look_at, project
from . import motion as motion_module
from .clip import motions_to_trajectory
from .poses import axis_angle_matrix, random_bone_scales, random_pose, scale_bones, yaw_matrix
from .raycast import Capsule, Ellipsoid, Material, ZBuffer, draw, draw_ground, shade

logger = logging.getLogger(__name__)

SKELETON = motion_module.SKELETON
_IDX = SKELETON.index


class RenderError(ValueError):
    """Bad rendering parameters (the message says which and what is allowed)."""


# ----------------------------------------------------------------------------------- appearance


@dataclass(frozen=True)
class Appearance:
    """How one person looks. Colours are RGB in [0, 1]; ``girth`` scales all body radii,
    ``belly`` (0–1) the front of the abdomen."""

    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    hair_style: str  # "short", "long" or "none"
    shirt: tuple[float, float, float]
    shirt_stripes: tuple[float, float, float] | None
    sleeves: str  # "long", "short" or "none"
    trousers: tuple[float, float, float]
    legs: str  # "long" or "shorts"
    shoes: tuple[float, float, float]
    girth: float
    belly: float


def _hsv_colour(rng: np.random.Generator, sat: tuple, val: tuple) -> tuple[float, float, float]:
    hsv = np.uint8([[[rng.uniform(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]])
    return tuple(float(c) / 255 for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def random_appearance(rng: np.random.Generator) -> Appearance:
    """A random person's look: clothing of any colour, plausible skin and hair tones."""
    tone = rng.uniform()
    skin = tuple(
        float(c)
        for c in np.array([0.95, 0.78, 0.66]) * (1 - tone) + np.array([0.36, 0.22, 0.14]) * tone
    )
    hair = tuple(float(c) for c in rng.choice([[0.1, 0.07, 0.05], [0.35, 0.22, 0.1],
                                               [0.75, 0.6, 0.35], [0.55, 0.55, 0.55]]) * rng.uniform(0.7, 1.1))  # fmt: skip
    shirt = _hsv_colour(rng, (0.0, 0.9), (0.15, 0.95))
    stripes = _hsv_colour(rng, (0.0, 0.9), (0.15, 0.95)) if rng.uniform() < 0.25 else None
    return Appearance(
        skin=skin,
        hair=tuple(min(c, 1.0) for c in hair),
        hair_style=str(rng.choice(["short", "long", "none"], p=[0.6, 0.3, 0.1])),
        shirt=shirt,
        shirt_stripes=stripes,
        sleeves=str(rng.choice(["long", "short", "none"], p=[0.5, 0.4, 0.1])),
        trousers=_hsv_colour(rng, (0.0, 0.8), (0.1, 0.85)),
        legs=str(rng.choice(["long", "shorts"], p=[0.75, 0.25])),
        shoes=_hsv_colour(rng, (0.0, 0.6), (0.05, 0.9)),
        girth=float(rng.uniform(0.8, 1.3)),
        belly=float(rng.uniform(0.0, 1.0) ** 2),
    )


# -------------------------------------------------------------------------------------- figure


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _frame(up: np.ndarray, lateral: np.ndarray) -> np.ndarray:
    """Orthonormal axes (3, 3), columns: lateral (person's right), forward, up."""
    up = _unit(up)
    lateral = _unit(lateral - (lateral @ up) * up)
    return np.stack([lateral, np.cross(up, lateral), up], axis=1)


def _segment_ellipsoid(
    a: np.ndarray, b: np.ndarray, radius: float, material: Material, owner: int, bulge: float = 1.0
) -> Ellipsoid:
    """An ellipsoid spanning the segment a–b (a muscle belly), ``radius`` metres thick."""
    axis = b - a
    length = float(np.linalg.norm(axis))
    helper = np.array([1.0, 0, 0]) if abs(axis[0]) < 0.9 * length else np.array([0, 1.0, 0])
    axes = _frame(axis, helper)
    return Ellipsoid(
        0.5 * (a + b),
        axes,
        np.array([radius * bulge, radius * bulge, 0.5 * length]),
        material,
        owner,
    )


def figure_primitives(
    joints: np.ndarray, look: Appearance, height_m: float, owner: int
) -> list[Capsule | Ellipsoid]:
    """Capsules and ellipsoids of a person whose joints (J, 3) are camera-frame metres."""
    j = {name: joints[_IDX(name)] for name in SKELETON.joint_names}
    k = look.girth * height_m / 1.75  # radius scale
    s = height_m / 1.75  # length scale
    torso_frame = _frame(j["neck"] - j["pelv"], j["rsho"] - j["lsho"])
    up = torso_frame[:, 2]
    shirt = Material(look.shirt, look.shirt_stripes, tuple(up), 0.08 * s)
    skin = Material(look.skin, shininess=0.08)
    trousers = Material(look.trousers)
    hair = Material(look.hair, shininess=0.15)
    shoes = Material(look.shoes, shininess=0.2)
    dark = Material((0.06, 0.05, 0.05))
    prims: list[Capsule | Ellipsoid] = []

    # Trunk: pelvis, abdomen, chest, shoulder line, neck.
    hips = _frame(j["bell"] - j["pelv"], j["rhip"] - j["lhip"])
    hip_half = 0.5 * float(np.linalg.norm(j["rhip"] - j["lhip"]))
    pelvis_centre = (j["pelv"] + j["lhip"] + j["rhip"]) / 3
    prims.append(Ellipsoid(pelvis_centre, hips, np.array([hip_half + 0.075 * k, 0.105 * k, 0.12 * s]), trousers, owner))  # fmt: skip
    belly_centre = 0.5 * (j["bell"] + j["spin"]) + torso_frame[:, 1] * 0.015 * k * look.belly
    prims.append(Ellipsoid(belly_centre, torso_frame, np.array([0.14 * k, (0.1 + 0.04 * look.belly) * k, 0.13 * s]), shirt, owner))  # fmt: skip
    shoulder_half = 0.5 * float(np.linalg.norm(j["rsho"] - j["lsho"]))
    chest_centre = 0.5 * (j["spin"] + j["neck"]) * 0.6 + 0.4 * j["thor"]
    prims.append(Ellipsoid(chest_centre, torso_frame, np.array([0.7 * shoulder_half + 0.05 * k, 0.105 * k, 0.17 * s]), shirt, owner))  # fmt: skip
    prims.append(Capsule(j["lsho"], j["rsho"], 0.055 * k, shirt, owner))
    prims.append(Capsule(j["neck"] - up * 0.03 * s, j["head"], 0.048 * k, skin, owner))

    # Head: skull, hair, ears, eyes, nose.
    head = _frame(j["htop"] - j["head"], j["rear"] - j["lear"])
    fwd, hup = head[:, 1], head[:, 2]
    skull = 0.5 * (j["lear"] + j["rear"]) + hup * 0.01 * s
    prims.append(Ellipsoid(skull, head, np.array([0.078, 0.1, 0.115]) * s, skin, owner))
    if look.hair_style != "none":
        cap = skull - fwd * 0.03 * s + hup * 0.018 * s
        prims.append(Ellipsoid(cap, head, np.array([0.084, 0.097, 0.112]) * s, hair, owner))
    if look.hair_style == "long":
        prims.append(Ellipsoid(skull - fwd * 0.05 * s - hup * 0.08 * s, head, np.array([0.08, 0.05, 0.12]) * s, hair, owner))  # fmt: skip
    for ear in ("lear", "rear"):
        prims.append(Ellipsoid(j[ear], head, np.array([0.012, 0.025, 0.032]) * s, skin, owner))
    for eye in ("leye", "reye"):
        prims.append(Ellipsoid(j[eye] + fwd * 0.004 * s, head, np.array([0.014, 0.01, 0.009]) * s, dark, owner))  # fmt: skip
    prims.append(Ellipsoid(j["nose"] - fwd * 0.01 * s - hup * 0.01 * s, head, np.array([0.013, 0.022, 0.025]) * s, skin, owner))  # fmt: skip

    # Arms.
    for side in "lr":
        sho, elb, wri, han = (j[side + n] for n in ("sho", "elb", "wri", "han"))
        arm_skin = look.sleeves == "none"
        upper = skin if arm_skin else shirt
        prims.append(_segment_ellipsoid(sho, elb, 0.047 * k, upper, owner, bulge=1.1))
        prims.append(Capsule(sho, elb, 0.04 * k, upper, owner))
        if look.sleeves == "short":
            prims.append(Capsule(sho, 0.45 * sho + 0.55 * elb, 0.05 * k, shirt, owner))
            prims[-2] = Capsule(sho, elb, 0.04 * k, skin, owner)
            prims[-3] = _segment_ellipsoid(sho, elb, 0.047 * k, skin, owner, bulge=1.1)
        lower = shirt if look.sleeves == "long" else skin
        prims.append(Capsule(elb, wri, 0.034 * k, lower, owner))
        prims.append(_segment_ellipsoid(elb, wri, 0.04 * k, lower, owner, bulge=1.0))
        hand_axes = _segment_ellipsoid(wri, han + (han - wri) * 0.3, 1.0, skin, owner).axes
        prims.append(Ellipsoid(0.4 * wri + 0.6 * han, hand_axes, np.array([0.042 * k, 0.02 * k, 0.065 * s]), skin, owner))  # fmt: skip

    # Legs and feet.
    for side in "lr":
        hip, kne, ank, toe = (j[side + n] for n in ("hip", "kne", "ank", "toe"))
        prims.append(_segment_ellipsoid(hip, kne, 0.078 * k, trousers, owner, bulge=1.05))
        prims.append(Capsule(hip, kne, 0.062 * k, trousers, owner))
        shin = trousers if look.legs == "long" else skin
        prims.append(Capsule(kne, ank, 0.047 * k, shin, owner))
        prims.append(_segment_ellipsoid(kne, 0.35 * kne + 0.65 * ank, 0.058 * k, shin, owner))
        if look.legs == "shorts":
            prims.append(Capsule(kne + (hip - kne) * 0.35, kne + (hip - kne) * 0.9, 0.07 * k, trousers, owner))  # fmt: skip
        foot_dir = _unit(toe - ank)
        heel = ank - foot_dir * 0.05 * s - up * 0.045 * s
        prims.append(_segment_ellipsoid(heel, toe + foot_dir * 0.03 * s, 0.048 * k, shoes, owner))
        prims.append(Capsule(ank - up * 0.02 * s, ank, 0.045 * k, shin, owner))
    return prims


# --------------------------------------------------------------------------------- backgrounds


def _noise(rng: np.random.Generator, width: int, height: int, octaves: int = 5) -> np.ndarray:
    """Multi-scale value noise (H, W) in [0, 1]."""
    total = np.zeros((height, width))
    amplitude = 1.0
    for octave in range(octaves):
        cells = 2 ** (octave + 1)
        small = rng.uniform(size=(cells + 1, cells + 1))
        total += amplitude * cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        amplitude *= rng.uniform(0.4, 0.7)
    total -= total.min()
    return total / max(total.max(), 1e-9)


def random_texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A procedural texture (H, W, 3) RGB in [0, 1]: gradient, noise, stripes, checks or clutter."""
    kind = rng.choice(["gradient", "noise", "stripes", "checks", "clutter"])
    c1, c2 = (np.array(_hsv_colour(rng, (0, 0.7), (0.1, 0.95))) for _ in range(2))
    if kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        u, v = np.meshgrid(np.linspace(0, 1, width), np.linspace(0, 1, height))
        t = np.clip(np.cos(angle) * u + np.sin(angle) * v, 0, 1)
        t = (t - t.min()) / max(np.ptp(t), 1e-9)
    elif kind == "noise":
        t = _noise(rng, width, height)
    elif kind == "stripes":
        period = rng.uniform(6, 60)
        angle = rng.uniform(0, np.pi)
        u, v = np.meshgrid(np.arange(width), np.arange(height))
        t = (np.sin((np.cos(angle) * u + np.sin(angle) * v) * 2 * np.pi / period) > 0).astype(float)
    elif kind == "checks":
        cell = int(rng.integers(6, 50))
        u, v = np.meshgrid(np.arange(width) // cell, np.arange(height) // cell)
        t = ((u + v) % 2).astype(float)
    else:
        canvas = np.ones((height, width, 3)) * c1
        for _ in range(int(rng.integers(5, 30))):
            colour = tuple(float(c) for c in _hsv_colour(rng, (0, 0.9), (0.05, 1.0)))
            x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
            size = int(rng.integers(3, max(4, min(width, height) // 3)))
            shape = rng.integers(3)
            if shape == 0:
                cv2.rectangle(
                    canvas, (x, y), (x + size, y + int(rng.integers(3, size + 4))), colour, -1
                )
            elif shape == 1:
                cv2.circle(canvas, (x, y), size // 2, colour, -1)
            else:
                end = (int(rng.integers(0, width)), int(rng.integers(0, height)))
                cv2.line(canvas, (x, y), end, colour, int(rng.integers(1, 8)))
        return canvas
    texture = c1 * (1 - t[..., None]) + c2 * t[..., None]
    if rng.uniform() < 0.5:  # grain on top of any pattern
        texture *= 0.85 + 0.3 * _noise(rng, width, height)[..., None]
    return np.clip(texture, 0, 1)


# --------------------------------------------------------------------------------------- scenes


@dataclass(frozen=True)
class SceneConfig:
    """Ranges the random scenes are drawn from (uniform unless said otherwise)."""

    # (width, height) choices of the image, pixels
    image_sizes: tuple[tuple[int, int], ...] = (
        (384, 288), (448, 336), (512, 384), (384, 384), (288, 384), (512, 288),
    )  # fmt: skip
    fov_deg: tuple[float, float] = (40.0, 75.0)  # on the longer image side
    distance_m: tuple[float, float] = (2.0, 10.0)  # camera to the main person, horizontally
    camera_height_m: tuple[float, float] = (0.3, 3.0)
    roll_deg: float = 8.0  # camera roll, normal std
    truncation_prob: float = 0.15  # chance of aiming so that the main person crosses the border
    extra_people: tuple[int, ...] = (0, 0, 1, 1, 2)  # drawn uniformly: people besides the main one
    motion_frame_prob: float = 0.5  # chance of a pose from the motion generator (else random)
    motion_kinds: tuple[str, ...] = ("walk", "run")  # kinds drawn from; () = all it offers
    person_height_m: tuple[float, float] = (1.5, 1.95)
    floor_prob: float = 0.8
    occluder_prob: float = 0.3  # chance that an extra person stands between camera and main person
    # Render only a square window around the main person, ``window_scale`` times its joints' box,
    # clipped to the frame and resampled to at most ``window_max_side`` pixels (0 = whole frame).
    # The window is a pinhole image of its own (shifted and scaled intrinsics), so training crops
    # from it are exactly the crops of the full frame, at a fraction of the rendering cost.
    window_scale: float = 0.0
    window_max_side: int = 256


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: ``intrinsics`` (3, 3) pixels, ``world_from_camera`` (4, 4) metres, Z-up
    world, ``image_size`` (width, height)."""

    intrinsics: np.ndarray
    world_from_camera: np.ndarray
    image_size: tuple[int, int]


@dataclass
class RenderedFrame:
    """One rendered image with ground truth for its ``P`` people.

    ``image`` (H, W, 3) uint8 BGR; ``joints3d`` (P, J, 3) camera-frame mm; ``joints2d`` (P, J, 2)
    pixels; ``boxes`` (P, 4) x, y, w, h pixels of each person's visible pixels (NaN if none);
    ``visible_fraction`` (P,) visible share of the person's in-image pixels; ``in_image_fraction``
    (P,) share of joints that project inside the image; ``owner`` (H, W) int16 the person seen at
    each pixel (-1 = none); ``person_heights_m`` (P,). Person 0 is the main person.
    """

    image: np.ndarray
    camera: Camera
    joints3d: np.ndarray
    joints2d: np.ndarray
    boxes: np.ndarray
    visible_fraction: np.ndarray
    in_image_fraction: np.ndarray
    owner: np.ndarray
    person_heights_m: np.ndarray = field(default_factory=lambda: np.zeros(0))


def available_motion_kinds() -> tuple[str, ...]:
    """Motion kinds the motion generator offers (:data:`inference.training.synth.motion.KINDS`)."""
    return tuple(motion_module.KINDS)


def _motion_pose(rng: np.random.Generator, height_m: float, kinds: tuple[str, ...]) -> np.ndarray:
    """Joints (J, 3) world metres of a random frame of a random generated motion of one of
    ``kinds`` (all the generator offers when empty), facing +Y at the origin."""
    kinds = kinds or available_motion_kinds()
    kind = str(kinds[int(rng.integers(len(kinds)))])
    motion = motion_module.generate_motion(
        kind, duration_s=2.0, fps=15.0, seed=int(rng.integers(2**31)), height_m=height_m
    )
    frame = motion.joints[int(rng.integers(len(motion.joints)))]
    pelvis = frame[_IDX("pelv")]
    return frame - np.array([pelvis[0], pelvis[1], 0.0])


def random_person_pose(
    rng: np.random.Generator, config: SceneConfig, height_m: float
) -> np.ndarray:
    """Joints (J, 3) world metres: a motion frame or a random pose, with varied proportions, the
    pelvis above the origin, the lowest joint on the floor, facing +Y."""
    if rng.uniform() < config.motion_frame_prob:
        joints = _motion_pose(rng, height_m, config.motion_kinds)
        # Motions face their own heading; put the pelvis-to-hips frame back to facing +Y.
        lateral = joints[_IDX("rhip")] - joints[_IDX("lhip")]
        heading = np.degrees(np.arctan2(lateral[1], lateral[0]))
        joints = joints @ yaw_matrix(-heading).T
    else:
        joints = random_pose(rng, height_m)
    joints = scale_bones(joints, random_bone_scales(rng))
    joints -= np.array([joints[0, 0], joints[0, 1], 0.0])
    joints[:, 2] -= joints[:, 2].min() - 0.02 * height_m / 1.75
    return joints


def _aim_camera(
    rng: np.random.Generator, config: SceneConfig, target: np.ndarray, fov_deg: float, size: tuple
) -> np.ndarray:
    """``world_from_camera`` of a camera around ``target`` (world metres), aimed near it."""
    distance = rng.uniform(*config.distance_m)
    azimuth = rng.uniform(0, 2 * np.pi)
    eye = target + distance * np.array([np.cos(azimuth), np.sin(azimuth), 0.0])
    eye[2] = rng.uniform(*config.camera_height_m)
    pose = look_at(eye, target)
    # Aim off the person: up to ~35 % of the half field of view, more when truncating on purpose.
    width, height = size
    half_fov_x = np.degrees(np.arctan(np.tan(np.radians(fov_deg) / 2) * width / max(size)))
    half_fov_y = np.degrees(np.arctan(np.tan(np.radians(fov_deg) / 2) * height / max(size)))
    reach = 1.0 if rng.uniform() < config.truncation_prob else 0.35
    yaw = rng.uniform(-reach, reach) * half_fov_x
    pitch = rng.uniform(-reach, reach) * half_fov_y
    roll = rng.normal(0, config.roll_deg)
    turn = (
        axis_angle_matrix(np.array([0, 1.0, 0]), yaw)
        @ axis_angle_matrix(np.array([1.0, 0, 0]), pitch)
        @ axis_angle_matrix(np.array([0, 0, 1.0]), roll)
    )
    pose[:3, :3] = pose[:3, :3] @ turn
    return pose


def _to_camera(points_world: np.ndarray, world_from_camera: np.ndarray) -> np.ndarray:
    """World metres (..., 3) -> camera-frame metres (..., 3)."""
    return (points_world - world_from_camera[:3, 3]) @ world_from_camera[:3, :3]


@dataclass(frozen=True)
class _Scenery:
    """Everything about a scene that is not a person: camera, light and surroundings."""

    camera: Camera
    background: np.ndarray  # (H, W, 3) RGB in [0, 1]
    floor_texture: np.ndarray | None  # (h, w, 3) RGB, None = no floor
    metres_per_texel: float
    floor_distance_m: float
    light_dir: np.ndarray  # (3,) camera frame, towards the light
    ambient: float
    blur_sigma: float
    noise_sigma: float


def _random_scenery(rng: np.random.Generator, config: SceneConfig, camera: Camera) -> _Scenery:
    width, height = camera.image_size
    background = random_texture(rng, width, height)
    floor = None
    if rng.uniform() < config.floor_prob:
        floor = random_texture(rng, 128, 128)
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1.5, -0.2), rng.uniform(-1.5, -0.2)])
    return _Scenery(
        camera=camera,
        background=background,
        floor_texture=floor,
        metres_per_texel=float(rng.uniform(0.004, 0.03)),
        floor_distance_m=float(rng.uniform(12, 40)),
        light_dir=light / np.linalg.norm(light),
        ambient=float(rng.uniform(0.25, 0.6)),
        blur_sigma=float(rng.uniform(0.0, 0.9)),
        noise_sigma=float(rng.uniform(0.0, 0.03)),
    )


def _render(
    scenery: _Scenery,
    people_world: list[np.ndarray],
    looks: list[Appearance],
    heights: list[float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, ZBuffer]:
    """Image (H, W, 3) uint8 BGR and the z-buffer of people (J, 3 world metres each)."""
    camera = scenery.camera
    width, height = camera.image_size
    zbuffer = ZBuffer.empty(width, height, camera.intrinsics)
    for person, (joints, look, height_m) in enumerate(
        zip(people_world, looks, heights, strict=True)
    ):
        joints_cam = _to_camera(joints, camera.world_from_camera)
        for primitive in figure_primitives(joints_cam, look, height_m, owner=person):
            draw(zbuffer, primitive)
    floor_xy = None
    if scenery.floor_texture is not None:
        floor_xy = draw_ground(
            zbuffer,
            camera.world_from_camera,
            scenery.floor_texture,
            scenery.metres_per_texel,
            scenery.floor_distance_m,
        )
    rgb = shade(zbuffer, scenery.background, scenery.light_dir, scenery.ambient)
    if floor_xy is not None:  # soft contact shadows under each person
        on_floor = np.isfinite(floor_xy[..., 0])
        for joints, height_m in zip(people_world, heights, strict=True):
            centre = joints[:, :2].mean(axis=0)
            spread = 0.25 * height_m / 1.75 + 0.5 * float(np.ptp(joints[:, :2], axis=0).max())
            d2 = np.sum((floor_xy[on_floor] - centre) ** 2, axis=1)
            rgb[on_floor] *= (1 - 0.45 * np.exp(-d2 / (2 * (0.5 * spread) ** 2)))[:, None]
    if scenery.blur_sigma > 0.2:
        rgb = cv2.GaussianBlur(rgb, (0, 0), scenery.blur_sigma)
    rgb = rgb + rng.normal(0, scenery.noise_sigma, rgb.shape)
    image = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR), zbuffer


def _ground_truth(
    people_world: list[np.ndarray], camera: Camera, zbuffer: ZBuffer
) -> dict[str, np.ndarray]:
    width, height = camera.image_size
    joints3d = np.stack([_to_camera(p, camera.world_from_camera) for p in people_world]) * 1000
    joints2d = project(joints3d, camera.intrinsics)
    inside = (
        (joints2d[..., 0] >= 0) & (joints2d[..., 0] < width)
        & (joints2d[..., 1] >= 0) & (joints2d[..., 1] < height)
    )  # fmt: skip
    boxes = np.full((len(people_world), 4), np.nan)
    visible = np.zeros(len(people_world))
    for person in range(len(people_world)):
        mask = zbuffer.owner == person
        if np.any(mask):
            rows, cols = np.nonzero(mask)
            boxes[person] = [cols.min(), rows.min(), np.ptp(cols) + 1, np.ptp(rows) + 1]
            coverage = zbuffer.coverage.get(person)
            visible[person] = mask.sum() / max(int(coverage.sum()), 1)
    return {
        "joints3d": joints3d.astype(np.float32),
        "joints2d": joints2d.astype(np.float32),
        "boxes": boxes.astype(np.float32),
        "visible_fraction": visible.astype(np.float32),
        "in_image_fraction": inside.mean(axis=1).astype(np.float32),
        "owner": zbuffer.owner.astype(np.int16),
    }


def _random_camera(rng: np.random.Generator, config: SceneConfig, target: np.ndarray) -> Camera:
    width, height = config.image_sizes[int(rng.integers(len(config.image_sizes)))]
    fov = float(rng.uniform(*config.fov_deg))
    intrinsics = intrinsics_from_fov(fov, (width, height))
    intrinsics[:2, 2] += rng.normal(0, 0.02, 2) * np.array([width, height])  # off-centre axis
    pose = _aim_camera(rng, config, target, fov, (width, height))
    return Camera(intrinsics, pose, (width, height))


def _place_extra_person(
    rng: np.random.Generator,
    camera: Camera,
    taken_xy: list[np.ndarray],
    occluder_prob: float,
) -> np.ndarray | None:
    """A floor position (2,) in front of the camera, away from other people, or None. With
    ``occluder_prob`` it is near the line of sight to the main person (``taken_xy[0]``)."""
    eye = camera.world_from_camera[:3, 3]
    forward = camera.world_from_camera[:3, 2]
    heading = np.arctan2(forward[1], forward[0])
    occluding = rng.uniform() < occluder_prob
    for _ in range(20):
        if occluding:
            sight = taken_xy[0] - eye[:2]
            across = np.array([-sight[1], sight[0]]) / max(float(np.linalg.norm(sight)), 1e-9)
            xy = eye[:2] + rng.uniform(0.3, 0.8) * sight + rng.uniform(-0.6, 0.6) * across
        else:
            angle = heading + rng.uniform(-0.6, 0.6)
            xy = eye[:2] + rng.uniform(1.5, 12.0) * np.array([np.cos(angle), np.sin(angle)])
        far_from_eye = np.linalg.norm(xy - eye[:2]) > 1.0
        if far_from_eye and all(np.linalg.norm(xy - other) > 0.6 for other in taken_xy):
            return xy
    return None


def _person_window(camera: Camera, joints_world: np.ndarray, config: SceneConfig) -> Camera:
    """The camera of a square window around a person (see ``SceneConfig.window_scale``)."""
    width, height = camera.image_size
    pixels = project(_to_camera(joints_world, camera.world_from_camera), camera.intrinsics)
    low, high = pixels.min(axis=0), pixels.max(axis=0)
    centre, side = 0.5 * (low + high), config.window_scale * float(np.max(high - low))
    x0, y0 = np.floor(np.maximum(centre - side / 2, 0)).astype(int)
    x1, y1 = np.ceil(np.minimum(centre + side / 2, [width, height])).astype(int)
    x1, y1 = max(x1, x0 + 16), max(y1, y0 + 16)  # a person off screen still gets a small window
    scale = min(1.0, config.window_max_side / max(x1 - x0, y1 - y0))
    intrinsics = camera.intrinsics.copy()
    intrinsics[:2, 2] -= [x0, y0]
    # Pixel centres sit at integer coordinates: u' + 0.5 = scale * (u + 0.5).
    intrinsics[:2] *= scale
    intrinsics[:2, 2] += 0.5 * scale - 0.5
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    return Camera(intrinsics, camera.world_from_camera, size)


def render_frame(seed: int, config: SceneConfig = SceneConfig()) -> RenderedFrame:
    """One random training image with ground truth; the same seed gives the same frame."""
    rng = np.random.default_rng(seed)
    heights = [float(rng.uniform(*config.person_height_m))]
    main = random_person_pose(rng, config, heights[0]) @ yaw_matrix(rng.uniform(0, 360)).T
    target = main.mean(axis=0) + rng.normal(0, 0.1, 3)
    camera = _random_camera(rng, config, target)
    people = [main]
    for _ in range(int(rng.choice(config.extra_people))):
        taken = [p[0, :2] for p in people]
        xy = _place_extra_person(rng, camera, taken, config.occluder_prob)
        if xy is None:
            continue
        heights.append(float(rng.uniform(*config.person_height_m)))
        pose = random_person_pose(rng, config, heights[-1]) @ yaw_matrix(rng.uniform(0, 360)).T
        people.append(pose + np.array([xy[0], xy[1], 0.0]))
    if config.window_scale > 0:
        camera = _person_window(camera, main, config)
    looks = [random_appearance(rng) for _ in people]
    scenery = _random_scenery(rng, config, camera)
    image, zbuffer = _render(scenery, people, looks, heights, rng)
    truth = _ground_truth(people, camera, zbuffer)
    return RenderedFrame(image=image, camera=camera, person_heights_m=np.array(heights), **truth)


# ---------------------------------------------------------------------------------------- clips


@dataclass(frozen=True)
class ClipConfig:
    """A short video of 1–2 people moving in front of a fixed camera."""

    num_people: int = 1
    duration_s: float = 3.0
    fps: float = 30.0
    image_size: tuple[int, int] = (640, 360)
    fov_deg: float = 55.0
    distance_m: tuple[float, float] = (4.0, 7.0)  # camera to the people's mean position
    camera_height_m: tuple[float, float] = (0.9, 1.8)
    kinds: tuple[str, ...] = ()  # motion kinds to draw from; empty = all the generator offers


def _clip_motions(
    rng: np.random.Generator, config: ClipConfig
) -> tuple[list[motion_module.Motion], float]:
    """Motions of the clip's people and their walking direction (degrees, 0 = +Y): people side
    by side in lanes 1.2 m apart (alternate people walk the opposite way), each centred on its
    lane over the clip."""
    kinds = config.kinds or available_motion_kinds()
    line = rng.uniform(0, 360)
    side = np.array([np.cos(np.radians(line)), np.sin(np.radians(line))])  # across the lanes
    motions = []
    for person in range(config.num_people):
        kind = str(kinds[int(rng.integers(len(kinds)))])
        motion = motion_module.generate_motion(
            kind,
            duration_s=config.duration_s,
            fps=config.fps,
            seed=int(rng.integers(2**31)),
            height_m=float(rng.uniform(1.55, 1.9)),
            heading_deg=float(line + (180.0 if person % 2 else 0.0) + rng.uniform(-15, 15)),
            turn_deg_per_s=float(rng.uniform(-10, 10)),
        )
        lane = 1.2 * (person - 0.5 * (config.num_people - 1)) * side
        shift = lane - motion.joints[:, 0, :2].mean(axis=0)
        joints = motion.joints + np.array([shift[0], shift[1], 0.0])
        motions.append(dataclasses.replace(motion, joints=joints))
    return motions, float(line)


def _clip_camera(
    rng: np.random.Generator,
    config: ClipConfig,
    motions: list[motion_module.Motion],
    walking_deg: float,
    intrinsics: np.ndarray,
) -> np.ndarray:
    """``world_from_camera`` of a fixed camera that keeps every joint of every frame in view
    (moving back from the drawn distance in 0.5 m steps, up to 20 m, when needed). It looks along
    the walking direction ±40° (either way), so side-by-side lanes stay apart in the image."""
    everything = np.concatenate([m.joints.reshape(-1, 3) for m in motions])
    centre = 0.5 * (everything.min(axis=0) + everything.max(axis=0))
    # Heading 0 walks along +Y; the camera sits ahead of or behind the walkers.
    azimuth = np.radians(walking_deg + 90 + rng.uniform(-40, 40) + 180 * rng.integers(2))
    eye_height = rng.uniform(*config.camera_height_m)
    width, height = config.image_size
    distance = rng.uniform(*config.distance_m)
    while True:
        eye = centre + distance * np.array([np.cos(azimuth), np.sin(azimuth), 0.0])
        eye[2] = eye_height
        pose = look_at(eye, np.array([centre[0], centre[1], 0.9]))
        cam = _to_camera(everything, pose)
        pixels = project(cam, intrinsics)
        margin = 0.03 * width
        fits = np.all(cam[:, 2] > 0.5) and np.all(
            (pixels >= margin) & (pixels <= np.array([width, height]) - margin)
        )
        if fits or distance >= 20.0:
            return pose
        distance += 0.5


def render_clip(
    video_path: str | Path, truth_path: str | Path, seed: int, config: ClipConfig = ClipConfig()
) -> Path:
    """Render a clip to ``video_path`` (mp4v) and its exact trajectory to ``truth_path`` (the
    contract ``.npz``). Its extras: ``world_from_camera`` (4, 4), ``person_heights_m`` (P,),
    ``visible_boxes`` (T, P, 4) x, y, w, h of each person's visible pixels (NaN when hidden) and
    ``visible_fraction`` (T, P). The camera is the one
    :func:`inference.camera.intrinsics_from_fov` gives for ``config.fov_deg``. Returns
    ``truth_path``."""
    if not 1 <= config.num_people <= 4:
        raise RenderError(f"num_people must be 1..4, got {config.num_people}")
    rng = np.random.default_rng(seed)
    motions, walking_deg = _clip_motions(rng, config)
    heights = [float(m.joints[0, _IDX("htop"), 2] - m.joints[0, :, 2].min()) for m in motions]
    intrinsics = intrinsics_from_fov(config.fov_deg, config.image_size)
    pose = _clip_camera(rng, config, motions, walking_deg, intrinsics)
    camera = Camera(intrinsics, pose, config.image_size)
    looks = [random_appearance(rng) for _ in motions]
    scenery = _random_scenery(rng, SceneConfig(floor_prob=1.0), camera)
    video_path = Path(video_path)
    video_path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(
        str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), config.fps, config.image_size
    )
    if not writer.isOpened():
        raise RenderError(f"OpenCV cannot write a video to {video_path}; use a .mp4 path")
    boxes, visible = [], []
    try:
        for t in range(len(motions[0].frame_times)):
            people = [m.joints[t] for m in motions]
            image, zbuffer = _render(scenery, people, looks, heights, rng)
            writer.write(image)
            truth = _ground_truth(people, camera, zbuffer)
            boxes.append(truth["boxes"])
            visible.append(truth["visible_fraction"])
    finally:
        writer.release()
    trajectory = motions_to_trajectory(
        motions, pose, config.image_size, config.fov_deg, source=f"synthetic clip seed {seed}"
    )
    trajectory.extras["world_from_camera"] = pose
    trajectory.extras["person_heights_m"] = np.array(heights)
    trajectory.extras["visible_boxes"] = np.array(boxes, np.float32)
    trajectory.extras["visible_fraction"] = np.array(visible, np.float32)
    logger.info("rendered %d frames to %s", trajectory.num_frames, video_path)
    return write_trajectory(truth_path, trajectory)
