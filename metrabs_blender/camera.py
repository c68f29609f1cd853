"""Camera match: a Blender camera that sees the world as the footage's camera did.

The analysis works in the camera frame (OpenCV axes: x right, y down, z forward) with a pinhole
matrix ``K``. The import puts that frame into the Blender world with a pose ``world_from_camera``
(metres); a Blender camera at the same pose, with the same intrinsics and the footage as its
background, makes the armatures overlay the video in camera view.

Intrinsics -> Blender (sensor fit horizontal, so the sensor width spans the image width):
``lens = fx / width * sensor_width``; pixels ``fy / fx`` times as wide as tall (``fx != fy``) become
the render's pixel aspect; the principal point's offset from the image centre becomes the lens
shift, in units of the image width: ``shift_x = -(cx - (W-1)/2) / W``, ``shift_y = (cy - (H-1)/2)
/ W * fx / fy`` (pixel centres at integer coordinates, as OpenCV counts them).
"""

import bpy
import numpy as np
from mathutils import Matrix

from ..retarget import frames
from ..retarget.contract import Trajectory, has_camera
from . import scene as scene_tools
from .errors import MocapError

DEFAULT_SENSOR_WIDTH_MM = 36.0  # full-frame width; any value works as long as lens follows it
MAX_PIXEL_ASPECT = 200.0  # the largest render pixel aspect Blender accepts
# OpenCV camera axes -> Blender camera axes (x right, y up, looking along -z)
_OPENCV_TO_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0])


def world_from_camera(trajectory: Trajectory) -> np.ndarray:
    """The pose (4x4, metres) placing the trajectory's camera frame in the Blender world.

    The floor fit stored by the cleaning (``extras["world_from_camera"]``) when present, else a
    level camera over the lowest foot joints, the frame :func:`api.import_trajectory` uses.
    """
    stored = trajectory.extras.get("world_from_camera")
    if stored is not None:
        stored = np.asarray(stored, np.float64)
        if stored.shape != (4, 4) or not np.all(np.isfinite(stored)):
            raise MocapError("'world_from_camera' in the trajectory is not a finite 4x4 matrix")
        return stored
    return frames.level_camera_pose(trajectory.poses3d, trajectory.joint_names)


def focal_length_mm(intrinsics: np.ndarray, image_width: int, sensor_width_mm: float) -> float:
    """Lens focal length in mm for a horizontal sensor fit: ``fx / width * sensor_width``."""
    return float(intrinsics[0, 0]) / image_width * sensor_width_mm


def lens_shift(intrinsics: np.ndarray, image_size: tuple[int, int]) -> tuple[float, float]:
    """Blender ``(shift_x, shift_y)`` that put the principal point where ``intrinsics`` has it
    (a shift is in units of the width's plane size; a pixel's height there is ``fx / fy`` of its
    width)."""
    width, height = image_size
    shift_x = -(float(intrinsics[0, 2]) - (width - 1) / 2) / width
    pixel_height = float(intrinsics[0, 0]) / float(intrinsics[1, 1])
    shift_y = (float(intrinsics[1, 2]) - (height - 1) / 2) / width * pixel_height
    return shift_x, shift_y


def check_camera(trajectory: Trajectory) -> None:
    """Raise :class:`MocapError` if Blender cannot take the trajectory's intrinsics (checked
    before an import creates anything)."""
    if not has_camera(trajectory):
        raise MocapError(
            "The trajectory gives no image size or camera intrinsics (a file from another tool?), "
            "so no camera can match its footage; import it without the camera"
        )
    fx, fy = (float(v) for v in np.diag(trajectory.intrinsics)[:2])
    if not (fx > 0 and fy > 0) or max(fx / fy, fy / fx) > MAX_PIXEL_ASPECT:
        raise MocapError(
            f"The trajectory's camera has focal lengths fx {fx:.1f}, fy {fy:.1f} px; Blender "
            f"takes pixels at most {MAX_PIXEL_ASPECT:.0f} times as wide as tall or the reverse"
        )


def clip_field_of_view(clip: "bpy.types.MovieClip") -> float:
    """Degrees on the longer side of the clip seen by its tracking camera (Movie Clip Editor >
    Track > Camera), whose focal length is relative to the clip's width: what the worker's
    ``--fov`` takes for landscape and portrait footage alike."""
    width, height = clip.size
    if not (width > 0 and height > 0):
        raise MocapError(f"Blender cannot read the frames of movie clip '{clip.name}'")
    focal_px = clip.tracking.camera.focal_length_pixels
    return float(np.degrees(2 * np.arctan(max(width, height) / 2 / focal_px)))


