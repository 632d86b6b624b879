"""Turn a request body into a :class:`GenerationRequest`, or a vLLM-style client error.

Only the fields the mock acts on are checked; unknown fields are accepted and ignored, as
vLLM does (it logs them). The checks and their order follow vLLM: body schema first (400),
then the model name (404), then the context-length limits (400).

The Responses and Messages routes follow vLLM 0.32's own request models: ``input`` (a
string or a list of items) and ``max_output_tokens``; ``model``, ``messages`` (roles
``user``, ``assistant``, ``system``) and a positive ``max_tokens``, all required. A schema
error there is FastAPI's (``"type":"Bad Request"``, ``"param":"body.FIELD"``); on
``/v1/messages`` the later errors are Anthropic's (see :func:`resolve_output_cap`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

from .config import MockServerConfig
from .simulation import count_chat_prompt_tokens, count_completion_prompt_tokens

__all__ = [
    "GenerationRequest",
    "RequestError",
    "load_object",
    "parse_chat_request",
    "parse_completion_request",
    "parse_generate_request",
    "parse_messages_request",
    "parse_responses_request",
    "resolve_max_tokens",
    "resolve_output_cap",
]

Kind = Literal["chat", "completion", "generate", "responses", "messages"]

#: The routes whose stream ends at an event of its own, with no ``[DONE]``.
LAST_EVENT_KINDS = frozenset({"responses", "messages"})

#: LMDeploy's ``GenerateReqInput.max_tokens`` default.
GENERATE_DEFAULT_MAX_TOKENS = 128


class RequestError(Exception):
    """A client error to be sent as vLLM's ``ErrorResponse``."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        err_type: str = "BadRequestError",
        param: str | None = None,
        schema: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.err_type = err_type
        self.param = param
        self.schema = schema
        """The body does not fit the route's request model: FastAPI's answer, the same on
        every vLLM route (Anthropic's error shape comes only after it)."""


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """The parts of a chat or completion request that shape the simulated generation."""

    kind: Kind
    model: str | None
    prompt_tokens: int
    max_tokens: int | None
    min_tokens: int
    ignore_eos: bool
    stream: bool
    include_usage: bool
    continuous_usage: bool


def load_object(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"JSON decode error: {exc}") from None
    if not isinstance(doc, dict):
        raise RequestError("Input should be a valid dictionary or object to extract fields from")
    return doc


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional_int(doc: dict[str, Any], name: str) -> int | None:
    value = doc.get(name)
    if value is None:
        return None
    if not _is_int(value):
        raise RequestError(f"{name}: Input should be a valid integer", param=name)
    return int(value)


def _bool(doc: dict[str, Any], name: str, default: bool) -> bool:
    value = doc.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RequestError(f"{name}: Input should be a valid boolean", param=name)
    return value


def _common(doc: dict[str, Any], kind: Kind, prompt_tokens: int) -> GenerationRequest:
    model = doc.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError("model: Input should be a valid string", param="model")
    max_tokens = _optional_int(doc, "max_tokens")
    if kind == "chat":
        max_completion = _optional_int(doc, "max_completion_tokens")
        if max_completion is not None:
            max_tokens = max_completion
    if max_tokens is not None and max_tokens < 1:
        raise RequestError(f"max_tokens must be at least 1, got {max_tokens}.", param="max_tokens")
    # vLLM names it min_tokens, LMDeploy's OpenAI routes min_new_tokens.
    min_tokens = _optional_int(doc, "min_tokens") or _optional_int(doc, "min_new_tokens") or 0
    if min_tokens < 0:
        raise RequestError(f"min_tokens must be greater than or equal to 0, got {min_tokens}.")
    if max_tokens is not None and min_tokens > max_tokens:
        raise RequestError(
            f"min_tokens must be less than or equal to max_tokens={max_tokens}, got {min_tokens}."
        )
    n = doc.get("n")
    if n is not None and (not _is_int(n) or n != 1):
        raise RequestError(f"n must be 1 on this mock server, got {n!r}.", param="n")
    stream = _bool(doc, "stream", False)
    options = doc.get("stream_options")
    include_usage = continuous = False
    if options is not None:
        if not isinstance(options, dict):
            raise RequestError("stream_options: Input should be a valid dictionary")
        if not stream:
            raise RequestError("Stream options can only be defined when `stream=True`.")
        # vLLM's StreamOptions defaults include_usage to true once the object is present.
        include_usage = _bool(options, "include_usage", True)
        continuous = include_usage and _bool(options, "continuous_usage_stats", False)
    return GenerationRequest(
        kind=kind,
        model=model,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        min_tokens=min_tokens,
        ignore_eos=_bool(doc, "ignore_eos", False),
        stream=stream,
        include_usage=include_usage,
        continuous_usage=continuous,
    )


