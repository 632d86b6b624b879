"""HTTP phases against servers whose timing is known: where the time before the first token
went (connect, TLS, send, wait for headers, headers to first byte), in records and reports.

The replay server sends its headers 30 ms after each request and the first event 70 ms
after it, so the wait for headers is 30 ms and the headers-to-first-byte phase 40 ms; a
server that sent its headers at once would put all 70 ms in the last phase.
"""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

import orjson
import pytest
import trustme

from sagellm_users import OpenAIChatUser
from sagellm_users._aio import AsyncClient
from sagellm_users._backends import GenerationRequest, OpenAIClient
from sagellm_users._metrics import RequestRecord
from sagellm_users._metrics.folding import fold_chunks
from sagellm_users.mock_server.launcher import MockServerProcess
from tests.locust_harness import LocalRun
from tests.replay_server import replay_server
from tests.vllm_wire import chat_script

HEAD_S = 0.030
TTFT_S = 0.070


def _request() -> GenerationRequest:
    return GenerationRequest(api="chat", model="tiny", prompt="hi", max_tokens=4)


def _gevent_records(url: str, n: int, **client_args: object) -> list[RequestRecord]:
    """``n`` requests one after the other on one client (so all but the first reuse its
    connection), folded as a user folds them."""
    records = []
    with OpenAIClient(url, **client_args) as client:  # type: ignore[arg-type]
        for i in range(n):
            record = RequestRecord(i, "u", "openai", "chat", "n", "tiny", True, 0.0, 0.0)
            stream = client.stream(_request())
            with stream:
                fold_chunks(stream, record)
            record.t_send = stream.t_send
            record.take_http_times(stream.connect_s, stream.times)
            records.append(record)
    return records


def _async_records(url: str, n: int, **client_args: object) -> list[RequestRecord]:
    async def main() -> list[RequestRecord]:
        async with AsyncClient(url, **client_args) as client:  # type: ignore[arg-type]
            return [await client.measure(_request()) for _ in range(n)]

    return asyncio.run(main())


def _ms(values: list[float | None]) -> float:
    return statistics.median(v for v in values if v is not None) * 1e3


@pytest.mark.parametrize("records", [_gevent_records, _async_records], ids=["gevent", "asyncio"])
def test_phases_add_up_to_the_first_token_on_a_known_schedule(records: object) -> None:
    script = chat_script(ttft_s=TTFT_S, tbt_s=0.005, tokens=4)
    with replay_server(script, head_delay_s=HEAD_S) as url:
        got: list[RequestRecord] = records(url, 5)  # type: ignore[operator]
    assert all(r.ok and len(r.t_out) == 4 for r in got)
    first, *reused = got
    assert first.connect_phase is not None and first.connect_phase < 0.5
    assert first.tls_phase is None, "plain TCP has no handshake"
    assert all(r.connect_s is None and r.connect_phase is None for r in reused), "pooled"
    for r in got:
        assert r.t_send is not None and r.t_sent is not None and r.t_headers is not None
        assert r.t_body is not None
        assert r.t_send <= r.t_sent <= r.t_headers <= r.t_body <= r.t_out[0]
    assert _ms([r.send_phase for r in got]) < 5
    assert _ms([r.wait_phase for r in got]) == pytest.approx(HEAD_S * 1e3, abs=8)
    assert _ms([r.first_byte_phase for r in got]) == pytest.approx((TTFT_S - HEAD_S) * 1e3, abs=8)
    assert _ms([r.ttft for r in got]) == pytest.approx(TTFT_S * 1e3, abs=8)


def test_headers_sent_at_once_put_the_wait_before_the_first_byte() -> None:
    """vLLM's way: headers as the request is accepted, the queue and prefill after them."""
    script = chat_script(ttft_s=TTFT_S, tbt_s=0.005, tokens=4)
    with replay_server(script) as url:
        got = _gevent_records(url, 3)
    assert _ms([r.wait_phase for r in got]) < 8
    assert _ms([r.first_byte_phase for r in got]) == pytest.approx(TTFT_S * 1e3, abs=8)


@pytest.fixture(scope="module")
def tls_mock(tmp_path_factory: pytest.TempPathFactory) -> object:
    ca = trustme.CA()
    folder = tmp_path_factory.mktemp("tls")
    served, bundle = folder / "served.pem", folder / "ca.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(served))
    ca.cert_pem.write_to_path(str(bundle))
    args = ["--ttft-ms", "5", "--tbt-ms", "1", "--model", "tiny"]
    args += ["--tls-cert", str(served), "--tls-key", str(served)]
    with MockServerProcess(args) as mock:
        assert mock.url is not None
        yield mock.url, str(bundle)


@pytest.mark.parametrize("records", [_gevent_records, _async_records], ids=["gevent", "asyncio"])
def test_a_new_https_connection_times_its_handshake_apart(
    records: object, tls_mock: tuple[str, str]
) -> None:
    url, bundle = tls_mock
    got: list[RequestRecord] = records(url, 3, verify=bundle)  # type: ignore[operator]
    first, *reused = got
    assert first.ok and first.connect_s is not None and first.tls_s is not None
    assert 0 < first.tls_s < first.connect_s, "the handshake is part of the setup"
    assert first.connect_phase == pytest.approx(first.connect_s - first.tls_s)
    assert all(r.ok and r.tls_s is None and r.connect_s is None for r in reused)


def test_phases_reach_the_records_file_the_summary_and_every_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = chat_script(ttft_s=TTFT_S, tbt_s=0.005, tokens=4)
    files = {ext: tmp_path / f"report.{ext}" for ext in ("json", "md", "html")}
    with replay_server(script, head_delay_s=HEAD_S) as url:
        run = LocalRun(
            [OpenAIChatUser],
            [
                "--host", url, "--model", "tiny", "--max-tokens", "4",
                "--llm-records", str(tmp_path / "records.jsonl"),
                *(arg for path in files.values() for arg in ("--llm-report", str(path))),
            ],
        )  # fmt: skip
        run.run_until(requests=6, users=2)
        run.environment.events.quit.fire(exit_code=0)
    lines = (tmp_path / "records.jsonl").read_bytes().splitlines()
    rows = [orjson.loads(line) for line in lines]
    ok = [row for row in rows if row["status"] == "ok"]
    assert len(ok) >= 6
    for row in ok:
        assert row["sent_ms"] <= row["headers_ms"] <= row["body_ms"] <= row["out_ms"][0]
        again = RequestRecord.from_json(row)
        assert again.wait_phase is not None
        assert again.wait_phase * 1e3 == pytest.approx(row["headers_ms"] - row["sent_ms"], abs=1e-3)
    assert sum(row["connect_ms"] is not None for row in ok) == 2, "one connection per user"

    phases = orjson.loads(files["json"].read_bytes())["total"]["http_phases_ms"]
    assert set(phases) == {"connect", "tls", "send", "wait", "first_byte"}
    assert phases["connect"]["count"] == 2 and phases["tls"]["count"] == 0
    assert phases["wait"]["count"] == len(ok)
    assert phases["wait"]["median"] == pytest.approx(HEAD_S * 1e3, abs=8)
    assert phases["first_byte"]["median"] == pytest.approx((TTFT_S - HEAD_S) * 1e3, abs=8)
    markdown = files["md"].read_text()
    assert "| wait for headers |" in markdown and "| headers to first byte |" in markdown
    assert "TLS handshake" not in markdown, "no row for a phase that never happened"
    assert "headers to first byte" in files["html"].read_text()  # the page's own words
    assert "HTTP phases (ms, p50/p99): connect (x2)" in capsys.readouterr().out
