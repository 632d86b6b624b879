"""The fake model: output-length rules, prompt counting, seeded plans and faults."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from sagellm_users.mock_server import MockServerConfig
from sagellm_users.mock_server.cli import build_parser
from sagellm_users.mock_server.faults import FAULT_RATE_FIELDS, fault_for_field
from sagellm_users.mock_server.simulation import (
    EMPTY_TOKEN,
    TOKEN_JSON,
    TOKEN_TEXT,
    VOCABULARY,
    Fault,
    Planner,
    count_chat_prompt_tokens,
    count_completion_prompt_tokens,
    output_length,
)


@pytest.mark.parametrize(
    ("max_tokens", "ignore_eos", "min_tokens", "natural", "expected"),
    [
        (10, False, 0, None, (10, "length")),  # no natural EOS: always the cap
        (10, False, 0, 4, (4, "stop")),  # EOS (the 4th token) before the cap
        (10, False, 0, 10, (10, "stop")),  # EOS exactly at the cap
        (10, False, 0, 12, (10, "length")),  # the cap comes first
        (10, True, 0, 4, (10, "length")),  # EOS ignored
        (10, False, 7, 4, (8, "stop")),  # min_tokens defers EOS: it comes after 7 tokens
        (10, False, 3, 4, (4, "stop")),  # min_tokens below natural: no effect
        (10, False, 3, 3, (4, "stop")),  # EOS after exactly min_tokens, as vLLM does
        (5, False, 9, 4, (5, "length")),  # min_tokens beyond the cap
        (1, False, 0, 1, (1, "stop")),  # EOS at once: the only step is the EOS step
    ],
)
def test_output_length_rules(
    max_tokens: int,
    ignore_eos: bool,
    min_tokens: int,
    natural: int | None,
    expected: tuple[int, str],
) -> None:
    got = output_length(max_tokens, ignore_eos=ignore_eos, min_tokens=min_tokens, natural=natural)
    assert got == expected


def test_prompt_token_counting_rules() -> None:
    assert count_completion_prompt_tokens("one two  three\nfour") == 4
    assert count_completion_prompt_tokens([1, 2, 3]) == 3
    assert count_completion_prompt_tokens("") == 0
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "a b c"}, {"type": "image_url"}]},
        {"role": "assistant", "content": None},
    ]
    assert count_chat_prompt_tokens(messages) == (2 + 4) + (3 + 4) + (0 + 4)


def test_vocabulary_tokens_are_json_strings_with_a_leading_space() -> None:
    assert any(not w.isascii() for w in VOCABULARY)
    assert {"café", "数据", "naïve"} <= set(VOCABULARY)
    for word, encoded in zip(VOCABULARY, TOKEN_JSON, strict=True):
        assert orjson.loads(encoded) == " " + word
        assert TOKEN_TEXT[encoded] == " " + word


def _plan_tuple(planner: Planner, **kw: int) -> tuple[object, ...]:
    p = planner.plan(
        max_tokens=kw.get("max_tokens", 20), ignore_eos=False, min_tokens=0, prompt_tokens=10
    )
    return (p.request_hex, p.n_tokens, p.finish_reason, p.words, p.ttft_s, p.gaps_s)


def test_plans_are_deterministic_for_a_seed() -> None:
    cfg = MockServerConfig(
        seed=42, ttft_jitter_ms=5, tbt_jitter_ms=3, natural_output_tokens=(5, 30)
    )
    a, b = Planner(cfg), Planner(cfg)
    plans_a = [_plan_tuple(a) for _ in range(20)]
    assert plans_a == [_plan_tuple(b) for _ in range(20)]
    other = Planner(MockServerConfig(seed=43, ttft_jitter_ms=5, tbt_jitter_ms=3))
    assert plans_a != [_plan_tuple(other) for _ in range(20)]
    assert len({p[0] for p in plans_a}) == 20  # ids are distinct


def test_plan_timing_follows_the_config() -> None:
    cfg = MockServerConfig(ttft_ms=50, ttft_per_input_token_ms=0.5, tbt_ms=10, tbt_jitter_ms=4)
    plan = Planner(cfg).plan(max_tokens=200, ignore_eos=True, min_tokens=0, prompt_tokens=100)
    assert plan.n_tokens == 200 and plan.finish_reason == "length"
    assert plan.ttft_s == pytest.approx(0.050 + 0.050)
    assert plan.gaps_s is not None and len(plan.gaps_s) == 199
    assert all(0.006 - 1e-12 <= g <= 0.014 + 1e-12 for g in plan.gaps_s)
    assert min(plan.gaps_s) < 0.008
    assert max(plan.gaps_s) > 0.012
    assert plan.base_gap(0) == plan.gaps_s[0]
    steady = Planner(MockServerConfig(tbt_ms=7)).plan(
        max_tokens=5, ignore_eos=True, min_tokens=0, prompt_tokens=1
    )
    assert steady.gaps_s is None and steady.base_gap(3) == pytest.approx(0.007)


def test_jitter_never_makes_a_gap_negative() -> None:
    cfg = MockServerConfig(tbt_ms=1, tbt_jitter_ms=5, ttft_ms=1, ttft_jitter_ms=10)
    planner = Planner(cfg)
    for _ in range(50):
        plan = planner.plan(max_tokens=20, ignore_eos=True, min_tokens=0, prompt_tokens=0)
        assert plan.ttft_s >= 0
        assert plan.gaps_s is not None and min(plan.gaps_s) >= 0


def test_stream_fault_fails_about_halfway() -> None:
    planner = Planner(MockServerConfig())
    plan = planner.plan(max_tokens=10, ignore_eos=True, min_tokens=0, prompt_tokens=0)
    assert plan.error_at == -1
    plan = planner.plan(
        max_tokens=10, ignore_eos=True, min_tokens=0, prompt_tokens=0, fault=Fault.STREAM
    )
    assert plan.error_at == 5


def test_faults_are_seeded_and_follow_the_rates() -> None:
    cfg = MockServerConfig(error_rate_500=0.1, error_rate_429=0.2, error_rate_stream=0.3, seed=5)
    draws = [Planner(cfg).draw_fault() for _ in range(1)]
    a, b = Planner(cfg), Planner(cfg)
    seq_a = [a.draw_fault() for _ in range(4000)]
    assert seq_a == [b.draw_fault() for _ in range(4000)]
    assert draws[0] == seq_a[0]
    share = {f: seq_a.count(f) / len(seq_a) for f in Fault}
    assert share[Fault.HTTP_500] == pytest.approx(0.1, abs=0.03)
    assert share[Fault.HTTP_429] == pytest.approx(0.2, abs=0.03)
    assert share[Fault.STREAM] == pytest.approx(0.3, abs=0.03)
    assert share[Fault.NONE] == pytest.approx(0.4, abs=0.03)


def test_fault_sequence_does_not_depend_on_request_contents() -> None:
    cfg = MockServerConfig(error_rate_500=0.5, seed=1)
    a, b = Planner(cfg), Planner(cfg)
    seq_a, seq_b = [], []
    for i in range(50):
        seq_a.append(a.draw_fault())
        a.plan(max_tokens=1 + i, ignore_eos=True, min_tokens=0, prompt_tokens=0)
        seq_b.append(b.draw_fault())
    assert seq_a == seq_b


@pytest.mark.parametrize(
    ("field", "fault"), [(f.rate_field, f) for f in Fault if f is not Fault.NONE]
)
def test_rate_one_always_draws_that_fault(field: str, fault: Fault) -> None:
    rates: dict[str, Any] = {field: 1.0}
    planner = Planner(MockServerConfig(**rates))
    assert {planner.draw_fault() for _ in range(200)} == {fault}
    assert {Planner(MockServerConfig()).draw_fault() for _ in range(200)} == {Fault.NONE}


def test_every_fault_has_a_rate_option_and_they_share_one_budget() -> None:
    assert {fault_for_field(name) for name in FAULT_RATE_FIELDS} == set(Fault) - {Fault.NONE}
    flags = build_parser().format_help()
    for name in FAULT_RATE_FIELDS:
        assert "--" + name.replace("_", "-") in flags
    with pytest.raises(ValueError, match=r"must add up to at most 1, got 1\.2"):
        MockServerConfig(error_rate_cut=0.7, error_rate_trickle=0.5)
    with pytest.raises(ValueError, match=r"error_rate_stall \(--error-rate-stall\) must be"):
        MockServerConfig(error_rate_stall=-0.1)
    with pytest.raises(ValueError, match=r"trickle_interval_ms \(--trickle-interval-ms\)"):
        MockServerConfig(trickle_interval_ms=0)


def test_the_older_rates_draw_the_same_sequence_as_before_the_new_faults() -> None:
    """New faults sit at rate 0 by default, so a seed reproduces the same 500/429/stream
    sequence it always did (this is the sequence of seed 5 with these rates)."""
    cfg = MockServerConfig(error_rate_500=0.1, error_rate_429=0.2, error_rate_stream=0.3, seed=5)
    rng = random.Random("sagellm-mock:5:faults")
    expected = []
    for _ in range(500):
        r = rng.random()
        expected.append(
            Fault.HTTP_500 if r < 0.1 else Fault.HTTP_429 if r < 0.3 else
            Fault.STREAM if r < 0.6 else Fault.NONE
        )  # fmt: skip
    planner = Planner(cfg)
    assert [planner.draw_fault() for _ in range(500)] == expected


@pytest.mark.parametrize(
    ("fault", "index"),
    [
        (Fault.NONE, -1),
        (Fault.HTTP_404, -1),
        (Fault.RESET, -1),
        (Fault.TRICKLE, 0),
        (Fault.NO_DONE, 9),
        (Fault.NO_USAGE, 9),
        (Fault.CUT, 5),
        (Fault.STALL, 5),
        (Fault.HUGE_EVENT, 5),
    ],
)
def test_each_fault_strikes_where_documented_and_names_itself(fault: Fault, index: int) -> None:
    planner = Planner(MockServerConfig())
    plan = planner.plan(max_tokens=10, ignore_eos=True, min_tokens=0, prompt_tokens=0, fault=fault)
    assert plan.error_at == index and plan.fault is fault
    named = plan.request_hex.startswith(f"fault-{fault.value}-")
    assert named == (fault is not Fault.NONE)


def test_eos_is_an_empty_last_token_and_held_back_tokens_are_empty() -> None:
    planner = Planner(MockServerConfig(natural_output_tokens=(30, 30), held_back_rate=0.2))
    plans = [
        planner.plan(max_tokens=64, ignore_eos=False, min_tokens=0, prompt_tokens=1)
        for _ in range(200)
    ]
    assert all(p.n_tokens == 30 and p.finish_reason == "stop" for p in plans)
    assert all(p.words[-1] == EMPTY_TOKEN for p in plans)
    held = [i for p in plans for i, w in enumerate(p.words[:-1]) if w == EMPTY_TOKEN]
    # Candidates are tokens 0..27 (not the one before EOS); each hit skips the next one.
    share = len(held) / (200 * 28)
    assert 0.12 < share < 0.22, share
    assert 0 < sum(p.words[0] == EMPTY_TOKEN for p in plans) < 80, "the first token too"
    assert all(
        p.words[i + 1] != EMPTY_TOKEN
        for p in plans
        for i in range(0, 28)
        if p.words[i] == EMPTY_TOKEN
    )
    assert all(TOKEN_TEXT[p.words[-2]] for p in plans), "the token before EOS carries text"


def test_length_finished_plans_end_on_a_token_with_text() -> None:
    planner = Planner(MockServerConfig(natural_output_tokens=None, held_back_rate=0.5))
    for _ in range(100):
        plan = planner.plan(max_tokens=12, ignore_eos=False, min_tokens=0, prompt_tokens=1)
        assert plan.finish_reason == "length" and plan.n_tokens == 12
        assert plan.words[-1] != EMPTY_TOKEN
    quiet = Planner(MockServerConfig(held_back_rate=0.0))
    plan = quiet.plan(max_tokens=500, ignore_eos=True, min_tokens=0, prompt_tokens=1)
    assert EMPTY_TOKEN not in plan.words
