"""One user's traffic: exact synthetic prompts, request fields from the options, streams that
replay per seed and never repeat across users, shared prefixes, sessions and datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sagellm_users._backends import Api, GenerationRequest
from sagellm_users._workloads.datasets import Conversation
from sagellm_users._workloads.spec import WorkloadSpec
from sagellm_users._workloads.tokens import EstimateCounter, TokenCounter, TokenSource
from sagellm_users._workloads.traffic import (
    NextRequest,
    RequestDefaults,
    UserTraffic,
    Workload,
    merge_info,
)

DEFAULTS = RequestDefaults(model="m", max_tokens=77)
SYSTEM = {"role": "system", "content": "answer in one line"}


class WordCounter:
    """Exact and deterministic: one token per whitespace-separated word."""

    source: TokenSource = "tokenizer"
    description = "words"

    def count(self, text: str) -> int:
        return len(text.split())


WORDS = WordCounter()


def spec(**fields: Any) -> WorkloadSpec:
    if "dataset" not in fields:
        fields.setdefault("input_tokens", 20)
    return WorkloadSpec.model_validate(fields)


def traffic(
    workload_spec: WorkloadSpec,
    conversations: tuple[Conversation, ...] = (),
    counter: TokenCounter = WORDS,
) -> UserTraffic:
    return Workload(workload_spec, counter, conversations).traffic()


def messages(nxt: NextRequest) -> list[dict[str, Any]]:
    assert nxt.request.messages is not None
    return nxt.request.messages


def user_text(nxt: NextRequest) -> str:
    last = messages(nxt)[-1]
    assert last["role"] == "user"
    return str(last["content"])


def texts(user: UserTraffic, n: int, api: Api = "chat") -> list[str]:
    return [user_text(user.next(api, DEFAULTS)) for _ in range(n)]


# -- single-turn synthetic prompts ---------------------------------------------------------------
def test_a_chat_request_is_one_user_message_of_the_drawn_length() -> None:
    nxt = traffic(spec(input_tokens=20)).next("chat", DEFAULTS)
    text = user_text(nxt)
    assert messages(nxt) == [{"role": "user", "content": text}]
    assert nxt.prompt_tokens == 20 == WORDS.count(text)
    request = nxt.request
    assert (request.api, request.model, request.prompt) == ("chat", "m", None)
    assert request.max_tokens == 77, "no output_tokens in the spec: the options' max_tokens"
    assert nxt.session is None and nxt.turn is None


def test_drawn_lengths_vary_and_each_prompt_is_counted_exactly() -> None:
    user = traffic(spec(input_tokens="10:30"))
    lengths = []
    for _ in range(40):
        nxt = user.next("chat", DEFAULTS)
        assert nxt.prompt_tokens == WORDS.count(user_text(nxt))
        lengths.append(nxt.prompt_tokens)
    assert all(length is not None and 10 <= length <= 30 for length in lengths)
    assert len(set(lengths)) > 5


def test_a_completions_request_sends_the_text_as_prompt() -> None:
    nxt = traffic(spec(input_tokens=15)).next("completions", DEFAULTS)
    request = nxt.request
    assert request.api == "completions" and request.messages is None
    assert request.prompt is not None and WORDS.count(request.prompt) == 15
    assert nxt.prompt_tokens == 15


def test_output_tokens_come_from_the_spec_when_it_has_them() -> None:
    assert traffic(spec(output_tokens=33)).next("chat", DEFAULTS).request.max_tokens == 33
    user = traffic(spec(output_tokens="5:9"))
    drawn = {user.next("chat", DEFAULTS).request.max_tokens for _ in range(60)}
    assert drawn == set(range(5, 10))


@pytest.mark.parametrize(
    ("output", "max_tokens", "min_tokens", "expected"),
    [
        (None, 10, 50, (10, 10)),
        (8, 100, 50, (8, 8)),
        (None, 10, 3, (10, 3)),
        (8, 10, None, (8, None)),
    ],
)
def test_min_tokens_is_clamped_to_max_tokens(
    output: int | None, max_tokens: int, min_tokens: int | None, expected: tuple[int, int | None]
) -> None:
    defaults = RequestDefaults(max_tokens=max_tokens, min_tokens=min_tokens)
    request = traffic(spec(output_tokens=output)).next("chat", defaults).request
    assert (request.max_tokens, request.min_tokens) == expected


def test_sampling_fields_are_copied_and_extra_body_is_not_shared() -> None:
    extra = {"top_k": 20}
    defaults = RequestDefaults(temperature=0.3, ignore_eos=True, stream=False, extra_body=extra)
    user = traffic(spec())
    first = user.next("chat", defaults).request
    assert (first.temperature, first.ignore_eos, first.stream) == (0.3, True, False)
    assert first.extra_body == {"top_k": 20} and first.extra_body is not extra
    first.extra_body["top_k"] = 1
    assert extra == {"top_k": 20}
    assert user.next("chat", defaults).request.extra_body == {"top_k": 20}
    plain = user.next("chat", RequestDefaults()).request
    assert plain.extra_body == {} and plain.temperature is None and plain.stream is True


def test_request_defaults_alone_join_messages_for_a_completion_prompt() -> None:
    said = [SYSTEM, {"role": "user", "content": "hi"}]
    request = RequestDefaults(max_tokens=5).request("completions", said)
    assert request == GenerationRequest(
        api="completions", prompt=f"{SYSTEM['content']}\n\nhi", max_tokens=5
    )


# -- reproducibility -------------------------------------------------------------------------------
def test_the_same_seed_and_process_replay_the_same_prompts_per_user() -> None:
    workload_spec = spec(input_tokens="8:24", seed=5)
    one = Workload(workload_spec, WORDS, process="2")
    two = Workload(workload_spec, WORDS, process="2")
    a0, a1 = one.traffic(), one.traffic()
    b0, b1 = two.traffic(), two.traffic()
    first = texts(a0, 10) + texts(a1, 10)
    # Interleaved, the other way round: each user's stream is its own.
    interleaved = [
        (user_text(b1.next("chat", DEFAULTS)), user_text(b0.next("chat", DEFAULTS)))
        for _ in range(10)
    ]
    assert [b for _, b in interleaved] + [a for a, _ in interleaved] == first


@pytest.mark.parametrize(("seed", "process"), [(6, "2"), (5, "3")])
def test_another_seed_or_process_gives_other_prompts(seed: int, process: str) -> None:
    base = Workload(spec(seed=5), WORDS, process="2").traffic()
    other = Workload(spec(seed=seed), WORDS, process=process).traffic()
    assert set(texts(base, 10)).isdisjoint(texts(other, 10))


def test_no_two_users_send_the_same_prompt() -> None:
    workload = Workload(spec(input_tokens="8:16"), WORDS)
    sent = [texts(workload.traffic(), 50) for _ in range(2)]
    assert len(set(sent[0])) == len(set(sent[1])) == 50
    assert set(sent[0]).isdisjoint(sent[1])


# -- shared prefixes -------------------------------------------------------------------------------
def test_users_share_their_groups_prefix_before_their_own_question() -> None:
    workload_spec = spec(input_tokens=10, seed=3, shared_prefix={"groups": 3, "tokens": 40})
    workload = Workload(workload_spec, WORDS, process="0")
    elsewhere = Workload(workload_spec, WORDS, process="9")
    prefixes, questions = [], []
    for _ in range(6):
        nxt = workload.traffic().next("chat", DEFAULTS)
        system, user = messages(nxt)
        assert system["role"] == "system" and user["role"] == "user"
        assert WORDS.count(system["content"]) == 40 and WORDS.count(user["content"]) == 10
        assert nxt.prompt_tokens == 50
        prefixes.append(system["content"])
        questions.append(user["content"])
        remote = elsewhere.traffic().next("chat", DEFAULTS)
        assert messages(remote)[0] == system, "every process has the same prefixes"
        assert user_text(remote) != user["content"]
    assert prefixes[0] == prefixes[3] and prefixes[1] == prefixes[4] and prefixes[2] == prefixes[5]
    assert len(set(prefixes)) == 3 and len(set(questions)) == 6
    assert workload.prefixes() == [(p, 40) for p in prefixes[:3]]


# -- sessions -------------------------------------------------------------------------------------
def test_a_session_resends_its_history_with_each_turn_then_starts_over() -> None:
    user = traffic(spec(input_tokens=12, session={"turns": 3, "think_time": (0.5, 0.5)}))
    assert user.think_time() == 0.5
    sessions = set()
    for round_ in range(2):
        before: list[dict[str, Any]] = []
        reply = ""
        for turn in (1, 2, 3):
            nxt = user.next("chat", DEFAULTS)
            assert nxt.turn == turn and nxt.session is not None
            sessions.add(nxt.session)
            said = messages(nxt)
            expected = before + ([{"role": "assistant", "content": reply}] if before else [])
            assert said[:-1] == expected and WORDS.count(user_text(nxt)) == 12
            assert nxt.prompt_tokens == sum(WORDS.count(m["content"]) for m in said)
            reply = f"reply {round_} {turn} in five words"
            user.finished(True, reply)
            before = said
        assert nxt.prompt_tokens == 12 * 3 + 6 * 2
    assert len(sessions) == 2


def test_a_failed_turn_ends_the_session() -> None:
    user = traffic(spec(session={"turns": 5}))
    first = user.next("chat", DEFAULTS)
    user.finished(True, "ok then")
    assert user.next("chat", DEFAULTS).turn == 2
    user.finished(False, None)
    again = user.next("chat", DEFAULTS)
    assert again.turn == 1 and again.session != first.session and len(messages(again)) == 1
    user.finished(True, None)  # no reply text: the conversation cannot go on either
    assert user.next("chat", DEFAULTS).turn == 1


def test_think_time_is_drawn_within_its_range() -> None:
    user = traffic(spec(session={"turns": 2, "think_time": "0.5:2"}))
    drawn = [user.think_time() for _ in range(100)]
    assert all(0.5 <= t <= 2.0 for t in drawn) and len(set(drawn)) > 50
    assert traffic(spec()).think_time() == 0.0


def test_follow_up_turns_use_the_sessions_input_tokens() -> None:
    user = traffic(spec(input_tokens=30, session={"turns": 3, "input_tokens": 7}))
    lengths = []
    for _ in range(3):
        nxt = user.next("chat", DEFAULTS)
        lengths.append(WORDS.count(user_text(nxt)))
        user.finished(True, "two words")
    assert lengths == [30, 7, 7]
    assert nxt.prompt_tokens == 30 + 2 + 7 + 2 + 7


def test_a_session_keeps_its_prefix_first_and_once() -> None:
    user = traffic(spec(input_tokens=5, shared_prefix={"tokens": 9}, session={"turns": 2}))
    first = user.next("chat", DEFAULTS)
    assert first.prompt_tokens == 14
    user.finished(True, "fine")
    second = messages(user.next("chat", DEFAULTS))
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[0] == messages(first)[0]


# -- datasets -------------------------------------------------------------------------------------
CHAT = Conversation(
    turns=("what is a lighthouse", "and who keeps it", "thanks"),
    context=(SYSTEM,),
    replies=("a tower with a light", "a keeper"),
)
SHORT = Conversation(turns=("say hi",), max_tokens=42)


def dataset_spec(**fields: Any) -> WorkloadSpec:
    return spec(dataset=Path("d.jsonl"), **fields)


def test_a_single_turn_dataset_request_sends_context_and_the_first_turn() -> None:
    user = traffic(dataset_spec(), (CHAT,))
    nxt = user.next("chat", DEFAULTS)
    assert messages(nxt) == [SYSTEM, {"role": "user", "content": "what is a lighthouse"}]
    assert nxt.prompt_tokens == 4 + 4 and nxt.turn is None
    assert (
        traffic(dataset_spec(), (CHAT,), EstimateCounter()).next("chat", DEFAULTS).prompt_tokens
        is None
    )
    mixed = traffic(dataset_spec(), (CHAT, SHORT))
    sent = {user_text(mixed.next("chat", DEFAULTS)) for _ in range(30)}
    assert sent == {"what is a lighthouse", "say hi"}


def test_a_dataset_session_plays_the_entrys_turns_in_order() -> None:
    user = traffic(dataset_spec(session={"turns": 5}), (CHAT,))
    for turn, question in enumerate(CHAT.turns, 1):
        nxt = user.next("chat", DEFAULTS)
        assert nxt.turn == turn and user_text(nxt) == question
        user.finished(True, f"reply {turn}")
    assert messages(nxt) == [
        SYSTEM,
        {"role": "user", "content": CHAT.turns[0]},
        {"role": "assistant", "content": "reply 1"},
        {"role": "user", "content": CHAT.turns[1]},
        {"role": "assistant", "content": "reply 2"},
        {"role": "user", "content": CHAT.turns[2]},
    ]
    restart = user.next("chat", DEFAULTS)
    assert restart.turn == 1 and messages(restart) == [
        SYSTEM,
        {"role": "user", "content": CHAT.turns[0]},
    ]


def test_a_dataset_session_stops_at_the_sessions_turns() -> None:
    user = traffic(dataset_spec(session={"turns": 2}), (CHAT,))
    played = []
    for _ in range(4):
        nxt = user.next("chat", DEFAULTS)
        played.append((nxt.turn, user_text(nxt)))
        user.finished(True, "ok")
    first_two = [(1, CHAT.turns[0]), (2, CHAT.turns[1])]
    assert played == first_two * 2


def test_dataset_output_tokens_take_the_entrys_then_the_replys_length() -> None:
    bare = Conversation(turns=("one", "two"), replies=("r",))
    user = traffic(dataset_spec(output_tokens="dataset", session={"turns": 3}), (CHAT,))
    asked = []
    for _ in range(3):
        asked.append(user.next("chat", DEFAULTS).request.max_tokens)
        user.finished(True, "ok")
    assert asked == [5, 2, DEFAULTS.max_tokens], "reply lengths, then none: the default"
    single = traffic(dataset_spec(output_tokens="dataset"), (SHORT, bare))
    seen = {}
    for _ in range(30):
        nxt = single.next("chat", DEFAULTS)
        seen[user_text(nxt)] = nxt.request.max_tokens
    assert seen == {"say hi": 42, "one": 1}
    assert traffic(dataset_spec(), (SHORT,)).next("chat", DEFAULTS).request.max_tokens == 77
    assert (
        traffic(dataset_spec(output_tokens=9), (SHORT,)).next("chat", DEFAULTS).request.max_tokens
        == 9
    )


def test_info_describes_the_spec_and_the_counter() -> None:
    workload_spec = spec(name="w", input_tokens="8:16", session={"turns": 2})
    workload = Workload(workload_spec, WORDS)
    info = workload.info()
    calibration = workload.calibration()
    assert calibration is not None and calibration.exact
    assert info == {
        **workload_spec.describe(),
        "token_counter": "words",
        "token_source": "tokenizer",
        "prompt_lengths": "exact",
        "prompt_build": calibration.describe(),
        "tokenize_calls": calibration.calls,
    }
    assert info["name"] == "w" and info["input_tokens"] == "uniform 8-16"
    estimate = Workload(workload_spec, EstimateCounter()).info()
    assert estimate["token_source"] == "estimate"
    assert estimate["token_counter"] == EstimateCounter.description
    assert estimate["prompt_lengths"] == "estimated" and estimate["tokenize_calls"] == 0
    assert estimate["prompt_build"] == "estimated at 4 characters per token"


# -- prompts built before the load ----------------------------------------------------------------
class CountingServer:
    """A server's counter (one token a word) that counts its calls, as ServerCounter does."""

    source: TokenSource = "server"
    description = "server /tokenize at fake"

    def __init__(self) -> None:
        self.calls = 0

    def count(self, text: str) -> int:
        self.calls += 1
        return len(text.split())


