"""LLMOptions: parsing sagellm-locust's command-line options and validating them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from sagellm_users._errors import ConfigError
from sagellm_users._users.options import DEFAULT_PROMPT, LLMOptions, add_arguments

_LOCUST_ONLY_KWARGS = ("include_in_web_ui", "is_secret")


class StubParser:
    """Takes options the way Locust's parser does and hands them to argparse."""

    def __init__(self) -> None:
        self.parser = argparse.ArgumentParser(prog="locust", exit_on_error=False)
        self.locust_kwargs: dict[str, dict[str, Any]] = {}

    def add_argument(self, *names: str, **kwargs: Any) -> None:
        extra = {key: kwargs.pop(key) for key in _LOCUST_ONLY_KWARGS if key in kwargs}
        self.locust_kwargs[names[0]] = extra
        self.parser.add_argument(*names, **kwargs)


def parse(*args: str) -> argparse.Namespace:
    stub = StubParser()
    add_arguments(stub)
    return stub.parser.parse_args(list(args))


def options(*args: str) -> LLMOptions:
    return LLMOptions.from_namespace(parse(*args))


def config_error(*args: str) -> str:
    with pytest.raises(ConfigError) as info:
        options(*args)
    return str(info.value)


# -- registration ------------------------------------------------------------------------------


def test_secret_and_web_ui_flags_are_passed_to_locust() -> None:
    stub = StubParser()
    add_arguments(stub)
    assert stub.locust_kwargs["--api-key"] == {"is_secret": True}
    assert stub.locust_kwargs["--header"] == {"include_in_web_ui": False}
    assert stub.locust_kwargs["--llm-records"] == {"include_in_web_ui": False}
    assert stub.locust_kwargs["--mock-args"] == {"include_in_web_ui": False}
    assert stub.locust_kwargs["--max-tokens"] == {}


# -- defaults ----------------------------------------------------------------------------------


def test_defaults() -> None:
    opts = options()
    assert opts.model == ""
    assert opts.max_tokens == 128
    assert opts.prompts == (DEFAULT_PROMPT,)
    assert opts.api_key is None
    assert opts.stream is True
    assert opts.temperature is None
    assert opts.ignore_eos is False
    assert opts.extra_body == {}
    assert opts.headers == {}
    assert opts.connect_timeout == 10.0
    assert opts.read_timeout == 300.0
    assert opts.request_timeout is None
    assert opts.llm_records is None
    assert opts.mock_args == ()


def test_empty_namespace_uses_defaults() -> None:
    opts = LLMOptions.from_namespace(argparse.Namespace(prompt="p"))
    assert opts.prompts == ("p",)
    assert opts.max_tokens == 128
    assert opts.stream is True


def test_all_options_given() -> None:
    opts = options(
        "--model",
        "llama",
        "--max-tokens",
        "32",
        "--prompt",
        "Hi",
        "--temperature",
        "0.3",
        "--ignore-eos",
        "--extra-body",
        '{"top_k": 20, "min_tokens": 4}',
        "--connect-timeout",
        "2.5",
        "--read-timeout",
        "30",
        "--request-timeout",
        "60",
        "--llm-records",
        "out/records.jsonl",
    )
    assert opts.model == "llama"
    assert opts.max_tokens == 32
    assert opts.prompts == ("Hi",)
    assert opts.temperature == 0.3
    assert opts.ignore_eos is True
    assert opts.extra_body == {"top_k": 20, "min_tokens": 4}
    assert opts.connect_timeout == 2.5
    assert opts.read_timeout == 30.0
    assert opts.request_timeout == 60.0
    assert opts.llm_records == Path("out/records.jsonl")


def test_options_are_frozen() -> None:
    opts = options()
    with pytest.raises(ValueError):
        opts.max_tokens = 5


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["-1", "0"])
def test_non_positive_max_tokens(value: str) -> None:
    message = config_error("--max-tokens", value)
    assert message.startswith("--max-tokens")
    assert value in message


def test_bad_extra_body_json() -> None:
    message = config_error("--extra-body", "{top_k: 20}")
    assert message.startswith("--extra-body")
    assert "not valid JSON" in message


@pytest.mark.parametrize(("text", "kind"), [("[1, 2]", "list"), ("3", "int"), ('"x"', "str")])
def test_extra_body_not_an_object(text: str, kind: str) -> None:
    message = config_error("--extra-body", text)
    assert message.startswith("--extra-body")
    assert f"must be a JSON object, got {kind}" in message


def test_blank_extra_body_is_empty() -> None:
    assert options("--extra-body", "   ").extra_body == {}


