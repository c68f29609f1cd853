"""Ground truth from real motion capture: the DeepMimic clips (MIT licence) as ``smpl+head_30`` motions.

``data/deepmimic_clips.npz`` holds optical motion-capture clips retargeted by the DeepMimic authors
onto their 15-body humanoid (root, chest, neck, hips, knees, ankles, shoulders, elbows, wrists),
as PyPI's ``pybullet`` wheel ships them (``data/make_mocap_clips.py`` rebuilds the file, the
licence is ``data/LICENSE-DeepMimic.txt``). :func:`mocap_motion` poses that humanoid by forward
kinematics and reads the 30 joints of our skeleton off its bodies (spine, clavicle, hand, toe and
face points at fixed places on the nearest body), so bone lengths are exact and the motion is the
recorded one: real dynamics, real contacts (with a real clip's few millimetres of foot slide).

Cyclic clips are repeated (each cycle continues from where the previous one ended, turned by the
cycle's change of heading), and a clip can be played at a varying rate: :func:`mocap_motion`'s
``rate`` ramps a run from a jog into a sprint, a dash with strong true accelerations. Sampling
between the recorded frames interpolates the joint rotations (Catmull–Rom on aligned quaternion
components, then normalised) and the root position, so the motion stays smooth at any frame rate.

Ground-truth contacts come from the motion itself: a channel (heel = ankle joint, toe = toe joint)
is planted while it is within 3 cm of its planted height and slower than 0.3 m/s, for at least
0.1 s; its clearance is its median height over those frames.

:data:`MOCAP_CASES` is the benchmark's set: a dance, a dash, a kick, a spin kick, a run, a walking
turn and a jump, each with a camera direction; :func:`make_mocap_scenario` builds one as a
:class:`~inference.training.synth.noise.Scenario` with the estimator error model of
:mod:`inference.training.synth.noise`.
"""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from retarget.rotations import quaternion_to_matrix

from .clip import motions_to_trajectory
from .motion import FOOT_CHANNELS, SKELETON, Motion
from .noise import DIRECTIONS, ErrorModel, Scenario, corrupt, scenario_camera

DATA = Path(__file__).with_name("data") / "deepmimic_clips.npz"

# DeepMimic humanoid (data/characters/humanoid3d.txt; pybullet's humanoid.urdf at scale 0.25):
# joint, parent, offset from the parent (metres, the humanoid's axes: x forward, y up, z right),
# and the column of its rotation in a frame row (4 = quaternion w x y z, 1 = angle about z).
DEEPMIMIC_JOINTS = (
    ("root", -1, (0.0, 0.0, 0.0)),
    ("chest", 0, (0.0, 0.236151, 0.0)),
    ("neck", 1, (0.0, 0.223894, 0.0)),
    ("right_hip", 0, (0.0, 0.0, 0.084887)),
    ("right_knee", 3, (0.0, -0.421546, 0.0)),
    ("right_ankle", 4, (0.0, -0.40987, 0.0)),
    ("right_shoulder", 1, (-0.02405, 0.2435, 0.18311)),
    ("right_elbow", 6, (0.0, -0.274788, 0.0)),
    ("right_wrist", 7, (0.0, -0.258947, 0.0)),
    ("left_hip", 0, (0.0, 0.0, -0.084887)),
    ("left_knee", 9, (0.0, -0.421546, 0.0)),
    ("left_ankle", 10, (0.0, -0.40987, 0.0)),
    ("left_shoulder", 1, (-0.02405, 0.2435, -0.18311)),
    ("left_elbow", 12, (0.0, -0.274788, 0.0)),
    ("left_wrist", 13, (0.0, -0.258947, 0.0)),
)
_REVOLUTE = {"right_knee", "right_elbow", "left_knee", "left_elbow"}
_FIXED = {"right_wrist", "left_wrist"}

