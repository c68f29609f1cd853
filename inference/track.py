"""Multi-person tracking with poses: stable ids across frames and short occlusions.

Per frame the tracker receives *candidates*: person boxes with the 3D/2D poses the network estimated
in them. Detector boxes are matched to the live tracks by the Hungarian algorithm on a cost mixing
the box overlap (IoU of the pose's 2D extent with the track's predicted box) and the mean 3D joint
distance to the track's predicted pose (camera frame, millimetres). Overlaps are measured on boxes
widened to a person's least plausible aspect, so a squeezed or side-on pose still overlaps its own
track; a detector's second box on someone (inside or over a better-scored box, with a close 3D
pose, or close 2D joints at a similar depth) is dropped before matching. Tracks that found no
detection may take the pose estimated in a box *proposed from their own last pose* (see
:meth:`Tracker.proposals`); MeTRAbs is robust to truncation, so people at frame edges or missed
by the detector keep being tracked, and detection need not run on every frame. A track unmatched
for longer than ``max_gap_s`` ends; a person reappearing later gets a new id.

Proposals feed on the network's own output, so a weak or biased model can make them drift: a crop
slightly too large gives a pose spread over it, whose extent gives a larger crop, and so on. Two
guards keep that bounded: a proposal may change the box size at most ``proposal_max_scale`` times
from the last box a detection confirmed, and a track not confirmed by any detection for
``max_unconfirmed_s`` ends (ghosts between people, runaway crops), so the detector's view wins.

All boxes are ``x, y, w, h`` pixels; poses are ``(J, 3)`` millimetres and ``(J, 2)`` pixels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from .detect.nms import box_iou, intersection_over_smaller

logger = logging.getLogger(__name__)

_INFEASIBLE = 1e6


@dataclass(frozen=True)
class TrackerParams:
    """Matching weights and gates."""

    pose_scale_mm: float = 400.0  # mean joint distance that costs as much as a box IoU of 0
    min_iou: float = 0.1  # a live track's predicted box must overlap a candidate at least this much
    lost_min_iou: float = 0.5  # a track missed for frames matches this much overlap whatever its 3D
    max_pose_distance_mm: float = 700.0  # gate on the mean 3D joint distance at a gap of 0 s ...
    max_speed_mm_s: float = 4000.0  # ... growing by this speed for every second of gap
    max_gap_s: float = 1.0  # a track unmatched this long ends (short occlusions are bridged)
    proposal_margin: float = 0.15  # proposed boxes: pose extent enlarged by this share per side
    proposal_growth_per_s: float = 0.5  # ... and by this share per second since the track was seen
    min_aspect: float = 0.5  # person boxes are at least this share of their height wide
    duplicate_overlap: float = 0.6  # a candidate covering this share of an assigned one's box, or
    # covered by it (intersection over the smaller box: a partial box lies inside the whole one) ...
    duplicate_distance_mm: float = 400.0  # ... with a 3D pose this close is the same person again,
    duplicate_depth_share: float = 0.1  # ... or closer than this share of its depth (the estimated
    # depth of one person varies from crop to crop in proportion to the depth) ...
    duplicate_2d_share: float = 0.1  # ... or 2D joints within this share of the taller one's height
    duplicate_2d_max_depth_change: float = 0.15  # ... and depths within this share of each other
    new_tracks: bool = True  # start tracks from unmatched detections (off: only the seeded ones)
    new_track_max_iou: float = 0.3  # ... that overlap no unmatched live track's box more than this
    proposal_max_scale: float = (
        1.5  # proposals keep the box within this factor of the confirmed size
    )
    max_unconfirmed_s: float | None = 1.5  # tracks no detection matched this long end (None: never,
    # for runs without a detector)


@dataclass
class Candidates:
    """Persons found in one frame: ``boxes`` (n, 5) x, y, w, h, score; ``poses3d`` (n, J, 3) mm;
    ``poses2d`` (n, J, 2) px; ``uncertainty`` (n, J); ``proposed_for`` (n,) track id whose
    proposal produced the candidate, -1 for detector (or user) boxes."""

    boxes: np.ndarray
    poses3d: np.ndarray
    poses2d: np.ndarray
    uncertainty: np.ndarray
    proposed_for: np.ndarray

    @classmethod
    def empty(cls, num_joints: int) -> Candidates:
        return cls(
            np.zeros((0, 5), np.float32),
            np.zeros((0, num_joints, 3), np.float32),
            np.zeros((0, num_joints, 2), np.float32),
            np.zeros((0, num_joints), np.float32),
            np.zeros(0, np.int64),
        )

    def __len__(self) -> int:
        return len(self.boxes)


def pose_box(poses2d: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """``(..., 4)`` x, y, w, h extent of ``(..., J, 2)`` 2D joints (NaN joints ignored; all-NaN
    gives NaN), enlarged by ``margin`` times the size on each side."""
    low = np.fmin.reduce(poses2d, axis=-2)  # fmin/fmax skip NaN (all-NaN gives NaN), silently
    high = np.fmax.reduce(poses2d, axis=-2)
    size = high - low
    return np.concatenate([low - margin * size, size * (1 + 2 * margin)], axis=-1)


def widened(boxes: np.ndarray, min_aspect: float) -> np.ndarray:
    """``(..., 4)`` x, y, w, h boxes made at least ``min_aspect`` times their height wide, about
    the same centre. A person is rarely narrower (legs together, side view), while the 2D extent of
    one pose can be: a squeezed or side-on estimate must still overlap the same person's box."""
    boxes = np.array(boxes, np.float64)
    width = np.maximum(boxes[..., 2], min_aspect * boxes[..., 3])
    boxes[..., 0] -= (width - boxes[..., 2]) / 2
    boxes[..., 2] = width
    return boxes


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean over ``axis`` ignoring NaN; NaN where nothing is finite (no warning)."""
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    count = finite.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def mean_joint_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean over joints of the distance between ``(n, J, 3)`` and ``(m, J, 3)`` poses -> (n, m);
    joints missing in either pose are skipped, NaN when no joint is shared."""
    return _nanmean(np.linalg.norm(a[:, None] - b[None, :], axis=-1), axis=-1)


