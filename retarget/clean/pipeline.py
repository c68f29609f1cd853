"""Motion cleaning: raw per-frame 3D poses -> smooth, planted, physically plausible motion.

``clean_trajectory(trajectory, preset="default", **overrides)`` runs, per person
(docs/design.md §4–5):

1. **Gate outliers** (:mod:`retarget.clean.outliers`): impossible values, high model uncertainty,
   frame-level depth jumps, left/right swaps (undone), bone-length, speed and trend-residual gates.
2. **Fill gaps** (:mod:`retarget.clean.gaps`): PCHIP up to ``max_interpolate_s``, Kalman/RTS bridges
   beyond, every filled sample flagged.
3. **Smooth**: the body (joints relative to the root) with a motion-adaptive constant-velocity
   RTS smoother per joint (:func:`~retarget.clean.kalman.motion_adaptive_smooth`): the
   estimator's white noise is measured per camera axis, each joint's acceleration noise follows
   its own motion (a still limb is smoothed hard, a kicking leg keeps its bandwidth), and every
   frame's root is placed by all its joints first, so a joint's signal does not carry the root's
   noise as well; the samples of gaps up to 2 s are left to the smoother's own model
   (``body_smoother="butterworth"``: the fixed zero-phase low-pass of earlier
   versions). The root (pelvis) with a constant-velocity Kalman/RTS smoother in ray coordinates
   ``(x/z, y/z, z)``, so the noisy camera depth is smoothed harder than the well-measured
   image-plane position; frames with a high model uncertainty count less. Irregular frame times
   are handled throughout.
4. **Bone lengths** (:mod:`retarget.clean.bones`): one median length per bone; slow offsets first
   take out the slowly drifting per-joint errors (``bone_drift_window_s``), then the joints are
   moved onto the lengths with the least change (constraint projection, the noisier joint of a
   bone moving more), then made exact.
5. **World frame** (:mod:`retarget.clean.floor`): robust floor fit over all people, Z up, floor
   z = 0.
6. **Contacts** (:mod:`retarget.clean.contacts`): heel/toe contacts with hysteresis, planted
   targets, and (``lock_feet``) the feet locked on them with two-bone IK of the legs, so
   ``poses3d`` already has planted, non-penetrating feet.

For the retarget stage (foot locking at the rotation level): take ``world_from_camera`` to bring
``poses3d`` into the world; per person and channel, ``contact_intervals`` lists the plants and
``contact_weights``/``contact_targets`` say where each heel/toe joint must be: the locked position
is ``p + w * (target - p)`` (world metres). Inside a contact the target is the fixed planted point
(constant over the interval, z = ``contact_clearance``); in the ease frames around it, it is the
joint's own motion shifted by its offset at the contact's edge (see :mod:`retarget.clean.contacts`).
A target rig re-grounds by its own ankle height: ``contact_clearance`` is the source's.

The result is a :class:`~retarget.contract.Trajectory` whose ``poses3d`` are the cleaned poses
(camera frame, millimetres, like the input; NaN only outside each person's visible span), with
these ``extras`` (``T`` frames, ``P`` people, ``J`` joints, ``C`` contact channels, ``N``
intervals):

==================== ================ =========================================================
``raw_poses3d``      f32 (T,P,J,3)    the estimator's poses, untouched: re-cleaning starts here
``filled``           u8 (T,P,J)       0 measured, 1 interpolated (PCHIP), 2 bridged (Kalman,
                                      long gap), 3 held (before a joint's first / after its last
                                      sample), 4 absent (outside the person's span: NaN)
``rejected``         bool (T,P,J)     present in the raw data but rejected by a gate
``swapped``          bool (T,P)       frames where a left/right swap was undone
``world_from_camera`` f64 (4,4)       camera pose in the world (metres): ``p_world = R @ (0.001 *
                                      p_cam) + t``; Z up, floor at z = 0, camera above the origin
                                      looking along +Y. See :mod:`retarget.frames`.
``contact_channels`` str (C,)         joint name of each channel: ``lank, rank, ltoe, rtoe``
                                      (heels = ankle joints, toes = toe joints)
``contacts``         bool (T,P,C)     channel planted
``contact_weights``  f32 (T,P,C)      lock weight in [0, 1]: 1 in contact, easing to 0 over
                                      ``contact_ease_frames`` either side
``contact_targets``  f32 (T,P,C,3)    where the joint should be at full weight, world metres:
                                      the planted point inside a contact, the offset-shifted
                                      own motion in the ease frames, NaN where the weight is 0
``contact_intervals`` i32 (N,4)       person, channel, first frame, stop frame (exclusive)
``contact_clearance`` f32 (P,C)       height (m) of each channel's joint above the floor when
                                      planted: toes = ``toe_clearance_m``; ankles blend the
                                      data (weight ``clearance_data_weight``) with the foot-bone
                                      prior ``toe_clearance + foot length x sin(23°)``
``clean_params``     str ()           JSON: ``{"preset": ..., "params": {...}}``, enough to redo
                                      the cleaning
``clean_report``     str ()           JSON: rejections per gate, filled counts, swaps, floor fit,
                                      contacts, unreachable lock frames, warnings, runtime (s),
                                      and per stage (``stage_runtime_s``)
==================== ================ =========================================================

``python -m retarget clean IN.npz -o OUT.npz --preset NAME [--set KEY=VALUE ...] [--overwrite]``
does the same from the command line (:mod:`retarget.clean.cli`); the settings and presets are in
:mod:`retarget.clean.params`.
"""

