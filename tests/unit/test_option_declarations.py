"""One declaration per option: registration, the web form, the listing and the docs agree.

The options model is the single source; these tests check that every way in (argparse,
the start form, Python) and every way out (``--llm-help``, docs/options.md, the report)
is derived from it, and that the start form's empty fields mean "unset", never a crash.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from sagellm_users._errors import ConfigError
from sagellm_users._metrics.window import Warmup
from sagellm_users._users.option_spec import GROUPS, declared, help_listing, reference_markdown
from sagellm_users._users.options import LLM_HELP_FLAG, LLMOptions, add_arguments, flag_of
from tests.unit.test_options import StubParser, parse

ROOT = Path(__file__).resolve().parents[2]
DECLARED = list(declared(LLMOptions))
WEB = [option for option in DECLARED if option.opt.web]


def test_every_field_is_a_declared_option_and_every_flag_is_registered_once() -> None:
    assert [option.field for option in DECLARED] == list(LLMOptions.model_fields)
    stub = StubParser()
    add_arguments(stub)
    assert set(stub.locust_kwargs) == {o.opt.flag for o in DECLARED} | {LLM_HELP_FLAG}
    flags = [option.opt.flag for option in DECLARED]
    assert len(flags) == len(set(flags))


def test_the_namespace_of_the_defaults_gives_the_models_defaults() -> None:
    from_command_line = LLMOptions.from_namespace(parse())
    assert from_command_line == LLMOptions()


def test_options_round_trip_through_a_namespace() -> None:
    given = LLMOptions(
        max_tokens=16, headers={"X-Tenant": "a"}, percentiles=(50, 99.9),
        warmup=Warmup(requests=20), extra_body={"top_k": 5}, request_timeout=0,
        stream=False, slo="ttft_p99<=1s",
    )  # fmt: skip
    assert given.request_timeout is None and given.warmup.requests == 20
    ns = given.to_namespace()
    assert LLMOptions.from_namespace(ns) == given
    plain = (str, int, float, bool, list, type(None))
    assert all(isinstance(v, plain) for v in vars(ns).values()), "a master can send them"
    assert ns.headers == ["X-Tenant: a"] and ns.percentiles == "50,99.9"


@pytest.mark.parametrize("option", WEB, ids=[o.field for o in WEB])
def test_an_empty_form_field_means_the_default_never_a_crash(option: object) -> None:
    """Locust's start form sends every field, an untouched optional number as '' (the
    measured defect: ``seed=''`` raised ``int('')`` at every browser start)."""
    dest = option.dest  # type: ignore[attr-defined]
    ns = parse()
    before = vars(ns).copy()
    options, changes = LLMOptions.from_form({dest: ""}, ns)
    assert vars(ns) == before, "reading the form changes nothing"
    if option.opt.kind in ("switch", "inverted_switch"):  # type: ignore[attr-defined]
        assert changes == {dest: False}
    elif option.opt.secret:  # type: ignore[attr-defined]
        assert changes == {}
    else:
        assert options == LLMOptions()


def test_a_form_value_is_validated_like_the_command_line_and_changes_nothing_when_bad() -> None:
    ns = parse("--max-tokens", "64")
    options, changes = LLMOptions.from_form({"max_tokens": "16", "seed": "", "slo": ""}, ns)
    assert options.max_tokens == 16 and options.seed is None
    assert changes["max_tokens"] == "16"
    with pytest.raises(ConfigError, match=r"^--max-tokens: input should be a valid integer"):
        LLMOptions.from_form({"max_tokens": "sixteen"}, ns)
    with pytest.raises(ConfigError, match=r"^--slo: "):
        LLMOptions.from_form({"slo": "ttft_p99<=fast"}, ns)
    with pytest.raises(ConfigError, match=r"^--ignore-eos: 'maybe' is neither true nor false"):
        LLMOptions.from_form({"ignore_eos": "maybe"}, ns)
    assert ns.max_tokens == "64", "a refused form leaves the launch options as they were"


def test_a_blank_secret_keeps_the_key_given_at_launch_and_a_typed_one_replaces_it() -> None:
    ns = parse("--api-key", "sk-launch-key-1234")
    options, _ = LLMOptions.from_form({"api_key": ""}, ns)
    assert options.api_key is not None
    assert options.api_key.get_secret_value() == "sk-launch-key-1234"
    options, _ = LLMOptions.from_form({"api_key": "sk-typed-key-5678"}, ns)
    assert options.api_key is not None
    assert options.api_key.get_secret_value() == "sk-typed-key-5678"


def test_python_values_and_command_line_text_validate_alike() -> None:
    typed = LLMOptions(max_header_size=1024, headers={"A": "b"}, engine_args={"x": 1})
    text = LLMOptions.checked(
        {"max_header_size": "1KiB", "headers": ["A: b"], "engine_args": ["x=1"]}
    )
    assert typed == text


def test_the_help_listing_holds_every_flag_grouped_with_its_default() -> None:
    text = help_listing(LLMOptions)
    positions = [text.index(f"{group}:\n") for group in GROUPS]
    assert positions == sorted(positions), "groups in their declared order"
    for option in DECLARED:
        assert f"  {option.opt.flag}" in text
    assert "--max-tokens N\n      Output tokens to ask for per request (default 128)" in text
    assert "(default 64KiB)" in text and "(default 50,90,95,99)" in text


def test_docs_options_md_is_generated_from_the_declarations() -> None:
    committed = (ROOT / "docs" / "options.md").read_text(encoding="utf-8")
    assert committed == reference_markdown(LLMOptions), (
        "docs/options.md is stale: python -m sagellm_users._users.list_options --markdown "
        "> docs/options.md"
    )


def test_the_llm_help_flag_prints_the_listing_and_exits(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="locust")
    stub = StubParser()
    stub.parser = parser
    add_arguments(stub)
    with pytest.raises(SystemExit) as exited:
        parser.parse_args([LLM_HELP_FLAG])
    assert exited.value.code == 0
    assert help_listing(LLMOptions) in capsys.readouterr().out


def test_problems_name_the_flag_not_the_field() -> None:
    assert flag_of("stream") == "--no-stream"
    with pytest.raises(ConfigError, match=r"^--llm-percentiles: 'x' is not a number"):
        LLMOptions.checked({"percentiles": "50,x"})
    with pytest.raises(ConfigError, match=r"^--request-rate: must be >= 0"):
        LLMOptions.checked({"request_rate": -1})
