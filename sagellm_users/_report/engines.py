"""The in-process engines a run drove: which engine, version, model, and how long it loaded."""

from __future__ import annotations

from pydantic import BaseModel

__all__ = ["EngineReport", "render_engines"]


class EngineReport(BaseModel):
    engine: str
    version: str
    model: str
    load_s: float
    """Seconds from starting the engine's process to the engine being ready (before load)."""
    process: str
    """Which load-generating process ran it: ``local`` or ``worker N``."""


def render_engines(engines: list[EngineReport]) -> str:
    lines = [
        "In-process engines: outputs are stamped in the engine's process, so this process's "
        "event-loop lag delays sends, never the measured TTFT or ITL:"
    ]
    for e in engines:
        version = f" {e.version}" if e.version else ""
        lines.append(
            f"  {e.engine}{version}  model {e.model}  loaded in {e.load_s:.1f} s  ({e.process})"
        )
    return "\n".join(lines)
