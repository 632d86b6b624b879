"""Workload files and the options that make workloads: a good file loads, a bad one is one
line naming the field and the reason, and every shipped profile parses through Locust's
own parser (``--config``) and validates."""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from locust.argument_parser import get_empty_argument_parser, setup_parser_arguments

from sagellm_users._errors import ConfigError
from sagellm_users._users.options import LLMOptions, add_arguments
from sagellm_users._workloads.lengths import FixedLength, NormalLength, UniformLength
from sagellm_users._workloads.spec import load_workload, parse_think_time
from sagellm_users.shapes import SLOSweepShape
from tests.locust_harness import parse_args

ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = sorted((ROOT / "configs" / "workloads").glob("*.toml"))
CONFS = sorted((ROOT / "configs").glob("*.conf"))


def write(tmp_path: Path, text: str, name: str = "w.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_workload(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


# -- load_workload --------------------------------------------------------------------------------
def test_a_full_file_loads(tmp_path: Path) -> None:
    text = """
name = "rag"
description = "d"
seed = 9
input_tokens = "64:128"
output_tokens = { kind = "normal", mean = 128, std = 32, min = 16, max = 256 }
[session]
turns = 4
think_time = "0.5:2"
[shared_prefix]
groups = 2
tokens = 100
"""
    spec = load_workload(write(tmp_path, text))
    assert (spec.name, spec.description, spec.seed) == ("rag", "d", 9)
    assert spec.input_tokens == UniformLength(min=64, max=128)
    assert spec.output_tokens == NormalLength(mean=128, std=32, min=16, max=256)
    assert spec.session is not None and spec.session.turns == FixedLength(value=4)
    assert spec.session.think_time == (0.5, 2.0)
    assert spec.shared_prefix is not None
    assert (spec.shared_prefix.groups, spec.shared_prefix.tokens) == (2, 100)
    assert spec.dataset is None and spec.tokenizer == "auto"


def test_a_relative_dataset_is_taken_from_the_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    files = tmp_path / "profiles"
    files.mkdir()
    spec = load_workload(write(files, 'dataset = "data/d.jsonl"\noutput_tokens = "dataset"\n'))
    assert spec.dataset == files / "data" / "d.jsonl" and spec.output_tokens == "dataset"
    absolute = tmp_path / "abs.jsonl"
    spec = load_workload(write(files, f'dataset = "{absolute}"\n'))
    assert spec.dataset == absolute


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "x"\nseed = 1\ninput_tokens = 10\n')
    spec = load_workload(path, {"seed": 9, "input_tokens": "5:9"})
    assert (spec.name, spec.seed, spec.input_tokens) == ("x", 9, UniformLength(min=5, max=9))
    swapped = load_workload(path, {"input_tokens": None, "dataset": tmp_path / "d.jsonl"})
    assert swapped.input_tokens is None and swapped.dataset == tmp_path / "d.jsonl"


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("input_tokens = 5\ncolour = 1\n", "colour", "Extra inputs are not permitted"),
        ("input_tokens = 5\n[session]\ncolour = 1\n", "session.colour", "not permitted"),
        ('input_tokens = 5\ndataset = "d.json"\n', "input_tokens", "not both"),
        ('name = "x"\n', "input_tokens", "or dataset"),
        ('input_tokens = 5\noutput_tokens = "dataset"\n', "output_tokens", "needs a dataset"),
        ('input_tokens = "lots"\n', "input_tokens", "cannot read 'lots' as a length"),
        ('input_tokens = "9:3"\n', "input_tokens", "min 9 is above max 3"),
        ("input_tokens = 0\n", "input_tokens", "greater than or equal to 1"),
        ('input_tokens = 5\n[session]\nthink_time = "soon"\n', "session.think_time", "cannot read"),
        ('input_tokens = 5\n[session]\nthink_time = "-1"\n', "session.think_time", "need 0 <="),
        ("input_tokens = 5\n[session]\nthink_time = -1\n", "session.think_time", "need 0 <="),
        (
            "input_tokens = 5\n[shared_prefix]\ntokens = 0\n",
            "shared_prefix.tokens",
            "greater than or equal to 1",
        ),
    ],
)
def test_a_bad_file_is_one_line_naming_the_field(
    tmp_path: Path, text: str, field: str, reason: str
) -> None:
    path = write(tmp_path, text)
    message = refused(path)
    assert message.startswith(f"--workload {path}: ")
    assert field in message
    assert reason in message


