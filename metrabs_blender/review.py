"""Review aids: who was tracked, where the estimate is weak, and the raw joints to compare against.

Frame spans come from the trajectory alone (numpy); markers and empties are placed on the scene
frames the import keys: ``scene.frame_start + (time - first_time) * scene_fps``.
"""

import colorsys
from dataclasses import dataclass

import bpy
import numpy as np

from ..retarget import frames
from ..retarget.contract import Trajectory
from . import scene as scene_tools

#: mean joint uncertainty above which a frame counts as low confidence, millimetres
DEFAULT_UNCERTAINTY_MM = 100.0
#: codes of the cleaning's ``filled`` extra (u8, (T, P, J)) for joints it made up rather than
#: measured: 1 interpolated, 2 bridged over a long gap, 3 held before/after the first/last sample
FILLED_CODES = (1, 2, 3)


@dataclass(frozen=True)
class PersonSummary:
    """One tracked person, for the results list."""

    index: int  # position along the trajectory's person axis
    track_id: int
    frames_visible: int  # frames with at least one finite joint
    first_frame: int  # first/last visible frame index, -1 when never visible
    last_frame: int
    mean_score: float  # detector score averaged over visible frames (NaN if none)
    mean_uncertainty_mm: float  # joint uncertainty averaged over visible frames (NaN if unknown)
    colour: tuple[float, float, float]  # display colour, linear RGB


@dataclass(frozen=True)
class Span:
    """Frames ``start``..``end`` (indices into the trajectory, inclusive) of one person."""

    track_id: int
    kind: str  # "gap", "filled" or "low confidence"
    start: int
    end: int


def person_colour(index: int) -> tuple[float, float, float]:
    """Distinct colours, one per person (golden-angle hue steps)."""
    red, green, blue = colorsys.hsv_to_rgb((0.08 + 0.381966 * index) % 1.0, 0.75, 0.9)
    return (red, green, blue)


