"""Procedural human motion with exact ground truth, for tests, benchmarks, the demo and training data.

Joints follow the ``smpl+head_30`` skeleton, in the Blender world frame (Z up, metres, floor at
z = 0). A motion is planned in continuous time, so it can be sampled at any (also irregular) frame
times:

* a pelvis path (position, heading, height) and a footstep plan: each foot alternates between
  *stances* (planted: heel strike or toe strike, flat foot, heel rise about the toe) and *swings*
  (a smooth arc from lift-off to the next strike, or following the pelvis in a jump's flight);
* the upper body by forward kinematics of per-joint rotations (trunk lean and twist, arm swing,
  elbow flexion, dance-like arm arcs);
* the legs by analytic two-bone inverse kinematics from the hips to the planned ankles, with the
  pelvis lowered smoothly wherever a leg could not reach. Bone lengths are therefore exact and a
  planted heel or toe does not move at all: ground-truth contacts with zero slide.

Kinds: ``walk``, ``run`` (with a flight phase), ``turn`` (walk, slow 180° turn, walk back),
``jump`` (crouch, take-off, flight, landing), ``sit`` (sit down on a chair and stand up) and
``dance`` (side steps with large, fast arm swings and torso twist).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from retarget.rotations import quaternion_to_matrix
from retarget.skeletons import SMPL_HEAD_30

SKELETON = SMPL_HEAD_30
KINDS = ("walk", "run", "turn", "jump", "sit", "dance")
# Foot contact channels, in this order wherever contacts are (T, 4): heels (ankles), then toes.
FOOT_CHANNELS = ("lank", "rank", "ltoe", "rtoe")
GRAVITY = 9.81  # m/s²

# Rest positions (T-pose, facing +Y, person's left at -X) of a 1.75 m adult, metres.
_REST_1P75 = {
    "pelv": (0.0, 0.0, 0.95), "lhip": (-0.09, 0.0, 0.88), "rhip": (0.09, 0.0, 0.88),
    "bell": (0.0, -0.01, 1.06), "lkne": (-0.09, 0.01, 0.49), "rkne": (0.09, 0.01, 0.49),
    "spin": (0.0, -0.01, 1.19), "lank": (-0.09, -0.01, 0.08), "rank": (0.09, -0.01, 0.08),
    "thor": (0.0, 0.0, 1.25), "ltoe": (-0.10, 0.13, 0.02), "rtoe": (0.10, 0.13, 0.02),
    "neck": (0.0, 0.0, 1.47), "lcla": (-0.07, 0.0, 1.40), "rcla": (0.07, 0.0, 1.40),
    "head": (0.0, 0.03, 1.56), "lsho": (-0.18, 0.0, 1.42), "rsho": (0.18, 0.0, 1.42),
    "lelb": (-0.45, 0.0, 1.42), "relb": (0.45, 0.0, 1.42), "lwri": (-0.70, 0.0, 1.42),
    "rwri": (0.70, 0.0, 1.42), "lhan": (-0.78, 0.0, 1.42), "rhan": (0.78, 0.0, 1.42),
    "htop": (0.0, 0.02, 1.74), "lear": (-0.075, 0.02, 1.60), "leye": (-0.032, 0.11, 1.63),
    "nose": (0.0, 0.13, 1.60), "rear": (0.075, 0.02, 1.60), "reye": (0.032, 0.11, 1.63),
}  # fmt: skip

# Rotation axes in the body frame: +X is the person's right, +Y forward, +Z up.
_PITCH = (1.0, 0.0, 0.0)  # positive = forward flexion of a hip or shoulder, backward trunk lean
_ROLL = (0.0, 1.0, 0.0)
_YAW = (0.0, 0.0, 1.0)
_SIDES = (("l", -1.0), ("r", 1.0))  # prefix, sign of the body-frame x of that side


@dataclass(frozen=True)
class Motion:
    """Ground-truth motion of one person.

    ``joints`` (T, J, 3) world metres, ``frame_times`` (T,) s, ``contacts`` (T, 2) bool for the
    (left, right) ankle being planted (heel on the floor: the ankle joint does not move),
    ``channel_contacts`` (T, 4) bool per :data:`FOOT_CHANNELS` (heels then toes; a planted
    channel's joint does not move; a toe also stays planted while the heel rises),
    ``clearance`` (4,) metres: height of each channel's joint above the floor while planted."""

    joints: np.ndarray
    frame_times: np.ndarray
    contacts: np.ndarray
    kind: str
    channel_contacts: np.ndarray | None = None
    clearance: np.ndarray | None = None


def rest_pose(height_m: float = 1.75) -> np.ndarray:
    """T-pose joint positions ``(J, 3)`` metres for a person of the given height."""
    rest = np.array([_REST_1P75[name] for name in SKELETON.joint_names])
    return rest * (height_m / 1.75)


def _axis_angle(axis: tuple[float, float, float], angle: np.ndarray) -> np.ndarray:
    """Rotations ``(T, 3, 3)`` about a fixed axis by per-frame angles (radians)."""
    half = 0.5 * np.asarray(angle, float)
    quaternions = np.concatenate(
        [np.cos(half)[:, None], np.sin(half)[:, None] * np.asarray(axis)[None]], axis=1
    )
    return quaternion_to_matrix(quaternions)


def forward_kinematics(rest: np.ndarray, local_rotations: np.ndarray) -> np.ndarray:
    """Pose a rest skeleton: ``local_rotations`` (T, J, 3, 3) rotate each joint's subtree about it,
    expressed in the world axes of the rest pose. Returns joints (T, J, 3) relative to the root."""
    num_frames = local_rotations.shape[0]
    global_rotations = np.empty_like(local_rotations)
    joints = np.empty((num_frames, len(rest), 3))
    for j, parent in enumerate(SKELETON.parents):
        if parent < 0:
            global_rotations[:, j] = local_rotations[:, j]
            joints[:, j] = 0.0
            continue
        offset = rest[j] - rest[parent]
        global_rotations[:, j] = global_rotations[:, parent] @ local_rotations[:, j]
        joints[:, j] = joints[:, parent] + global_rotations[:, parent] @ offset
    return joints


# --------------------------------------------------------------------------- small helpers


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _minimum_jerk(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x**3 * (10 - 15 * x + 6 * x * x)


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _yaw_matrix(yaw: np.ndarray) -> np.ndarray:
    return _axis_angle(_YAW, yaw)


def _hermite(keys: np.ndarray, values: np.ndarray, slopes: np.ndarray | None = None):
    """Piecewise cubic Hermite curve through ``values`` at ``keys`` with ``slopes`` (default 0),
    held constant outside; returns a function of time. A parabola between two keys with matching
    end slopes is reproduced exactly (used for ballistic flight)."""
    keys = np.asarray(keys, float)
    values = np.asarray(values, float)
    slopes = np.zeros_like(values) if slopes is None else np.asarray(slopes, float)

    def curve(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, float)
        k = np.clip(np.searchsorted(keys, t, side="right") - 1, 0, len(keys) - 2)
        h = keys[k + 1] - keys[k]
        s = np.clip((t - keys[k]) / h, 0.0, 1.0)
        h00, h10 = (1 + 2 * s) * (1 - s) ** 2, s * (1 - s) ** 2
        h01, h11 = s * s * (3 - 2 * s), s * s * (s - 1)
        out = h00 * values[k] + h10 * h * slopes[k] + h01 * values[k + 1] + h11 * h * slopes[k + 1]
        out = np.where(t < keys[0], values[0], out)
        return np.where(t > keys[-1], values[-1], out)

    return curve


def _softmin(values: list[np.ndarray], softness: float) -> np.ndarray:
    """Smooth lower envelope (never above the true minimum)."""
    stacked = np.stack(values)
    low = stacked.min(axis=0)
    return low - softness * np.log(np.sum(np.exp(-(stacked - low) / softness), axis=0))


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class _Stances:
    """One foot's planted intervals, arrays (K,), sorted: strike ``t0``, flat from ``t1`` to
    ``t2``, lift-off ``t3`` (s); ``lead`` +1 heel strike, -1 toe strike, 0 flat landing; pitches
    (rad, positive = toe up); planted ankle ``xy`` (K, 2) and ``yaw``; the following swing's
    ``lift`` (m) and whether it ``follow``s the pelvis height (jump flight)."""

    t0: np.ndarray
    t1: np.ndarray
    t2: np.ndarray
    t3: np.ndarray
    lead: np.ndarray
    lead_pitch: np.ndarray
    trail_pitch: np.ndarray
    xy: np.ndarray
    yaw: np.ndarray
    lift: np.ndarray
    follow: np.ndarray


@dataclass(frozen=True)
class _Plan:
    """Everything that drives one motion, evaluated at the frame times (T,) unless a callable."""

    pelvis_xy: np.ndarray  # (T, 2)
    pelvis_z: Callable[[np.ndarray], np.ndarray]  # nominal height before reach limits
    heading: np.ndarray  # (T,) rad, 0 = facing +Y, positive turns left
    pelvis_yaw: np.ndarray  # (T,) extra pelvis rotation (walking hip rotation)
    trunk_pitch: np.ndarray  # (T,) rad, negative leans forward
    trunk_twist: np.ndarray  # (T,) rad, chest relative to pelvis
    arm_hang: dict[str, np.ndarray]  # side -> (T,) rad: 0 = T-pose, ~75° hanging
    arm_pitch: dict[str, np.ndarray]  # side -> (T,) rad: positive swings forward
    elbow: dict[str, np.ndarray]  # side -> (T,) rad flexion
    stances: dict[str, _Stances]
    lift_exponent: float = 1.0  # swing lift profile sin(pi * u**e): < 1 lifts early (run)


@dataclass(frozen=True)
class _Gait:
    """Locomotion parameters; lengths are for a 1.75 m person and scale with height."""

    speed: float  # m/s
    cadence: float  # steps/s at ``speed``
    min_cadence: float  # steps/s when (nearly) standing
    duty: float  # stance share of a stride (two steps); < 0.5 gives a flight phase
    lead: int  # +1 heel strike, -1 toe strike, 0 flat
    lead_pitch_deg: float
    trail_pitch_deg: float
    lead_share: float  # share of the stance spent rolling onto the flat foot
    trail_share: float  # share of the stance spent rising onto the toes
    lift: float  # m, swing lift of the ankle
    lift_exponent: float
    bob: float  # m, +: highest at mid-stance (walk), -: lowest at mid-stance (run)
    pelvis_height: float  # m, nominal
    stance_width: float  # m, lateral ankle offset from the path
    plant_offset: float  # m, planted ankle ahead (+) of the pelvis at mid-stance
    arm_swing_deg: float
    elbow_deg: float
    lean_deg: float


_WALK = _Gait(1.3, 1.9, 1.4, 0.61, 1, 12.0, -50.0, 0.15, 0.45, 0.09, 1.0, 0.015, 0.935, 0.09,
              -0.10, 22.0, 18.0, 3.0)  # fmt: skip
_RUN = _Gait(2.9, 2.85, 2.2, 0.36, 1, 8.0, -35.0, 0.1, 0.45, 0.22, 0.6, -0.03, 0.9, 0.06,
             -0.05, 35.0, 85.0, 9.0)  # fmt: skip
_DANCE = _Gait(0.0, 2.0, 2.0, 0.72, 0, 0.0, -15.0, 0.0, 0.25, 0.07, 1.0, 0.0, 0.92, 0.13,
               0.0, 0.0, 0.0, 2.0)  # fmt: skip


class _Path:
    """A pelvis ground path integrated from speed and heading on a fine grid; also integrates a
    step phase (steps) from a cadence."""

    def __init__(self, t_lo, t_hi, speed_fn, heading_fn, cadence_fn, start_xy):
        self.t = np.arange(t_lo, t_hi, 0.002)
        speed, heading = speed_fn(self.t), heading_fn(self.t)
        velocity = speed[:, None] * np.stack([-np.sin(heading), np.cos(heading)], axis=1)
        steps = np.diff(self.t)[:, None]
        self.xy = np.concatenate(
            [np.zeros((1, 2)), np.cumsum(0.5 * (velocity[1:] + velocity[:-1]) * steps, axis=0)]
        )
        self.xy += np.asarray(start_xy) - self.xy[np.searchsorted(self.t, 0.0)]
        cadence = cadence_fn(self.t)
        self.phase = np.concatenate(
            [[0.0], np.cumsum(0.5 * (cadence[1:] + cadence[:-1]) * steps[:, 0])]
        )
        self.heading_fn = heading_fn

    def xy_at(self, t: np.ndarray) -> np.ndarray:
        return np.stack([np.interp(t, self.t, self.xy[:, i]) for i in range(2)], axis=1)

    def phase_at(self, t: np.ndarray) -> np.ndarray:
        return np.interp(t, self.t, self.phase)

    def time_of_phase(self, phase: np.ndarray) -> np.ndarray:
        return np.interp(phase, self.phase, self.t)


def _footsteps(path: _Path, gait: _Gait, scale: float, offset_steps: float, side: float, yaw_fn):
    """Stances of one foot: stance k starts at step phase 2k + offset and lasts 2 * duty steps."""
    first = np.ceil((path.phase[0] - offset_steps) / 2)
    last = np.floor((path.phase[-1] - offset_steps - 2 * gait.duty) / 2)
    k = np.arange(first, last + 1)
    start_phase = 2 * k + offset_steps
    t0 = path.time_of_phase(start_phase)
    t3 = path.time_of_phase(start_phase + 2 * gait.duty)
    mid = path.time_of_phase(start_phase + gait.duty)
    yaw = yaw_fn(mid)
    lateral = np.stack([np.cos(yaw), np.sin(yaw)], axis=1)  # body +X (right) in world
    forward = np.stack([-np.sin(yaw), np.cos(yaw)], axis=1)
    xy = path.xy_at(mid) + scale * (
        side * gait.stance_width * lateral + gait.plant_offset * forward
    )
    length = t3 - t0
    count = len(k)
    return _Stances(
        t0=t0,
        t1=t0 + gait.lead_share * length,
        t2=t3 - gait.trail_share * length,
        t3=t3,
        lead=np.full(count, gait.lead),
        lead_pitch=np.full(count, np.radians(gait.lead_pitch_deg)),
        trail_pitch=np.full(count, np.radians(gait.trail_pitch_deg)),
        xy=xy,
        yaw=yaw + side * np.radians(5.0),  # slight toe-out
        lift=np.full(count, gait.lift * scale),
        follow=np.zeros(count, bool),
    )


def _locomotion_plan(times, gait, scale, rng, start_xy, speed_fn, heading_fn, path_fn=None):
    """Walking, running, turning and side-stepping: a path, a step phase and footsteps on it."""
    ref_speed = max(gait.speed, 1e-6)

    def cadence_fn(t):
        if gait.speed == 0.0:
            return np.full_like(t, gait.cadence)
        return np.maximum(gait.cadence * np.sqrt(speed_fn(t) / ref_speed), gait.min_cadence)

    t_lo, t_hi = min(times[0], 0.0) - 3.0, times[-1] + 3.0
    path = _Path(t_lo, t_hi, speed_fn, heading_fn, cadence_fn, start_xy)
    if path_fn is not None:  # an explicit path (dance) replaces the integrated one
        path.xy = path_fn(path.t)
    path.phase += rng.uniform(0, 2)
    stances = {
        prefix: _footsteps(path, gait, scale, 0.0 if prefix == "l" else 1.0, side, heading_fn)
        for prefix, side in _SIDES
    }
    phase = path.phase_at(times)
    mid_stance = 2 * np.pi * (phase - gait.duty)  # 0 at each foot's mid-stance
    pelvis_phase_fn = path.phase_at
    heading = heading_fn(times)
    stride = np.pi * (phase - gait.duty)  # half a turn per step: left/right alternation
    swing = np.radians(gait.arm_swing_deg) * np.cos(stride)

    def pelvis_z(t):
        phase_t = pelvis_phase_fn(t)
        return scale * (gait.pelvis_height + gait.bob * np.cos(2 * np.pi * (phase_t - gait.duty)))

    lateral_sway = 0.02 * scale * np.cos(stride) * (gait.bob >= 0)
    side_axis = np.stack([np.cos(heading), np.sin(heading)], axis=1)
    hang = np.radians(75.0)
    return _Plan(
        pelvis_xy=path.xy_at(times) - lateral_sway[:, None] * side_axis,
        pelvis_z=pelvis_z,
        heading=heading,
        pelvis_yaw=np.radians(4.0) * np.cos(stride),
        trunk_pitch=np.full(len(times), -np.radians(gait.lean_deg)) + 0.01 * np.cos(mid_stance),
        trunk_twist=-np.radians(6.0) * np.cos(stride),
        arm_hang={"l": np.full(len(times), -hang), "r": np.full(len(times), hang)},
        arm_pitch={"l": -swing, "r": swing},
        elbow={
            "l": -np.radians(gait.elbow_deg) * (1 + 0.3 * np.cos(stride)),
            "r": np.radians(gait.elbow_deg) * (1 - 0.3 * np.cos(stride)),
        },
        stances=stances,
        lift_exponent=gait.lift_exponent,
    )


def _stand_stances(scale: float, heading0: float, start_xy, width: float = 0.1) -> dict:
    """Both feet planted flat for the whole motion."""
    out = {}
    for prefix, side in _SIDES:
        lateral = np.array([np.cos(heading0), np.sin(heading0)])
        xy = np.asarray(start_xy) + side * width * scale * lateral
        out[prefix] = _Stances(
            *(np.array([v]) for v in (-1e3, -1e3, 1e9, 1e9)),
            lead=np.zeros(1),
            lead_pitch=np.zeros(1),
            trail_pitch=np.zeros(1),
            xy=xy[None],
            yaw=np.array([heading0 + side * np.radians(5.0)]),
            lift=np.zeros(1),
            follow=np.zeros(1, bool),
        )
    return out


def _plan_walk(times, scale, rng, start_xy, heading0, turn, speed):
    base = speed or _WALK.speed
    wobble = rng.uniform(0, 2 * np.pi, 2)

    def speed_fn(t):
        return base * (1 + 0.12 * np.sin(2 * np.pi * t / 5.0 + wobble[0]))

    def heading_fn(t):
        return heading0 + turn * t + np.radians(4.0) * np.sin(2 * np.pi * t / 4.0 + wobble[1])

    gait = _WALK.__class__(**{**_WALK.__dict__, "speed": base})
    return _locomotion_plan(times, gait, scale, rng, start_xy, speed_fn, heading_fn)


def _plan_run(times, scale, rng, start_xy, heading0, turn, speed):
    base = speed or _RUN.speed
    gait = _RUN.__class__(**{**_RUN.__dict__, "speed": base})
    phase = rng.uniform(0, 2 * np.pi)

    def speed_fn(t):
        return base * (1 + 0.08 * np.sin(2 * np.pi * t / 4.0 + phase))

    def heading_fn(t):
        return heading0 + turn * t + 0.0 * t

    return _locomotion_plan(times, gait, scale, rng, start_xy, speed_fn, heading_fn)


def _plan_turn(times, scale, rng, start_xy, heading0, turn, speed, duration):
    """Walk, slow down and turn 180° (direction chosen by ``turn`` sign), walk back."""
    base = speed or _WALK.speed
    middle = 0.5 * duration + rng.uniform(-0.2, 0.2)
    direction = -1.0 if turn < 0 else 1.0

    def speed_fn(t):
        dip = np.exp(-0.5 * ((t - middle) / 0.45) ** 2)
        return base * (1 - 0.8 * dip)

    def heading_fn(t):
        return heading0 + direction * np.pi * _smoothstep((t - middle + 0.8) / 1.6)

    gait = _WALK.__class__(**{**_WALK.__dict__, "speed": base})
    return _locomotion_plan(times, gait, scale, rng, start_xy, speed_fn, heading_fn)


def _plan_dance(times, scale, rng, start_xy, heading0, turn, speed):
    """Side steps to a 120 bpm beat, big and fast arm arcs, torso twist, knee bounce."""
    amplitude = 0.28 * scale
    phases = rng.uniform(0, 2 * np.pi, 3)
    lateral0 = np.array([np.cos(heading0), np.sin(heading0)])
    forward0 = np.array([-np.sin(heading0), np.cos(heading0)])

    def path_fn(t):
        side = amplitude * np.sin(np.pi * t + phases[0])
        front = 0.08 * scale * np.sin(0.5 * np.pi * t + phases[1])
        return np.asarray(start_xy) + side[:, None] * lateral0 + front[:, None] * forward0

    def heading_fn(t):
        return heading0 + np.radians(10.0) * np.sin(0.5 * np.pi * t + phases[2]) + 0 * t

    plan = _locomotion_plan(
        times, _DANCE, scale, rng, start_xy, lambda t: np.zeros_like(t), heading_fn, path_fn
    )
    beat = 2 * np.pi * 1.0 * times  # 1 Hz arm cycle, 2 Hz bounce
    raise_l = 0.5 - 0.5 * np.cos(beat + phases[0])
    raise_r = 0.5 - 0.5 * np.cos(beat + phases[0] + np.pi)
    swing = np.radians(55.0) * np.sin(2 * beat + phases[1])
    twist = np.radians(15.0) * np.sin(beat + phases[2])
    bounce_plan_z = plan.pelvis_z

    def pelvis_z(t):
        return bounce_plan_z(t) - 0.025 * scale * (0.5 + 0.5 * np.cos(4 * np.pi * t))

    elbow = np.radians(25.0) + np.radians(70.0) * (0.5 + 0.5 * np.sin(2 * beat))
    return _Plan(
        **{
            **plan.__dict__,
            "pelvis_z": pelvis_z,
            "trunk_twist": twist,
            "arm_hang": {
                "l": -np.radians(75.0) + np.radians(110.0) * raise_l,
                "r": np.radians(75.0) - np.radians(110.0) * raise_r,
            },
            "arm_pitch": {"l": swing, "r": -swing},
            "elbow": {"l": -elbow, "r": elbow},
        }
    )


def _plan_jump(times, scale, rng, start_xy, heading0, turn, speed):
    """Repeated jumps (forward by a random 0.2-0.5 m): stand, crouch, push off onto the toes,
    ballistic flight, toe landing, absorb, stand up."""
    period, t_flight = 1.7, 0.4
    v_up = GRAVITY * t_flight / 2
    stand = 0.935 * scale
    first = np.floor(min(times[0], 0.0) / period) - 1
    cycles = np.arange(first, np.ceil(times[-1] / period) + 2)
    z_keys, z_vals, z_slopes, x_keys, x_vals, x_slopes = [], [], [], [], [], []
    t0s, t2s, t3s, planted = [], [], [], []
    x = 0.0
    for c in cycles:
        base = c * period
        distance = rng.uniform(0.2, 0.5) * scale
        v_h = distance / t_flight
        take_off, landing = base + 0.8, base + 0.8 + t_flight
        rel = [0.0, 0.2, 0.6, 0.8, 1.2, 1.45]
        z_keys += [base + r for r in rel]
        z_vals += [stand, stand, stand - 0.18 * scale, stand + 0.02, stand + 0.02,
                   stand - 0.14 * scale]  # fmt: skip
        z_slopes += [0.0, 0.0, 0.0, v_up, -v_up, 0.0]
        x_keys += [base, base + 0.6, take_off, landing, base + 1.45]
        x_vals += [x, x, x + 0.08 * scale, x + 0.08 * scale + distance,
                   x + 0.14 * scale + distance]  # fmt: skip
        x_slopes += [0.0, 0.0, v_h, v_h, 0.0]
        t0s.append(landing)
        t2s.append(take_off + period - 0.18)
        t3s.append(take_off + period)
        planted.append(x + 0.12 * scale + distance)
        x += 0.14 * scale + distance
    forward = np.array([-np.sin(heading0), np.cos(heading0)])
    lateral = np.array([np.cos(heading0), np.sin(heading0)])
    z_curve = _hermite(z_keys, z_vals, z_slopes)
    x_curve = _hermite(x_keys, x_vals, x_slopes)
    pelvis_xy = np.asarray(start_xy) + x_curve(times)[:, None] * forward
    # stance c: lands at t0s[c], stands, pushes off at the next cycle's take-off
    t0 = np.concatenate([[-1e3], t0s[:-1]])
    t3 = np.concatenate([[t3s[0] - period], t3s[:-1]])
    t2 = t3 - 0.18
    foot_x = np.concatenate([[0.0], planted[:-1]])
    stances = {}
    for prefix, side in _SIDES:
        xy = np.asarray(start_xy) + foot_x[:, None] * forward + side * 0.1 * scale * lateral
        xy = xy - 0.04 * scale * forward
        stances[prefix] = _Stances(
            t0=t0,
            t1=t0 + 0.08,
            t2=t2,
            t3=t3,
            lead=-np.ones(len(t0)),
            lead_pitch=np.full(len(t0), -np.radians(25.0)),
            trail_pitch=np.full(len(t0), -np.radians(40.0)),
            xy=xy,
            yaw=np.full(len(t0), heading0 + side * np.radians(5.0)),
            lift=np.full(len(t0), 0.08 * scale),
            follow=np.ones(len(t0), bool),
        )
    rel_t = (times - first * period) % period
    arm_keys = [0.0, 0.2, 0.55, 0.9, 1.2, 1.5, 1.7]
    arm = _hermite(arm_keys, np.radians([5, 5, -40, 80, 50, 10, 5]))(rel_t)
    lean = _hermite([0.0, 0.2, 0.6, 0.8, 1.2, 1.45, 1.7], np.radians([2, 2, 30, 0, 5, 25, 2]))(
        rel_t
    )
    count = len(times)
    return _Plan(
        pelvis_xy=pelvis_xy,
        pelvis_z=z_curve,
        heading=np.full(count, heading0),
        pelvis_yaw=np.zeros(count),
        trunk_pitch=-lean,
        trunk_twist=np.zeros(count),
        arm_hang={"l": np.full(count, -np.radians(75.0)), "r": np.full(count, np.radians(75.0))},
        arm_pitch={"l": arm, "r": arm},
        elbow={"l": -np.radians(20.0) * np.ones(count), "r": np.radians(20.0) * np.ones(count)},
        stances=stances,
    )


def _plan_sit(times, scale, rng, start_xy, heading0, turn, speed, duration):
    """Stand, sit down on a chair behind, stay, stand up again; feet stay planted."""
    down = max(0.12 * duration, 0.4) + rng.uniform(-0.1, 0.1)
    length = float(np.clip(0.22 * duration, 0.8, 1.4))
    seated_until = max(0.6 * duration, down + length + 0.3)
    keys = [down, down + length, seated_until, seated_until + length]
    stand, seat = 0.935 * scale, 0.5 * scale
    z = _hermite(keys, [stand, seat, seat, stand])
    back = _hermite(keys, np.array([0.0, -0.22, -0.22, 0.0]) * scale)(times)
    lean_keys = [down, down + 0.5 * length, down + length, seated_until,
                 seated_until + 0.5 * length, seated_until + length]  # fmt: skip
    lean = _hermite(lean_keys, np.radians([0, 38, 8, 8, 42, 0]))(times)
    reach = _hermite(lean_keys, np.radians([0, 35, 10, 10, 45, 0]))(times)
    forward = np.array([-np.sin(heading0), np.cos(heading0)])
    count = len(times)
    elbow = np.radians(15.0) + np.radians(35.0) * _smoothstep((-back / scale) / 0.22)
    return _Plan(
        pelvis_xy=np.asarray(start_xy) + back[:, None] * forward,
        pelvis_z=z,
        heading=np.full(count, heading0),
        pelvis_yaw=np.zeros(count),
        trunk_pitch=-lean,
        trunk_twist=np.zeros(count),
        arm_hang={"l": np.full(count, -np.radians(72.0)), "r": np.full(count, np.radians(72.0))},
        arm_pitch={"l": reach, "r": reach},
        elbow={"l": -elbow, "r": elbow},
        stances=_stand_stances(scale, heading0, np.asarray(start_xy) - 0.03 * scale * forward),
    )


# --------------------------------------------------------------------------- evaluation


def _foot_poses(st: _Stances, times, flat_vector, ankle_height, pelvis_z_fn, lift_exponent):
    """Ankle and toe positions (T, 3) and (heel, toe) contact flags of one foot."""
    k = np.clip(np.searchsorted(st.t0, times, side="right") - 1, 0, len(st.t0) - 1)
    nxt = np.minimum(k + 1, len(st.t0) - 1)

    def pose(index, pitch, pivot_toe):
        """Ankle, toe of stance ``index`` with the foot pitched about the ankle or the toe."""
        ankle_flat = np.concatenate([st.xy[index], np.full((len(index), 1), ankle_height)], axis=1)
        yaw = _yaw_matrix(st.yaw[index])
        toe_flat = ankle_flat + yaw @ flat_vector
        pitched = yaw @ _axis_angle(_PITCH, pitch) @ flat_vector
        ankle = np.where(pivot_toe[:, None], toe_flat - pitched, ankle_flat)
        toe = np.where(pivot_toe[:, None], toe_flat, ankle_flat + pitched)
        return ankle, toe

    in_stance = times <= st.t3[k]
    lead_phase = times < st.t1[k]
    trail_phase = times > st.t2[k]
    lead_u = (times - st.t0[k]) / np.maximum(st.t1[k] - st.t0[k], 1e-9)
    trail_u = (times - st.t2[k]) / np.maximum(st.t3[k] - st.t2[k], 1e-9)
    pitch = np.where(lead_phase, st.lead_pitch[k] * (1 - _smoothstep(lead_u)), 0.0)
    rise = 1 - np.cos(0.5 * np.pi * np.clip(trail_u, 0, 1))  # starts gently, ends rolling
    pitch = np.where(trail_phase, st.trail_pitch[k] * rise, pitch)
    pivot_toe = np.where(lead_phase, st.lead[k] < 0, trail_phase)
    ankle, toe = pose(k, pitch, pivot_toe)

    # swing from stance k (lift-off) to stance k + 1 (strike)
    start_ankle, _ = pose(k, st.trail_pitch[k], np.ones(len(k), bool))
    end_ankle, _ = pose(nxt, st.lead_pitch[nxt], st.lead[nxt] < 0)
    duration = np.maximum(st.t0[nxt] - st.t3[k], 1e-9)
    u = np.clip((times - st.t3[k]) / duration, 0.0, 1.0)
    s = _minimum_jerk(u)[:, None]
    swing_ankle = (1 - s) * start_ankle + s * end_ankle
    swing_ankle[:, 2] += st.lift[k] * np.sin(np.pi * u**lift_exponent)
    follow = st.follow[k]
    if follow.any():
        z_line = (1 - u) * pelvis_z_fn(st.t3[k]) + u * pelvis_z_fn(st.t0[nxt])
        swing_ankle[:, 2] += np.where(follow, pelvis_z_fn(times) - z_line, 0.0)
    swing_yaw = st.yaw[k] + _minimum_jerk(u) * _wrap(st.yaw[nxt] - st.yaw[k])
    swing_pitch = st.trail_pitch[k] + _minimum_jerk(u) * (st.lead_pitch[nxt] - st.trail_pitch[k])
    swing_toe = swing_ankle + (
        _yaw_matrix(swing_yaw) @ _axis_angle(_PITCH, swing_pitch) @ flat_vector
    )
    ankle = np.where(in_stance[:, None], ankle, swing_ankle)
    toe = np.where(in_stance[:, None], toe, swing_toe)
    heel_contact = in_stance & ~trail_phase & ~(lead_phase & (st.lead[k] < 0))
    toe_contact = in_stance & ~(lead_phase & (st.lead[k] > 0))
    return ankle, toe, heel_contact, toe_contact


def _local_rotations(plan: _Plan, count: int) -> np.ndarray:
    """Per-joint local rotations (T, J, 3, 3) of the upper body; legs stay at rest (IK later)."""
    idx = SKELETON.index
    rotations = np.tile(np.eye(3), (count, SKELETON.num_joints, 1, 1))
    rotations[:, idx("pelv")] = _yaw_matrix(plan.heading + plan.pelvis_yaw)
    half_lean = _axis_angle(_PITCH, 0.5 * plan.trunk_pitch)
    rotations[:, idx("bell")] = half_lean
    rotations[:, idx("spin")] = _yaw_matrix(plan.trunk_twist - plan.pelvis_yaw) @ half_lean
    rotations[:, idx("neck")] = _axis_angle(_PITCH, -0.6 * plan.trunk_pitch)
    rotations[:, idx("head")] = _yaw_matrix(-0.5 * plan.trunk_twist)
    for prefix, _side in _SIDES:
        rotations[:, idx(prefix + "sho")] = _axis_angle(
            _PITCH, plan.arm_pitch[prefix]
        ) @ _axis_angle(_ROLL, plan.arm_hang[prefix])
        rotations[:, idx(prefix + "elb")] = _yaw_matrix(plan.elbow[prefix])
    return rotations


def _two_bone_knee(hip, ankle, thigh, shin, pole):
    """Knee positions (T, 3) placing bones of length ``thigh``/``shin`` from ``hip`` to ``ankle``,
    bending towards ``pole`` (T, 3)."""
    axis = ankle - hip
    distance = np.linalg.norm(axis, axis=-1, keepdims=True)
    unit = axis / distance
    reach = np.clip(distance, abs(thigh - shin) + 1e-6, thigh + shin - 1e-6)
    cos_hip = (thigh**2 + reach**2 - shin**2) / (2 * thigh * reach)
    bend = pole - np.sum(pole * unit, axis=-1, keepdims=True) * unit
    bend /= np.linalg.norm(bend, axis=-1, keepdims=True)
    return hip + thigh * (cos_hip * unit + np.sqrt(1 - cos_hip**2) * bend)


def _assemble(times: np.ndarray, plan: _Plan, rest: np.ndarray, scale: float):
    idx = SKELETON.index
    count = len(times)
    relative = forward_kinematics(rest, _local_rotations(plan, count))
    ankle_height = rest[idx("lank"), 2]
    feet = {}
    for prefix, _side in _SIDES:
        flat_vector = rest[idx(prefix + "toe")] - rest[idx(prefix + "ank")]
        feet[prefix] = _foot_poses(
            plan.stances[prefix],
            times,
            flat_vector,
            ankle_height,
            plan.pelvis_z,
            plan.lift_exponent,
        )
    # Lower the pelvis (smoothly) wherever a leg could not reach its ankle.
    limits = [plan.pelvis_z(times)]
    for prefix, _side in _SIDES:
        thigh = np.linalg.norm(rest[idx(prefix + "kne")] - rest[idx(prefix + "hip")])
        shin = np.linalg.norm(rest[idx(prefix + "ank")] - rest[idx(prefix + "kne")])
        reach = 0.985 * (thigh + shin)
        hip = relative[:, idx(prefix + "hip")]
        ankle = feet[prefix][0]
        horizontal = np.linalg.norm(plan.pelvis_xy + hip[:, :2] - ankle[:, :2], axis=-1)
        vertical = np.sqrt(np.maximum(reach**2 - horizontal**2, 0.0))
        limits.append(ankle[:, 2] + vertical - hip[:, 2])
    pelvis_z = _softmin(limits, 0.006 * scale)
    root = np.concatenate([plan.pelvis_xy, pelvis_z[:, None]], axis=1)
    joints = relative + root[:, None]
    forward = np.stack([-np.sin(plan.heading), np.cos(plan.heading), np.zeros(count)], axis=1)
    contacts = np.zeros((count, 4), bool)
    for i, (prefix, _side) in enumerate(_SIDES):
        ankle, toe, heel_contact, toe_contact = feet[prefix]
        thigh = np.linalg.norm(rest[idx(prefix + "kne")] - rest[idx(prefix + "hip")])
        shin = np.linalg.norm(rest[idx(prefix + "ank")] - rest[idx(prefix + "kne")])
        foot_forward = toe - ankle
        foot_forward[:, 2] = 0.0
        foot_forward /= np.linalg.norm(foot_forward, axis=-1, keepdims=True)
        pole = forward + foot_forward + np.array([0.0, 0.0, 0.05])
        hip = joints[:, idx(prefix + "hip")]
        joints[:, idx(prefix + "kne")] = _two_bone_knee(hip, ankle, thigh, shin, pole)
        joints[:, idx(prefix + "ank")] = ankle
        joints[:, idx(prefix + "toe")] = toe
        contacts[:, i] = heel_contact
        contacts[:, 2 + i] = toe_contact
    clearance = np.array([ankle_height, ankle_height, rest[idx("ltoe"), 2], rest[idx("rtoe"), 2]])
    return joints, contacts, clearance


def generate_motion(
    kind: str = "walk",
    duration_s: float = 4.0,
    fps: float = 30.0,
    seed: int = 0,
    height_m: float = 1.75,
    start_xy: tuple[float, float] = (0.0, 0.0),
    heading_deg: float = 0.0,
    turn_deg_per_s: float = 0.0,
    speed_m_s: float | None = None,
    frame_times: np.ndarray | None = None,
) -> Motion:
    """A ground-truth motion of ``kind`` (one of :data:`KINDS`).

    The person starts near ``start_xy`` facing ``heading_deg`` (0 = +Y, positive turns left),
    turning at ``turn_deg_per_s`` (walk/run; its sign picks the direction of the ``turn`` kind).
    ``speed_m_s`` overrides the walking/running speed. The seed varies cadence, speed and
    direction wobble, jump distances and timings. ``frame_times`` (s, increasing) replaces the
    uniform ``fps`` sampling, for variable-frame-rate clips.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown motion kind {kind!r}; choose one of {', '.join(KINDS)}")
    if frame_times is None:
        frame_times = np.arange(int(round(duration_s * fps))) / fps
    times = np.asarray(frame_times, float)
    if times.size == 0 or (times.size > 1 and not np.all(np.diff(times) > 0)):
        raise ValueError("frame_times must be non-empty and strictly increasing")
    duration = max(float(times[-1]), duration_s)
    rng = np.random.default_rng(seed)
    scale = height_m / 1.75
    heading0 = np.radians(heading_deg)
    turn = np.radians(turn_deg_per_s)
    args = (times, scale, rng, start_xy, heading0, turn, speed_m_s)
    planners = {
        "walk": lambda: _plan_walk(*args),
        "run": lambda: _plan_run(*args),
        "turn": lambda: _plan_turn(*args, duration),
        "jump": lambda: _plan_jump(*args),
        "sit": lambda: _plan_sit(*args, duration),
        "dance": lambda: _plan_dance(*args),
    }
    plan = planners[kind]()
    joints, channel_contacts, clearance = _assemble(times, plan, rest_pose(height_m), scale)
    contacts = channel_contacts[:, :2].copy()  # as before: the ankle is planted (does not move)
    return Motion(joints, times, contacts, kind, channel_contacts, clearance)