def test_the_server_is_asked_once_per_process_never_per_user_or_prompt() -> None:
    server = CountingServer()
    workload_spec = spec(input_tokens="5:50", shared_prefix={"groups": 2, "tokens": 30})
    workload = Workload(workload_spec, server)
    workload.prepare()
    assert 0 < server.calls == workload.tokenize_calls
    before = server.calls
    for _ in range(10):
        user = workload.traffic()
        for _ in range(20):
            nxt = user.next("chat", DEFAULTS)
            system, question = messages(nxt)
            words = len(f"{system['content']} {question['content']}".split())
            assert nxt.prompt_tokens == words, "exact by the server's rule"
    assert server.calls == before, "no call once the users send"
    assert workload.info()["tokenize_calls"] == before


def test_a_dataset_workload_needs_no_calibration() -> None:
    server = CountingServer()
    workload = Workload(dataset_spec(), server, (SHORT,))
    workload.prepare()
    assert workload.calibration() is None and server.calls == 0
    info = workload.info()
    assert info["tokenize_calls"] == 0 and "prompt_lengths" not in info
    assert user_text(workload.traffic().next("chat", DEFAULTS)) == "say hi"


def test_the_master_adds_up_its_workers_calls() -> None:
    exact = {"name": "w", "prompt_lengths": "exact", "prompt_build": "exact", "tokenize_calls": 7}
    unsure = {**exact, "prompt_lengths": "estimated", "prompt_build": "ESTIMATED: why"}
    assert merge_info([exact, exact]) == {**exact, "tokenize_calls": 14, "processes": 2}
    merged = merge_info([exact, {**unsure, "tokenize_calls": 3}, exact])
    assert merged == {**unsure, "tokenize_calls": 17, "processes": 3}, "the worst one's why"


class ServerWords(WordCounter):
    """Counts as a server's /tokenize would: one call per count, each one counted."""

    source: TokenSource = "server"

    def __init__(self) -> None:
        self.calls = 0

    def count(self, text: str) -> int:
        self.calls += 1
        return super().count(text)


def test_dataset_reply_lengths_a_server_counts_are_counted_before_the_load() -> None:
    """A server's /tokenize during the load adds requests the test did not ask for: the
    replies whose lengths set max_tokens are counted in prepare(), and reported."""
    counter = ServerWords()
    bare = Conversation(turns=("one", "two"), replies=("r s", "t u v"))
    workload = Workload(
        dataset_spec(output_tokens="dataset", session={"turns": 2}), counter, (CHAT, SHORT, bare)
    )
    workload.prepare()
    before = counter.calls
    assert before == 4, "CHAT's two replies and bare's two; SHORT asks its own max_tokens"
    user = workload.traffic()
    asked = []
    for _ in range(12):
        asked.append(user.next("chat", DEFAULTS).request.max_tokens)
        user.finished(True, "ok")
    assert counter.calls == before, "no count once users send"
    assert {5, 2, 42, 3} <= set(asked)
    assert workload.info()["tokenize_calls"] == before
