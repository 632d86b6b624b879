"""The load shapes' options, registered with the others so ``.conf`` files accept them.

Apart from :mod:`sagellm_users.shapes` because the options module is imported by
everything, and the shapes import the runtime.
"""

from __future__ import annotations

from typing import Any

__all__ = ["add_shape_arguments"]


def add_shape_arguments(parser: Any) -> None:
    """The shapes' options (used only when a locustfile has one of these shapes)."""
    add = parser.add_argument
    add("--step-users", default="", help="StepLoadShape: users START:STEP:MAX, one step a stage")
    add("--spike-users", default="", help="SpikeLoadShape: BASE:PEAK users")
    add("--spike-at", default="", help="SpikeLoadShape: when the spike starts (default a stage)")
    add("--spike-hold", default="", help="SpikeLoadShape: how long the spike lasts (default 10s)")
    add(
        "--sweep",
        default="",
        help="SLOSweepShape: load START:STEP:MAX, users (or req/s with --request-rate), "
        "judged against --slo stage by stage",
    )
    add("--stage-time", default="30s", help="Shapes: time per stage (default 30s)")
    add(
        "--sweep-settle",
        default="",
        help="SLOSweepShape: the start of each stage left out of its verdict, while the "
        "load settles (default a quarter of --stage-time, at least 3s when distributed)",
    )
