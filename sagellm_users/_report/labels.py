"""How percentiles are named in reports: vLLM's spelling."""

from __future__ import annotations

__all__ = ["percentile_label"]


def percentile_label(p: float) -> str:
    """``99`` -> ``p99``, ``99.9`` -> ``p99.9``."""
    return f"p{int(p)}" if float(p).is_integer() else f"p{p:g}"
