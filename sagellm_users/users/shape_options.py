"""The load shapes' options, registered with the others so ``.conf`` files accept them.

Apart from :mod:`sagellm_users.shapes` because the options module is imported by
everything, and the shapes import the runtime.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SHAPE_DEFAULTS", "add_shape_arguments"]

_SHAPE_OPTIONS: dict[str, tuple[str, str]] = {
    "step_users": ("", "StepLoadShape: users START:STEP:MAX, one step a stage"),
    "spike_users": ("", "SpikeLoadShape: BASE:PEAK users"),
    "spike_at": ("", "SpikeLoadShape: when the spike starts (default a stage)"),
    "spike_hold": ("", "SpikeLoadShape: how long the spike lasts (default 10s)"),
    "sweep": (
        "",
        "SLOSweepShape: load START:STEP:MAX, users (or req/s with --request-rate), "
        "judged against --slo stage by stage",
    ),
    "stage_time": ("30s", "Shapes: time per stage (default 30s)"),
    "sweep_settle": (
        "",
        "SLOSweepShape: the start of each stage left out of its verdict, while the load "
        "settles (default a quarter of --stage-time, at least 3s when distributed)",
    ),
}
"""Each shape option (by its ``dest``): its default and its help line."""

SHAPE_DEFAULTS = {dest: default for dest, (default, _) in _SHAPE_OPTIONS.items()}
"""Each shape option's default: a value other than it was given (see ignored_options)."""


def add_shape_arguments(parser: Any) -> None:
    """The shapes' options (used only when a locustfile has one of these shapes)."""
    for dest, (default, help_text) in _SHAPE_OPTIONS.items():
        parser.add_argument("--" + dest.replace("_", "-"), default=default, help=help_text)
