"""A small exact ray caster for synthetic images: capsules, ellipsoids and a ground plane.

Every pixel's ray is cast from the camera centre through the pixel under a true pinhole model, so
the images have the same perspective as the ground truth that :func:`inference.camera.project`
gives. Primitives are drawn one at a time into a z-buffer (only the pixels inside each primitive's
projected bounding box are tested), which keeps the cost proportional to the covered area.

All geometry is in the camera frame (OpenCV axes: x right, y down, z forward), in metres. Rays are
``d = K⁻¹ [u, v, 1]``, so their parameter ``t`` at a hit is the hit point's depth ``z``.
"""

from dataclasses import dataclass, field

import numpy as np

NEAR_M = 0.05  # primitives closer than this to the camera plane are not drawn


@dataclass(frozen=True)
class Material:
    """Surface colour of a primitive: ``colour`` RGB in [0, 1]; optional stripes of ``colour2``
    with ``stripe_period_m`` along the unit vector ``stripe_axis`` (camera frame)."""

    colour: tuple[float, float, float]
    colour2: tuple[float, float, float] | None = None
    stripe_axis: tuple[float, float, float] = (0.0, 1.0, 0.0)
    stripe_period_m: float = 0.1
    shininess: float = 0.0  # weight of a specular highlight, 0 = matte


@dataclass(frozen=True)
class Capsule:
    """All points within ``radius`` metres of the segment ``a``–``b`` (camera frame, metres)."""

    a: np.ndarray
    b: np.ndarray
    radius: float
    material: Material
    owner: int = -1  # id of the figure it belongs to (-1 = scenery)

    def __post_init__(self) -> None:
        object.__setattr__(self, "a", np.asarray(self.a, float))
        object.__setattr__(self, "b", np.asarray(self.b, float))


@dataclass(frozen=True)
class Ellipsoid:
    """Points ``centre + axes @ (semi_axes * q)`` for ``|q| <= 1``; ``axes`` (3, 3) has orthonormal
    columns, ``semi_axes`` (3,) metres."""

    centre: np.ndarray
    axes: np.ndarray
    semi_axes: np.ndarray
    material: Material
    owner: int = -1

    def __post_init__(self) -> None:
        for name in ("centre", "axes", "semi_axes"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), float))


@dataclass
class ZBuffer:
    """Per-pixel nearest hit so far: depth (H, W) metres, normal (H, W, 3), albedo (H, W, 3) RGB,
    shininess (H, W), owner (H, W) figure id (-1 = none or scenery); ``coverage`` maps a figure id
    to the (H, W) mask of all its pixels, hidden ones included; ``rays`` (H, W, 3) the pixel rays
    (z = 1) of ``intrinsics`` and ``rays_sq`` (H, W) their squared lengths."""

    intrinsics: np.ndarray
    rays: np.ndarray
    rays_sq: np.ndarray
    depth: np.ndarray
    normal: np.ndarray
    albedo: np.ndarray
    shininess: np.ndarray
    owner: np.ndarray
    coverage: dict[int, np.ndarray] = field(default_factory=dict)

    @classmethod
    def empty(cls, width: int, height: int, intrinsics: np.ndarray) -> "ZBuffer":
        """An empty buffer of ``width`` x ``height`` pixels for the camera ``intrinsics`` (3, 3)."""
        rays, rays_sq = _pixel_rays(intrinsics, width, height)
        return cls(
            intrinsics=np.asarray(intrinsics, float),
            rays=rays,
            rays_sq=rays_sq,
            depth=np.full((height, width), np.inf),
            normal=np.zeros((height, width, 3)),
            albedo=np.zeros((height, width, 3)),
            shininess=np.zeros((height, width)),
            owner=np.full((height, width), -1, np.int32),
        )


