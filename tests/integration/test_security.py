"""Secrets stay secret and TLS is verified unless asked otherwise.

* An API key and auth headers never appear in logs, records, reports or any page of the
  web UI (Locust's start page renders masked options' values into its source: we blank
  them, and an empty field keeps the launch key).
* https is verified against the system's CAs by default, against ``--ca-bundle`` when
  given, and not at all only with ``--insecure``, which logs a warning.
"""

from __future__ import annotations

import http.server
import ssl
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import locust
import orjson
import pytest
import trustme
from locust.stats import get_error_report_summary

from sagellm_users import OpenAIChatUser, install
from sagellm_users._errors import ConfigError
from sagellm_users._redact import REDACTED
from sagellm_users._users.options import LLMOptions
from sagellm_users.mock_server import MockServerProcess
from tests.locust_harness import LocalRun, parse_args

KEY = "sk-test-3f1a9c27d4e8b6a5"
HEADER_SECRET = "hdr-secret-7e2d91c4"
SSE = (
    b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":" hi"},"finish_reason":null}]}\n\n'
    b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":" there"},'
    b'"finish_reason":"length"}]}\n\n'
    b'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
    b"data: [DONE]\n\n"
)


class _SSEHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(SSE)))
        self.end_headers()
        self.wfile.write(SSE)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test asserts on what the client saw."""


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_url(ca: trustme.CA) -> Iterator[str]:
    """An https server on 127.0.0.1 whose certificate only ``ca`` vouches for."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SSEHandler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _tls_run(url: str, *extra: str) -> LocalRun:
    run = LocalRun([OpenAIChatUser], ["--host", url, "--model", "m", "--max-tokens", "2", *extra])
    run.run_until(requests=4, users=2, timeout=30)
    return run