@dataclass
class Track:
    """One person over time: per-frame results keyed by output frame row, and the motion state."""

    track_id: int
    last_row: int
    last_time: float
    box: np.ndarray  # (4,) x, y, w, h of the last pose's 2D extent (or its box)
    pose3d: np.ndarray  # (J, 3) mm, last estimate
    centre: np.ndarray  # (2,) px, body centre (median 2D joint) of the last estimate
    confirmed_time: float = -np.inf  # when a detection (or a seed box) last matched the track
    confirmed_size: np.ndarray | None = None  # (2,) w, h of the box at that time
    centre_velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # box centre, px/s
    root_velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))  # mm/s
    rows: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict
    )

    def predicted_box(self, time: float) -> np.ndarray:
        """The last box moved by the centre's velocity (its size is not extrapolated: the extent
        of a pose changes with the limbs, not with the person's motion)."""
        moved = self.box.copy()
        moved[:2] += self.centre_velocity * (time - self.last_time)
        return moved

    def predicted_pose(self, time: float) -> np.ndarray:
        return self.pose3d + self.root_velocity * (time - self.last_time)

    def confirm(self, time: float) -> None:
        """A detection (or seed box) matched the track at ``time``: its box size is trusted."""
        self.confirmed_time, self.confirmed_size = time, self.box[2:4].copy()

    def limit_scale(self, max_scale: float) -> None:
        """Keep the box size within ``max_scale`` times the confirmed size (centre unchanged)."""
        if self.confirmed_size is None:
            return
        size = np.clip(
            self.box[2:4], self.confirmed_size / max_scale, self.confirmed_size * max_scale
        )
        centre = self.box[:2] + self.box[2:4] / 2
        self.box = np.concatenate([centre - size / 2, size])

    def observe(
        self,
        row: int,
        time: float,
        box: np.ndarray,
        pose3d: np.ndarray,
        centre: np.ndarray,
        max_speed_mm_s: float = np.inf,
    ) -> None:
        """Move the motion state to a new observation: ``box`` (4,) pose extent, ``pose3d``
        (J, 3) mm and the body ``centre`` (2,) px. Velocities are smoothed over ~2 frames; the 3D
        one is capped at ``max_speed_mm_s`` (a wrong pose must not fling the prediction away)."""
        dt = time - self.last_time
        if dt > 0 and np.all(np.isfinite(centre)) and np.all(np.isfinite(self.centre)):
            self.centre_velocity = 0.5 * self.centre_velocity + 0.5 * (centre - self.centre) / dt
        root_new, root_old = _nanmean(pose3d, axis=0), _nanmean(self.pose3d, axis=0)
        if dt > 0 and np.all(np.isfinite(root_new)) and np.all(np.isfinite(root_old)):
            velocity = 0.5 * self.root_velocity + 0.5 * (root_new - root_old) / dt
            speed = np.linalg.norm(velocity)
            self.root_velocity = velocity * min(1.0, max_speed_mm_s / speed) if speed else velocity
        if np.all(np.isfinite(box)):
            self.box = box
        if np.all(np.isfinite(centre)):
            self.centre = centre
        if np.isfinite(pose3d).any():
            self.pose3d = pose3d
        self.last_row, self.last_time = row, time


