"""Prompt datasets read from files: ShareGPT JSON and JSONL.

A fixed prompt measures one batch shape; real prompts measure the traffic a service will
see. ShareGPT is the corpus vLLM's own benchmark replays, so reading it the same way (user
turns as prompts, entries with no usable turn skipped) keeps results comparable with
published numbers. JSONL is the format people write by hand or export from logs: one
request per line, either a bare prompt or a chat history ending in the user's turn.

Every format error names the file, the entry or line, and what the format must be: a
dataset is read before any load is sent, and a run that stops there should say how to fix
the file rather than show a traceback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from sagellm_users._errors import ConfigError

__all__ = ["Conversation", "load_dataset", "load_jsonl", "load_sharegpt"]

log = logging.getLogger("sagellm_users")

_USER_ROLES = frozenset({"human", "user"})
_REPLY_ROLES = frozenset({"gpt", "assistant", "chatgpt", "bard", "model"})
_CHAT_ROLES = frozenset({"system", "user", "assistant"})
_SHAREGPT_FORM = 'a JSON list of {"conversations": [{"from": "human", "value": "..."}, ...]}'
_JSON_KINDS = {
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "an object",
}
_JSONL_FORM = 'give "prompt" (a string) or "messages" (a list ending with a user message)'


@dataclass(frozen=True, slots=True)
class Conversation:
    """One dataset entry, kept whole so single-turn and multi-turn users share one source.

    ``turns[0]`` alone is a single-turn prompt; later turns and the dataset's own ``replies``
    (reference answers, also a hint for output lengths) let a user replay the whole chat.
    ``context`` holds the chat messages sent before ``turns[0]`` (system prompt, few-shot).
    """

    turns: tuple[str, ...]
    context: tuple[dict[str, str], ...] = ()
    replies: tuple[str, ...] = ()
    max_tokens: int | None = None


def load_dataset(
    path: Path, fmt: Literal["auto", "sharegpt", "jsonl"] = "auto"
) -> list[Conversation]:
    """Read a dataset; ``auto`` goes by the suffix, then by the first character."""
    if fmt not in ("auto", "sharegpt", "jsonl"):
        raise ConfigError(f"dataset format {fmt!r} is unknown; give auto, sharegpt or jsonl")
    text = _read(path)
    if fmt == "auto":
        fmt = _sniff(path, text)
    return _parse_sharegpt(path, text) if fmt == "sharegpt" else _parse_jsonl(path, text)


def load_sharegpt(path: Path) -> list[Conversation]:
    """Read a ShareGPT JSON file, such as vLLM's ``ShareGPT_V3_unfiltered_cleaned_split.json``."""
    return _parse_sharegpt(path, _read(path))


def load_jsonl(path: Path) -> list[Conversation]:
    """Read one ``{"prompt": ...}`` or ``{"messages": [...]}`` object per line."""
    return _parse_jsonl(path, _read(path))


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such dataset file; check the path") from None
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the dataset ({exc.strerror}); give a readable file"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8"
        ) from None


def _sniff(path: Path, text: str) -> Literal["sharegpt", "jsonl"]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".json":
        return "sharegpt"
    start = text.lstrip()[:1]
    if start in ("[", "{"):
        return "sharegpt" if start == "[" else "jsonl"
    raise ConfigError(
        f"{path}: cannot tell the dataset format (it starts with {start!r});"
        " give a ShareGPT JSON list or JSONL with one object per line"
    )


def _parse_sharegpt(path: Path, text: str) -> list[Conversation]:
    try:
        entries = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: invalid JSON ({exc}); a ShareGPT file is {_SHAREGPT_FORM}"
        ) from None
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: holds {_kind(entries)}; a ShareGPT file is {_SHAREGPT_FORM}")
    conversations: list[Conversation] = []
    for index, entry in enumerate(entries):
        where = f"{path} entry {index}"
        if not isinstance(entry, dict) or not isinstance(entry.get("conversations"), list):
            raise ConfigError(
                f'{where}: give an object with a "conversations" list; the file is {_SHAREGPT_FORM}'
            )
        conversation = _sharegpt_entry(where, entry)
        if conversation is not None:
            conversations.append(conversation)
    skipped = len(entries) - len(conversations)
    if not conversations:
        raise ConfigError(
            f"{path} holds no usable conversation (no entry has a non-empty user turn)"
        )
    if skipped:
        log.info(
            "%s: skipped %d of %d entries without a usable user turn", path, skipped, len(entries)
        )
    return conversations


