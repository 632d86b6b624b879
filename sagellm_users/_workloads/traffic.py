"""Turning a :class:`WorkloadSpec` into requests, one user at a time.

One :class:`Workload` lives per Locust environment; each user gets its own
:class:`UserTraffic` with its own random stream (derived from the seed, the process and the
user), so a run is reproducible and no two users send the same prompt unless the workload
shares a prefix on purpose. A user in a multi-turn session sends its whole conversation so
far with every turn, the model's real replies included, as a chat client does.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sagellm_users._backends import Api, GenerationRequest
from sagellm_users._backends.base import MESSAGE_APIS
from sagellm_users._workloads.calibration import WordCalibration, calibrate
from sagellm_users._workloads.datasets import Conversation
from sagellm_users._workloads.lengths import length_sampler
from sagellm_users._workloads.spec import WorkloadSpec
from sagellm_users._workloads.synthetic import PromptSynthesizer
from sagellm_users._workloads.tokens import TokenCounter, TokenizerCounter, counts_locally

__all__ = ["NextRequest", "RequestDefaults", "UserTraffic", "Workload", "merge_info"]

log = logging.getLogger("sagellm_users")

Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RequestDefaults:
    """The per-request fields the options decide (the workload decides the rest)."""

    model: str = ""
    max_tokens: int = 128
    min_tokens: int | None = None
    temperature: float | None = None
    ignore_eos: bool = False
    stream: bool = True
    extra_body: dict[str, Any] | None = None

    def request(
        self, api: Api, messages: list[Message], max_tokens: int | None = None
    ) -> GenerationRequest:
        """``messages`` as a request of ``api`` (a completion prompt joins their texts; the
        APIs that take a conversation, chat, Responses and Messages, keep them)."""
        max_tokens = self.max_tokens if max_tokens is None else max_tokens
        min_tokens = self.min_tokens
        chat = api in MESSAGE_APIS
        return GenerationRequest(
            api=api,
            model=self.model,
            prompt=None if chat else "\n\n".join(str(m["content"]) for m in messages),
            messages=messages if chat else None,
            max_tokens=max_tokens,
            min_tokens=None if min_tokens is None else min(min_tokens, max_tokens),
            temperature=self.temperature,
            ignore_eos=self.ignore_eos,
            stream=self.stream,
            extra_body=dict(self.extra_body or {}),
        )


@dataclass(frozen=True, slots=True)
class NextRequest:
    """A request to send and what the workload knows about it."""

    request: GenerationRequest
    prompt_tokens: int | None
    """Prompt content tokens as the workload's counter counted them (None: not counted)."""
    session: str | None = None
    turn: int | None = None
    """1 for a conversation's first request, then 2, 3...; None outside sessions."""
    prefix_group: int | None = None
    """The shared-prefix group whose system prompt leads the request (None: no prefix)."""