def body_centre(poses2d: np.ndarray, box: np.ndarray) -> np.ndarray:
    """``(2,)`` median of the 2D joints ``(J, 2)`` — it follows the body, not the swinging limbs
    that move the pose's extent — or the centre of ``box`` (4,) when no joint is known."""
    known = np.isfinite(poses2d).all(axis=-1)
    if known.any():
        return np.median(poses2d[known], axis=0)
    return np.asarray(box[:2], np.float64) + np.asarray(box[2:4], np.float64) / 2


class Tracker:
    """Assigns candidates to tracks frame by frame; see the module docstring."""

    def __init__(self, params: TrackerParams | None = None) -> None:
        self.params = params or TrackerParams()
        self.tracks: list[Track] = []
        self.next_id = 0
        self.frame_interval: float | None = None  # shortest time between updates seen, s
        self.last_update_time: float | None = None

    def live_tracks(self, time: float) -> list[Track]:
        """Tracks seen within ``max_gap_s`` and confirmed within ``max_unconfirmed_s`` before
        ``time``."""
        p = self.params
        unconfirmed = np.inf if p.max_unconfirmed_s is None else p.max_unconfirmed_s
        return [
            t
            for t in self.tracks
            if time - t.last_time <= p.max_gap_s + 1e-9
            and time - t.confirmed_time <= unconfirmed + 1e-9
        ]

    def proposals(
        self,
        time: float,
        image_size: tuple[int, int],
        anchors: dict[int, tuple[float, np.ndarray]] | None = None,
    ) -> list[tuple[int, np.ndarray]]:
        """``(track_id, box)`` for every live track at ``time``: its last pose extent moved by its
        velocity, enlarged with the time elapsed, and kept only while it overlaps the image.
        ``anchors`` maps a track id to a more recent ``(time, box)`` to start from instead (e.g. a
        detection matched to it earlier in the same batch)."""
        image_width, image_height = image_size
        anchors = anchors or {}
        out = []
        for track in self.live_tracks(time):
            anchor_time, box = anchors.get(track.track_id, (track.last_time, track.box))
            elapsed = max(time - anchor_time, 0.0)
            box = np.array(box, np.float64)
            box[:2] += track.centre_velocity * (time - anchor_time)
            box = widened(box, self.params.min_aspect)
            grow = self.params.proposal_margin + self.params.proposal_growth_per_s * elapsed
            box = np.array([box[0] - grow * box[2], box[1] - grow * box[3], box[2] * (1 + 2 * grow),
                            box[3] * (1 + 2 * grow)])  # fmt: skip
            visible = box[0] < image_width and box[1] < image_height
            visible = visible and box[0] + box[2] > 0 and box[1] + box[3] > 0
            if np.all(np.isfinite(box)) and box[2] > 1 and box[3] > 1 and visible:
                out.append((track.track_id, box))
        return out

    def seed(self, row: int, time: float, candidates: Candidates) -> list[int]:
        """Start one track per candidate (e.g. the user's ``--box``); returns the new ids."""
        self.last_update_time = time  # the next update knows the frame interval
        return [self._new_track(row, time, candidates, i) for i in range(len(candidates))]

    def _new_track(self, row: int, time: float, c: Candidates, i: int) -> int:
        track = Track(self.next_id, row, time, *_observation(c, i))
        track.confirm(time)
        self.next_id += 1
        self.tracks.append(track)
        self._record(track, row, c, i)
        return track.track_id

    @staticmethod
    def _record(track: Track, row: int, c: Candidates, i: int) -> None:
        track.rows[row] = (c.poses3d[i], c.poses2d[i], c.uncertainty[i], c.boxes[i])

    def _costs(
        self, tracks: list[Track], time: float, c: Candidates, boxes: np.ndarray
    ) -> np.ndarray:
        """Cost matrix (tracks x candidates) with infeasible pairs at ``_INFEASIBLE``."""
        p = self.params
        if not tracks or not len(c):
            return np.zeros((len(tracks), len(c)))
        predicted_boxes = np.array([t.predicted_box(time) for t in tracks])
        iou = box_iou(widened(predicted_boxes, p.min_aspect), widened(boxes, p.min_aspect))
        distance = mean_joint_distance(
            np.array([t.predicted_pose(time) for t in tracks]), c.poses3d
        )
        gaps = np.array([time - t.last_time for t in tracks])[:, None]
        gate = p.max_pose_distance_mm + p.max_speed_mm_s * gaps
        known = np.isfinite(distance)
        pose_cost = np.where(known, distance / p.pose_scale_mm, 1.0)
        cost = (1.0 - iou) + pose_cost
        # A track seen in the previous frame must overlap; after a gap the 3D pose decides, or a
        # strong overlap with where the track was heading (its 3D state may be off after an
        # occlusion that gave it poor poses).
        interval = self.frame_interval or 0.0
        just_seen = gaps <= 1.5 * interval
        feasible = (known & (distance <= gate)) | (~known & (iou >= p.min_iou))
        feasible &= ~just_seen | (iou >= p.min_iou)
        feasible |= ~just_seen & (iou >= p.lost_min_iou)
        return np.where(feasible, cost, _INFEASIBLE)

    def update(self, row: int, time: float, candidates: Candidates) -> dict[int, int]:
        """Assign the candidates of output frame ``row`` at ``time`` s; returns candidate index ->
        track id for the candidates that were kept."""
        p = self.params
        if self.last_update_time is not None and time > self.last_update_time:
            step = time - self.last_update_time
            self.frame_interval = min(self.frame_interval or step, step)
        self.last_update_time = time
        boxes = pose_box(candidates.poses2d) if len(candidates) else np.zeros((0, 4))
        missing = ~np.all(np.isfinite(boxes), axis=1)
        boxes[missing] = candidates.boxes[missing, :4]
        live = self.live_tracks(time)
        assigned: dict[int, int] = {}
        detected = self._distinct_detections(candidates, boxes)
        if live and detected.size:
            cost = self._costs(live, time, _subset(candidates, detected), boxes[detected])
            for t_index, c_index in zip(*linear_sum_assignment(cost), strict=True):
                if cost[t_index, c_index] < _INFEASIBLE:
                    assigned[int(detected[c_index])] = live[t_index].track_id
        matched = set(assigned.values())
        by_id = {t.track_id: t for t in live}
        for index, track_id in self._proposals_by_cost(time, candidates, boxes, by_id, matched):
            if track_id in matched or self._duplicate(candidates, boxes, index, list(assigned)):
                continue  # a proposal with the pose of someone assigned in this frame
            assigned[index] = track_id
            matched.add(track_id)
        for index, track_id in assigned.items():
            track = by_id[track_id]
            self._record(track, row, candidates, index)
            track.observe(
                row, time, *_observation(candidates, index), max_speed_mm_s=p.max_speed_mm_s
            )
            if candidates.proposed_for[index] < 0:
                track.confirm(time)
            else:
                track.limit_scale(p.proposal_max_scale)
        if p.new_tracks:
            for index in detected:
                if index in assigned or not np.isfinite(candidates.poses3d[index]).any():
                    continue
                if self._duplicate(candidates, boxes, int(index), list(assigned)):
                    continue  # a second box on someone already tracked
                if self._near_unmatched(live, matched, time, boxes[index]):
                    continue  # most likely a tracked person, hidden or merged with another
                assigned[int(index)] = self._new_track(row, time, candidates, int(index))
        return assigned

    def _distinct_detections(self, c: Candidates, boxes: np.ndarray) -> np.ndarray:
        """Indices of the detector (or user) candidates, best score first, without those that
        are someone of a better-scored one again (:meth:`_duplicate`): a detector's second, partial
        box on a person must not compete with the person's own box for a track."""
        detected = np.flatnonzero(c.proposed_for < 0)
        kept: list[int] = []
        for index in detected[np.argsort(-c.boxes[detected, 4], kind="stable")]:
            if not self._duplicate(c, boxes, int(index), kept):
                kept.append(int(index))
        return np.array(sorted(kept), np.int64)

    def _proposals_by_cost(
        self, time: float, c: Candidates, boxes: np.ndarray, by_id: dict[int, Track],
        matched: set[int],
    ) -> list[tuple[int, int]]:  # fmt: skip
        """``(candidate index, track id)`` of the poses from boxes proposed for unmatched live
        tracks that may continue them (close to the predicted pose in 3D), cheapest first: where
        two tracks' crops show one person, the track closer to that person takes the pose."""
        scored = []
        for index in np.flatnonzero(c.proposed_for >= 0):
            track = by_id.get(int(c.proposed_for[index]))
            if (
                track is None
                or track.track_id in matched
                or not np.isfinite(c.poses2d[index]).any()
            ):
                continue  # (no pose in the box: its own extent would match trivially)
            one = _subset(c, np.array([index]))
            cost = self._costs([track], time, one, boxes[index : index + 1])[0, 0]
            if cost < _INFEASIBLE:
                scored.append((cost, int(index), track.track_id))
        return [(index, track_id) for _, index, track_id in sorted(scored)]

    def _near_unmatched(
        self, live: list[Track], matched: set[int], time: float, box: np.ndarray
    ) -> bool:
        """Whether ``box`` overlaps the predicted box of a live track left unmatched in this frame:
        then it is not a new person (a new track would take that person's id after the
        occlusion); the track itself picks the person up again when the view clears."""
        unmatched = [t.predicted_box(time) for t in live if t.track_id not in matched]
        if not unmatched:
            return False
        aspect = self.params.min_aspect
        overlap = box_iou(widened(box, aspect), widened(np.array(unmatched), aspect))
        return bool(overlap.max() > self.params.new_track_max_iou)

    def _duplicate(self, c: Candidates, boxes: np.ndarray, index: int, others: list[int]) -> bool:
        """Whether candidate ``index`` is someone among ``others`` again: overlapping boxes and a
        close 3D pose (``duplicate_distance_mm`` or ``duplicate_depth_share`` of the depth) or close
        2D joints (``duplicate_2d_share`` of the taller pose's height) at a similar depth. A person
        in front of another, with the same box but a clearly different depth or pose, is not a
        duplicate."""
        if not others:
            return False
        p = self.params
        overlap = intersection_over_smaller(
            widened(boxes[index], p.min_aspect), widened(boxes[others], p.min_aspect)
        )
        distance = mean_joint_distance(c.poses3d[index][None], c.poses3d[others])[0]
        depth = _nanmean(c.poses3d[index][:, 2], axis=0)
        # an unknown distance (no joint shared) counts as close
        close = ~(distance > np.fmax(p.duplicate_distance_mm, p.duplicate_depth_share * depth))
        distance2d = mean_joint_distance(c.poses2d[index][None], c.poses2d[others])[0]
        depths = _nanmean(c.poses3d[others][..., 2], axis=-1)
        depth_change = np.abs(depths - depth) / np.fmax(depths, depth)
        # relative to the taller extent: a partial box's pose is shorter than the person
        height = np.maximum(boxes[index, 3], boxes[others, 3])
        close |= (distance2d < p.duplicate_2d_share * height) & ~(
            depth_change > p.duplicate_2d_max_depth_change
        )
        return bool(np.any((overlap[0] > p.duplicate_overlap) & close))

    def num_rows(self) -> int:
        return 1 + max((max(t.rows) for t in self.tracks if t.rows), default=-1)