# Our joints as points fixed on a DeepMimic body: (body, offset in the body's frame, metres).
# "-z" on the left: the humanoid's z points to its right. Foot: the sole is 5 cm below the ankle,
# the ball of the foot (SMPL's toe joint) 11 cm ahead of it.
_POINTS = {
    "pelv": ("root", (0.0, 0.06, 0.0)),
    "bell": ("root", (0.0, 0.14, 0.0)),
    "spin": ("chest", (0.0, 0.0, 0.0)),
    "thor": ("chest", (0.0, 0.07, 0.0)),
    "neck": ("neck", (0.0, 0.0, 0.0)),
    "head": ("neck", (0.02, 0.09, 0.0)),
    "htop": ("neck", (0.0, 0.275, 0.0)),
    "nose": ("neck", (0.10, 0.16, 0.0)),
    "leye": ("neck", (0.09, 0.19, -0.03)),
    "reye": ("neck", (0.09, 0.19, 0.03)),
    "lear": ("neck", (0.0, 0.18, -0.07)),
    "rear": ("neck", (0.0, 0.18, 0.07)),
    "lcla": ("chest", (-0.02, 0.19, -0.07)),
    "rcla": ("chest", (-0.02, 0.19, 0.07)),
    "lhip": ("left_hip", (0.0, 0.0, 0.0)),
    "rhip": ("right_hip", (0.0, 0.0, 0.0)),
    "lkne": ("left_knee", (0.0, 0.0, 0.0)),
    "rkne": ("right_knee", (0.0, 0.0, 0.0)),
    "lank": ("left_ankle", (0.0, 0.0, 0.0)),
    "rank": ("right_ankle", (0.0, 0.0, 0.0)),
    "ltoe": ("left_ankle", (0.11, -0.035, 0.0)),
    "rtoe": ("right_ankle", (0.11, -0.035, 0.0)),
    "lsho": ("left_shoulder", (0.0, 0.0, 0.0)),
    "rsho": ("right_shoulder", (0.0, 0.0, 0.0)),
    "lelb": ("left_elbow", (0.0, 0.0, 0.0)),
    "relb": ("right_elbow", (0.0, 0.0, 0.0)),
    "lwri": ("left_wrist", (0.0, 0.0, 0.0)),
    "rwri": ("right_wrist", (0.0, 0.0, 0.0)),
    "lhan": ("left_elbow", (0.0, -0.339, 0.0)),
    "rhan": ("right_elbow", (0.0, -0.339, 0.0)),
}
# The humanoid's axes (x forward, y up, z right) -> ours (X right, Y forward, Z up); det +1.
_TO_WORLD = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])

ESTIMATOR_ERRORS = ErrorModel()  # the default error model (bias correlation ~0.7 s, depth x3)
CONTACT_HEIGHT_M = 0.03  # ground-truth contact: within this of the planted height ...
CONTACT_SPEED_M_S = 0.3  # ... and slower than this
CONTACT_MIN_S = 0.1


def clip_names() -> tuple[str, ...]:
    """The stored clips."""
    return tuple(sorted({key.split("/")[0] for key in _clips()}))


@lru_cache(maxsize=1)
def _clips() -> dict[str, np.ndarray]:
    with np.load(DATA) as data:
        return {key: data[key] for key in data.files}


def _columns() -> list[tuple[int, int]]:
    """(first column, width) of each DeepMimic joint's rotation in a frame row."""
    out, column = [], 4
    for name, _parent, _offset in DEEPMIMIC_JOINTS:
        width = 0 if name in _FIXED else 1 if name in _REVOLUTE else 4
        out.append((column, width))
        column += width
    return out


def _quaternion_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw],
                    axis=-1)  # fmt: skip


def _heading(quaternion: np.ndarray) -> np.ndarray:
    """Yaw (radians, about the humanoid's y) of the root's forward axis."""
    forward = quaternion_to_matrix(quaternion)[..., :, 0]
    return np.arctan2(-forward[..., 2], forward[..., 0])


def _yaw_quaternion(angle: float) -> np.ndarray:
    return np.array([np.cos(angle / 2), 0.0, np.sin(angle / 2), 0.0])


def _aligned(frames: np.ndarray) -> np.ndarray:
    """``frames`` with each quaternion's sign flipped where needed to stay on one hemisphere
    along time (so that interpolating the components is interpolating the rotation)."""
    frames = frames.copy()
    for column, width in [(4, 4), *_columns()]:
        if width != 4:
            continue
        q = frames[:, column : column + 4]
        flip = np.cumprod(np.where(np.sum(q[1:] * q[:-1], axis=1) < 0, -1.0, 1.0))
        q[1:] *= flip[:, None]
    return frames