class Workload:
    """The workload of one process: its spec, token counter, dataset and shared prefixes.

    What it needs from a server is asked once, in :meth:`prepare`, before any load: the
    words a server-counted prompt is made of (see :mod:`.calibration`), shared by all the
    process's users, the shared prefixes, and the dataset replies that set
    ``max_tokens``. ``tokenize_calls`` says how many calls that took, for the report."""

    def __init__(
        self,
        spec: WorkloadSpec,
        counter: TokenCounter,
        conversations: Sequence[Conversation] = (),
        *,
        process: str = "0",
    ) -> None:
        self.spec = spec
        self.counter = counter
        self.conversations = conversations
        self.process = process
        self.tokenize_calls = 0
        """Calls to the server's ``/tokenize`` made by :meth:`prepare` (the counter's
        check at its creation included)."""
        self._calibration: WordCalibration | None = None
        self._calibrated = False
        self._prepared = False
        self._prefixes: list[tuple[str, int]] | None = None
        self._reply_tokens: dict[tuple[int, int], int] = {}
        self._users = 0

    @property
    def multi_turn(self) -> bool:
        return self.spec.session is not None

    @property
    def synthetic(self) -> bool:
        """Whether prompts are made here (not read from a dataset) and need counting."""
        return self.spec.input_tokens is not None or self.spec.shared_prefix is not None

    def prepare(self) -> None:
        """Ask the server what prompts need, once and before the load: the word calibration
        when a server counts synthetic prompts, then the shared prefixes."""
        if self._prepared:
            return
        calibration = self.calibration()
        self.prefixes()
        self._count_replies()
        made = getattr(self.counter, "calls", None)  # a server counter counts its own
        self.tokenize_calls = made if isinstance(made, int) else getattr(calibration, "calls", 0)
        self._prepared = True

    def _count_replies(self) -> None:
        """The reference replies whose lengths set ``max_tokens`` (``output_tokens =
        "dataset"``, entries without their own), counted now when a server counts them:
        one ``/tokenize`` call each, which during the load would add requests the test
        did not ask for. A local tokenizer counts them as they are needed."""
        if self.spec.output_tokens != "dataset" or counts_locally(self.counter):
            return
        todo = [
            (entry, turn)
            for entry, conversation in enumerate(self.conversations)
            if conversation.max_tokens is None
            for turn, reply in enumerate(conversation.replies)
            if reply
        ]
        if todo:
            log.info(
                "sagellm: counting %d dataset replies with %s before the load",
                len(todo),
                self.counter.description,
            )
        for entry, turn in todo:
            self.reply_tokens(entry, turn)

    def calibration(self) -> WordCalibration | None:
        """The words measured with the server's tokenizer, measured on first use (None:
        prompts need none)."""
        if not self._calibrated:
            self._calibrated = True
            if self.synthetic and not counts_locally(self.counter):
                self._calibration = calibrate(self.counter)
                if not self._calibration.exact:
                    log.warning(
                        "sagellm: prompt lengths are estimated, not exact: %s. Pass "
                        "--tokenizer PATH (the model's tokenizer.json) for exact lengths",
                        self._calibration.problem,
                    )
        return self._calibration

    def prefixes(self) -> list[tuple[str, int]]:
        """The shared system prompts and their token counts, the same on every process
        (drawn from the seed alone, not the process's stream)."""
        if self._prefixes is None:
            shared = self.spec.shared_prefix
            self._prefixes = []
            if shared is not None:
                for group in range(shared.groups):
                    rng = random.Random(f"{self.spec.seed}/prefix/{group}")
                    prompt = self.synthesizer(rng).make(shared.tokens)
                    self._prefixes.append((prompt.text, prompt.tokens))
        return self._prefixes

    def synthesizer(self, rng: random.Random) -> PromptSynthesizer:
        """A prompt maker drawing from ``rng``, sharing this process's calibration."""
        return PromptSynthesizer(self.counter, rng, self.calibration())

    def reply_tokens(self, entry: int, turn: int) -> int | None:
        """Tokens of a dataset entry's reference reply to ``turn`` (counted once)."""
        key = (entry, turn)
        if key not in self._reply_tokens:
            replies = self.conversations[entry].replies
            if turn >= len(replies) or not replies[turn]:
                return None
            self._reply_tokens[key] = max(1, self.counter.count(replies[turn]))
        return self._reply_tokens[key]

    def traffic(self) -> UserTraffic:
        """The next user's traffic: its own random stream and prefix group."""
        user = self._users
        self._users += 1
        rng = random.Random(f"{self.spec.seed}/{self.process}/{user}")
        prefixes = self.prefixes()
        group = user % len(prefixes) if prefixes else None
        prefix = None if group is None else (group, *prefixes[group])
        return UserTraffic(self, rng, prefix, f"{self.process}-{user}")

    def info(self) -> dict[str, Any]:
        """The workload for the report: its spec, how prompt tokens were counted, and the
        ``/tokenize`` calls that took before the load."""
        self.prepare()
        info = self.spec.describe()
        info["token_counter"] = self.counter.description
        info["token_source"] = self.counter.source
        if self.synthetic:
            calibration = self._calibration
            if isinstance(self.counter, TokenizerCounter):
                exact, how = True, "exact, each counted by the local tokenizer"
            elif calibration is None:
                exact, how = False, "estimated at 4 characters per token"
            else:
                exact, how = calibration.exact, calibration.describe()
            info["prompt_lengths"] = "exact" if exact else "estimated"
            info["prompt_build"] = how
        info["tokenize_calls"] = self.tokenize_calls
        return info