def _observation(c: Candidates, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pose extent box (4,), 3D pose (J, 3), body centre (2,)) of candidate ``i``; the extent
    falls back to the candidate's box when its pose has no 2D joint."""
    box = pose_box(c.poses2d[i])
    if not np.all(np.isfinite(box)):
        box = c.boxes[i, :4].astype(np.float64)
    return box, c.poses3d[i].astype(np.float64), body_centre(c.poses2d[i], c.boxes[i, :4])


def _subset(c: Candidates, indices: np.ndarray) -> Candidates:
    return Candidates(c.boxes[indices], c.poses3d[indices], c.poses2d[indices],
                      c.uncertainty[indices], c.proposed_for[indices])  # fmt: skip


def select_tracks(tracks: list[Track], min_frames: int, max_people: int | None) -> list[Track]:
    """Tracks present in at least ``min_frames`` frames; the ``max_people`` present in the most
    frames (ties: lower id); returned in id order."""
    kept = [t for t in tracks if len(t.rows) >= min_frames]
    if max_people is not None:
        kept = sorted(kept, key=lambda t: (-len(t.rows), t.track_id))[:max_people]
    return sorted(kept, key=lambda t: t.track_id)


def stack_tracks(tracks: list[Track], num_rows: int, num_joints: int) -> dict[str, np.ndarray]:
    """Contract arrays of the tracks: ``poses3d`` (T, P, J, 3), ``poses2d``, ``uncertainty``,
    ``boxes`` (T, P, 5) and ``track_ids`` (P,), NaN where a person is absent."""
    num_people = len(tracks)
    poses3d = np.full((num_rows, num_people, num_joints, 3), np.nan, np.float32)
    poses2d = np.full((num_rows, num_people, num_joints, 2), np.nan, np.float32)
    uncertainty = np.full((num_rows, num_people, num_joints), np.nan, np.float32)
    boxes = np.full((num_rows, num_people, 5), np.nan, np.float32)
    for person, track in enumerate(tracks):
        for row, (pose3d, pose2d, unc, box) in track.rows.items():
            poses3d[row, person], poses2d[row, person] = pose3d, pose2d
            uncertainty[row, person], boxes[row, person] = unc, box
    track_ids = np.array([t.track_id for t in tracks], np.int32)
    return {"poses3d": poses3d, "poses2d": poses2d, "uncertainty": uncertainty, "boxes": boxes,
            "track_ids": track_ids}  # fmt: skip