def test_missing_prompt_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    message = config_error("--prompt-file", str(missing))
    assert message.startswith("--prompt-file")
    assert "no such file" in message
    assert str(missing) in message


def test_prompt_file_that_is_a_directory(tmp_path: Path) -> None:
    assert "no such file" in config_error("--prompt-file", str(tmp_path))


@pytest.mark.parametrize("content", ["", "\n\n", "   \n\t\n  "], ids=["empty", "lf", "spaces"])
def test_empty_prompt_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text(content)
    message = config_error("--prompt-file", str(path))
    assert message.startswith("--prompt-file")
    assert "holds no prompt" in message


def test_prompt_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "prompts.bin"
    path.write_bytes(b"\xff\xfe\x00bad")
    assert "cannot read" in config_error("--prompt-file", str(path))


def test_prompt_file_lines(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text("  first prompt  \n\nsecond\r\n\n   \nthird caf\u00e9\n", encoding="utf-8")
    opts = options("--prompt-file", str(path), "--prompt", "ignored")
    assert opts.prompts == ("first prompt", "second", "third caf\u00e9")


def test_headers() -> None:
    opts = options("--header", "X-Trace: abc", "--header", "X-Tenant:team-a ", "--header", "X-E:")
    assert opts.headers == {"X-Trace": "abc", "X-Tenant": "team-a", "X-E": ""}


def test_header_value_may_hold_colons() -> None:
    assert options("--header", "X-Url: http://a:1/b").headers == {"X-Url": "http://a:1/b"}


@pytest.mark.parametrize(
    "header",
    ["NoColon", ": value", "Bad Name: x", "X-A: b\nInjected: c", "X\r\nY: z", "X\tY: z"],
    ids=["no-colon", "no-name", "space-in-name", "lf-in-value", "crlf-in-name", "tab-in-name"],
)
def test_bad_header(header: str) -> None:
    message = config_error("--header", header)
    assert message.startswith("--header")
    assert "expected 'Name: value'" in message


def test_header_value_with_carriage_return_is_rejected() -> None:
    config_error("--header", "X-A: b\rInjected: c")


def test_request_timeout_zero_means_no_limit() -> None:
    assert options("--request-timeout", "0").request_timeout is None


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--connect-timeout", "-1"),
        ("--connect-timeout", "0"),
        ("--read-timeout", "-0.5"),
        ("--read-timeout", "0"),
        ("--request-timeout", "-5"),
    ],
)
def test_non_positive_timeouts(flag: str, value: str) -> None:
    message = config_error(flag, value)
    assert message.startswith(flag)
    assert "greater than 0" in message


def test_negative_temperature() -> None:
    assert config_error("--temperature", "-0.1").startswith("--temperature")


def test_temperature_empty_string_is_none() -> None:
    # The web UI's start form sends an empty field as "".
    namespace = parse()
    namespace.temperature = ""
    assert LLMOptions.from_namespace(namespace).temperature is None


def test_temperature_zero_is_kept() -> None:
    assert options("--temperature", "0").temperature == 0.0


def test_no_stream() -> None:
    assert options("--no-stream").stream is False
    assert options().stream is True


def test_mock_args_are_split_like_a_shell() -> None:
    opts = options("--mock-args", "--ttft-ms 80 --tbt-ms 15 --model-name 'my model'")
    assert opts.mock_args == ("--ttft-ms", "80", "--tbt-ms", "15", "--model-name", "my model")


def test_bad_mock_args_quoting() -> None:
    assert config_error("--mock-args", "--model-name 'unterminated").startswith("--mock-args")


def test_api_key_is_a_secret() -> None:
    opts = options("--api-key", "sk-very-secret-value")
    assert isinstance(opts.api_key, SecretStr)
    assert opts.api_key.get_secret_value() == "sk-very-secret-value"
    assert "sk-very-secret-value" not in repr(opts)
    assert "sk-very-secret-value" not in str(opts)
    assert "sk-very-secret-value" not in opts.model_dump_json()


def test_empty_api_key_is_none() -> None:
    assert options("--api-key", "").api_key is None


def test_unknown_field_is_refused() -> None:
    with pytest.raises(ValueError):
        LLMOptions.model_validate({"prompts": ("p",), "not_an_option": 1})


def test_llm_html_is_a_report_path_that_must_end_in_html(tmp_path: Path) -> None:
    page = tmp_path / "run.html"
    assert options("--llm-report", "r.json", "--llm-html", str(page)).reports == (
        Path("r.json"),
        page,
    )
    assert "--llm-html 'run.txt': end the name in .html" in config_error("--llm-html", "run.txt")
    missing = str(tmp_path / "nowhere" / "run.html")
    assert f"--llm-html {missing!r}: directory" in config_error("--llm-html", missing)