def _sharegpt_entry(where: str, entry: dict[str, Any]) -> Conversation | None:
    """The entry as a conversation, or ``None`` to skip it as vLLM's benchmark would: no
    user turn, an empty message, or a speaker the format does not know."""
    turns: list[str] = []
    replies: list[str] = []
    context: list[dict[str, str]] = []
    for number, message in enumerate(entry["conversations"]):
        role, value = _sharegpt_message(f"{where} message {number}", message)
        if not value.strip():
            return None
        if role in _USER_ROLES:
            turns.append(value)
        elif role in _REPLY_ROLES and turns:
            replies.append(value)
        elif role in _REPLY_ROLES or role == "system":
            # Before the first user turn a reply is context, as a system prompt is anywhere.
            context.append(
                {"role": "system" if role == "system" else "assistant", "content": value}
            )
        else:
            return None
    if not turns:
        return None
    max_tokens = _max_tokens(where, entry)
    return Conversation(tuple(turns), tuple(context), tuple(replies), max_tokens)


def _sharegpt_message(where: str, message: object) -> tuple[str, str]:
    """The lowercased speaker and the text of one message, or an error saying what is off."""
    if not isinstance(message, dict):
        problem = f"is {_kind(message)}, not an object"
    elif not isinstance(message.get("from"), str):
        problem = f'"from" is {_kind(message.get("from"))}'
    elif not isinstance(message.get("value"), str):
        problem = f'"value" is {_kind(message.get("value"))}'
    else:
        return message["from"].lower(), message["value"]
    raise ConfigError(f'{where}: {problem}; give {{"from": ROLE, "value": TEXT}} with strings')


def _kind(value: object) -> str:
    if value is None:
        return "missing or null"
    return _JSON_KINDS.get(type(value), f"a {type(value).__name__}")


def _parse_jsonl(path: Path, text: str) -> list[Conversation]:
    conversations: list[Conversation] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"{where}: invalid JSON ({exc}); give one object per line") from None
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: {_JSONL_FORM}")
        conversations.append(_jsonl_entry(where, entry))
    if not conversations:
        raise ConfigError(f"{path} holds no usable conversation; {_JSONL_FORM} on each line")
    return conversations


def _jsonl_entry(where: str, entry: dict[str, Any]) -> Conversation:
    prompt, messages = entry.get("prompt"), entry.get("messages")
    max_tokens = _max_tokens(where, entry)
    if isinstance(prompt, str) and messages is None:
        if not prompt.strip():
            raise ConfigError(f'{where}: "prompt" is empty; give the text to send')
        return Conversation((prompt,), max_tokens=max_tokens)
    if prompt is not None or not isinstance(messages, list) or not messages:
        raise ConfigError(f"{where}: {_JSONL_FORM}")
    context: list[dict[str, str]] = []
    for number, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if role not in _CHAT_ROLES or not isinstance(content, str):
            raise ConfigError(
                f'{where} message {number}: give {{"role": "system"|"user"|"assistant",'
                ' "content": TEXT}'
            )
        context.append({"role": role, "content": content})
    last = context.pop()
    if last["role"] != "user" or not last["content"].strip():
        raise ConfigError(
            f'{where}: the last message must be a non-empty "user" message (the turn to send)'
        )
    return Conversation((last["content"],), tuple(context), max_tokens=max_tokens)


def _max_tokens(where: str, entry: dict[str, Any]) -> int | None:
    value = entry.get("max_tokens")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f'{where}: "max_tokens" must be an integer >= 1, got {value!r}')
    return value
