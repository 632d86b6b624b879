"""Trace replay's parts: reading a trace (and refusing a bad one by its line), prompts of
exactly a line's length whose equal hash ids give equal prefixes, and the schedule that
deals the lines out to the workers at their recorded times."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from tokenizers import Tokenizer

from sagellm_users._errors import ConfigError
from sagellm_users._workloads.arrivals import ArrivalPlan
from sagellm_users._workloads.calibration import calibrate
from sagellm_users._workloads.tokens import EstimateCounter, ServerCounter, load_tokenizer
from sagellm_users._workloads.trace import (
    BLOCK_TOKENS,
    TraceExhausted,
    TracePrompts,
    TraceRow,
    TraceSchedule,
    load_trace,
)
from tests.fake_tokenize import TokenizeClient
from tests.offline_tokenizer import build_tokenizer

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, *lines: Any) -> Path:
    path = tmp_path / "trace.jsonl"
    path.write_bytes(
        b"\n".join(line if isinstance(line, bytes) else orjson.dumps(line) for line in lines)
    )
    return path


def _mooncake(t_ms: float, n_in: int, n_out: int, ids: list[Any]) -> dict[str, Any]:
    return {"timestamp": t_ms, "input_length": n_in, "output_length": n_out, "hash_ids": ids}


def test_the_shipped_sample_is_a_mooncake_trace() -> None:
    trace = load_trace(ROOT / "configs" / "traces" / "mooncake-sample.jsonl")
    assert trace.kind == "mooncake" and len(trace.rows) == 80
    assert all(r.input_tokens and r.output_tokens for r in trace.rows)
    starts = [r.hash_ids[:2] for r in trace.rows]
    assert len({tuple(s) for s in starts}) == 4, "four shared contexts"
    assert trace.rate() == pytest.approx(80 / trace.duration_s)


def test_mooncake_and_plain_lines_are_read_and_put_in_time_order(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _mooncake(2000, 600, 32, [1, 2]),
        {"timestamp": 500, "prompt": "hello", "max_tokens": 8},
        b"",
        {"timestamp": 1000, "messages": [{"role": "user", "content": "hi"}]},
    )
    trace = load_trace(path)
    assert trace.kind == "mixed"
    assert [r.t_s for r in trace.rows] == [0.5, 1.0, 2.0]
    assert [r.line for r in trace.rows] == [2, 4, 1]
    assert trace.rows[0] == TraceRow(0.5, 2, prompt="hello", max_tokens=8)
    assert trace.rows[2].hash_ids == (1, 2) and trace.rows[2].input_tokens == 600


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{not json", "line 2: not JSON"),
        (b"[1, 2]", "line 2: a JSON object a line, not list"),
        ({"input_length": 5, "output_length": 5}, "line 2: 'timestamp' must be a number"),
        ({"timestamp": -1, "prompt": "x"}, "'timestamp' must be a number of milliseconds >= 0"),
        ({"timestamp": 1, "input_length": 0, "output_length": 5}, "'input_length' must be"),
        ({"timestamp": 1, "input_length": 5}, "'output_length' must be a whole number >= 1"),
        (_mooncake(1, 600, 5, [1]), "1 hash_ids for 600 input tokens"),
        (_mooncake(1, 600, 5, ["a", "b"]), "'hash_ids' must be a list of integers"),
        ({"timestamp": 1}, "needs 'input_length' and 'output_length'"),
        ({"timestamp": 1, "prompt": "x", "max_tokens": 1.5}, "'max_tokens' must be"),
    ],
)
def test_a_bad_line_is_refused_by_its_number(tmp_path: Path, line: Any, message: str) -> None:
    path = _write(tmp_path, {"timestamp": 0, "prompt": "ok"}, line)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_trace(path)


def test_an_empty_or_missing_trace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no requests in it"):
        load_trace(_write(tmp_path, b"", b"  "))
    with pytest.raises(ConfigError, match="cannot read it"):
        load_trace(tmp_path / "missing.jsonl")


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tokenizer(tmp_path_factory.mktemp("bpe"))


def _prompts_by_every_counter(tokenizer_dir: Path) -> dict[str, TracePrompts]:
    local = TracePrompts(load_tokenizer(tokenizer_dir), seed=3)
    client = TokenizeClient(Tokenizer.from_file(str(tokenizer_dir)))
    server = TracePrompts(ServerCounter(client), seed=3)
    server.prepare()
    assert server.calibration is not None and server.calibration.exact
    return {"tokenizer": local, "server": server}


def test_prompts_have_the_lines_length_and_share_blocks_by_hash_id(tokenizer_dir: Path) -> None:
    tokenizer = Tokenizer.from_file(str(tokenizer_dir))
    for name, prompts in _prompts_by_every_counter(tokenizer_dir).items():
        a = TraceRow(0.0, 1, 1300, 16, (7, 8, 9))
        b = TraceRow(0.1, 2, 1100, 16, (7, 8, 10))
        c = TraceRow(0.2, 3, 700, 16, (11, 12))
        (text_a, tokens_a), (text_b, tokens_b), (text_c, _) = (
            (prompts.messages(row)[0][0]["content"], prompts.messages(row)[1]) for row in (a, b, c)
        )
        assert (tokens_a, tokens_b) == (1300, 1100), name
        count = len(tokenizer.encode(text_a, add_special_tokens=False).ids)
        assert count == 1300, f"{name}: the server's tokenizer counts what was claimed"
        assert len(tokenizer.encode(text_b, add_special_tokens=False).ids) == 1100, name
        shared = len(tokenizer.encode(text_a[: _common(text_a, text_b)]).ids)
        assert shared >= 2 * BLOCK_TOKENS - 2, f"{name}: the blocks of ids 7 and 8 are shared"
        assert _common(text_a, text_c) < 20, f"{name}: other ids, another prompt"
        again = prompts.messages(a)[0][0]["content"]
        assert again == text_a, "the same line, the same prompt"
        assert prompts.max_tokens(a) == 16


def _common(x: str, y: str) -> int:
    n = 0
    while n < min(len(x), len(y)) and x[n] == y[n]:
        n += 1
    return n


def test_plain_lines_are_sent_as_written() -> None:
    prompts = TracePrompts(EstimateCounter(), seed=0)
    messages, tokens = prompts.messages(TraceRow(0.0, 1, prompt="what is a KV cache?"))
    assert messages == [{"role": "user", "content": "what is a KV cache?"}] and tokens is None
    conversation = ({"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"})
    messages, _ = prompts.messages(TraceRow(0.0, 2, messages=conversation, max_tokens=9))
    assert messages == list(conversation)
    assert prompts.max_tokens(TraceRow(0.0, 2, messages=conversation, max_tokens=9)) == 9


def test_a_server_counter_is_measured_once_before_the_load(tokenizer_dir: Path) -> None:
    client = TokenizeClient(Tokenizer.from_file(str(tokenizer_dir)))
    prompts = TracePrompts(ServerCounter(client), seed=1)
    prompts.prepare()
    calls = client.calls
    assert calls == calibrate(ServerCounter(TokenizeClient(client.tokenizer))).calls
    for line in range(5):
        prompts.messages(TraceRow(0.0, line, 900, 8, (line, 100 + line)))
    assert client.calls == calls, "no /tokenize call during the load"


class _Clock:
    def __init__(self) -> None:
        self.perf, self.wall = 100.0, 5000.0

    def perf_counter(self) -> float:
        return self.perf

    def time(self) -> float:
        return self.wall


def test_workers_take_every_nth_line_on_the_masters_clock(tmp_path: Path) -> None:
    lines = [{"timestamp": 1000 + 250 * i, "prompt": f"p{i}"} for i in range(7)]
    trace = load_trace(_write(tmp_path, *lines))
    got: dict[int, list[tuple[float, int]]] = {}
    for rank in range(3):
        clock = _Clock()
        schedule = TraceSchedule(trace, speed=2.0, clock=clock.perf_counter, wall=clock.time)
        # the master started 1 s before this worker got its plan
        schedule.set_plan(ArrivalPlan(1.0, workers=3, rank=rank, start_wall=clock.wall - 1.0))
        got[rank] = []
        while not schedule.exhausted:
            start, row = schedule.claim_line()
            got[rank].append((round(start - clock.perf, 6), row.line))
    assert [line for rank in range(3) for _, line in got[rank]] == [1, 4, 7, 2, 5, 3, 6]
    # line i starts (i - 1) * 125 ms after the first, which started at the master's start
    assert got[0] == [(-1.0, 1), (-1.0 + 0.375, 4), (-1.0 + 0.75, 7)]
    assert got[1] == [(-1.0 + 0.125, 2), (-1.0 + 0.5, 5)]


def test_an_exhausted_schedule_says_so(tmp_path: Path) -> None:
    trace = load_trace(_write(tmp_path, {"timestamp": 0, "prompt": "only"}))
    schedule = TraceSchedule(trace, speed=1.0)
    schedule.set_plan(ArrivalPlan(1.0))
    schedule.claim_line()
    assert schedule.exhausted
    with pytest.raises(TraceExhausted):
        schedule.claim_line()


def test_a_synthetic_line_without_hash_ids_gets_its_own_prompt() -> None:
    prompts = TracePrompts(EstimateCounter(), seed=0)
    first = prompts.messages(TraceRow(0.0, 1, 40, 8))
    second = prompts.messages(TraceRow(0.0, 2, 40, 8))
    assert first[0] != second[0], "each line its own prompt"
    assert prompts.messages(TraceRow(0.0, 1, 40, 8)) == first, "seeded: replays the same"