def parse_chat_request(body: bytes) -> GenerationRequest:
    """Validate a ``/v1/chat/completions`` body."""
    doc = load_object(body)
    messages = doc.get("messages")
    if messages is None:
        raise RequestError("messages: Field required", param="messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages: Input should be a non-empty list", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError(
                f"messages[{i}]: each message needs a string 'role'", param="messages"
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise RequestError(
                f"messages[{i}].content: Input should be a string or a list of parts",
                param="messages",
            )
    return _common(doc, "chat", count_chat_prompt_tokens(messages))


def _single_prompt(prompt: Any) -> str | list[int]:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt:
        if all(_is_int(t) for t in prompt):
            return list(prompt)
        if len(prompt) == 1 and isinstance(prompt[0], str):
            return str(prompt[0])
        if len(prompt) == 1 and isinstance(prompt[0], list) and all(_is_int(t) for t in prompt[0]):
            return list(prompt[0])
        if len(prompt) > 1 and all(isinstance(p, str | list) for p in prompt):
            raise RequestError(
                "This mock server accepts a single prompt per request.", param="prompt"
            )
    raise RequestError(
        "prompt: Input should be a string, a list of token ids, or a one-element list",
        param="prompt",
    )


def parse_completion_request(body: bytes) -> GenerationRequest:
    """Validate a ``/v1/completions`` body."""
    doc = load_object(body)
    prompt = doc.get("prompt")
    if prompt is None:
        raise RequestError("Either prompt or prompt_embeds must be provided and non-empty.")
    tokens = count_completion_prompt_tokens(_single_prompt(prompt))
    return _common(doc, "completion", tokens)


def parse_generate_request(body: bytes) -> GenerationRequest:
    """Validate an LMDeploy ``/generate`` body: exactly one of ``prompt`` and ``input_ids``."""
    doc = load_object(body)
    prompt, input_ids = doc.get("prompt"), doc.get("input_ids")
    if (prompt is None) == (input_ids is None):
        raise RequestError("You must specify exactly one of prompt or input_ids")
    if prompt is not None:
        if not isinstance(prompt, str) or not prompt:
            raise RequestError("The prompt must not be an empty string", param="prompt")
        tokens = count_completion_prompt_tokens(prompt)
    else:
        if not isinstance(input_ids, list) or not input_ids or not all(map(_is_int, input_ids)):
            raise RequestError("The input_ids must be a non-empty list of integers")
        tokens = len(input_ids)
    max_tokens = _optional_int(doc, "max_tokens")
    if max_tokens is None:
        max_tokens = GENERATE_DEFAULT_MAX_TOKENS
    if max_tokens <= 0:
        raise RequestError(f"The max_tokens {max_tokens!r} must be a positive integer.")
    return GenerationRequest(
        kind="generate",
        model=None,
        prompt_tokens=tokens,
        max_tokens=max_tokens,
        min_tokens=0,
        ignore_eos=_bool(doc, "ignore_eos", False),
        stream=_bool(doc, "stream", False),
        include_usage=False,
        continuous_usage=False,
    )


def resolve_max_tokens(request: GenerationRequest, config: MockServerConfig) -> int:
    """The output cap: the request's, else the default, within the context window.

    Mirrors vLLM's checks: a prompt must leave room for at least one token, and an explicit
    ``max_tokens`` must fit in ``max_model_len`` together with the prompt.
    """
    limit = config.max_model_len
    prompt = request.prompt_tokens
    if prompt >= limit:
        raise RequestError(
            f"This model's maximum context length is {limit} tokens. However, your request "
            f"has {prompt} input tokens. Please reduce the length of the input messages.",
            param="input_tokens",
        )
    if request.max_tokens is None:
        return max(1, min(config.default_max_tokens, limit - prompt))
    if prompt + request.max_tokens > limit:
        raise RequestError(
            f"'max_tokens' or 'max_completion_tokens' is too large: {request.max_tokens}. "
            f"This model's maximum context length is {limit} tokens and your request has "
            f"{prompt} input tokens ({request.max_tokens} > {limit} - {prompt}).",
            param="max_tokens",
        )
    return request.max_tokens


def _schema_error(field: str, kind: str, msg: str) -> RequestError:
    """FastAPI's answer to a body that does not fit the request model, as vLLM gives it."""
    return RequestError(
        f"1 validation error:\n  {{'type': '{kind}', 'loc': 'body.{field}', 'msg': '{msg}'}}",
        err_type="Bad Request",
        param=f"body.{field}",
        schema=True,
    )


def _item_messages(items: list[Any]) -> list[Any]:
    """The messages of a Responses ``input`` list (its other items carry no prompt text)."""
    messages = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _schema_error(f"input.{i}", "model_type", "Input should be an object")
        if "role" in item:
            if item["role"] not in ("user", "assistant", "system", "developer"):
                raise _schema_error(f"input.{i}.role", "literal_error", "Input should be a role")
            messages.append(item)
    return messages


def parse_responses_request(body: bytes) -> GenerationRequest:
    """Validate a ``/v1/responses`` body (vLLM's ``ResponsesRequest``): ``input`` is
    required; ``model`` may be left out (the served model answers)."""
    doc = load_object(body)
    if "input" not in doc:
        raise _schema_error("input", "missing", "Field required")
    given = doc["input"]
    if isinstance(given, str):
        tokens = count_chat_prompt_tokens([{"role": "user", "content": given}])
    elif isinstance(given, list):
        if not given:
            raise RequestError(
                "Cannot apply chat template to an empty conversation. Provide at least one message."
            )
        tokens = count_chat_prompt_tokens(_item_messages(given))
    else:
        raise _schema_error("input", "union_type", "Input should be a string or a list")
    model = doc.get("model")
    if model is not None and not isinstance(model, str):
        raise _schema_error("model", "string_type", "Input should be a valid string")
    try:
        max_tokens = _optional_int(doc, "max_output_tokens")
    except RequestError:
        raise _schema_error(
            "max_output_tokens", "int_type", "Input should be a valid integer"
        ) from None
    if max_tokens is not None and max_tokens < 1:
        raise RequestError(
            f"max_tokens must be at least 1, got {max_tokens}. "
            f"(parameter=max_tokens, value={max_tokens})",
            param="max_tokens",
        )
    return GenerationRequest(
        kind="responses",
        model=model,
        prompt_tokens=tokens,
        max_tokens=max_tokens,
        min_tokens=0,  # ResponsesRequest has no min_tokens: vLLM drops it
        ignore_eos=_bool(doc, "ignore_eos", False),
        stream=_bool(doc, "stream", False),
        include_usage=True,  # response.completed always carries it
        continuous_usage=False,
    )


def parse_messages_request(body: bytes) -> GenerationRequest:
    """Validate a ``/v1/messages`` body (vLLM's ``AnthropicMessagesRequest``). It has no
    ``ignore_eos`` nor ``min_tokens``: vLLM drops both, and so does the mock."""
    doc = load_object(body)
    for field in ("model", "messages", "max_tokens"):
        if field not in doc:
            raise _schema_error(field, "missing", "Field required")
    model = doc["model"]
    if not isinstance(model, str):
        raise _schema_error("model", "string_type", "Input should be a valid string")
    messages = doc["messages"]
    if not isinstance(messages, list):
        raise _schema_error("messages", "list_type", "Input should be a valid list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in (
            "user",
            "assistant",
            "system",
        ):
            raise _schema_error(
                f"messages.{i}.role",
                "literal_error",
                "Input should be 'user', 'assistant' or 'system'",
            )
        if not isinstance(message.get("content"), str | list):
            raise _schema_error(
                f"messages.{i}.content", "union_type", "Input should be a string or a list"
            )
    max_tokens = doc["max_tokens"]
    if not _is_int(max_tokens):
        raise _schema_error("max_tokens", "int_type", "Input should be a valid integer")
    if max_tokens <= 0:
        raise _schema_error("max_tokens", "value_error", "Value error, max_tokens must be positive")
    if not messages:
        raise RequestError(
            "Cannot apply chat template to an empty conversation. Provide at least one message."
        )
    system = doc.get("system")
    if system is not None and not isinstance(system, str | list):
        raise _schema_error("system", "union_type", "Input should be a string or a list")
    prompt = list(messages)
    if system:
        prompt.insert(0, {"role": "system", "content": system})
    return GenerationRequest(
        kind="messages",
        model=model,
        prompt_tokens=count_chat_prompt_tokens(prompt),
        max_tokens=int(max_tokens),
        min_tokens=0,
        ignore_eos=False,
        stream=_bool(doc, "stream", False),
        include_usage=True,  # message_delta always carries it
        continuous_usage=False,
    )


#: The name vLLM 0.32 gives the output cap in its errors, by route.
_CAP_FIELDS = {"responses": "max_output_tokens", "messages": "max_completion_tokens"}


def resolve_output_cap(request: GenerationRequest, config: MockServerConfig) -> int:
    """The output cap on the Responses and Messages routes, as vLLM 0.32 decides it: a
    prompt must leave room for a token, a cap may not pass ``max_model_len``, and a cap
    the prompt leaves no room for is cut to what fits (these routes do not refuse it)."""
    limit = config.max_model_len
    prompt = request.prompt_tokens
    if prompt >= limit:
        raise RequestError(
            f"This model's maximum context length is {limit} tokens. However, your prompt "
            f"contains at least {limit + 1} input tokens, which exceeds this limit even "
            "without any output tokens. Please reduce the length of the input prompt. "
            f"(parameter=input_tokens, value={limit + 1})",
            param="input_tokens",
        )
    cap = request.max_tokens
    if cap is None:
        return max(1, min(config.default_max_tokens, limit - prompt))
    if cap > limit:
        field = _CAP_FIELDS[request.kind]
        raise RequestError(
            f"{field}={cap} cannot be greater than max_model_len={limit}. Please request "
            f"fewer output tokens. (parameter={field}, value={cap})",
            param=field,
        )
    return min(cap, limit - prompt)