import dataclasses
import json
import logging
import time
from dataclasses import dataclass

import numpy as np

from ..contract import Trajectory
from ..frames import BEHIND_CAMERA_ADVICE, behind_camera, camera_to_world, world_to_camera
from .bones import (
    fit_bone_lengths,
    median_bone_lengths,
    parents_from_edges,
    topological_order,
)
from .contacts import (
    channels_of,
    detect_contacts,
    intervals,
    lock_feet,
    speeds,
    targets_and_weights,
)
from .filters import linear_resample, lowpass
from .floor import LEVEL_CAMERA_ROLL_DEG, FloorFit, estimate_floor
from .gaps import (
    ABSENT,
    HELD,
    LONGEST_CURVED_BRIDGE_S,
    curved_gaps,
    fill_gaps,
    gap_codes,
    gap_runs,
    straight_join,
)
from .kalman import joint_noise, median_noise, motion_adaptive_smooth, rts_smooth
from .outliers import MIN_DEPTH_MM, GateReport, gate_person
from .params import CleanError, CleanParams, resolve_params
from .robust import masked_median
from .vectors import finite3, norm3

logger = logging.getLogger(__name__)

# White noise (mm, camera x, y, z) assumed where too little is measured to estimate it.
DEFAULT_BODY_NOISE_MM = np.array([5.0, 5.0, 15.0])

CLEAN_KEYS = (
    "raw_poses3d",
    "filled",
    "rejected",
    "swapped",
    "world_from_camera",
    "contact_channels",
    "contacts",
    "contact_weights",
    "contact_targets",
    "contact_intervals",
    "contact_clearance",
    "clean_params",
    "clean_report",
)


# --------------------------------------------------------------------------- per person


@dataclass
class _PersonResult:
    poses: np.ndarray  # (T, J, 3) mm camera frame, NaN outside the span
    filled: np.ndarray  # (T, J) uint8
    rejected: np.ndarray  # (T, J) bool
    swapped: np.ndarray  # (T,) bool
    report: dict


