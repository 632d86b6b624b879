"""Mock server settings: defaults, validation messages, and the command line mapping."""

from __future__ import annotations

import resource
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import trustme

from sagellm_users.mock_server import MockServerConfig
from sagellm_users.mock_server.cli import build_parser, parse_config
from sagellm_users.mock_server.config import parse_token_range
from sagellm_users.mock_server.process import MIN_OPEN_FILES, raise_open_files_limit


def test_defaults_match_the_documented_values() -> None:
    c = MockServerConfig()
    assert (c.model, c.max_model_len, c.default_max_tokens) == ("mock-llm", 4096, 64)
    assert (c.ttft_ms, c.tbt_ms, c.ttft_jitter_ms, c.tbt_jitter_ms) == (50.0, 10.0, 0.0, 0.0)
    assert (c.host, c.port, c.workers, c.seed) == ("127.0.0.1", 8000, 1, 0)
    assert c.max_concurrency == 0 and c.retry_after_s == 1
    assert c.natural_output_tokens == (8, 64) and c.held_back_rate == 0.02
    assert c.api_key is None
    assert not (c.send_timestamps or c.log_requests or c.exit_on_stdin_eof)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"tbt_ms": -1.0}, "tbt_ms (--tbt-ms) must be >= 0"),
        ({"ttft_ms": float("nan")}, "ttft_ms (--ttft-ms) must be a finite number"),
        ({"ttft_jitter_ms": -0.5}, "--ttft-jitter-ms"),
        ({"max_model_len": 0}, "--max-model-len"),
        ({"default_max_tokens": 0}, "--default-max-tokens"),
        ({"natural_output_tokens": (5, 2)}, "--natural-output-tokens"),
        ({"held_back_rate": 0.6}, "held_back_rate (--held-back-rate) must be within [0, 0.5]"),
        ({"held_back_rate": -0.1}, "--held-back-rate"),
        ({"max_concurrency": -1}, "--max-concurrency"),
        ({"error_rate_500": 1.5}, "--error-rate-500"),
        ({"error_rate_429": 0.6, "error_rate_stream": 0.6}, "add up to at most 1"),
        ({"retry_after_s": -1}, "--retry-after-s"),
        ({"api_key": ""}, "--api-key"),
        ({"port": 70000}, "--port"),
        ({"workers": 0}, "--workers"),
        ({"model": "  "}, "--model"),
    ],
)
def test_bad_values_are_rejected_with_the_flag_named(kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match="invalid mock server config") as info:
        MockServerConfig(**kwargs)
    assert expected in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValueError) as info:
        MockServerConfig(tbt_ms=-1, workers=0)
    assert "--tbt-ms" in str(info.value) and "--workers" in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5", (5, 5)), ("3:7", (3, 7)), (" 2 : 2 ", (2, 2)), ("off", None), ("OFF", None)],
)
def test_token_range_parses(text: str, expected: tuple[int, int] | None) -> None:
    assert parse_token_range(text) == expected


@pytest.mark.parametrize("text", ["0", "7:3", "a", "1:2:3", ":4", "", "2.5"])
def test_token_range_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        parse_token_range(text)


def test_every_config_field_has_a_flag() -> None:
    dests = {action.dest for action in build_parser()._actions}
    assert {f.name for f in fields(MockServerConfig)} <= dests


def test_command_line_maps_onto_the_config() -> None:
    c = parse_config(
        [
            "--model", "m", "--ttft-ms", "5", "--tbt-ms", "2.5", "--tbt-jitter-ms", "1",
            "--natural-output-tokens", "3:9", "--max-concurrency", "4",
            "--error-rate-429", "0.25", "--retry-after-s", "3", "--seed", "7",
            "--send-timestamps", "--api-key", "k", "--port", "0", "--workers", "2",
            "--exit-on-stdin-eof", "--tbt-per-running-ms", "0.5",
        ]
    )  # fmt: skip
    assert c == MockServerConfig(
        model="m",
        ttft_ms=5.0,
        tbt_ms=2.5,
        tbt_jitter_ms=1.0,
        natural_output_tokens=(3, 9),
        max_concurrency=4,
        error_rate_429=0.25,
        retry_after_s=3,
        seed=7,
        send_timestamps=True,
        api_key="k",
        port=0,
        workers=2,
        exit_on_stdin_eof=True,
        tbt_per_running_ms=0.5,
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--tbt-ms", "-3"], "--tbt-ms"),
        (["--natural-output-tokens", "9:1"], "MIN <= MAX"),
        (["--workers", "x"], "--workers"),
    ],
)
def test_command_line_errors_exit_2_with_a_message(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse_config(argv)
    assert info.value.code == 2
    assert expected in capsys.readouterr().err


def test_the_open_files_limit_is_raised_towards_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, soft)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        raise_open_files_limit()
        raised, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        expected = MIN_OPEN_FILES if hard == resource.RLIM_INFINITY else min(MIN_OPEN_FILES, hard)
        assert raised == max(low, expected)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_send_log_needs_an_existing_directory(tmp_path: Path) -> None:
    MockServerConfig(send_log=str(tmp_path / "send.jsonl"))
    with pytest.raises(ValueError, match=r"send_log .*--send-log.* existing directory"):
        MockServerConfig(send_log=str(tmp_path / "missing" / "send.jsonl"))


def test_tls_needs_a_matching_certificate_and_key(tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key, other = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(other))
    assert MockServerConfig().ssl_context() is None
    assert MockServerConfig(tls_cert=str(cert), tls_key=str(key)).ssl_context() is not None
    with pytest.raises(ValueError, match="--tls-cert and --tls-key go together"):
        MockServerConfig(tls_cert=str(cert))
    with pytest.raises(ValueError, match=r"tls_key \(--tls-key\) must be an existing PEM file"):
        MockServerConfig(tls_cert=str(cert), tls_key=str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="not a PEM certificate chain and its matching"):
        MockServerConfig(tls_cert=str(cert), tls_key=str(other))  # a certificate, not its key
