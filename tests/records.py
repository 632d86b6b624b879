"""Synthetic :class:`RequestRecord` objects for tests: exact times, nothing measured."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Any

from sagellm_users._metrics import RequestRecord

__all__ = ["START", "T0", "WALL", "Clock", "disk_with", "make_record", "steady_record"]

WALL = 1_717_000_000.25
T0 = 1000.0
"""A perf_counter() reading the synthetic records start from."""
START = 1_800_000_000.0
"""A wall-clock time the timeline tests start at."""


class Clock:
    """A wall clock that moves only when a test sets ``now``."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_record(
    t_out: list[float] | None = None,
    *,
    t_send: float | None = T0 + 0.002,
    t_done: float | None = None,
    usage_completion: int | None = None,
    usage_prompt: int | None = None,
    tokens_per_chunk: list[int] | None = None,
    status: Any = "ok",
    name: str = "/v1/chat/completions",
    error_class: str | None = None,
    error_message: str | None = None,
    prompt_chars: int = 0,
    request_id: int = 1,
) -> RequestRecord:
    t_out = list(t_out or [])
    if t_done is None:
        t_done = (t_out[-1] if t_out else (t_send or T0)) + 0.001
    return RequestRecord(
        request_id=request_id,
        user="user-1",
        backend="openai",
        api="chat",
        name=name,
        model="tiny",
        stream=True,
        wall_start=WALL,
        t_start=T0,
        t_send=t_send,
        connect_s=0.0015,
        t_out=t_out,
        tokens_per_chunk=tokens_per_chunk,
        t_done=t_done,
        prompt_chars=prompt_chars,
        usage_prompt_tokens=usage_prompt,
        usage_completion_tokens=usage_completion,
        finish_reason="length" if status == "ok" else None,
        status=status,
        http_status=200 if status == "ok" else None,
        error_class=error_class,
        error_message=error_message,
    )


def steady_record(n: int = 10, ttft: float = 0.05, gap: float = 0.01, **kw: Any) -> RequestRecord:
    """n output chunks: the first ``ttft`` after t_send, then one every ``gap`` seconds."""
    t_send = T0 + 0.002
    return make_record([t_send + ttft + gap * i for i in range(n)], t_send=t_send, **kw)


def disk_with(budget: int) -> Callable[[int, memoryview], int]:
    """``os.write`` on a file system with ``budget`` bytes left: short writes, then ENOSPC."""
    left = budget

    def write(fd: int, data: memoryview) -> int:
        nonlocal left
        if left <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = os.write(fd, data[:left])
        left -= n
        return n

    return write