def tracker_from_arrays(
    arrays: dict[str, np.ndarray], frame_times: np.ndarray, params: TrackerParams | None = None
) -> Tracker:
    """Rebuild a tracker from earlier results (a partial file being resumed): every person column
    becomes a track with its rows, and its motion state is replayed from them."""
    tracker = Tracker(params)
    for person, track_id in enumerate(arrays["track_ids"]):
        present = np.flatnonzero(np.isfinite(arrays["boxes"][:, person, 0]))
        if not present.size:
            continue
        track = None
        for row in present:
            c = Candidates(
                arrays["boxes"][row, person][None], arrays["poses3d"][row, person][None],
                arrays["poses2d"][row, person][None], arrays["uncertainty"][row, person][None],
                np.array([-1]),
            )  # fmt: skip
            if track is None:
                track = Track(int(track_id), int(row), float(frame_times[row]), *_observation(c, 0))
                tracker.tracks.append(track)
            else:
                track.observe(
                    int(row),
                    float(frame_times[row]),
                    *_observation(c, 0),
                    max_speed_mm_s=tracker.params.max_speed_mm_s,
                )  # as when tracking
            track.confirm(float(frame_times[row]))  # which rows a detection matched is not stored
            Tracker._record(track, int(row), c, 0)
    tracker.next_id = int(max(arrays["track_ids"], default=-1)) + 1
    if len(frame_times):
        tracker.last_update_time = float(frame_times[-1])
    if len(frame_times) > 1:
        tracker.frame_interval = float(np.min(np.diff(frame_times)))
    return tracker