def _nan_mean(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def person_summaries(trajectory: Trajectory) -> list[PersonSummary]:
    """Visibility, mean detector score and uncertainty of every person in the trajectory."""
    visible = np.isfinite(trajectory.poses3d).all(axis=-1).any(axis=-1)  # (T, P)
    summaries = []
    for person, track_id in enumerate(trajectory.track_ids):
        seen = np.flatnonzero(visible[:, person])
        summaries.append(
            PersonSummary(
                index=person,
                track_id=int(track_id),
                frames_visible=int(seen.size),
                first_frame=int(seen[0]) if seen.size else -1,
                last_frame=int(seen[-1]) if seen.size else -1,
                mean_score=_nan_mean(trajectory.boxes[seen, person, 4]),
                mean_uncertainty_mm=_nan_mean(trajectory.uncertainty[seen, person]),
                colour=person_colour(person),
            )
        )
    return summaries


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive ``(start, end)`` index pairs of the True runs of a 1-D boolean array."""
    padded = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(start), int(end) - 1) for start, end in zip(edges[::2], edges[1::2], strict=True)]


def filled_frames(trajectory: Trajectory) -> np.ndarray | None:
    """(T, P) bool: frames where the cleaning filled in any joint (``extras["filled"]``, either its
    u8 (T, P, J) codes or a (T, P) bool mask), None for an uncleaned trajectory."""
    filled = trajectory.extras.get("filled")
    if filled is None:
        return None
    filled = np.asarray(filled)
    if filled.ndim == 3:
        return np.isin(filled, FILLED_CODES).any(axis=-1)
    return filled.astype(bool)


def raw_poses(trajectory: Trajectory) -> np.ndarray:
    """(T, P, J, 3) the estimator's own poses, camera mm: ``extras["raw_poses3d"]`` of a cleaned
    trajectory, else ``poses3d``."""
    raw = trajectory.extras.get("raw_poses3d")
    return trajectory.poses3d if raw is None else np.asarray(raw)


def _mean_over_joints(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN where every value is NaN."""
    finite = np.isfinite(values)
    counts = finite.sum(axis=-1)
    sums = np.where(finite, values, 0.0).sum(axis=-1, dtype=np.float64)
    return np.divide(sums, counts, out=np.full(counts.shape, np.nan), where=counts > 0)


def review_spans(
    trajectory: Trajectory, uncertainty_mm: float = DEFAULT_UNCERTAINTY_MM
) -> list[Span]:
    """Spans worth a second look, per person, sorted by start frame:

    - ``gap``: the person is missing between two visible frames (occlusion, missed detection);
    - ``filled``: frames where the cleaning filled in joints (:func:`filled_frames`);
    - ``low confidence``: visible frames whose mean joint uncertainty exceeds ``uncertainty_mm``.
    """
    visible = np.isfinite(trajectory.poses3d).all(axis=-1).any(axis=-1)
    filled = filled_frames(trajectory)
    uncertain = _mean_over_joints(trajectory.uncertainty) > uncertainty_mm  # NaN compares False
    spans = []
    for person, track_id in enumerate(trajectory.track_ids):
        seen = np.flatnonzero(visible[:, person])
        gaps = np.zeros(trajectory.num_frames, bool)
        if seen.size:
            gaps[seen[0] : seen[-1] + 1] = ~visible[seen[0] : seen[-1] + 1, person]
        kinds = [("gap", gaps), ("low confidence", uncertain[:, person] & visible[:, person])]
        if filled is not None:
            kinds.append(("filled", filled[:, person]))
        for kind, mask in kinds:
            spans += [Span(int(track_id), kind, s, e) for s, e in runs(mask)]
    return sorted(spans, key=lambda span: (span.start, span.track_id, span.kind))


def scene_frames(trajectory: Trajectory, scene: "bpy.types.Scene") -> np.ndarray:
    """Scene frame (float) of every trajectory frame, as the import keys them."""
    times = trajectory.frame_times - trajectory.frame_times[0]
    return scene.frame_start + times * scene_tools.scene_fps(scene)


MARKER_PREFIX = "MeTRAbs "


def add_markers(
    trajectory: Trajectory, scene: "bpy.types.Scene", spans: list[Span]
) -> list["bpy.types.TimelineMarker"]:
    """One timeline marker at the first frame of each span, named ``MeTRAbs P1 gap 40-49`` (scene
    frames). Earlier MeTRAbs markers are removed first; the user's own markers stay."""
    for marker in [m for m in scene.timeline_markers if m.name.startswith(MARKER_PREFIX)]:
        scene.timeline_markers.remove(marker)
    at = np.round(scene_frames(trajectory, scene)).astype(int)
    markers = []
    for span in spans:
        first, last = int(at[span.start]), int(at[span.end])
        name = f"{MARKER_PREFIX}P{span.track_id} {span.kind} {first}-{last}"
        markers.append(scene.timeline_markers.new(name, frame=first))
    return markers


def _location_fcurves(target: "bpy.types.Object", action: "bpy.types.Action") -> list:
    """The three location F-curves of ``target`` in ``action`` (legacy or layered actions)."""
    animation_data = target.animation_data or target.animation_data_create()
    animation_data.action = action
    if hasattr(action, "fcurve_ensure_for_datablock"):
        return [action.fcurve_ensure_for_datablock(target, "location", index=i) for i in range(3)]
    return [action.fcurves.new("location", index=i) for i in range(3)]


def _key(fcurve, keyed_frames: np.ndarray, values: np.ndarray) -> None:
    fcurve.keyframe_points.add(len(keyed_frames))
    coordinates = np.empty(2 * len(keyed_frames), np.float32)
    coordinates[0::2], coordinates[1::2] = keyed_frames, values
    fcurve.keyframe_points.foreach_set("co", coordinates)
    linear = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value
    fcurve.keyframe_points.foreach_set(
        "interpolation", np.full(len(keyed_frames), linear, np.int32)
    )
    fcurve.update()


def add_joint_empties(
    context: "bpy.types.Context",
    trajectory: Trajectory,
    name: str,
    people: list[int] | None = None,
    size_m: float = 0.03,
) -> "bpy.types.Collection":
    """Animated empties at the raw joints (:func:`raw_poses`), one per joint and person, in a new
    collection ``name`` inside the scene's: the motion as the network saw it, to compare with the
    cleaned motion on the rig.

    ``people`` are indices along the person axis (default all). Frames where a joint is missing are
    not keyed. World placement is :func:`camera.world_from_camera`, as for the camera and rig.
    """
    from .camera import world_from_camera

    collection = bpy.data.collections.new(name)
    context.scene.collection.children.link(collection)
    joints = frames.camera_to_world(
        raw_poses(trajectory).astype(np.float64), world_from_camera(trajectory)
    )
    at = scene_frames(trajectory, context.scene)
    for person in range(trajectory.num_people) if people is None else people:
        track_id = int(trajectory.track_ids[person])
        for j, joint in enumerate(trajectory.joint_names):
            empty = bpy.data.objects.new(f"{name} P{track_id} {joint}", None)
            empty.empty_display_type = "SPHERE"
            empty.empty_display_size = size_m
            empty.color = (*person_colour(person), 1.0)
            collection.objects.link(empty)
            valid = np.isfinite(joints[:, person, j]).all(axis=-1)
            if not valid.any():
                continue
            action = bpy.data.actions.new(empty.name)
            for axis, fcurve in enumerate(_location_fcurves(empty, action)):
                _key(fcurve, at[valid], joints[valid, person, j, axis])
    return collection