def test_bad_toml_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, "input_tokens = [\n")
    message = refused(path)
    assert message.startswith(f"--workload {path}: not valid TOML (")


@pytest.mark.parametrize("name", ["none.toml", "."])
def test_a_missing_file_is_named(tmp_path: Path, name: str) -> None:
    message = refused(tmp_path / name)
    assert message.startswith("--workload: no such file") and str(tmp_path) in message


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_bytes(b"name = '\xff'\n")
    assert refused(path).startswith(f"--workload: cannot read '{path}'")


# -- think time -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2, (2.0, 2.0)),
        (0.5, (0.5, 0.5)),
        ("2s", (2.0, 2.0)),
        (" 0.5:2 ", (0.5, 2.0)),
        ("0.5:2s", (0.5, 2.0)),
        ((1, 3), (1.0, 3.0)),
        ([0, 0], (0.0, 0.0)),
    ],
)
def test_think_time_forms(value: Any, expected: tuple[float, float]) -> None:
    assert parse_think_time(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soon", "cannot read 'soon'"),
        (True, "cannot read True"),
        ([1, 2, 3], "cannot read"),
        (None, "cannot read None"),
        ("3:1", "need 0 <= min <= max"),
        (-1, "need 0 <= min"),
        ((2, 1), "need 0 <="),
        ("nan", "need 0 <="),
    ],
)
def test_bad_think_times_are_refused(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_think_time(value)


def test_an_infinite_think_time_is_refused(tmp_path: Path) -> None:
    assert tomllib.loads("t = inf")["t"] == math.inf
    with pytest.raises(ConfigError, match=r"session\.think_time"):
        load_workload(write(tmp_path, "input_tokens = 5\n[session]\nthink_time = inf\n"))


# -- shipped profiles -----------------------------------------------------------------------------
def test_the_profiles_are_there() -> None:
    assert len(WORKLOADS) >= 6 and len(CONFS) >= 6


@pytest.mark.parametrize("path", WORKLOADS, ids=lambda p: p.stem)
def test_every_shipped_workload_loads(path: Path) -> None:
    spec = load_workload(path)
    assert spec.name == tomllib.loads(path.read_text(encoding="utf-8"))["name"] == path.stem
    assert spec.describe()["name"] == spec.name


def locust_parse(args: list[str]) -> Any:
    """Locust's own parser, as the ``locust`` command builds it (``-f``, ``--config``), with
    sagellm's options; no default config files, so the test reads only what it names."""
    parser = get_empty_argument_parser(add_help=False, default_config_files=[])
    setup_parser_arguments(parser)
    add_arguments(parser)
    return parser.parse_args(args)


def conf_values(path: Path) -> dict[str, str]:
    pairs = (line.partition("=") for line in path.read_text(encoding="utf-8").splitlines())
    return {k.strip(): v.strip() for k, sep, v in pairs if sep and not k.lstrip().startswith("#")}


@pytest.mark.parametrize("path", CONFS, ids=lambda p: p.stem)
def test_every_shipped_conf_parses_and_validates(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    values = conf_values(path)
    ns = locust_parse(["--config", str(path)])
    assert ns.headless is (values.get("headless") == "true")
    if "users" in values:
        assert ns.num_users == int(values["users"])
    options = LLMOptions.from_namespace(ns)
    if "workload" in values:
        assert ns.workload_file == values["workload"]
        toml = tomllib.loads((ROOT / values["workload"]).read_text(encoding="utf-8"))
        assert options.workload is not None and options.workload.name == toml["name"]
    else:
        assert options.workload is None
    if "mock-args" in values:
        assert " ".join(options.mock_args) == values["mock-args"]


def test_the_sweep_conf_sweeps_4_to_64_users(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    ns = locust_parse(["--config", str(ROOT / "configs" / "sweep.conf")])
    shape = SLOSweepShape()
    shape.configure_from_options(SimpleNamespace(parsed_options=ns))  # type: ignore[arg-type]
    assert shape.loads == [float(n) for n in range(4, 65, 4)]
    assert (shape.stage_time, shape.settle, shape.by_rate) == (30.0, 7.5, False)


def test_the_command_line_beats_the_conf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    ns = locust_parse(["--config", "configs/chat-short.conf", "--input-tokens", "7", "--seed", "4"])
    spec = LLMOptions.from_namespace(ns).workload
    assert spec is not None and spec.name == "chat-short"
    assert (spec.input_tokens, spec.seed) == (FixedLength(value=7), 4)


def test_the_harness_parser_reads_a_conf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert parse_args(["--config", "configs/ci-smoke.conf"]).num_users == 4


# -- options --------------------------------------------------------------------------------------
def from_options(*args: str) -> Any:
    return LLMOptions.from_namespace(parse_args(list(args))).workload


def options_error(*args: str) -> str:
    with pytest.raises(ConfigError) as caught:
        LLMOptions.from_namespace(parse_args(list(args)))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_input_tokens_alone_make_a_workload() -> None:
    spec = from_options("--input-tokens", "128")
    assert spec is not None and spec.input_tokens == FixedLength(value=128)
    assert spec.dataset is None and spec.output_tokens is None and spec.name == "custom"
    assert from_options() is None and from_options("--seed", "3") is None


def test_a_workload_flag_without_a_prompt_source_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^--output-tokens: needs a prompt source"):
        from_options("--output-tokens", "64")


def test_a_tokenizer_alone_counts_replies_and_makes_no_workload() -> None:
    """--tokenizer without a prompt source counts the output of servers that send no usage."""
    assert from_options("--tokenizer", "estimate") is None
    options = LLMOptions.from_namespace(parse_args(["--tokenizer", "/models/tiny"]))
    assert options.workload is None and options.tokenizer_choice == "/models/tiny"
    spec = from_options("--input-tokens", "8", "--tokenizer", "server")
    assert spec is not None and spec.tokenizer == "server"


def test_a_prompt_file_and_a_workload_exclude_each_other(tmp_path: Path) -> None:
    prompts = write(tmp_path, "hello\n", "p.txt")
    with pytest.raises(ConfigError, match=r"^--prompt-file: choose it or a workload"):
        from_options("--prompt-file", str(prompts), "--input-tokens", "5")


def test_flags_override_a_workload_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "f"\nseed = 1\ndataset = "d.jsonl"\n')
    spec = from_options("--workload", str(path), "--input-tokens", "7", "--seed", "2")
    assert spec is not None and spec.name == "f" and spec.dataset is None
    assert (spec.input_tokens, spec.seed) == (FixedLength(value=7), 2)
    with pytest.raises(ConfigError, match=r"^options: give input_tokens .* not both"):
        from_options("--input-tokens", "7", "--dataset", str(tmp_path / "d.jsonl"))


def test_an_open_loop_rate_refuses_a_session_workload(tmp_path: Path) -> None:
    session = write(tmp_path, "input_tokens = 5\n[session]\nturns = 2\n")
    message = options_error("--workload", str(session), "--request-rate", "5")
    assert message.startswith("--request-rate: ") and "[session]" in message
    plain = write(tmp_path, "input_tokens = 5\n", "plain.toml")
    options = LLMOptions.from_namespace(
        parse_args(["--workload", str(plain), "--request-rate", "5"])
    )
    assert options.request_rate == 5.0 and options.workload is not None


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (("--request-rate", "-1"), "--request-rate: must be >= 0"),
        (("--burstiness", "0"), "--burstiness: must be > 0"),
        (("--burstiness", "-2"), "--burstiness: must be > 0"),
    ],
)
def test_bad_open_loop_values_name_the_flag(args: tuple[str, ...], start: str) -> None:
    assert options_error(*args).startswith(start)
