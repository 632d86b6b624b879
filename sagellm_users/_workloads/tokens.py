"""Token counters: how many tokens a prompt is, from the best source at hand.

A load test that claims "2048-token prompts" must count them as the server will, or the
prefill it measures is not the one it reports. So the count comes, in order of preference,
from the model's own tokenizer (a local ``tokenizer.json``: exact, fast, no round trips),
from the server's ``/tokenize`` route (exact for that server, one HTTP call per count), or,
as a last resort, from a documented characters-per-token estimate, which is flagged as
such (``source == "estimate"``) and never reported as exact.
"""

from __future__ import annotations

import importlib
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson

from sagellm_users._backends import VLLMClient, create_client
from sagellm_users._errors import ConfigError, HTTPStatusError, LLMError, excerpt
from sagellm_users._metrics.record import _CHARS_PER_TOKEN

__all__ = [
    "EstimateCounter",
    "ServerCounter",
    "TokenCounter",
    "TokenSource",
    "TokenizerCounter",
    "counts_locally",
    "load_tokenizer",
    "server_counter",
]

TokenSource = Literal["tokenizer", "server", "estimate"]

_TOKENIZER_FILE = "tokenizer.json"
_INSTALL_HINT = "pip install 'sagellm-locust[tokenizer]'"


class TokenCounter(Protocol):
    """Anything that says how many tokens a text is (without special tokens)."""

    source: TokenSource
    description: str
    """One line for the report: where the counts come from."""

    def count(self, text: str) -> int: ...