class _Stopwatch:
    """Seconds spent per stage: :meth:`lap` books the time since the previous lap."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self.last
        self.last = now


def _check_times(times: np.ndarray) -> None:
    if times.ndim != 1 or not np.all(np.isfinite(times)):
        raise CleanError("frame_times must be a 1-D array of finite seconds; re-run the analysis")
    steps = np.diff(times)
    if np.any(steps <= 0):
        bad = int(np.flatnonzero(steps <= 0)[0])
        raise CleanError(
            f"frame_times must increase strictly, but frame {bad + 1} ({times[bad + 1]:.6f} s) "
            f"does not come after frame {bad} ({times[bad]:.6f} s); re-run the analysis or fix "
            "the video's timestamps"
        )


def _root_weights(uncertainty: np.ndarray | None, valid: np.ndarray) -> np.ndarray:
    """Per-frame factor (T,) on the root measurement standard deviation from model uncertainty."""
    if uncertainty is None:
        return np.ones(len(valid))
    usable = valid & np.isfinite(uncertainty) & (uncertainty > 0)
    if not usable.any():
        return np.ones(len(valid))
    per_frame = masked_median(uncertainty.T, usable.T)
    typical = float(np.median(per_frame[np.isfinite(per_frame)]))
    factor = np.where(np.isfinite(per_frame), per_frame / typical, 1.0)
    return np.clip(factor, 0.5, 4.0)


def _smooth_root(times, root_mm, factor, params: CleanParams) -> np.ndarray:
    """Kalman/RTS smoothing of the root (T, 3) mm camera frame in ray coordinates (x/z, y/z, z)."""
    seen = finite3(root_mm)
    z_m = 0.001 * root_mm[:, 2]
    z_ref = np.interp(times, times[seen], z_m[seen])
    ray = np.stack([root_mm[:, 0] / root_mm[:, 2], root_mm[:, 1] / root_mm[:, 2], z_m], axis=1)
    ray[~seen] = np.nan
    sigma = np.stack(
        [params.root_sigma_xy_m / z_ref, params.root_sigma_xy_m / z_ref,
         np.full(len(times), params.root_sigma_depth_m)], axis=1,
    ) * factor[:, None]  # fmt: skip
    q = params.root_accel_density
    density = np.stack([q / z_ref**2, q / z_ref**2, np.full(len(times), q)], axis=1)
    track = rts_smooth(times, ray, sigma**2, density, variance=False).position
    for start, stop in gap_runs(seen):  # seconds unseen: no edge velocity carried through
        if times[stop] - times[start - 1] > LONGEST_CURVED_BRIDGE_S:
            track[start:stop] = straight_join(times, track, start, stop)
    depth = np.maximum(track[:, 2], 0.001 * MIN_DEPTH_MM)
    return 1000.0 * np.stack([track[:, 0] * depth, track[:, 1] * depth, depth], axis=1)


def _fill_root(times, root_mm) -> np.ndarray:
    seen = finite3(root_mm)
    return linear_resample(times[seen], root_mm[seen], times)


def _root_relative_body(
    x: np.ndarray, ok: np.ndarray, root: int, t: np.ndarray, params: CleanParams
) -> np.ndarray:
    """The body relative to the root joint (T, J, 3) mm, gaps filled. In frames without the
    root, the joints measured there are kept: the root is first placed where they put it (each
    one's offset from the body interpolated around the frame, their median), then the body is
    taken relative to that place."""
    root_ok = ok[:, root]
    relative = _fill_relative(
        x, ok, np.where(root_ok[:, None], x[:, root], np.nan), root, t, params
    )
    placed = ~root_ok & ok.any(axis=1)
    if not (placed.any() and root_ok.any()):
        return relative
    votes = np.moveaxis(x[placed] - relative[placed], 1, 0)  # (J, n, 3): each joint's root
    mask = np.moveaxis(np.broadcast_to(ok[placed][..., None], x[placed].shape), 1, 0)
    root_at = np.where(root_ok[:, None], x[:, root], np.nan)
    root_at[placed] = masked_median(votes, mask)
    return _fill_relative(x, ok, root_at, root, t, params)


def _fill_relative(
    x: np.ndarray, ok: np.ndarray, root_at: np.ndarray, root: int, t: np.ndarray,
    params: CleanParams,
) -> np.ndarray:  # fmt: skip
    """``x`` relative to ``root_at`` (T, 3; NaN: unknown), the root joint at 0, gaps filled."""
    known = np.isfinite(root_at).all(axis=1)
    relative = x - root_at[:, None]
    rel_ok = ok & known[:, None]
    rel_ok[:, root] = True
    relative[:, root] = 0.0
    bridge_noise = 10.0 if params.smooth else 1.0
    filled, _ = fill_gaps(
        relative, rel_ok, t, params.max_interpolate_s, bridge_noise_mm=bridge_noise
    )
    return filled


def _smooth_body(
    x: np.ndarray, relative: np.ndarray, ok: np.ndarray, t: np.ndarray, root: int,
    params: CleanParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:  # fmt: skip
    """Smooth one person's body: ``x`` (T, J, 3) mm measured joints (``ok`` (T, J)), ``relative``
    the same relative to the root, gaps filled. Returns the smoothed body relative to the root
    (T, J, 3), the root measurement (T, 3; NaN: none) and each joint-frame's expected error
    (T, J) for the bone fit (None: uniform).

    ``adaptive``: each frame's root is first placed by all its measured joints (median of their
    offsets from a first smooth body), so that a joint's signal relative to it carries that
    joint's noise only, not the root's as well; then :func:`~retarget.clean.kalman.motion_adaptive_smooth`
    with the white noise measured per axis (:func:`~retarget.clean.kalman.median_noise`) smooths every
    joint, the root included. ``butterworth``: the fixed low-pass of earlier versions."""
    mask = np.broadcast_to(ok[..., None], x.shape)
    if params.body_smoother == "butterworth":
        body = lowpass(relative, t, params.body_cutoff_hz, params.body_order)
        # Root measurement: the pelvis where seen, else the body's offset from the seen joints.
        from_body = masked_median(np.moveaxis(x - body, 1, 0), np.moveaxis(mask, 1, 0))
        return body, np.where(ok[:, root, None], x[:, root], from_body), None
    first = lowpass(relative, t, params.body_cutoff_hz, 2)
    place = masked_median(np.moveaxis(x - first, 1, 0), np.moveaxis(mask, 1, 0))
    reference = masked_median(np.moveaxis(x - relative, 1, 0), np.moveaxis(mask, 1, 0))
    known = finite3(place) & finite3(reference)
    shift = linear_resample(t[known], (reference - place)[known], t)
    centred = relative + shift[:, None]  # x - place where measured
    own = joint_noise(centred, ok)  # also the smoother's: its left-out samples are never ok
    if params.body_noise_mm > 0:
        noise = params.body_noise_mm * np.array([1.0, 1.0, 3.0])
    else:
        noise = median_noise(*own)
        if not np.all(np.isfinite(noise)):
            noise = DEFAULT_BODY_NOISE_MM
    smoothed, density = motion_adaptive_smooth(
        t, centred, noise, ok, params.body_motion_gain, params.body_accel_floor,
        first_cutoff_hz=params.body_cutoff_hz, return_density=True, left_out=curved_gaps(ok, t),
        own_noise=own,
    )  # fmt: skip
    root_measured = np.where(known[:, None], reference - shift + smoothed[:, root], np.nan)
    # A constant-velocity smoother's position error grows with the fourth root of its density.
    return smoothed - smoothed[:, root : root + 1], root_measured, density**0.25


def _clean_person(
    poses: np.ndarray,
    times: np.ndarray,
    names: tuple[str, ...],
    parents: np.ndarray,
    uncertainty: np.ndarray | None,
    params: CleanParams,
    watch: _Stopwatch,
) -> _PersonResult:
    """Steps 1–4 for one person: ``poses`` (T, J, 3) mm camera frame with NaN -> cleaned poses."""
    num, num_joints, _ = poses.shape
    present = finite3(poses)
    out = _PersonResult(
        np.full(poses.shape, np.nan),
        np.full((num, num_joints), ABSENT, np.uint8),
        np.zeros((num, num_joints), bool),
        np.zeros(num, bool),
        {},
    )
    valid = present & (np.nan_to_num(poses[..., 2]) > MIN_DEPTH_MM)
    gates = GateReport(invalid=int((present & ~valid).sum()))
    if params.gate_outliers and valid.any():
        settings = params.gate_settings()
        unc = uncertainty if params.use_uncertainty else None
        poses, valid, swapped, gates = gate_person(
            poses, valid, times, names, parents, unc, settings
        )
        out.swapped = swapped
    watch.lap("gates")
    out.rejected = present & ~valid
    out.report["rejected"] = gates.as_dict()
    if not valid.any():
        out.report["warning"] = "no usable joint: the person is left out (all NaN)"
        return out
    frames = np.flatnonzero(valid.any(axis=1))
    span = slice(frames[0], frames[-1] + 1)
    t, x, ok = times[span], poses[span], valid[span]
    root = int(np.flatnonzero(parents < 0)[0])

    root_ok = ok[:, root]
    relative = _root_relative_body(x, ok, root, t, params)
    never = ~finite3(relative).any(axis=0)
    if never.any():
        # Joints never seen relative to the root: keep them on their parent (flagged "held").
        for j in topological_order(parents):
            if never[j]:
                relative[:, j] = relative[:, parents[j]] if parents[j] >= 0 else 0.0
        out.report["never_seen_joints"] = [names[j] for j in np.flatnonzero(never)]
    codes = gap_codes(ok, t, params.max_interpolate_s)
    codes[:, never] = HELD
    watch.lap("gaps")

    if params.smooth:
        body, root_measured, error = _smooth_body(x, relative, ok, t, root, params)
    else:
        body, error = relative, None
        mask = np.broadcast_to(ok[..., None], x.shape)
        from_body = masked_median(np.moveaxis(x - body, 1, 0), np.moveaxis(mask, 1, 0))
        root_measured = np.where(root_ok[:, None], x[:, root], from_body)
    watch.lap("body_smoothing")
    if params.smooth:
        factor = _root_weights(None if uncertainty is None else uncertainty[span], ok)
        root_track = _smooth_root(t, root_measured, factor, params)
    else:
        root_track = _fill_root(t, root_measured)
    watch.lap("root_smoothing")
    if params.enforce_bones:
        lengths = median_bone_lengths(body, parents, ok)
        step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
        window = int(round(params.bone_drift_window_s / step)) | 1
        body = fit_bone_lengths(body, parents, lengths, weights=error, drift_window=window)
        watch.lap("bones")
    out.poses[span] = body + root_track[:, None]
    out.filled[span] = codes
    out.report["filled"] = {
        name: int((codes == code).sum())
        for name, code in (("interpolated", 1), ("bridged", 2), ("held", 3))
    }
    out.report["span"] = [int(frames[0]), int(frames[-1]) + 1]
    out.report["swapped_frames"] = int(out.swapped.sum())
    return out


# --------------------------------------------------------------------------- contacts


def _contacts_for_person(world, times, names, floor: FloorFit, params: CleanParams):
    """Contacts, weights, targets and clearance for one person's world joints (T, J, 3) m."""
    channels = channels_of(names)
    num = len(world)
    clearance = np.array([floor.clearance(int(name in ("ltoe", "rtoe"))) for name in channels])
    feet = [(a, t) for a, t in (("lank", "ltoe"), ("rank", "rtoe")) if a in names and t in names]
    if feet:
        # The ankle's height over a flat foot, from the foot bone: a per-joint bias of the
        # estimate shifts the data's value by about a centimetre, the anatomy does not.
        lengths = [norm3(world[:, names.index(t)] - world[:, names.index(a)])
                   for a, t in feet]  # fmt: skip
        lengths = np.concatenate(lengths)
        lengths = lengths[np.isfinite(lengths)]
        foot = float(np.median(lengths)) if lengths.size else float("nan")
        prior = params.toe_clearance_m + foot * np.sin(np.radians(params.flat_foot_pitch_deg))
        if np.isfinite(prior):
            w = params.clearance_data_weight
            for c, name in enumerate(channels):
                if name in ("lank", "rank"):
                    clearance[c] = w * clearance[c] + (1 - w) * prior
    contacts = np.zeros((num, len(channels)), bool)
    targets = np.full((num, len(channels), 3), np.nan)
    weights = np.zeros((num, len(channels)))
    span = np.flatnonzero(finite3(world).all(axis=1))
    if not channels or span.size == 0:
        return contacts, weights, targets, clearance
    sl = slice(span[0], span[-1] + 1)
    feet = world[sl][:, [names.index(name) for name in channels]]
    heights = feet[..., 2] - clearance[None]
    fps = 1.0 / float(np.median(np.diff(times))) if len(times) > 1 else 30.0
    found = detect_contacts(heights, speeds(feet, times[sl]), params.contact_settings(), fps)
    contacts[sl] = found
    tg, wt = targets_and_weights(feet, found, clearance, params.contact_ease_frames)
    targets[sl], weights[sl] = tg, wt
    return contacts, weights, targets, clearance


