"""Dataset files: ShareGPT and JSONL parsing, skipping, auto-detection and every error."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from sagellm_users._errors import ConfigError
from sagellm_users._workloads.datasets import (
    Conversation,
    load_dataset,
    load_jsonl,
    load_sharegpt,
)


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def turn(role: str, value: str) -> dict[str, str]:
    return {"from": role, "value": value}


def test_sharegpt_roles_system_and_max_tokens(tmp_path: Path) -> None:
    entries = [
        {
            "id": "a",
            "conversations": [
                turn("system", "Be brief."),
                turn("human", "Hi"),
                turn("gpt", "Hello!"),
                turn("user", "And again?"),
                turn("ChatGPT", "Sure."),
                turn("human", "Last one"),
            ],
            "max_tokens": 64,
        },
        {"conversations": [turn("human", "Q"), turn("bard", "A"), turn("model", "B")]},
        {"conversations": [turn("assistant", "Welcome"), turn("human", "Q2")]},
    ]
    path = write_json(tmp_path / "share.json", entries)
    assert load_sharegpt(path) == [
        Conversation(
            turns=("Hi", "And again?", "Last one"),
            context=({"role": "system", "content": "Be brief."},),
            replies=("Hello!", "Sure."),
            max_tokens=64,
        ),
        Conversation(turns=("Q",), replies=("A", "B")),
        Conversation(turns=("Q2",), context=({"role": "assistant", "content": "Welcome"},)),
    ]


def test_sharegpt_skips_entries_without_a_usable_user_turn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    entries = [
        {"conversations": []},
        {"conversations": [turn("gpt", "only a reply")]},
        {"conversations": [turn("human", "   "), turn("gpt", "x")]},
        {"conversations": [turn("human", "ok"), turn("gpt", "")]},
        {"conversations": [turn("narrator", "who?"), turn("human", "hi")]},
        {"conversations": [turn("human", "kept")]},
    ]
    path = write_json(tmp_path / "share.json", entries)
    with caplog.at_level(logging.INFO, logger="sagellm_users"):
        assert load_sharegpt(path) == [Conversation(turns=("kept",))]
    assert "skipped 5 of 6 entries" in caplog.text


def test_sharegpt_with_no_usable_entry(tmp_path: Path) -> None:
    path = write_json(tmp_path / "share.json", [{"conversations": [turn("gpt", "x")]}])
    with pytest.raises(ConfigError, match="holds no usable conversation"):
        load_sharegpt(path)
    with pytest.raises(ConfigError, match="holds no usable conversation"):
        load_sharegpt(write_json(tmp_path / "empty.json", []))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"conversations": []}, 'holds an object; a ShareGPT file is a JSON list of {"conv'),
        ([{"conversations": [turn("human", "a")]}, "text"], 'entry 1: give an object with a "c'),
        ([{"messages": []}], 'entry 0: give an object with a "conversations" list'),
        ([{"conversations": "hi"}], 'entry 0: give an object with a "conversations" list'),
        (
            [
                {"conversations": [turn("human", "a")]},
                {"conversations": [{"from": "human", "value": 5}]},
            ],
            'entry 1 message 0: "value" is a number; give {"from": ROLE, "value": TEXT}',
        ),
        (
            [{"conversations": [turn("human", "a"), {"value": "b"}]}],
            'entry 0 message 1: "from" is missing or null',
        ),
        ([{"conversations": [["human", "a"]]}], "entry 0 message 0: is a list, not an object"),
        (
            [{"conversations": [turn("human", "a")], "max_tokens": 0}],
            'entry 0: "max_tokens" must be an integer >= 1, got 0',
        ),
        (
            [{"conversations": [turn("human", "a")], "max_tokens": "9"}],
            "got '9'",
        ),
    ],
)
def test_sharegpt_errors_name_path_entry_and_format(
    tmp_path: Path, data: Any, problem: str
) -> None:
    path = write_json(tmp_path / "share.json", data)
    with pytest.raises(ConfigError) as caught:
        load_sharegpt(path)
    message = str(caught.value)
    assert message.startswith(str(path))
    assert problem in message
    assert "\n" not in message


def test_sharegpt_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "share.json"
    path.write_text('[{"conversations": ')
    with pytest.raises(ConfigError, match=r"share\.json: invalid JSON .*a ShareGPT file is"):
        load_sharegpt(path)


def test_jsonl_prompt_messages_and_max_tokens(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "data.jsonl",
        json.dumps({"prompt": "Tell me a joke", "id": 3}),
        "",
        "   ",
        json.dumps({"prompt": "Short", "max_tokens": 16}),
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "2+2?"},
                    {"role": "assistant", "content": "4"},
                    {"role": "user", "content": "3+3?"},
                ],
                "max_tokens": 8,
            }
        ),
        json.dumps({"messages": [{"role": "user", "content": "Solo"}]}),
    )
    assert load_jsonl(path) == [
        Conversation(turns=("Tell me a joke",)),
        Conversation(turns=("Short",), max_tokens=16),
        Conversation(
            turns=("3+3?",),
            context=(
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"},
            ),
            max_tokens=8,
        ),
        Conversation(turns=("Solo",)),
    ]


FORM = 'give "prompt" (a string) or "messages" (a list ending with a user message)'


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"prompt": 5}', FORM),
        ('{"text": "hi"}', FORM),
        ('["hi"]', FORM),
        ('{"prompt": "a", "messages": []}', FORM),
        ('{"messages": []}', FORM),
        ('{"prompt": "  "}', '"prompt" is empty'),
        ('{"prompt": "a", "max_tokens": 0}', '"max_tokens" must be an integer >= 1, got 0'),
        ('{"prompt": "a", "max_tokens": true}', "got True"),
        ('{"prompt": "a", "max_tokens": 2.5}', "got 2.5"),
        (
            '{"messages": [{"role": "user", "content": "a"},'
            ' {"role": "assistant", "content": "b"}]}',
            'the last message must be a non-empty "user" message',
        ),
        (
            '{"messages": [{"role": "tool", "content": "a"}, {"role": "user", "content": "b"}]}',
            'message 0: give {"role": "system"|"user"|"assistant", "content": TEXT}',
        ),
        ('{"messages": [{"role": "user", "content": ["a"]}]}', "message 0: give"),
        ('{"messages": ["hello"]}', "message 0: give"),
        ('{"prompt": "a"', "invalid JSON ("),
    ],
)
def test_jsonl_errors_name_path_line_and_fix(tmp_path: Path, line: str, problem: str) -> None:
    path = write_lines(tmp_path / "data.jsonl", '{"prompt": "fine"}', "", line)
    with pytest.raises(ConfigError) as caught:
        load_jsonl(path)
    message = str(caught.value)
    assert message.startswith(f"{path} line 3")
    assert problem in message
    assert "\n" not in message


def test_jsonl_without_entries(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "data.jsonl", "", "  ")
    with pytest.raises(ConfigError, match="holds no usable conversation"):
        load_jsonl(path)


SHAREGPT = '[{"conversations": [{"from": "human", "value": "from sharegpt"}]}]'
JSONL = '{"prompt": "from jsonl"}\n'


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.json", SHAREGPT, "from sharegpt"),
        ("a.jsonl", JSONL, "from jsonl"),
        ("a.JSONL", JSONL, "from jsonl"),
        ("a.txt", "\n  " + SHAREGPT, "from sharegpt"),
        ("a", JSONL, "from jsonl"),
        ("a.data", "\ufeff" + JSONL, "from jsonl"),
    ],
)
def test_auto_detection(tmp_path: Path, name: str, content: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert load_dataset(path) == [Conversation(turns=(expected,))]


def test_explicit_format_overrides_the_suffix(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(JSONL, encoding="utf-8")
    assert load_dataset(path, "jsonl") == [Conversation(turns=("from jsonl",))]
    with pytest.raises(ConfigError, match="a ShareGPT file is"):
        load_dataset(path, "sharegpt")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("prompt,max_tokens\n", "cannot tell the dataset format (it starts with 'p')"),
        ("   \n", "cannot tell the dataset format (it starts with '')"),
    ],
)
def test_auto_detection_failures(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "data.csv"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_dataset(path)
    assert str(caught.value).startswith(f"{path}: {problem}")


def test_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="give auto, sharegpt or jsonl"):
        load_dataset(tmp_path / "a.json", "csv")  # type: ignore[arg-type]


def test_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(ConfigError, match=r"nope\.jsonl: no such dataset file; check the path"):
        load_dataset(missing)
    with pytest.raises(ConfigError, match="cannot read the dataset"):
        load_dataset(tmp_path)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"prompt": "caf\xe9"}\n')
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(bad byte at offset 15\)"):
        load_dataset(latin)
    with pytest.raises(ConfigError, match="no such dataset file"):
        load_sharegpt(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_jsonl(latin)
