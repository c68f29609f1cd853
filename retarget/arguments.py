"""Command-line value types shared by the entry points (``python -m inference``, ``python -m
metrabs_blender``): argparse ``type=`` functions that refuse a bad value with a clear message."""

import argparse
from collections.abc import Callable

import numpy as np


def int_at_least(minimum: int, below: str | None = None) -> Callable[[str], int]:
    """A whole number >= ``minimum``; ``below`` says why a smaller one is refused (default:
    "expected a number >= minimum")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            reason = below or f"expected a number >= {minimum}"
            raise argparse.ArgumentTypeError(f"{reason}, got {value}")
        return value

    return parse


def positive_number(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def field_of_view_deg(text: str) -> float:
    """``--fov``: degrees, above 0 and below 180."""
    value = positive_number(text)
    if value >= 180:
        raise argparse.ArgumentTypeError(
            f"a field of view lies between 0 and 180 degrees (it must be below 180), got {text!r}"
        )
    return value
