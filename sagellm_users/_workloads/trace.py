"""Trace replay: requests sent at the times a recorded trace says, with its lengths.

A trace is JSON Lines, one request a line, ``timestamp`` in milliseconds from the trace's
start. Two kinds of line are read:

* Mooncake's (``input_length``, ``output_length``, ``hash_ids``): the prompt is made of
  exactly ``input_length`` tokens, built block by block, one block of :data:`BLOCK_TOKENS`
  per hash id; equal hash ids give equal blocks, so requests that share leading hash ids
  share a prompt prefix (what a prefix cache serves) as they did where the trace was taken;
  ``output_length`` becomes ``max_tokens``;
* plain ones (``prompt`` or ``messages``, optional ``max_tokens``): sent as they are.

Replay is open loop: each line starts at ``start + timestamp / speed`` whatever the server
does, and a request that cannot start then (every user is busy) starts late, its lag
recorded as any open-loop start lag. Spread over workers, line ``i`` goes to worker
``i % workers`` and every worker counts from the master's start time, so the trace's
schedule is kept whatever the number of workers.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import orjson
from gevent.event import Event

from sagellm_users._errors import ConfigError
from sagellm_users._workloads.arrivals import ArrivalPlan
from sagellm_users._workloads.calibration import WordCalibration, calibrate
from sagellm_users._workloads.synthetic import PromptSynthesizer, SyntheticPrompt
from sagellm_users._workloads.tokens import TokenCounter, counts_locally

__all__ = [
    "BLOCK_TOKENS",
    "Trace",
    "TraceExhausted",
    "TracePrompts",
    "TraceRow",
    "TraceSchedule",
    "load_trace",
]

log = logging.getLogger("sagellm_users")

BLOCK_TOKENS = 512
"""Tokens per hash id in Mooncake's traces (its KV-cache block)."""
MAX_LINE_ERRORS = 1
"""A trace is refused at its first bad line: replaying part of it would mislead."""


@dataclass(frozen=True, slots=True)
class TraceRow:
    """One request of a trace."""

    t_s: float
    """Seconds after the trace's start."""
    line: int
    input_tokens: int | None = None
    output_tokens: int | None = None
    hash_ids: tuple[int, ...] = ()
    prompt: str | None = None
    messages: tuple[dict[str, Any], ...] | None = None
    max_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Trace:
    """A trace's requests, in time order, and where they came from."""

    path: str
    rows: tuple[TraceRow, ...]
    kind: str
    """``mooncake`` (lengths and hash ids) or ``plain`` (prompts); a mix says ``mixed``."""

    @property
    def duration_s(self) -> float:
        return self.rows[-1].t_s - self.rows[0].t_s if self.rows else 0.0

    def rate(self, speed: float = 1.0) -> float:
        """Requests per second of the replay at ``speed``."""
        span = self.duration_s / speed
        return len(self.rows) / span if span > 0 else math.inf

    def describe(self, speed: float) -> dict[str, Any]:
        """The trace as the report shows it."""
        return {
            "trace": self.path,
            "trace_kind": self.kind,
            "trace_requests": len(self.rows),
            "trace_seconds": round(self.duration_s, 3),
            "trace_speed": speed,
        }


def load_trace(path: str | Path) -> Trace:
    """Read and check a whole trace; a bad line is refused with its number and the fix."""
    where = Path(path)
    try:
        text = where.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--trace {path}: cannot read it ({exc.strerror or exc})") from None
    rows: list[TraceRow] = []
    kinds: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        row, kind = _row(raw, number, str(path))
        rows.append(row)
        kinds.add(kind)
    if not rows:
        raise ConfigError(
            f"--trace {path}: no requests in it; give a JSON Lines file, one request a line "
            '(e.g. {"timestamp": 0, "input_length": 512, "output_length": 64})'
        )
    if any(b.t_s < a.t_s for a, b in itertools.pairwise(rows)):
        rows.sort(key=lambda r: r.t_s)  # stable: equal times keep the file's order
        log.info("sagellm: --trace %s: lines not in time order; replayed by timestamp", path)
    kind = kinds.pop() if len(kinds) == 1 else "mixed"
    return Trace(str(path), tuple(rows), kind)


def _row(raw: bytes, number: int, path: str) -> tuple[TraceRow, str]:
    where = f"--trace {path}, line {number}"
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ConfigError(f"{where}: not JSON ({raw[:80]!r}); one JSON object a line") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: a JSON object a line, not {type(doc).__name__}")
    stamp = doc.get("timestamp")
    if not isinstance(stamp, int | float) or isinstance(stamp, bool) or not 0 <= stamp < math.inf:
        raise ConfigError(
            f"{where}: 'timestamp' must be a number of milliseconds >= 0, got {stamp!r}"
        )
    t_s = float(stamp) / 1e3
    if "input_length" in doc:
        inputs = _count(doc, "input_length", where)
        outputs = _count(doc, "output_length", where)
        hash_ids = doc.get("hash_ids", [])
        if not isinstance(hash_ids, list) or not all(_integer(h) for h in hash_ids):
            raise ConfigError(f"{where}: 'hash_ids' must be a list of integers")
        needed = math.ceil(inputs / BLOCK_TOKENS)
        if hash_ids and len(hash_ids) != needed:
            raise ConfigError(
                f"{where}: {len(hash_ids)} hash_ids for {inputs} input tokens; Mooncake's "
                f"blocks are {BLOCK_TOKENS} tokens, so it needs {needed}"
            )
        return TraceRow(t_s, number, inputs, outputs, tuple(hash_ids)), "mooncake"
    prompt, messages = doc.get("prompt"), doc.get("messages")
    if isinstance(prompt, str) and prompt:
        chosen: tuple[dict[str, Any], ...] | None = None
    elif isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages):
        prompt, chosen = None, tuple(messages)
    else:
        raise ConfigError(
            f"{where}: needs 'input_length' and 'output_length' (Mooncake's lines), or a "
            "'prompt' string or a 'messages' list"
        )
    max_tokens = _count(doc, "max_tokens", where) if "max_tokens" in doc else None
    return TraceRow(t_s, number, prompt=prompt, messages=chosen, max_tokens=max_tokens), "plain"


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _count(doc: dict[str, Any], key: str, where: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}: '{key}' must be a whole number >= 1, got {value!r}")
    return value