def merge_info(infos: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The workload as the master reports it from each worker's :meth:`Workload.info`:
    the first's, with every worker's ``/tokenize`` calls added up and, when any worker
    could only estimate prompt lengths, its account of why."""
    merged = dict(infos[0])
    merged["tokenize_calls"] = sum(int(info.get("tokenize_calls", 0)) for info in infos)
    merged["processes"] = len(infos)
    for info in infos:
        if info.get("prompt_lengths") == "estimated":
            merged["prompt_lengths"] = "estimated"
            merged["prompt_build"] = info.get("prompt_build")
            break
    return merged


class UserTraffic:
    """One user's stream of requests (and its conversation, in multi-turn workloads)."""

    def __init__(
        self,
        workload: Workload,
        rng: random.Random,
        prefix: tuple[int, str, int] | None,
        name: str,
    ) -> None:
        """``prefix``: the shared-prefix group's (index, system prompt, its tokens)."""
        spec = workload.spec
        self._workload = workload
        self._rng = rng
        self._prefix = prefix
        self._name = name
        self._synth = workload.synthesizer(rng) if workload.synthetic else None
        self._input = length_sampler(spec.input_tokens, rng) if spec.input_tokens else None
        output = spec.output_tokens
        self._output: Callable[[], int] | None = (
            length_sampler(output, rng) if output is not None and output != "dataset" else None
        )
        session = spec.session
        self._turns = length_sampler(session.turns, rng) if session is not None else None
        follow = session.input_tokens if session is not None else None
        self._follow_up = length_sampler(follow, rng) if follow is not None else self._input
        self._think = session.think_time if session is not None else (0.0, 0.0)
        # The conversation in progress (multi-turn) and its position.
        self._history: list[Message] = []
        self._history_tokens: int | None = 0
        """Tokens of ``_history``, kept as it grows so a turn never re-counts the earlier
        ones (None once a message could not be counted)."""
        self._turn = 0
        self._turns_left = 0
        self._entry: int | None = None
        self._sessions = 0

    def think_time(self) -> float:
        """Seconds to wait before the next turn (the user reading and typing)."""
        low, high = self._think
        return low if low == high else self._rng.uniform(low, high)

    def next(self, api: Api, defaults: RequestDefaults) -> NextRequest:
        """The next request: a new prompt, or the next turn of the conversation."""
        if self._turns is not None:
            if self._turns_left <= 0:
                self._start_session()
            entry, turn, earlier = self._entry, self._turn, self._history
        else:
            entry, turn = self._pick_entry(), 0
            earlier = [] if entry is None else list(self._workload.conversations[entry].context)
        text, tokens = self._user_message(entry, turn)
        max_tokens = self._max_tokens(entry, turn, defaults.max_tokens)
        user: Message = {"role": "user", "content": text}
        messages: list[Message] = []
        if self._prefix is not None:
            messages.append({"role": "system", "content": self._prefix[1]})
        messages += [*earlier, user]
        earlier_tokens = self._history_tokens if self._turns is not None else self._sum(earlier)
        user_tokens = tokens if tokens is not None else self._tokens(text)
        prefix_tokens = self._prefix[2] if self._prefix is not None else 0
        group = self._prefix[0] if self._prefix is not None else None
        prompt_tokens = _add(_add(earlier_tokens, user_tokens), prefix_tokens)
        if self._turns is not None:
            self._history.append(user)
            self._history_tokens = _add(self._history_tokens, user_tokens)
        request = defaults.request(api, messages, max_tokens)
        if self._turns is None:
            return NextRequest(request, prompt_tokens, prefix_group=group)
        session = f"{self._name}-{self._sessions}"
        return NextRequest(request, prompt_tokens, session, turn + 1, group)

    def finished(self, ok: bool, reply: str | None) -> None:
        """The request ended: a conversation goes on with the model's reply, and ends on a
        failure (a chat user whose message failed starts over)."""
        if self._turns is None:
            return
        if not ok or reply is None:
            self._turns_left = 0
            return
        self._history.append({"role": "assistant", "content": reply})
        self._history_tokens = _add(self._history_tokens, self._tokens(reply))
        self._turn += 1
        self._turns_left -= 1

    # -- internals ---------------------------------------------------------------------------
    def _start_session(self) -> None:
        assert self._turns is not None
        self._sessions += 1
        self._history = []
        self._turn = 0
        self._entry = self._pick_entry()
        turns = self._turns()
        if self._entry is not None:
            conversation = self._workload.conversations[self._entry]
            self._history = list(conversation.context)
            turns = min(turns, len(conversation.turns))
        self._history_tokens = self._sum(self._history)
        self._turns_left = turns

    def _pick_entry(self) -> int | None:
        conversations = self._workload.conversations
        return self._rng.randrange(len(conversations)) if conversations else None

    def _user_message(self, entry: int | None, turn: int) -> tuple[str, int | None]:
        if entry is not None:
            return self._workload.conversations[entry].turns[turn], None
        sampler = self._input if turn == 0 else self._follow_up
        assert sampler is not None and self._synth is not None
        prompt = self._synth.make(sampler())
        return prompt.text, prompt.tokens

    def _max_tokens(self, entry: int | None, turn: int, default: int) -> int:
        if self._output is not None:
            return self._output()
        if self._workload.spec.output_tokens == "dataset" and entry is not None:
            asked = self._workload.conversations[entry].max_tokens
            if asked is not None:
                return asked
            reply = self._workload.reply_tokens(entry, turn)
            if reply is not None:
                return reply
        return default

    def _tokens(self, text: str) -> int | None:
        """A local tokenizer's count of ``text``; None with other counters (a server round
        trip per request would add load the test did not ask for, and the server's usage
        reports the prompt's tokens anyway)."""
        counter = self._workload.counter
        return counter.count(text) if counter.source == "tokenizer" else None

    def _sum(self, messages: list[Message]) -> int | None:
        total: int | None = 0
        for message in messages:
            total = _add(total, self._tokens(str(message["content"])))
        return total


def _add(a: int | None, b: int | None) -> int | None:
    """A sum of token counts, unknown as soon as one part is."""
    return None if a is None or b is None else a + b
