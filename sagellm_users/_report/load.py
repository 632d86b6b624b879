"""The load a run applied, in one line (the summary, Markdown and JUnit reports)."""

from __future__ import annotations

from sagellm_users._report.model import LoadInfo

__all__ = ["load_text"]


def load_text(load: LoadInfo) -> str:
    """The load in one line: users, ramp, length, shape, open loop, processes."""
    users = "-" if load.users is None else str(load.users)
    if load.peak_users is not None and load.peak_users != load.users:
        users += f" (peak {load.peak_users})"
    parts = [f"{users} users"]
    if load.spawn_rate is not None:
        parts.append(f"spawn {load.spawn_rate:g}/s")
    parts.append("until stopped" if load.run_time_s is None else f"{load.run_time_s:g} s")
    if load.shape:
        parts.append(f"shape {load.shape} {load.stages or ''}".rstrip())
    if load.request_rate:
        parts.append(f"open loop {load.request_rate:g} req/s ({load.arrival})")
    parts.append(f"{load.processes} load-generating process(es)")
    if load.max_tokens is not None:
        parts.append(f"max tokens {load.max_tokens}")
    if load.started is not None:
        parts.append(f"run #{load.run_number} from {load.started:%Y-%m-%d %H:%M:%S} UTC")
    return ", ".join(parts)