class TokenizerCounter:
    """Counts with a model's tokenizer, loaded from local files (see :func:`load_tokenizer`).

    ``backend`` is a ``tokenizers.Tokenizer`` or, for a directory without
    ``tokenizer.json``, a ``transformers`` tokenizer; both count without special tokens.
    """

    source: TokenSource = "tokenizer"

    def __init__(self, backend: Any, description: str) -> None:
        self._backend = backend
        self._fast = not hasattr(backend, "convert_ids_to_tokens")  # transformers' have it
        self.description = description

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``, without special tokens (BOS/EOS): the prompt's own tokens."""
        if self._fast:
            return list(self._backend.encode(text, add_special_tokens=False).ids)
        return [int(i) for i in self._backend.encode(text, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        """The text of ``ids``."""
        return str(self._backend.decode(ids, skip_special_tokens=True))

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def count_reply(self, pieces: list[str]) -> int:
        """The tokens of a streamed reply, from the text of each chunk: a piece that is one
        token's text counts one; any other (several tokens in one chunk, or a token whose
        empty chunk a server dropped and whose text came with the next) is encoded.

        Encoding the whole text instead (what benchmarks do without usage) re-segments it:
        on a random-weight model's output it counted 8% more tokens than were generated,
        piece by piece 2.5% more; with the single-token lookup, none (see
        tests/real/test_real_sagellm.py)."""
        single = self._single_token_texts
        n = 0
        for piece in pieces:
            if piece:
                n += 1 if piece in single else len(self.encode(piece))
        return n

    def ready_for_replies(self) -> TokenizerCounter:
        """Build what :meth:`count_reply` needs (every token's text: a decode of the whole
        vocabulary, milliseconds to a fraction of a second) now, before any load, not in
        the first user's request while others are being timed."""
        self._single_token_texts  # noqa: B018 - computed and cached here
        return self

    @cached_property
    def _single_token_texts(self) -> frozenset[str]:
        """The text of every token as a stream shows it: decoded alone, and after another
        token (SentencePiece-style tokenizers drop a word's leading space when it starts
        the text, and a stream shows it)."""
        size = self._vocab_size()
        ids = [[i] for i in range(size)]
        alone = self._decode_batch(ids)
        anchor_ids = self.encode("a")
        if not anchor_ids:
            return frozenset(t for t in alone if t)
        anchor = anchor_ids[-1:]
        head = self.decode(anchor)
        after = self._decode_batch([anchor + i for i in ids])
        within = (t[len(head) :] for t in after if t.startswith(head))
        return frozenset(t for t in (*alone, *within) if t)

    def _vocab_size(self) -> int:
        if self._fast:
            return int(self._backend.get_vocab_size(with_added_tokens=True))
        return len(self._backend)

    def _decode_batch(self, batch: list[list[int]]) -> list[str]:
        if self._fast:
            return list(self._backend.decode_batch(batch, skip_special_tokens=True))
        return list(self._backend.batch_decode(batch, skip_special_tokens=True))


def counts_locally(counter: TokenCounter) -> bool:
    """Whether counting with ``counter`` costs no request to a server: a local tokenizer or
    the estimate (so it may count during the load; a server's count may not)."""
    return isinstance(counter, TokenizerCounter) or counter.source == "estimate"


def load_tokenizer(path: str | Path) -> TokenizerCounter:
    """A :class:`TokenizerCounter` from ``path``: a model directory holding
    ``tokenizer.json``, or that file itself. A directory without it is loaded with
    ``transformers.AutoTokenizer`` (local files only) when transformers is installed."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(
            f"tokenizer path {str(p)!r} does not exist: give a model directory holding "
            f"{_TOKENIZER_FILE}, or the file itself"
        )
    file = p / _TOKENIZER_FILE if p.is_dir() else p
    if not file.is_file():
        return _load_transformers(p)
    try:
        tokenizers = importlib.import_module("tokenizers")
    except ImportError:
        raise ConfigError(
            f"reading {str(file)!r} needs Hugging Face tokenizers: {_INSTALL_HINT}"
        ) from None
    try:
        backend = tokenizers.Tokenizer.from_file(str(file))
    except Exception as exc:  # the Rust library raises plain Exception on a bad file
        reason = excerpt(str(exc)) or type(exc).__name__
        raise ConfigError(
            f"cannot load tokenizer {str(file)!r}: {reason}; give a valid {_TOKENIZER_FILE} "
            "(as saved by Hugging Face tokenizers)"
        ) from None
    return TokenizerCounter(backend, f"tokenizer {p} ({_TOKENIZER_FILE})")


def _load_transformers(directory: Path) -> TokenizerCounter:
    try:
        transformers = importlib.import_module("transformers")
    except ImportError:
        raise ConfigError(
            f"tokenizer directory {str(directory)!r} has no {_TOKENIZER_FILE}: give a directory "
            f"that has one (or the file), or pip install transformers to load other formats"
        ) from None
    try:
        backend = transformers.AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError, ... per format
        reason = excerpt(str(exc)) or type(exc).__name__
        raise ConfigError(
            f"cannot load a tokenizer from {str(directory)!r} with transformers: {reason}; "
            f"give a directory holding {_TOKENIZER_FILE}"
        ) from None
    return TokenizerCounter(backend, f"tokenizer {directory} (transformers)")


class ServerCounter:
    """Counts with the server's own ``/tokenize`` (vLLM's route; the mock has it too).

    Special tokens are left out (``add_special_tokens: false``), as a local tokenizer
    counts: the server adds its BOS to every prompt anyway, whatever the prompt is.
    Every failure is a :class:`ConfigError` naming the server and the way around it.
    Every call is a request to the server under test, so each is counted (``calls``): the
    report says how many were made, and prompts are built without it during the load
    (see :mod:`.calibration`).
    """

    source: TokenSource = "server"

    def __init__(self, client: VLLMClient, model: str = "") -> None:
        self.client = client
        self.model = model
        self.description = f"server /tokenize at {client.base_url}"
        self.calls = 0
        """``/tokenize`` requests made so far, failed ones included."""
        self.max_model_len: int | None = None
        """The server's context length, as its last answer gave it (None until then)."""

    def _fail(self, reason: str) -> ConfigError:
        return ConfigError(
            f"cannot count tokens with /tokenize at {self.client.base_url}: {reason}; "
            "give --tokenizer PATH (the model's tokenizer.json) to count them locally instead"
        )

    def pieces(self, text: str) -> tuple[list[int], list[str] | None]:
        """The ids the server makes of ``text`` (without special tokens), and the text of
        each token when the server gives it (vLLM's ``return_token_strs``; None otherwise)."""
        ids, strs = self._ask(text, token_strs=True)
        if (
            isinstance(strs, list)
            and len(strs) == len(ids)
            and all(isinstance(t, str) for t in strs)
        ):
            return ids, strs
        return ids, None

    def tokenize(self, text: str) -> list[int]:
        """The ids the server makes of ``text``, without special tokens."""
        return self._ask(text, token_strs=False)[0]

    def _ask(self, text: str, *, token_strs: bool) -> tuple[list[int], Any]:
        """One ``/tokenize`` call: the ids, and the answer's ``token_strs`` as it came."""
        payload: dict[str, Any] = {"prompt": text, "add_special_tokens": False}
        if token_strs:
            payload["return_token_strs"] = True
        if self.model:
            payload["model"] = self.model
        self.calls += 1
        try:
            status, body = self.client.request("POST", "/tokenize", payload)
        except LLMError as exc:
            raise self._fail(str(exc)) from None
        if status in (404, 405) and b"does not exist" not in body:
            raise self._fail(f"the route answered {status}, so the server is not vLLM or lacks it")
        if status != 200:
            raise self._fail(str(HTTPStatusError(status, "", body)))
        try:
            answer = orjson.loads(body)
            ids = [int(t) for t in answer["tokens"]]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise self._fail(f"the answer is not vLLM's token list: {excerpt(body)!r}") from None
        limit = answer.get("max_model_len")
        if isinstance(limit, int) and limit > 0:
            self.max_model_len = limit
        return ids, answer.get("token_strs")

    def count(self, text: str) -> int:
        return len(self.tokenize(text))

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()


def server_counter(
    host: str,
    model: str = "",
    *,
    api_key: str | None = None,
    headers: dict[str, str] | None = None,
    verify: bool | str = True,
) -> ServerCounter:
    """A :class:`ServerCounter` for the vLLM-compatible server at ``host``, checked with one
    ``/tokenize`` call now, so a server without the route fails before any load is sent."""
    client = create_client("vllm", host, api_key=api_key, headers=headers, verify=verify)
    assert isinstance(client, VLLMClient)
    counter = ServerCounter(client, model)
    try:
        counter.count("hello")
    except ConfigError:
        client.close()
        raise
    return counter


class EstimateCounter:
    """``round(len(text) / 4)``: the rule the metrics use when nothing counts better
    (:data:`sagellm_users._metrics.record._CHARS_PER_TOKEN`). Never exact."""

    source: TokenSource = "estimate"
    description = f"estimate: {_CHARS_PER_TOKEN:g} characters per token"

    def count(self, text: str) -> int:
        return round(len(text) / _CHARS_PER_TOKEN)