def camera_matrix_world(pose: np.ndarray) -> np.ndarray:
    """``matrix_world`` (4x4) of a Blender camera at the OpenCV camera pose ``world_from_camera``."""
    matrix = np.array(pose, np.float64)
    matrix[:3, :3] = matrix[:3, :3] @ _OPENCV_TO_BLENDER_CAMERA
    return matrix


def source_frames(trajectory: Trajectory) -> np.ndarray:
    """Footage frame index (0-based) of every trajectory row: the worker's ``source_frames``
    extra when present, else from the timestamps at the nominal frame rate."""
    stored = trajectory.extras.get("source_frames")
    if stored is not None and np.shape(stored) == (trajectory.num_frames,):
        return np.asarray(stored, np.int64)
    return np.round(trajectory.frame_times * trajectory.fps).astype(np.int64)


def first_source_frame(trajectory: Trajectory) -> int:
    """Index (0-based) of the footage frame the trajectory starts at."""
    return int(source_frames(trajectory)[0]) if trajectory.num_frames else 0


def create_camera(
    context: "bpy.types.Context",
    trajectory: Trajectory,
    name: str = "MeTRAbs camera",
    sensor_width_mm: float = DEFAULT_SENSOR_WIDTH_MM,
    make_active: bool = True,
) -> "bpy.types.Object":
    """A new camera object with the trajectory's intrinsics and pose, linked to the scene.

    The scene's render resolution and pixel aspect become the footage's (100 %), since the lens
    and shift are relative to them. ``make_active`` makes it the scene camera.
    """
    check_camera(trajectory)
    intrinsics = np.asarray(trajectory.intrinsics, np.float64)
    width, height = (int(v) for v in trajectory.image_size)
    data = bpy.data.cameras.new(name)
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = sensor_width_mm
    data.lens = focal_length_mm(intrinsics, width, sensor_width_mm)
    data.shift_x, data.shift_y = lens_shift(intrinsics, (width, height))
    data.clip_start, data.clip_end = 0.05, 500.0
    camera = bpy.data.objects.new(name, data)
    context.scene.collection.objects.link(camera)
    camera.matrix_world = Matrix(camera_matrix_world(world_from_camera(trajectory)).tolist())
    render = context.scene.render
    render.resolution_x, render.resolution_y = width, height
    render.resolution_percentage = 100
    pixel_aspect = intrinsics[1, 1] / intrinsics[0, 0]  # pixel width over height
    render.pixel_aspect_x, render.pixel_aspect_y = (
        max(pixel_aspect, 1.0),
        max(1 / pixel_aspect, 1.0),
    )
    if make_active:
        context.scene.camera = camera
    return camera


def attach_footage(
    camera: "bpy.types.Object",
    clip: "bpy.types.MovieClip",
    scene: "bpy.types.Scene",
    first_frame: int = 0,
) -> "bpy.types.CameraBackgroundImage":
    """Show ``clip`` behind ``camera`` so that footage frame ``first_frame`` (0-based) plays at the
    scene's start frame, where the import puts the trajectory's first key. A clip timed otherwise
    is copied (other users of it keep their timing)."""
    start = scene.frame_start - first_frame
    if clip.frame_start != start:
        clip = clip.copy()
        clip.frame_start = start
    background = camera.data.background_images.new()
    background.source = "MOVIE_CLIP"
    background.clip = clip
    background.frame_method = "STRETCH"  # same aspect as the render: fills it exactly
    background.alpha = 1.0
    background.clip_user.use_render_undistorted = False
    camera.data.show_background_images = True
    return background


def check_footage_timing(scene: "bpy.types.Scene", trajectory: Trajectory) -> None:
    """Raise :class:`MocapError` if footage behind the camera would drift from the motion: the
    scene plays at another rate than the footage's (and is not to be matched to it)."""
    rate = scene_tools.scene_fps(scene)
    if abs(rate - trajectory.fps) > 1e-3 * trajectory.fps:
        raise MocapError(
            f"The scene plays at {rate:g} fps and the footage at {trajectory.fps:g} fps: the "
            "footage behind the camera would drift from the motion; turn on Match Scene Timing "
            f"or set the scene's frame rate to {trajectory.fps:g} fps"
        )


def match_scene_to_clip(scene: "bpy.types.Scene", trajectory: Trajectory) -> None:
    """Scene frame rate and range covering the trajectory (what the import does with match_scene)."""
    duration = float(trajectory.frame_times[-1] - trajectory.frame_times[0])
    scene_tools.match_scene_timing(scene, trajectory.fps, duration)
