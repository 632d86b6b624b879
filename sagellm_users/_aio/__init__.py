"""asyncio clients for programs outside Locust: ``async with AsyncClient(url) as c``.

Same dialects, parsers, timing and records as the gevent clients the Locust users drive;
importing this never imports Locust and never patches the standard library.
"""

from __future__ import annotations

from sagellm_users._aio.client import DIALECTS, AsyncClient, AsyncResponseStream

__all__ = ["DIALECTS", "AsyncClient", "AsyncResponseStream"]
