"""The text of errors: secrets scrubbed where an error is built, ids scrubbed for Locust.

A gateway's body is the server's choice: it may echo the request's key (a misconfigured
auth proxy) and carries a fresh request id in every failure (every gateway). Secrets must
never be kept; ids must not turn each failure into a row of Locust's error table.
"""

from __future__ import annotations

import base64

import pytest

from sagellm_users._backends.lmdeploy import LMDeployClient
from sagellm_users._backends.openai import OpenAIClient
from sagellm_users._backends.sagellm import SageLLMClient
from sagellm_users._backends.vllm import VLLMClient
from sagellm_users._errors import (
    EngineError,
    HTTPStatusError,
    LLMError,
    ServerErrorEvent,
    excerpt,
)
from sagellm_users._redact import (
    REDACTED,
    register_header_secrets,
    register_secret,
    scrub_ids,
    scrub_secrets,
)
from sagellm_users._users.error_rows import MAX_REASONS, ErrorRows, failure_label
from sagellm_users.mock_server.gateway_bodies import bad_gateway_body, echo_unauthorized_body

KEY = "sk-unit-9d3e7a61c2f04b58"


@pytest.fixture(autouse=True)
def _key() -> None:
    register_secret(KEY)


def test_an_echoed_key_is_scrubbed_whole_bare_and_cut_short() -> None:
    assert KEY not in scrub_secrets(f"Authorization: Bearer {KEY}")
    assert scrub_secrets(f"invalid API key '{KEY}'") == f"invalid API key '{REDACTED}'"
    assert scrub_secrets(f"token={KEY[:11]}") == f"token={REDACTED}"  # a read stopped mid-key
    assert scrub_secrets(f"{KEY[-9:]} was refused") == f"{REDACTED} was refused"
    assert scrub_secrets("nothing to hide") == "nothing to hide"


def test_every_error_built_from_response_text_is_scrubbed() -> None:
    body = echo_unauthorized_body(f"Bearer {KEY}".encode())
    echoed = HTTPStatusError(401, f"Unauthorized {KEY}", body)
    errors: list[LLMError] = [
        echoed,
        HTTPStatusError(401, "Unauthorized", b"x" * 190 + KEY.encode()),  # cut by the excerpt
        ServerErrorEvent(f"bad key {KEY}", error_type=KEY),
        EngineError(f"the engine refused the request: {KEY}"),
    ]
    for error in errors:
        assert KEY[:8] not in str(error) and KEY[:8] not in repr(error), error
        assert KEY[:8] not in failure_label(error)
    assert KEY not in echoed.body_excerpt + echoed.reason
    assert KEY[:8] not in excerpt(f"{'y' * 195} {KEY}")


def test_header_values_a_client_sends_are_secrets() -> None:
    register_header_secrets({"X-Token": "hdr-unit-51c0e2", "X-Debug": "true", "X-Org": "a b"})
    assert "hdr-unit-51c0e2" not in str(HTTPStatusError(403, "Forbidden", b"hdr-unit-51c0e2"))
    # Too short to be a secret, and not a scheme's credentials: text is left alone.
    assert scrub_secrets('{"ok": true, "a b": 1}') == '{"ok": true, "a b": 1}'
    basic = base64.b64encode(b"loadtest:pw-unit-77e1d0").decode()
    register_header_secrets([("Authorization", f"Basic {basic}")])
    echoed = f"user loadtest:pw-unit-77e1d0 ({basic}), password pw-unit-77e1d0"
    assert scrub_secrets(echoed) == f"user {REDACTED} ({REDACTED}), password {REDACTED}"
    OpenAIClient("http://127.0.0.1:9", api_key="sk-client-only-4b1e", headers={}).close()
    assert "sk-client-only-4b1e" not in str(HTTPStatusError(401, "x", b"sk-client-only-4b1e"))


def test_every_backend_client_registers_its_key_from_the_environment_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SAGELLM_API_KEY", "sk-sagellm-env-0c8e3a")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-env-6f2d9b")
    for client in (
        SageLLMClient("http://127.0.0.1:9"),
        LMDeployClient("http://127.0.0.1:9"),
        VLLMClient("http://127.0.0.1:9"),
    ):
        client.close()
    for key in ("sk-sagellm-env-0c8e3a", "sk-openai-env-6f2d9b"):
        assert key not in str(ServerErrorEvent(f"your key {key} is revoked"))


@pytest.mark.parametrize(
    "one, other",
    [
        ('{"error":"overloaded","request_id":"%s"}', "0f8a2c1e-7b3d-4e5f-9a6b-1c2d3e4f5a6b"),
        ("upstream failed, trace %s", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("<center>cloudflare</center> Ray ID: %s", "8f1a2b3c4d5e6f70-SJC"),
        ("Root=1-5759e988-%s", "bd862e3fe1be46a994272793"),
        ("request req_%s failed", "01HZX3K9QWERTYABCDEF12"),
        ("at %s", "2026-12-06T02:02:28.123Z"),
        ("Date: %s", "Sun, 06 Dec 2026 02:02:28 GMT"),
        ("nginx %s [error]", "2026/12/06 02:02:28"),
        ("queued %s ms", "18342"),
    ],
)
def test_ids_a_gateway_puts_in_bodies_are_scrubbed(one: str, other: str) -> None:
    first = scrub_ids(one % other)
    second = scrub_ids(one % other.replace("2", "3").replace("a", "c"))
    assert first == second and other not in first


def test_names_and_addresses_stay_readable() -> None:
    for text in (
        "cannot connect to 127.0.0.1:8000: Connection refused",
        "The model `llama-3-8b-instruct` does not exist",
        "<center>nginx/1.25.3</center>",
        "stream event is not valid UTF-8 (byte ff at offset 37)",
    ):
        assert scrub_ids(text) == text


def test_unique_gateway_bodies_are_one_locust_row() -> None:
    rows = ErrorRows()
    errors = [HTTPStatusError(502, "Bad Gateway", bad_gateway_body()) for _ in range(200)]
    assert len({str(e) for e in errors}) == 200  # the records keep each one whole
    labels = {rows.label(e) for e in errors}
    assert len(labels) == 1, labels
    (label,) = labels
    assert label.startswith("HTTPStatusError: HTTP 502 Bad Gateway: ")
    assert "upstream connect error" in label


def test_reasons_the_scrubbing_misses_are_capped_per_kind() -> None:
    rows = ErrorRows()
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    labels = {
        rows.label(HTTPStatusError(500, "Internal Server Error", f"{a} {b}"))
        for a in words
        for b in words
    }
    labels.add(rows.label(HTTPStatusError(503, "Service Unavailable", "busy")))
    assert len(labels) == MAX_REASONS + 2  # ten reasons, "other reasons", and the 503
    assert any("other reasons" in label for label in labels)
