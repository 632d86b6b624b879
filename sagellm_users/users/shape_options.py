"""The load shapes' options, registered with the others so ``.conf`` files accept them.

Apart from :mod:`sagellm_users.shapes` because the options module is imported by
everything, and the shapes import the runtime.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SHAPE_DEFAULTS", "add_shape_arguments"]

SHAPE_DEFAULTS = {
    "step_users": "",
    "spike_users": "",
    "spike_at": "",
    "spike_hold": "",
    "sweep": "",
    "stage_time": "30s",
    "sweep_settle": "",
}
"""Each shape option's default: a value other than it was given (see ignored_options)."""


def add_shape_arguments(parser: Any) -> None:
    """The shapes' options (used only when a locustfile has one of these shapes)."""
    add = parser.add_argument
    add(
        "--step-users",
        default=SHAPE_DEFAULTS["step_users"],
        help="StepLoadShape: users START:STEP:MAX, one step a stage",
    )
    add(
        "--spike-users",
        default=SHAPE_DEFAULTS["spike_users"],
        help="SpikeLoadShape: BASE:PEAK users",
    )
    add(
        "--spike-at",
        default=SHAPE_DEFAULTS["spike_at"],
        help="SpikeLoadShape: when the spike starts (default a stage)",
    )
    add(
        "--spike-hold",
        default=SHAPE_DEFAULTS["spike_hold"],
        help="SpikeLoadShape: how long the spike lasts (default 10s)",
    )
    add(
        "--sweep",
        default=SHAPE_DEFAULTS["sweep"],
        help="SLOSweepShape: load START:STEP:MAX, users (or req/s with --request-rate), "
        "judged against --slo stage by stage",
    )
    add(
        "--stage-time",
        default=SHAPE_DEFAULTS["stage_time"],
        help="Shapes: time per stage (default 30s)",
    )
    add(
        "--sweep-settle",
        default=SHAPE_DEFAULTS["sweep_settle"],
        help="SLOSweepShape: the start of each stage left out of its verdict, while the "
        "load settles (default a quarter of --stage-time, at least 3s when distributed)",
    )