# --------------------------------------------------------------------------- public API


def clean_trajectory(trajectory: Trajectory, preset: str = "default", **overrides) -> Trajectory:
    """Clean every person of ``trajectory`` (see the module docstring for steps and outputs).

    A trajectory that was cleaned before is cleaned again from its ``raw_poses3d``. Raises
    :class:`CleanError` for unusable frame times or a clip without any 3D joint."""
    started = time.perf_counter()
    watch = _Stopwatch()
    params = resolve_params(preset, **overrides)
    times = np.asarray(trajectory.frame_times, float)
    _check_times(times)
    raw = np.asarray(trajectory.extras.get("raw_poses3d", trajectory.poses3d), float)
    if raw.shape != trajectory.poses3d.shape:
        raise CleanError(
            f"'raw_poses3d' has shape {raw.shape} but 'poses3d' has {trajectory.poses3d.shape}; "
            "the file was edited inconsistently, re-run the analysis"
        )
    if raw.shape[0] != times.shape[0]:
        raise CleanError(f"{raw.shape[0]} pose frames but {times.shape[0]} frame times")
    if not finite3(raw).any():
        raise CleanError("the clip has no 3D joint at all; nothing to clean (was anyone detected?)")
    raw = np.where(np.isinf(raw), np.nan, raw)
    behind = behind_camera(raw)
    behind_ids = [int(i) for i in np.asarray(trajectory.track_ids)[behind]]
    if behind.any() and behind.sum() == (finite3(raw).any(axis=(0, 2))).sum():
        raise CleanError(
            f"every person is behind the camera (negative depth); {BEHIND_CAMERA_ADVICE}"
        )
    names = tuple(trajectory.joint_names)
    parents = parents_from_edges(trajectory.joint_edges, len(names))
    num, people, num_joints, _ = raw.shape
    uncertainty = np.asarray(trajectory.uncertainty, float)
    cleaned = np.full(raw.shape, np.nan)
    filled = np.full((num, people, num_joints), ABSENT, np.uint8)
    rejected = np.zeros((num, people, num_joints), bool)
    swapped = np.zeros((num, people), bool)
    report: dict = {"people": [], "warnings": []}
    if behind_ids:  # their joints fail the depth gate: they come out empty
        report["warnings"].append(
            f"person {', '.join(map(str, behind_ids))} is behind the camera (negative depth) and "
            f"is dropped; {BEHIND_CAMERA_ADVICE}"
        )
    for p in range(people):
        watch.lap("other")
        result = _clean_person(raw[:, p], times, names, parents, uncertainty[:, p], params, watch)
        cleaned[:, p], filled[:, p], rejected[:, p], swapped[:, p] = (
            result.poses, result.filled, result.rejected, result.swapped,
        )  # fmt: skip
        if "warning" in result.report:
            report["warnings"].append(
                f"person {int(trajectory.track_ids[p])}: {result.report['warning']}"
            )
        report["people"].append({"track_id": int(trajectory.track_ids[p]), **result.report})

    watch.lap("other")
    roll_prior = LEVEL_CAMERA_ROLL_DEG if params.level_camera else None
    floor = estimate_floor(cleaned, times, names, params.toe_clearance_m, roll_prior)
    pose = floor.world_from_camera()
    watch.lap("floor")
    report["floor"] = {
        "method": floor.method,
        "inliers": floor.inliers,
        "candidates": floor.candidates,
        "camera_height_m": round(floor.camera_height, 4),
        "camera_tilt_deg": round(float(np.degrees(np.arccos(np.clip(-floor.up[1], -1, 1)))), 3),
        # positive: the camera turned clockwise about its viewing direction (image right down)
        "camera_roll_deg": round(float(np.degrees(np.arcsin(np.clip(-floor.up[0], -1, 1)))), 3),
    }
    if floor.method != "ransac":
        report["warnings"].append(
            f"floor estimated from the {floor.method} direction only (the feet never stood still "
            "long enough); check the ground level"
        )
    channels = channels_of(names)
    contacts = np.zeros((num, people, len(channels)), bool)
    weights = np.zeros((num, people, len(channels)), np.float32)
    targets = np.full((num, people, len(channels), 3), np.nan, np.float32)
    clearance = np.zeros((people, len(channels)), np.float32)
    rows = []
    for p in range(people):
        world = camera_to_world(cleaned[:, p], pose)
        c, w, tg, cl = _contacts_for_person(world, times, names, floor, params)
        contacts[:, p], weights[:, p], targets[:, p], clearance[p] = c, w, tg, cl
        rows += [(p, ch, a, b) for ch, a, b in intervals(c)]
        watch.lap("contacts")
        unreachable = 0
        finite = finite3(world)
        if params.lock_feet and channels and finite.any():
            span = finite.all(axis=1)
            locked, unreachable = lock_feet(world[span], names, tg[span], w[span], cl)
            cleaned[span, p] = world_to_camera(locked, pose)
            watch.lap("foot_lock")
        report["people"][p]["contacts"] = int(sum(1 for row in rows if row[0] == p))
        report["people"][p]["lock_unreachable_frames"] = unreachable
    watch.lap("other")
    report["runtime_s"] = round(time.perf_counter() - started, 4)
    report["stage_runtime_s"] = {stage: round(s, 4) for stage, s in watch.seconds.items()}
    for warning in report["warnings"]:
        logger.warning(warning)
    extras = {k: v for k, v in trajectory.extras.items() if k not in CLEAN_KEYS}
    extras.update(
        raw_poses3d=raw.astype(np.float32),
        filled=filled,
        rejected=rejected,
        swapped=swapped,
        world_from_camera=pose,
        contact_channels=np.array(channels, dtype=str),
        contacts=contacts,
        contact_weights=weights,
        contact_targets=targets,
        contact_intervals=np.array(rows, np.int32).reshape(-1, 4),
        contact_clearance=clearance,
        clean_params=np.array(json.dumps({"preset": preset, "params": dataclasses.asdict(params)})),
        clean_report=np.array(json.dumps(report)),
    )
    return trajectory.replace(poses3d=cleaned.astype(np.float32), extras=extras)