def test_tls_is_verified_by_default(tls_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:  # the start's host check makes the handshake
        _tls_run(tls_url)
    assert stopped.value.code == 1
    [line] = [x for x in capsys.readouterr().err.splitlines() if x.startswith("sagellm: ")]
    assert "certificate verify failed" in line and "--skip-host-check" in line
    run = _tls_run(tls_url, "--skip-host-check")  # then each request fails the same way
    failed = [r for r in run.records if r.status == "error"]
    assert failed and not [r for r in run.records if r.ok]
    assert all(r.error_class == "ConnectError" for r in failed)
    assert "certificate verify failed" in (failed[0].error_message or "")


def test_a_ca_bundle_vouches_for_a_private_server(
    tls_url: str, ca: trustme.CA, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    run = _tls_run(tls_url, "--ca-bundle", str(bundle))
    ok = [r for r in run.records if r.ok]
    assert len(ok) >= 4 and all(r.output_tokens == 2 for r in ok)


def test_many_tls_streams_from_the_mock_are_read_whole(ca: trustme.CA, tmp_path: Path) -> None:
    """The mock's https beside 16 concurrent streams: every event of every stream is read
    whole through the TLS read path (exact token counts from the server's usage)."""
    served, bundle = tmp_path / "served.pem", tmp_path / "ca.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(served))
    ca.cert_pem.write_to_path(str(bundle))
    mock_args = [
        "--ttft-ms",
        "5",
        "--tbt-ms",
        "1",
        "--tls-cert",
        str(served),
        "--tls-key",
        str(served),
    ]
    with MockServerProcess(mock_args) as mock:
        assert mock.url is not None and mock.url.startswith("https://127.0.0.1:")
        args = ["--host", mock.url, "--ca-bundle", str(bundle), "--max-tokens", "32"]
        run = LocalRun([OpenAIChatUser], [*args, "--server-metrics-interval", "0"])
        run.run_until(requests=200, users=16, timeout=60)
    finished = [r for r in run.records if r.status != "cancelled"]
    assert len(finished) >= 200
    assert not [r.error_message for r in finished if not r.ok]
    assert all(r.output_tokens == len(r.t_out) <= 32 for r in finished), "one step per token"
    assert all(r.output_tokens_source == "usage" for r in finished)


def test_insecure_skips_verification_and_says_so(tls_url: str, caplog: Any) -> None:
    run = _tls_run(tls_url, "--insecure")
    assert len([r for r in run.records if r.ok]) >= 4
    warnings = [m for m in caplog.messages if "--insecure" in m]
    assert warnings and "not verified" in warnings[0]


def test_tls_options_are_checked_before_any_load(tmp_path: Path) -> None:
    not_pem = tmp_path / "junk.pem"
    not_pem.write_text("not a certificate\n")
    good = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(good))
    for args, message in [
        (["--ca-bundle", str(tmp_path / "missing.pem")], "--ca-bundle: no such file"),
        (["--ca-bundle", str(not_pem)], "--ca-bundle: .* holds no CA certificate"),
        (["--ca-bundle", str(good), "--insecure"], "--insecure and --ca-bundle"),
    ]:
        with pytest.raises(ConfigError, match=message):
            LLMOptions.from_namespace(parse_args(args))
    assert LLMOptions.from_namespace(parse_args(["--ca-bundle", str(good)])).verify == str(good)
    assert LLMOptions.from_namespace(parse_args(["--insecure"])).verify is False
    assert LLMOptions.from_namespace(parse_args([])).verify is True


@pytest.mark.parametrize("echo", [False, True], ids=["quiet", "echoing-401"])
def test_secrets_appear_in_no_log_record_report_or_page(
    tmp_path: Path, caplog: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch, echo: bool
) -> None:
    """With ``echoing-401`` the mock answers some requests as a misconfigured gateway does:
    a 401 quoting the request's Authorization header and the bare key; the failures are
    kept (records, report, Locust's error table) with the key scrubbed."""
    # Locust renders the start page from a parser over sys.argv, as in a real run.
    monkeypatch.setattr(sys, "argv", ["locust", "--api-key", KEY])
    install(locust.events)
    reports = [tmp_path / f"run.{ext}" for ext in ("json", "csv", "md", "html")]
    mock_args = ["--ttft-ms", "5", "--tbt-ms", "1", "--api-key", KEY]
    if echo:
        mock_args += ["--error-rate-echo-401", "0.3", "--seed", "5"]
    wanted = 24 if echo else 8
    with MockServerProcess(mock_args) as mock:
        assert mock.url is not None
        args = ["--host", mock.url, "--api-key", KEY, "--header", f"X-Token: {HEADER_SECRET}"]
        args += ["--max-tokens", "4", "--llm-records", str(tmp_path / "run.jsonl")]
        for path in reports:
            args += ["--llm-report", str(path)]
        run = LocalRun([OpenAIChatUser], args, web_ui=True)
        assert run.web_ui is not None and run.web_ui.app is not None
        client = run.web_ui.app.test_client()
        start_page = client.get("/").get_data(as_text=True)
        # The start form is submitted with the (blanked) key field empty: the launch key
        # stays in use, so the mock, which demands it, keeps answering.
        form = {"user_count": "2", "spawn_rate": "2", "host": mock.url, "api_key": ""}
        answer = client.post("/swarm", data=form).json
        assert answer is not None and answer["success"], answer
        assert run.wait_for(wanted, timeout=30)
        pages = [start_page]
        routes = ["/", "/stats/requests", "/llm/", "/llm/stats", "/llm/timeline"]
        routes += ["/llm/report.json", "/llm/report.html", "/stats/failures/csv"]
        routes += ["/stats/report"]
        pages += [client.get(route).get_data(as_text=True) for route in routes]
        run.finish()
        run.environment.events.quit.fire(exit_code=0)  # the summary and report files
        error_report = "\n".join(get_error_report_summary(run.environment.stats))
    printed = capsys.readouterr()
    ok = [r for r in run.records if r.ok]
    assert len(ok) >= 8, [r.error_message for r in run.records if not r.ok][:3]
    assert '"api_key"' in start_page  # the field is there, its value is not
    written = [(tmp_path / "run.jsonl").read_text()] + [p.read_text() for p in reports]
    assert all(written) and all(pages)
    assert "LLM summary" in printed.out
    if echo:
        echoed = [r for r in run.records if r.http_status == 401]
        assert echoed, "the mock echoed no key"
        for record in echoed:
            message = record.error_message or ""
            assert f'"authorization":"{REDACTED}"' in message
            assert f"invalid API key '{REDACTED}'" in message  # the bare key too
        assert "HTTP 401" in error_report and "HTTP 401" in pages[2]  # /stats/requests
        assert "invalid API key" in written[0] and "invalid API key" in pages[-1]
    for text in [*pages, *written, caplog.text, printed.out, printed.err, error_report]:
        assert KEY not in text
        assert KEY[4:12] not in text  # nor a piece of it
        assert HEADER_SECRET not in text
    assert orjson.loads((tmp_path / "run.json").read_bytes())["run"]["options"]["api_key_set"]