def _bridge(frames: np.ndarray, seam: int, half: int) -> None:
    """Replace frames ``seam - half .. seam + half`` (in place) by a cubic Hermite curve matching
    the values and (central-difference) velocities at both ends: a recorded loop does not close
    exactly, and its seam would be a jump no person makes."""
    a, b = seam - half, seam + half
    if a < 1 or b > len(frames) - 2:
        return
    va = 0.5 * (frames[a + 1] - frames[a - 1])
    vb = 0.5 * (frames[b + 1] - frames[b - 1])
    s = (np.arange(a, b + 1) - a)[:, None] / (b - a)
    h = b - a
    curve = ((2 * s**3 - 3 * s**2 + 1) * frames[a] + (s**3 - 2 * s**2 + s) * h * va
             + (-2 * s**3 + 3 * s**2) * frames[b] + (s**3 - s**2) * h * vb)  # fmt: skip
    curve[:, 0] = frames[a : b + 1, 0]  # frame durations stay
    frames[a : b + 1] = curve


# The run and walk clips are half a cycle followed by its mirror image, and the pose jumps where
# they meet (run: the left shoulder turns 34° in that frame step against 10-16° in the steps
# around it, the root 11° against 3-4°; walk: the left shoulder 29° against 1-4°). No person
# moves like that: the junction is bridged like a loop's seam. Frame where the jump lands.
_MIRROR_SEAMS = {"run": (12,), "walk": (19,)}


def _unrolled(
    frames: np.ndarray, cycles: int, loop: str, bridge_s: float = 0.1, seams: tuple = ()
) -> np.ndarray:
    """``cycles`` repetitions of a cyclic clip (its last frame is the next cycle's first), each
    moved and turned on the floor so that it starts where the previous one ended, the seams (and
    the clip's own ``seams``, frame indices, in every cycle) bridged over ``bridge_s`` either
    side (:func:`_bridge`)."""
    cycles = cycles if loop == "wrap" else 1
    first, last = frames[0], frames[-1]
    turn = float(_heading(last[4:8]) - _heading(first[4:8]))
    rotation = quaternion_to_matrix(_yaw_quaternion(turn))
    out = [frames[:-1]]
    current = frames
    for _ in range(cycles - 1):
        nxt = current.copy()
        # Turn the cycle about the vertical through its start, then move it onto the last root.
        start = current[0, 1:4]
        moved = (current[:, 1:4] - start) @ rotation.T + current[-1, 1:4]
        nxt[:, 1:4] = np.column_stack([moved[:, 0], current[:, 2], moved[:, 2]])
        nxt[:, 4:8] = _quaternion_mul(_yaw_quaternion(turn)[None], current[:, 4:8])
        out.append(nxt[:-1])
        current = nxt
    out.append(current[-1:])
    unrolled = _aligned(np.concatenate(out))
    half = max(1, int(round(bridge_s / float(np.median(frames[:-1, 0])))))
    period = len(frames) - 1
    joins = [k * period for k in range(1, cycles)]
    joins += [k * period + seam for k in range(cycles) for seam in seams]
    for join in sorted(joins):
        _bridge(unrolled, join, half)
    return unrolled


def _catmull_rom(values: np.ndarray, position: np.ndarray) -> np.ndarray:
    """C1 cubic interpolation of ``values`` (N, C) at fractional frame indices ``position``."""
    num = len(values)
    k = np.clip(np.floor(position).astype(int), 0, num - 2)
    s = (position - k)[:, None]
    p0, p1 = values[np.maximum(k - 1, 0)], values[k]
    p2, p3 = values[k + 1], values[np.minimum(k + 2, num - 1)]
    m1, m2 = 0.5 * (p2 - p0), 0.5 * (p3 - p1)
    return (
        (2 * s**3 - 3 * s**2 + 1) * p1 + (s**3 - 2 * s**2 + s) * m1
        + (-2 * s**3 + 3 * s**2) * p2 + (s**3 - s**2) * m2
    )  # fmt: skip


