"""Workload files and options: valid ones load, bad ones name the field and the reason, and
every shipped profile validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagellm_users._errors import ConfigError
from sagellm_users._users.options import LLMOptions
from sagellm_users._workloads.lengths import UniformLength
from sagellm_users._workloads.spec import load_workload, parse_think_time
from tests.locust_harness import parse_args

ROOT = Path(__file__).resolve().parents[2]


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "w.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_loads_with_relative_dataset_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"prompt": "hi"}\n', encoding="utf-8")
    spec = load_workload(_file(tmp_path, 'name = "x"\ndataset = "d.jsonl"\nseed = 4\n'))
    assert spec.dataset == tmp_path / "d.jsonl" and spec.seed == 4 and spec.name == "x"
    spec = load_workload(_file(tmp_path, "input_tokens = 10\n"), {"input_tokens": "5:9"})
    assert spec.input_tokens == UniformLength(min=5, max=9)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("input_tokens = 5\ncolour = 1\n", "colour: Extra inputs are not permitted"),
        ('input_tokens = 5\ndataset = "d.json"\n', "not both"),
        ('name = "x"\n', "give input_tokens"),
        ('input_tokens = 5\noutput_tokens = "dataset"\n', "needs a dataset"),
        ('input_tokens = "9:3"\n', "input_tokens"),
        ("input_tokens = [\n", "not valid TOML"),
        ('input_tokens = 5\n[session]\nthink_time = "-1"\n', "session.think_time"),
        ("input_tokens = 5\n[shared_prefix]\ntokens = 0\n", "shared_prefix.tokens"),
    ],
)
def test_bad_files_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")) as caught:
        load_workload(_file(tmp_path, text))
    assert str(caught.value).startswith("--workload ") and "\n" not in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_workload(tmp_path / "none.toml")


def test_think_time_forms() -> None:
    assert parse_think_time(2) == (2.0, 2.0)
    assert parse_think_time("2s") == (2.0, 2.0)
    assert parse_think_time("0.5:2") == (0.5, 2.0)
    assert parse_think_time((1, 3)) == (1.0, 3.0)
    for bad in ("soon", "3:1", True):
        with pytest.raises(ValueError):
            parse_think_time(bad)


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "workloads").glob("*.toml")))
def test_every_shipped_workload_validates(path: Path) -> None:
    assert load_workload(path).name == path.stem


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.conf")))
def test_every_shipped_profile_validates(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    options = LLMOptions.from_namespace(parse_args(["--config", str(path)]))
    if path.stem in ("smoke", "default"):
        assert options.workload is None
    elif path.stem == "trace-replay":
        assert options.workload is None and options.trace_requests is not None
        assert len(options.trace_requests.rows) == 80
    else:
        assert options.workload is not None


def _options(*args: str) -> LLMOptions:
    return LLMOptions.from_namespace(parse_args(list(args)))


def test_options_build_a_workload_or_say_what_is_missing(tmp_path: Path) -> None:
    spec = _options("--input-tokens", "128").workload
    assert spec is not None and spec.input_tokens is not None
    with pytest.raises(ConfigError, match="--output-tokens: needs a prompt source"):
        _options("--output-tokens", "64")
    prompts = tmp_path / "p.txt"
    prompts.write_text("hello\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="--prompt-file: choose it or a workload"):
        _options("--prompt-file", str(prompts), "--input-tokens", "5")
    session = _file(tmp_path, "input_tokens = 5\n[session]\nturns = 2\n")
    with pytest.raises(ConfigError, match="--request-rate: a multi-turn workload"):
        _options("--workload", str(session), "--request-rate", "5")
    with pytest.raises(ConfigError, match="--request-rate: must be >= 0"):
        _options("--request-rate", "-1")
    with pytest.raises(ConfigError, match="--burstiness: must be > 0"):
        _options("--burstiness", "0")
