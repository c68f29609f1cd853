"""Settings of the solve (docs/design.md §5–6): :class:`RetargetParams`, with the root motion, the
joint limits and foot locking (:class:`~retarget.solve.footlock.FootLockParams`)."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from .. import RetargetError
from .footlock import FootLockParams

ROOT_MOTIONS = ("relative", "camera", "in_place")

# A default table for RetargetParams.joint_limits: largest rotation from rest relative to the
# parent (degrees), generous enough for sport and dance, tight enough to stop flipped limbs.
JOINT_LIMITS_DEG = {
    "hips": 180.0, "spine": 45.0, "neck": 60.0, "head": 80.0, "shoulder": 40.0,
    "upper_arm": 170.0, "forearm": 160.0, "hand": 90.0, "thigh": 140.0, "shin": 165.0,
    "foot": 70.0, "toe": 70.0,
}  # fmt: skip


@dataclass(frozen=True)
class RetargetParams:
    """Settings of one retarget solve."""

    # "relative": the path starts at the rig's rest position; "camera": the path as seen from the
    # camera (world origin under it), scaled about that point; "in_place": no horizontal travel.
    root_motion: str = "relative"
    reground: bool = True  # shift vertically so the lowest foot joints rest on the rig's floor
    straight_limb_deg: float = 20.0  # bends below this blend the limb-plane twist into fallbacks
    # None: no limits; else slot base name -> largest rotation (degrees) of a keyed bone from its
    # rest pose relative to its parent, e.g. JOINT_LIMITS_DEG. Slots not listed are free.
    joint_limits: Mapping[str, float] | None = None
    foot_lock: bool = True  # hold feet during contacts (when contacts are given)
    grounded: bool = False  # lift feet that would sink below the floor (grounding.py)
    lock: FootLockParams = field(default_factory=FootLockParams)

    def __post_init__(self) -> None:
        if self.root_motion not in ROOT_MOTIONS:
            raise RetargetError(
                f"root motion {self.root_motion!r} is not one of {', '.join(ROOT_MOTIONS)}"
            )