def _sample(frames: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Frame rows at fractional indices (exact at integers): quaternions sign-aligned along time,
    interpolated, normalised."""
    frames = _aligned(frames)
    exact = np.abs(position - np.round(position)) < 1e-9
    out = _catmull_rom(frames, position)
    out[exact] = frames[np.round(position[exact]).astype(int)]
    for column, width in [(4, 4), *_columns()]:
        if width == 4:
            q = out[:, column : column + 4]
            q /= np.linalg.norm(q, axis=1, keepdims=True)
    return out


def _pose(rows: np.ndarray) -> np.ndarray:
    """Our 30 joints (T, 30, 3) in the humanoid's frame (metres, y up) for frame rows (T, 44)."""
    num = len(rows)
    rotations = np.empty((num, len(DEEPMIMIC_JOINTS), 3, 3))
    positions = np.empty((num, len(DEEPMIMIC_JOINTS), 3))
    index = {name: j for j, (name, _p, _o) in enumerate(DEEPMIMIC_JOINTS)}
    for j, ((_name, parent, offset), (column, width)) in enumerate(
        zip(DEEPMIMIC_JOINTS, _columns(), strict=True)
    ):
        if width == 4:
            local = quaternion_to_matrix(rows[:, column : column + 4])
        elif width == 1:
            angle = rows[:, column]
            c, s = np.cos(angle), np.sin(angle)
            local = np.zeros((num, 3, 3))
            local[:, 0, 0], local[:, 0, 1], local[:, 1, 0], local[:, 1, 1] = c, -s, s, c
            local[:, 2, 2] = 1.0
        else:
            local = np.broadcast_to(np.eye(3), (num, 3, 3))
        if parent < 0:
            rotations[:, j] = quaternion_to_matrix(rows[:, 4:8])
            positions[:, j] = rows[:, 1:4]
            continue
        rotations[:, j] = rotations[:, parent] @ local
        positions[:, j] = positions[:, parent] + rotations[:, parent] @ np.asarray(offset)
    joints = np.empty((num, SKELETON.num_joints, 3))
    for name, (body, offset) in _POINTS.items():
        b = index[body]
        joints[:, SKELETON.index(name)] = positions[:, b] + rotations[:, b] @ np.asarray(offset)
    return joints


def ground_truth_contacts(
    feet: np.ndarray, frame_times: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Contacts (T, C) and clearances (C,) metres of foot channels ``feet`` (T, C, 3) world metres
    (floor at z = 0): low and slow for at least :data:`CONTACT_MIN_S`; clearance = the median
    height while planted (two passes: first against the channel's 5th height percentile)."""
    num, channels, _ = feet.shape
    velocity = np.gradient(feet, frame_times, axis=0)
    speed = np.linalg.norm(velocity, axis=-1)
    heights = feet[..., 2]
    clearance = np.percentile(heights, 5, axis=0)
    contacts = np.zeros((num, channels), bool)
    step = float(np.median(np.diff(frame_times)))
    shortest = max(2, int(np.ceil(CONTACT_MIN_S / step - 1e-9)))
    for _ in range(2):
        low = (heights - clearance < CONTACT_HEIGHT_M) & (speed < CONTACT_SPEED_M_S)
        contacts[:] = False
        for c in range(channels):
            edges = np.flatnonzero(np.diff(np.concatenate([[0], low[:, c].astype(int), [0]])))
            for start, stop in zip(edges[::2], edges[1::2], strict=True):
                if stop - start >= shortest:
                    contacts[start:stop, c] = True
            if contacts[:, c].any():
                clearance[c] = np.median(heights[contacts[:, c], c])
    return contacts, clearance


def mocap_motion(
    clip: str,
    fps: float = 30.0,
    cycles: int = 1,
    rate=None,
    heading_deg: float = 0.0,
    duration_s: float | None = None,
) -> Motion:
    """The clip ``clip`` (see :func:`clip_names`) as a ground-truth :class:`Motion` at ``fps``.

    ``cycles`` repeats a cyclic clip; ``rate`` (a function of the output time, s -> playback
    speed, 1 = as recorded) time-warps it; ``duration_s`` cuts it. The motion starts at the
    origin (pelvis over x = y = 0) and moves, on average, along ``heading_deg`` (0 = +Y, positive
    turns left), on the recorded floor (z = 0)."""
    data = _clips()
    if f"{clip}/frames" not in data:
        raise ValueError(f"unknown mocap clip {clip!r}; choose one of {', '.join(clip_names())}")
    frames = _unrolled(
        data[f"{clip}/frames"], cycles, str(data[f"{clip}/loop"]), seams=_MIRROR_SEAMS.get(clip, ())
    )
    step = float(np.median(frames[:-1, 0]))  # recorded frame duration (the last one may be 0)
    end = (len(frames) - 1) * step
    if rate is None:
        count = int(np.floor(end * fps + 1e-9)) + 1
        times = np.arange(count) / fps
        source = times
    else:
        fine = np.arange(0.0, 4 * end + 1.0, 0.25 / fps)  # output time grid to integrate on
        played = np.concatenate([[0.0], np.cumsum(0.5 * (rate(fine[1:]) + rate(fine[:-1])))])
        played *= 0.25 / fps
        stop = float(np.interp(end, played, fine))
        times = np.arange(int(np.floor(stop * fps + 1e-9)) + 1) / fps
        source = np.interp(times, fine, played)
    if duration_s is not None:
        keep = times < duration_s - 1e-9
        times, source = times[keep], source[keep]
    rows = _sample(frames, np.clip(source / step, 0.0, len(frames) - 1))
    joints = _pose(rows) @ _TO_WORLD.T
    # Travel direction -> heading_deg, start at the origin.
    pelvis = joints[:, 0, :2]
    travel = pelvis[-1] - pelvis[0]
    if np.linalg.norm(travel) < 0.3:  # on the spot: the root's initial facing instead
        forward = joints[0, SKELETON.index("rhip"), :2] - joints[0, SKELETON.index("lhip"), :2]
        travel = np.array([-forward[1], forward[0]])
    angle = np.radians(heading_deg) - np.arctan2(-travel[0], travel[1])
    c, s = np.cos(angle), np.sin(angle)
    joints[..., :2] = (joints[..., :2] - pelvis[0]) @ np.array([[c, s], [-s, c]])
    feet = joints[:, [SKELETON.index(name) for name in FOOT_CHANNELS]]
    contacts, clearance = ground_truth_contacts(feet, times)
    return Motion(joints, times, contacts[:, :2].copy(), f"mocap:{clip}", contacts, clearance)


def _dash_rate(t: np.ndarray) -> np.ndarray:
    """Playback rate of the run clip for a dash: a jog (0.6) into a sprint (1.5) within ~2 s."""
    return 0.6 + 0.9 / (1.0 + np.exp(-(np.asarray(t) - 1.1) / 0.3))


@dataclass(frozen=True)
class MocapCase:
    """A benchmark clip: the recorded clip, how it is played, and the camera."""

    name: str
    clip: str
    cycles: int = 1
    direction: str = "left"
    dash: bool = False
    duration_s: float | None = None
    min_distance_m: float = 3.5


MOCAP_CASES = (
    MocapCase("dance", "dance_a", cycles=5, direction="towards"),
    MocapCase("dash", "run", cycles=8, direction="towards", dash=True, duration_s=2.5),
    MocapCase("kick", "kick", direction="left"),
    MocapCase("spinkick", "spinkick", cycles=4, direction="away"),
    MocapCase("run", "run", cycles=7, direction="right"),
    MocapCase("walk-turn", "walk_turn_left", cycles=9, direction="left"),
    MocapCase("jump", "jump", cycles=3, direction="right"),
)


def mocap_case(name: str) -> MocapCase:
    for case in MOCAP_CASES:
        if case.name == name:
            return case
    raise ValueError(f"unknown mocap case {name!r}; choose one of "
                     f"{', '.join(c.name for c in MOCAP_CASES)}")  # fmt: skip


def make_mocap_scenario(
    case: MocapCase | str,
    seed: int = 0,
    fps: float = 30.0,
    model: ErrorModel = ESTIMATOR_ERRORS,
    camera_height_m: float = 1.3,
    tilt_deg: float = 8.0,
    roll_deg: float = 0.0,
) -> Scenario:
    """One :data:`MOCAP_CASES` clip seen by a camera and corrupted by the estimator error model
    (seed ``seed + 1000``, as :func:`~inference.training.synth.noise.make_scenario` does)."""
    case = mocap_case(case) if isinstance(case, str) else case
    motion = mocap_motion(
        case.clip,
        fps,
        cycles=case.cycles,
        rate=_dash_rate if case.dash else None,
        heading_deg=DIRECTIONS[case.direction],
        duration_s=case.duration_s,
    )
    camera = scenario_camera(motion, case.min_distance_m, camera_height_m, tilt_deg, roll_deg)
    truth = motions_to_trajectory([motion], camera, source=f"mocap {case.clip}")
    raw = corrupt(truth, model, seed=seed + 1000)
    info = {"kind": motion.kind, "fps": fps, "seed": seed, "clip": case.clip}
    return Scenario(f"{case.name}@{fps:g}", [motion], camera, truth, raw, info)
