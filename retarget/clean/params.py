"""Settings of the cleaning stage: :class:`CleanParams` (one field per setting, with its default)
and the presets, which are instances of it (docs/design.md §4)."""

import dataclasses
from dataclasses import dataclass

import numpy as np

from .. import RetargetError
from .contacts import ContactSettings
from .outliers import GateSettings


class CleanError(RetargetError):
    """The clip cannot be cleaned as asked; the message says what to change."""


@dataclass(frozen=True)
class CleanParams:
    """All settings of :func:`~retarget.clean.pipeline.clean_trajectory`; presets are instances."""

    # outlier gates
    gate_outliers: bool = True  # run the gates at all
    bone_tolerance: float = 0.25  # bone-length gate: allowed relative deviation from the median
    max_speed_m_s: float = 10.0  # speed gate of the torso centre: faster spikes are rejected
    max_limb_speed_m_s: float = 20.0  # speed gate of a joint relative to it (a kick: 12-17 m/s)
    trend_window_s: float = 0.35  # trend gate: Savitzky–Golay window
    trend_k: float = 6.0  # trend gate: residual limit in robust sigmas (1.4826 x MAD)
    fix_swaps: bool = True  # undo left/right limb swaps
    use_uncertainty: bool = True  # reject joints with a very high model uncertainty
    # gaps
    max_interpolate_s: float = 0.5  # longer gaps are bridged by the Kalman/RTS model
    # smoothing
    smooth: bool = True
    body_smoother: str = "adaptive"  # body (root-relative joints): "adaptive" or "butterworth"
    body_motion_gain: float = 0.025  # adaptive: accel. noise density per accel. power (s)
    body_accel_floor: float = 1.0e5  # adaptive: least acceleration noise density (mm²/s³)
    body_noise_mm: float = 0.0  # adaptive: white noise sigma (depth x3); 0 = measure it
    body_cutoff_hz: float = 6.0  # butterworth: cut-off (<= 0.4 Nyquist); adaptive: its first pass
    body_order: int = 2  # butterworth: order (doubled by the forward-backward pass)
    root_accel_density: float = 1.0  # m²/s³, white-acceleration noise of the root's Kalman model
    root_sigma_xy_m: float = 0.02  # root measurement noise across the image
    root_sigma_depth_m: float = 0.08  # root measurement noise in depth (monocular: the largest)
    # skeleton
    enforce_bones: bool = True  # one length per bone per person
    bone_drift_window_s: float = 1.0  # slow per-joint errors fixed by slow offsets first; 0 = off
    # floor and contacts
    toe_clearance_m: float = 0.02  # toe joint height above the floor when planted
    level_camera: bool = True  # footage shot level: the floor fit leans towards no camera roll
    flat_foot_pitch_deg: float = 23.0  # ankle->toe bone below horizontal on a flat foot (SMPL)
    clearance_data_weight: float = (
        0.25  # ankle clearance: weight of the data vs the foot-bone prior
    )
    contact_enter_height_m: float = 0.03
    contact_exit_height_m: float = 0.05
    contact_enter_speed_m_s: float = 0.25
    contact_exit_speed_m_s: float = 0.5
    contact_min_s: float = 0.1  # shortest contact kept (at least 2 frames); a run's stance: ~0.25 s
    contact_ease_frames: int = 5
    lock_feet: bool = True  # pin planted heels/toes (joint-level, two-bone IK for the knees)

    def __post_init__(self) -> None:
        positive = ("max_speed_m_s", "max_limb_speed_m_s", "trend_window_s", "trend_k",
                    "body_cutoff_hz", "root_accel_density", "root_sigma_xy_m",
                    "root_sigma_depth_m")  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise CleanError(f"clean parameter {name} must be a positive number, got {value}")
        if self.body_smoother not in ("adaptive", "butterworth"):
            raise CleanError(
                f"body_smoother must be 'adaptive' or 'butterworth', got {self.body_smoother!r}"
            )
        if not (self.body_motion_gain > 0 and self.body_accel_floor > 0):
            raise CleanError("body_motion_gain and body_accel_floor must be positive numbers")
        if not (self.body_noise_mm >= 0 and self.bone_drift_window_s >= 0):
            raise CleanError("body_noise_mm and bone_drift_window_s must not be negative")
        if self.body_order < 1:
            raise CleanError(f"body_order must be at least 1, got {self.body_order}")
        if self.contact_exit_height_m < self.contact_enter_height_m:
            raise CleanError("contact_exit_height_m must not be below contact_enter_height_m")
        if self.contact_exit_speed_m_s < self.contact_enter_speed_m_s:
            raise CleanError("contact_exit_speed_m_s must not be below contact_enter_speed_m_s")

    def gate_settings(self) -> GateSettings:
        return GateSettings(
            bone_tolerance=self.bone_tolerance,
            max_speed_m_s=self.max_speed_m_s,
            max_limb_speed_m_s=self.max_limb_speed_m_s,
            trend_window_s=self.trend_window_s,
            trend_k=self.trend_k,
            fix_swaps=self.fix_swaps,
        )

    def contact_settings(self) -> ContactSettings:
        return ContactSettings(
            enter_height_m=self.contact_enter_height_m,
            exit_height_m=self.contact_exit_height_m,
            enter_speed_m_s=self.contact_enter_speed_m_s,
            exit_speed_m_s=self.contact_exit_speed_m_s,
            min_s=self.contact_min_s,
            ease_frames=self.contact_ease_frames,
        )


PRESETS: dict[str, CleanParams] = {
    "default": CleanParams(),
    "strong": CleanParams(
        body_motion_gain=0.005, body_cutoff_hz=4.0, root_accel_density=0.3, root_sigma_depth_m=0.1
    ),
    "fast": CleanParams(
        body_motion_gain=0.08, body_cutoff_hz=9.0, root_accel_density=4.0, root_sigma_depth_m=0.06
    ),
    "none": CleanParams(
        gate_outliers=False,
        fix_swaps=False,
        use_uncertainty=False,
        smooth=False,
        enforce_bones=False,
        lock_feet=False,
    ),  # fmt: skip
}
PRESET_ALIASES = {"dance": "fast", "fast/dance": "fast"}


def resolve_params(preset: str = "default", **overrides) -> CleanParams:
    """The parameters of ``preset`` (see :data:`PRESETS`) with ``overrides`` applied."""
    name = PRESET_ALIASES.get(preset, preset)
    if name not in PRESETS:
        raise CleanError(
            f"unknown cleaning preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}"
        )
    fields = {f.name for f in dataclasses.fields(CleanParams)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise CleanError(
            f"unknown clean parameter(s) {unknown}; known: {', '.join(sorted(fields))}"
        )
    return dataclasses.replace(PRESETS[name], **overrides)
