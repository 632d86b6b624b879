"""Load shapes: their stages over run time, and their options checked before any load."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from sagellm_users._errors import ConfigError
from sagellm_users.shapes import (
    LLMLoadShape,
    SLOSweepShape,
    SpikeLoadShape,
    StepLoadShape,
    parse_seconds,
)
from tests.locust_harness import parse_args


def _env(*args: str) -> Any:
    return SimpleNamespace(parsed_options=parse_args(list(args)))


def _ticks(shape: LLMLoadShape, times: list[float]) -> list[Any]:
    out = []
    for t in times:
        shape.get_run_time = lambda t=t: t  # type: ignore[method-assign,misc]
        out.append(shape.tick())
    return out


def test_parse_seconds() -> None:
    assert parse_seconds("30s", "--x") == 30.0
    assert parse_seconds("2m", "--x") == 120.0
    assert parse_seconds("500ms", "--x") == 0.5
    assert parse_seconds("1.5", "--x") == 1.5
    with pytest.raises(ConfigError, match="--x: cannot read 'soon'"):
        parse_seconds("soon", "--x")


def test_step_shape_climbs_then_stops() -> None:
    shape = StepLoadShape()
    shape.configure_from_options(_env("--step-users", "4:4:12", "--stage-time", "10s"))
    ticks = _ticks(shape, [0, 9.9, 10, 25, 29.9, 30])
    assert [t if t is None else t[0] for t in ticks] == [4, 4, 8, 12, 12, None]
    assert ticks[2] is not None and ticks[2][1] >= 8, "a stage's users start within a second"


def test_spike_shape_jumps_and_recovers() -> None:
    shape = SpikeLoadShape()
    shape.configure_from_options(
        _env("--spike-users", "2:20", "--spike-at", "10s", "--spike-hold", "5s")
    )
    ticks = _ticks(shape, [0, 9, 10, 14.9, 15, 24.9, 25])
    assert [t if t is None else t[0] for t in ticks] == [2, 2, 20, 20, 2, 2, None]


@pytest.mark.parametrize(
    ("shape", "args", "message"),
    [
        (StepLoadShape, [], "--step-users: StepLoadShape needs START:STEP:MAX"),
        (StepLoadShape, ["--step-users", "4:x:8"], "--step-users: cannot read '4:x:8'"),
        (StepLoadShape, ["--step-users", "8:4:4"], "MAX >= START"),
        (StepLoadShape, ["--step-users", "4:4:8", "--stage-time", "0s"], "--stage-time"),
        (SpikeLoadShape, ["--spike-users", "20:2"], "--spike-users: cannot read '20:2'"),
        (SpikeLoadShape, ["--spike-users", "2:20", "--spike-at", "later"], "--spike-at"),
        (SLOSweepShape, ["--slo", "ttft_p99<=1s"], "--sweep: SLOSweepShape needs"),
        (SLOSweepShape, ["--sweep", "2:2:8"], "add --slo"),
        (
            SLOSweepShape,
            ["--sweep", "2:2:8", "--slo", "ttft_p99<=1s", "--slo-early-stop"],
            "drop --slo-early-stop",
        ),
        (
            SLOSweepShape,
            [
                *("--sweep", "2:2:8", "--slo", "ttft_p99<=1s"),
                *("--stage-time", "4s", "--sweep-settle", "4s"),
            ],
            "--sweep-settle: 4s leaves nothing",
        ),
        (
            SLOSweepShape,
            ["--sweep", "5:5:20", "--slo", "ttft_p99<=1s", "--request-rate", "5"],
            "give -u USERS",
        ),
    ],
)
def test_bad_shape_options_name_the_option(
    shape: type[LLMLoadShape], args: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("+", r"\+")):
        shape().configure_from_options(_env(*args))


def test_sweep_configures_users_or_rates() -> None:
    shape = SLOSweepShape()
    shape.configure_from_options(
        _env("--sweep", "2:2:7", "--slo", "ttft_p99<=1s", "--stage-time", "8s")
    )
    assert shape.loads == [2, 4, 6] and not shape.by_rate
    assert shape.settle == 2.0, "a quarter of the stage by default"
    rates = SLOSweepShape()
    rates.configure_from_options(
        _env("--sweep", "5:5:15", "--slo", "ttft_p99<=1s", "--request-rate", "1", "-u", "32")
    )
    assert rates.loads == [5, 10, 15] and rates.by_rate and rates.users == 32


def test_each_shape_describes_its_load_for_the_report() -> None:
    """The report's load names what a shape was told (compared first between runs)."""
    step = StepLoadShape()
    step.configure_from_options(_env("--step-users", "2:2:6", "--stage-time", "10s"))
    assert step.describe() == {"stage_time_s": 10.0, "users": [2, 4, 6]}
    spike = SpikeLoadShape()
    spike.configure_from_options(_env("--spike-users", "2:8", "--spike-at", "5s"))
    assert spike.describe() == {"base_users": 2, "peak_users": 8, "at_s": 5.0, "hold_s": 10.0}