@dataclass
class TracePrompts:
    """The requests of a trace's lines: Mooncake lines get prompts of their exact length
    from blocks shared by hash id; plain lines are sent as written."""

    counter: TokenCounter
    seed: int
    calibration: WordCalibration | None = None
    _blocks: dict[tuple[int, int], SyntheticPrompt] = field(default_factory=dict)

    def prepare(self) -> None:
        """Measure the words prompts are made of with a server's tokenizer, once, before the
        load (a local tokenizer or the estimate needs nothing)."""
        if counts_locally(self.counter) or self.calibration is not None:
            return
        self.calibration = calibrate(self.counter)
        if not self.calibration.exact:
            log.warning(
                "sagellm: --trace: prompt lengths are estimated, not exact: %s. Pass "
                "--tokenizer PATH (the model's tokenizer.json) for exact lengths",
                self.calibration.problem,
            )

    def _block(self, hash_id: int, tokens: int, first: bool) -> SyntheticPrompt:
        """The text of block ``hash_id`` (``tokens`` long): the same text for the same id.
        A block after the first continues the prompt (it follows a space), so the blocks'
        tokens add up to the prompt's (a hash id stays where it is: its hash covers every
        block before it)."""
        key = (hash_id, tokens)
        block = self._blocks.get(key)
        if block is None:
            rng = random.Random(f"{self.seed}/trace-block/{hash_id}")
            synthesizer = PromptSynthesizer(self.counter, rng, self.calibration)
            made = synthesizer.make(tokens) if first else synthesizer.continuation(tokens)
            block = self._blocks[key] = made
        return block

    def messages(self, row: TraceRow) -> tuple[list[dict[str, Any]], int | None]:
        """The line's conversation and its prompt's tokens (None: not counted here)."""
        if row.messages is not None:
            return [dict(m) for m in row.messages], None
        if row.prompt is not None:
            return [{"role": "user", "content": row.prompt}], None
        assert row.input_tokens is not None
        if not row.hash_ids:
            rng = random.Random(f"{self.seed}/trace-line/{row.line}")
            prompt = PromptSynthesizer(self.counter, rng, self.calibration).make(row.input_tokens)
            return [{"role": "user", "content": prompt.text}], prompt.tokens
        left, parts, counted = row.input_tokens, [], 0
        for position, hash_id in enumerate(row.hash_ids):
            block = self._block(hash_id, min(BLOCK_TOKENS, left), first=position == 0)
            parts.append(block.text)
            counted += block.tokens
            left -= block.tokens
        return [{"role": "user", "content": " ".join(parts)}], counted

    def max_tokens(self, row: TraceRow) -> int | None:
        return row.output_tokens if row.output_tokens is not None else row.max_tokens


class TraceExhausted(Exception):
    """Every line of this process's share of the trace has been claimed."""


class TraceSchedule:
    """This process's lines of the trace at their times: the open-loop schedule of a replay.

    As :class:`~sagellm_users._workloads.arrivals.ArrivalSchedule`, users :meth:`claim` the
    next start time and wait for it; here each claim also takes its line (see
    :meth:`claim_line`). Lines past the last raise :class:`TraceExhausted`.
    """

    kind = "trace"

    def __init__(
        self,
        trace: Trace,
        speed: float,
        clock: Callable[[], float] = perf_counter,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.trace = trace
        self.speed = speed
        self._clock = clock
        self._wall = wall
        self._rows: Sequence[TraceRow] = ()
        self._next = 0
        self._origin = 0.0
        self._plan: ArrivalPlan | None = None
        self._ready = Event()

    @property
    def plan(self) -> ArrivalPlan | None:
        return self._plan

    @property
    def exhausted(self) -> bool:
        return self._ready.is_set() and self._next >= len(self._rows)

    def set_plan(self, plan: ArrivalPlan) -> None:
        """This process's share (every ``workers``-th line from ``rank``), timed from the
        master's start (``start_wall``) or from now."""
        if self._plan is not None and self._ready.is_set():
            return  # a worker joining later does not restart a replay in progress
        self._plan = plan
        self._rows = self.trace.rows[plan.rank :: plan.workers]
        start = self._wall() if plan.start_wall is None else plan.start_wall
        first = self.trace.rows[0].t_s
        # perf_counter() of the trace's first timestamp
        self._origin = self._clock() + (start - self._wall()) - first / self.speed
        self._next = 0
        self._ready.set()

    def claim_line(self) -> tuple[float, TraceRow]:
        """The next line and the ``perf_counter()`` time it is meant to start (may be
        past); blocks until this process has its share (a worker, until the master's plan
        comes)."""
        self._ready.wait()
        if self._next >= len(self._rows):
            raise TraceExhausted
        row = self._rows[self._next]
        self._next += 1
        return self._origin + row.t_s / self.speed, row

    def claim(self) -> float:
        return self.claim_line()[0]