def _pixel_rays(intrinsics: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Rays (H, W, 3) with z = 1 through every pixel centre, and their squared lengths (H, W)."""
    inverse = np.linalg.inv(intrinsics)
    u, v = np.meshgrid(np.arange(width, dtype=float), np.arange(height, dtype=float))
    rays = np.stack([u, v, np.ones_like(u)], axis=-1) @ inverse.T
    rays /= rays[..., 2:3]
    return rays, np.sum(rays * rays, axis=-1)


def _screen_box(
    corners: np.ndarray, intrinsics: np.ndarray, width: int, height: int
) -> tuple[int, int, int, int] | None:
    """Pixel range covering the projection of the convex hull of ``corners`` (N, 3), clipped to the
    image; None when empty or when a corner is behind the near plane."""
    if np.any(corners[:, 2] < NEAR_M):
        return None
    pixels = corners @ intrinsics.T
    pixels = pixels[:, :2] / pixels[:, 2:3]
    x0, y0 = np.floor(pixels.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pixels.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, x1, y0, y1


_CORNER_PICKS = np.array(np.meshgrid([0, 1], [0, 1], [0, 1])).reshape(3, -1).T == 1


def _box_corners(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The 8 corners (8, 3) of an axis-aligned box."""
    return np.where(_CORNER_PICKS, high, low)


def _capsule_depth(capsule: Capsule, rays: np.ndarray, rays_sq: np.ndarray) -> np.ndarray:
    """Depth (h, w) of each ray's first hit on the capsule, inf where it misses."""
    a, b, r = capsule.a, capsule.b, capsule.radius
    axis = b - a
    axis_sq = axis @ axis
    origin = -a  # ray origin (camera centre) relative to a
    ray_axis = rays @ axis
    origin_axis = origin @ axis
    # Infinite cylinder around the axis: |perp(origin + t ray)|^2 = r^2, scaled by |axis|^2.
    qa = axis_sq * rays_sq - ray_axis**2
    qb = axis_sq * (rays @ origin) - origin_axis * ray_axis
    qc = axis_sq * (origin @ origin) - origin_axis**2 - r * r * axis_sq
    disc = qb * qb - qa * qc
    depth = np.full(rays.shape[:-1], np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_cyl = (-qb - np.sqrt(np.maximum(disc, 0))) / qa
        along = origin_axis + t_cyl * ray_axis  # axial position of the hit times |axis|
        body = (disc >= 0) & (qa > 1e-12) & (along > 0) & (along < axis_sq) & (t_cyl > 0)
    depth[body] = t_cyl[body]
    # Outside the segment's span the first hit, if any, is on the sphere capping that end.
    for cap_centre, side in ((a, along <= 0), (b, along >= axis_sq)):
        select = (disc >= 0) & side & ~body
        if not np.any(select):
            continue
        sel_rays, sel_sq = rays[select], rays_sq[select]
        half_b = -(sel_rays @ cap_centre)
        disc_s = half_b * half_b - sel_sq * (cap_centre @ cap_centre - r * r)
        with np.errstate(invalid="ignore"):
            t_s = (-half_b - np.sqrt(disc_s)) / sel_sq
        depth[select] = np.where((disc_s >= 0) & (t_s > 0), t_s, np.inf)
    return depth


def _capsule_normals(capsule: Capsule, points: np.ndarray) -> np.ndarray:
    """Unit outward normals (N, 3) at surface points (N, 3)."""
    axis = capsule.b - capsule.a
    s = np.clip(((points - capsule.a) @ axis) / (axis @ axis), 0.0, 1.0)
    normals = points - (capsule.a + s[:, None] * axis)
    return normals / np.linalg.norm(normals, axis=1, keepdims=True).clip(1e-9)


def _ellipsoid_depth(ellipsoid: Ellipsoid, rays: np.ndarray, rays_sq: np.ndarray) -> np.ndarray:
    """Depth (h, w) of each ray's first hit on the ellipsoid, inf where it misses."""
    to_unit = ellipsoid.axes / ellipsoid.semi_axes  # unit-sphere coords q = (p - centre) @ to_unit
    origin = -ellipsoid.centre @ to_unit
    directions = rays @ to_unit
    qa = np.sum(directions * directions, axis=-1)
    half_b = directions @ origin
    disc = half_b * half_b - qa * (origin @ origin - 1.0)
    with np.errstate(invalid="ignore"):
        t = (-half_b - np.sqrt(disc)) / qa
    return np.where((disc >= 0) & (t > 0), t, np.inf)


def _ellipsoid_normals(ellipsoid: Ellipsoid, points: np.ndarray) -> np.ndarray:
    """Unit outward normals (N, 3) at surface points (N, 3): the gradient of |q|^2."""
    to_unit = ellipsoid.axes / ellipsoid.semi_axes
    normals = ((points - ellipsoid.centre) @ to_unit) @ to_unit.T
    return normals / np.linalg.norm(normals, axis=1, keepdims=True).clip(1e-9)


def _bounds(primitive: Capsule | Ellipsoid) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned bounding box (low, high) of a primitive."""
    if isinstance(primitive, Capsule):
        a, b = primitive.a, primitive.b
        return np.minimum(a, b) - primitive.radius, np.maximum(a, b) + primitive.radius
    extent = np.sqrt(((primitive.axes * primitive.semi_axes) ** 2).sum(axis=1))
    return primitive.centre - extent, primitive.centre + extent


def _albedo(material: Material, points: np.ndarray) -> np.ndarray:
    """Colours (N, 3) of a material at surface points (N, 3)."""
    colour = np.broadcast_to(np.asarray(material.colour, float), points.shape).copy()
    if material.colour2 is not None:
        phase = (points @ np.asarray(material.stripe_axis)) / material.stripe_period_m
        stripe = (phase - np.floor(phase)) < 0.5
        colour[stripe] = material.colour2
    return colour


def draw(zbuffer: ZBuffer, primitive: Capsule | Ellipsoid) -> None:
    """Ray-cast one primitive into ``zbuffer`` (nearer hits replace what is there)."""
    height, width = zbuffer.depth.shape
    box = _screen_box(_box_corners(*_bounds(primitive)), zbuffer.intrinsics, width, height)
    if box is None:
        return
    x0, x1, y0, y1 = box
    rays, rays_sq = zbuffer.rays[y0:y1, x0:x1], zbuffer.rays_sq[y0:y1, x0:x1]
    capsule = isinstance(primitive, Capsule)
    depth = (_capsule_depth if capsule else _ellipsoid_depth)(primitive, rays, rays_sq)
    hit = depth < np.inf
    if primitive.owner >= 0:
        coverage = zbuffer.coverage.setdefault(primitive.owner, np.zeros(zbuffer.depth.shape, bool))
        coverage[y0:y1, x0:x1] |= hit
    nearer = hit & (depth < zbuffer.depth[y0:y1, x0:x1])
    if not np.any(nearer):
        return
    points = rays[nearer] * depth[nearer][:, None]
    rows, cols = np.nonzero(nearer)
    rows, cols = rows + y0, cols + x0
    zbuffer.depth[rows, cols] = depth[nearer]
    normals = (_capsule_normals if capsule else _ellipsoid_normals)(primitive, points)
    zbuffer.normal[rows, cols] = normals
    zbuffer.albedo[rows, cols] = _albedo(primitive.material, points)
    zbuffer.shininess[rows, cols] = primitive.material.shininess
    zbuffer.owner[rows, cols] = primitive.owner


def draw_ground(
    zbuffer: ZBuffer,
    world_from_camera: np.ndarray,
    texture: np.ndarray,
    metres_per_texel: float,
    max_distance_m: float,
) -> np.ndarray:
    """Ray-cast the world floor ``z = 0`` (world metres, Z up) with a tiled ``texture`` (h, w, 3)
    RGB in [0, 1]; returns the floor's world xy (H, W, 2) at every pixel (NaN where not floor)."""
    height, width = zbuffer.depth.shape
    rotation, eye = world_from_camera[:3, :3], world_from_camera[:3, 3]
    down = zbuffer.rays @ rotation[2]  # world z component of each ray
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = -eye[2] / down
    floor = (down < 0) & (depth > 0) & (depth < zbuffer.depth)
    rows, cols = np.nonzero(floor)
    depth = depth[rows, cols]
    points = eye[:2] + depth[:, None] * (zbuffer.rays[rows, cols] @ rotation[:2].T)
    near = np.sum((points - eye[:2]) ** 2, axis=1) < max_distance_m**2
    rows, cols, depth, points = rows[near], cols[near], depth[near], points[near]
    tex_h, tex_w = texture.shape[:2]
    texel = np.floor(points / metres_per_texel).astype(np.int64)
    zbuffer.depth[rows, cols] = depth
    zbuffer.normal[rows, cols] = rotation[2]  # world +Z expressed in the camera frame
    zbuffer.albedo[rows, cols] = texture[texel[:, 1] % tex_h, texel[:, 0] % tex_w]
    zbuffer.shininess[rows, cols] = 0.0
    zbuffer.owner[rows, cols] = -1
    xy = np.full((height, width, 2), np.nan)
    xy[rows, cols] = points
    return xy


def shade(
    zbuffer: ZBuffer,
    background: np.ndarray,
    light_dir: np.ndarray,
    ambient: float,
) -> np.ndarray:
    """Lambert + Blinn–Phong shading of the z-buffer over ``background`` (H, W, 3) RGB in [0, 1];
    ``light_dir`` (3,) unit vector towards the light, camera frame. Returns RGB (H, W, 3) in [0, 1]."""
    hit = np.isfinite(zbuffer.depth)
    image = background.copy()
    if not np.any(hit):
        return image
    normal = zbuffer.normal[hit]
    view = -zbuffer.rays[hit] / np.sqrt(zbuffer.rays_sq[hit])[:, None]
    # Normals facing away from the viewer (grazing capsule edges) are flipped for lighting.
    normal = np.where((np.sum(normal * view, axis=1) < 0)[:, None], -normal, normal)
    diffuse = np.clip(normal @ light_dir, 0, None)
    half = light_dir + view
    half /= np.linalg.norm(half, axis=1, keepdims=True).clip(1e-9)
    specular = zbuffer.shininess[hit] * np.clip(np.sum(normal * half, axis=1), 0, None) ** 24
    light = ambient + (1 - ambient) * diffuse
    image[hit] = zbuffer.albedo[hit] * light[:, None] + specular[:, None]
    return np.clip(image, 0.0, 1.0)
