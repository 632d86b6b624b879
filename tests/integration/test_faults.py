"""The fault suite: every fault the mock can inject, mixed into healthy traffic.

For each fault a real Locust run (in-process runner, 8 users) streams from a mock that
injects it into a quarter of the requests, and the test holds the client's view against
the mock's own count of what it injected (``/metrics``):

* each faulty request is one failure of the right class, with a message that says what
  happened (or, for the faults a client must survive, a success with the right counts);
* healthy requests are unaffected: complete, with the server's token counts and timings
  near the mock's;
* the run goes on after faults (successes follow the first one);
* the records file holds every request exactly once, and agrees with the report and with
  Locust's own table.

A request still in flight when the run stops is recorded as cancelled; it may have drawn a
fault the client never saw, so injected counts are bounded by failures and failures plus
cancellations.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from sagellm_users import OpenAIChatUser
from sagellm_users._metrics import RequestRecord
from sagellm_users.mock_server import MockServerProcess
from tests.fault_tally import FaultRow, add_row
from tests.locust_harness import LocalRun, stats_row
from tests.mock_http import call

TTFT_MS, TBT_MS, MAX_TOKENS = 5.0, 2.0, 16
REQUESTS, USERS, RATE = 80, 8, 0.25
READ_TIMEOUT, REQUEST_TIMEOUT = 0.5, 1.0
ENDPOINT = "/v1/chat/completions"


@dataclass(frozen=True)
class Expected:
    """What a client must make of one fault: a failure of ``error_class`` whose message
    matches ``message``; or (``error_class`` None) a success, whose output counts are
    estimates when ``estimated`` (and the server's otherwise)."""

    error_class: str | None
    message: str = ""
    estimated: bool = False


FAULTS: dict[str, Expected] = {
    "500": Expected("HTTPStatusError", r"HTTP 500 .*Injected internal server error"),
    "429": Expected("HTTPStatusError", r"HTTP 429 .*\(Retry-After 0 s\)"),
    "404": Expected("HTTPStatusError", r"HTTP 404 .*does not exist"),
    "reset": Expected("ConnectError", r"reset the connection before answering"),
    "stream": Expected("ServerErrorEvent", r"error event in stream: \[InternalServerError"),
    "malformed": Expected("MalformedEventError", r"stream event is not JSON"),
    "non_utf8": Expected("MalformedEventError", r"not valid UTF-8 \(byte ff at offset \d+\)"),
    "cut": Expected("StreamCutError", r"connection closed after \d+ body bytes"),
    "stall": Expected("ReadTimeout", r"no data for 0.5 s \(read timeout\)"),
    "no_done": Expected("MissingDoneError", r"without 'data: \[DONE\]'"),
    "trickle": Expected("TotalTimeout", r"longer than 1 s \(request timeout\)"),
    "502": Expected("HTTPStatusError", r"HTTP 502 Bad Gateway: .*request id [0-9a-f-]{36}"),
    "echo_401": Expected("HTTPStatusError", r"HTTP 401 Unauthorized: .*invalid API key"),
    "huge_event": Expected(None),
    "no_usage": Expected(None, estimated=True),
    "continue_100": Expected(None),
    "done_no_end": Expected(None),
    "done_pings": Expected(None),
    "gzip": Expected("ProtocolError", r"Content-Encoding: gzip although the request asked"),
    "empty_data": Expected(None),
    "huge_error": Expected("HTTPStatusError", r"HTTP 500 .*body cut at the 64 KiB limit"),
    "endless_error": Expected("HTTPStatusError", r"HTTP 502 Bad Gateway: .*body cut at the 64"),
    "huge_header": Expected(
        "ResponseTooLargeError", r"headers passed the 64 KiB limit.*--max-header-size"
    ),
}


def injected_faults(url: str) -> Counter[str]:
    """The mock's own count of what it injected, by kind."""
    status, _, body = call(url, "GET", "/metrics")
    assert status == 200
    pattern = r'^sagellm_mock:injected_faults_total\{.*kind="(\w+)"\} ([0-9.]+)$'
    found = re.findall(pattern, body.decode(), flags=re.MULTILINE)
    return Counter({kind: int(float(n)) for kind, n in found})


def run_against(url: str, records: Path, *extra: str, requests: int = REQUESTS) -> LocalRun:
    args = [
        "--host",
        url,
        "--max-tokens",
        str(MAX_TOKENS),
        "--read-timeout",
        str(READ_TIMEOUT),
        "--request-timeout",
        str(REQUEST_TIMEOUT),
        "--server-metrics-interval",
        "0",
        "--llm-records",
        str(records),
        *extra,
    ]
    run = LocalRun([OpenAIChatUser], args)
    run.run_until(requests=requests, users=USERS, timeout=60)
    return run


def assert_recorded_exactly_once(
    run: LocalRun, records: Path, tally: tuple[pytest.Config, str, int] | None = None
) -> list[dict[str, object]]:
    """Every finished request is in the records file once, and the report and Locust's
    table count the same requests. With ``tally`` (config, fault, injected count) the
    run's row goes into the suite's summary first, so a failure still shows its counts."""
    lines = [orjson.loads(line) for line in records.read_bytes().splitlines()]
    ids = [line["id"] for line in lines]
    if tally is not None:
        config, fault, injected = tally
        status = Counter(r.status for r in run.records)
        lost = {r.request_id for r in run.records} - set(ids)
        add_row(
            config,
            FaultRow(
                fault, len(run.records), status["error"], status["cancelled"], injected, len(lost)
            ),
        )
    assert len(ids) == len(set(ids)) == len(run.records)
    assert sorted(ids) == sorted(r.request_id for r in run.records)
    total = run.runtime.collector.total()
    assert total.requests == len(lines)
    status = Counter(line["status"] for line in lines)
    assert (total.succeeded, total.failed, total.cancelled) == (
        status["ok"],
        status["error"],
        status["cancelled"],
    )
    row = stats_row(run.environment, "E2E", ENDPOINT)
    assert (row.num_requests, row.num_failures) == (status["ok"] + status["error"], status["error"])
    return lines


def assert_healthy_requests_are_true(healthy: Sequence[RequestRecord]) -> None:
    assert len(healthy) >= REQUESTS // 2
    finished = Counter(r.finish_reason for r in healthy)
    assert set(finished) == {"stop", "length"}, "the mock stops on EOS as vLLM does"
    for record in healthy:
        assert record.output_tokens_source == "usage"
        assert len(record.t_out) == record.output_tokens <= MAX_TOKENS, "one step per token"
        assert record.finish_reason == "stop" or record.output_tokens == MAX_TOKENS
    ttft = statistics.median(r.ttft for r in healthy if r.ttft is not None) * 1e3
    # Each request's mean gap: the mock keeps an absolute schedule, so when its loop is
    # briefly busy (writing a 10 MB event to another stream) the tokens that were held
    # back catch up and single gaps shrink, but a stream's mean gap stays the mock's.
    tbt = statistics.median(r.tbt for r in healthy if r.tbt is not None) * 1e3
    # The mock's schedule is a floor (it never sends early); the ceilings are loose enough
    # for a loaded CI machine and far below what a fault (a 0.5 s stall) would add.
    assert TTFT_MS <= ttft < TTFT_MS + 60, ttft
    assert TBT_MS * 0.9 <= tbt < TBT_MS + 20, tbt


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_is_classed_and_leaves_healthy_traffic_true(
    fault: str, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    expected = FAULTS[fault]
    mock_args = [
        "--ttft-ms",
        str(TTFT_MS),
        "--tbt-ms",
        str(TBT_MS),
        f"--error-rate-{fault.replace('_', '-')}",
        str(RATE),
        "--retry-after-s",
        "0",
        "--huge-event-bytes",
        "1000000",
        "--huge-error-bytes",
        "1000000",
        "--trickle-interval-ms",
        "50",
        "--seed",
        "7",
    ]
    with MockServerProcess(mock_args) as mock:
        assert mock.url is not None
        records = tmp_path / "run.jsonl"
        run = run_against(mock.url, records)
        injected = injected_faults(mock.url)
    lines = assert_recorded_exactly_once(run, records, (pytestconfig, fault, injected[fault]))
    assert set(injected) == {fault} and injected[fault] >= 5  # 25% of at least 80

    cancelled = [r for r in run.records if r.status == "cancelled"]
    failed = [r for r in run.records if r.status == "error"]
    ok = [r for r in run.records if r.ok]
    marker = f"-fault-{fault}-"  # the mock names the fault in the response's id
    faulty_ok = [r for r in ok if marker in (r.response_id or "")]
    if expected.error_class is None:
        assert not failed, failed[0].error_message
        assert len(faulty_ok) <= injected[fault] <= len(faulty_ok) + len(cancelled)
        estimated = {r.request_id for r in ok if r.output_tokens_source == "estimate"}
        assert estimated == ({r.request_id for r in faulty_ok} if expected.estimated else set())
        # Whatever the fault did, the stream was read to its end: every token arrived.
        for record in ok:
            assert record.finish_reason in ("stop", "length")
            if record.output_tokens_source == "usage":
                assert len(record.t_out) == record.output_tokens
            if record.finish_reason == "length":
                assert len(record.t_out) == MAX_TOKENS
    else:
        assert not faulty_ok
        assert {r.error_class for r in failed} == {expected.error_class}
        for record in failed:
            assert re.search(expected.message, record.error_message or ""), record.error_message
            assert record.response_id is None or marker in record.response_id
        assert len(failed) <= injected[fault] <= len(failed) + len(cancelled)
        first_failure = min(r.request_id for r in failed)
        assert any(r.request_id > first_failure for r in ok), "the run stopped at the fault"
    healthy = [r for r in ok if r not in faulty_ok]
    assert_healthy_requests_are_true(healthy)
    assert {line["status"] for line in lines} <= {"ok", "error", "cancelled"}


def test_retries_honour_retry_after_and_are_counted_apart(tmp_path: Path) -> None:
    mock_args = ["--ttft-ms", "5", "--tbt-ms", "2", "--error-rate-429", "0.3"]
    mock_args += ["--retry-after-s", "1", "--seed", "3"]
    with MockServerProcess(mock_args) as mock:
        assert mock.url is not None
        records = tmp_path / "run.jsonl"
        run = run_against(mock.url, records, "--retries", "4", requests=40)
        injected = injected_faults(mock.url)
    lines = assert_recorded_exactly_once(run, records)
    retried = [r for r in run.records if r.retries]
    assert retried, "a 30% 429 rate over 40 requests retried nothing"
    final_429 = [r for r in run.records if r.http_status == 429 and r.status == "error"]
    attempts_429 = sum(r.retries for r in run.records) + len(final_429)
    cancelled = sum(r.status == "cancelled" for r in run.records)
    assert attempts_429 <= injected["429"] <= attempts_429 + cancelled
    for record in retried:
        assert record.retry_errors == ["HTTPStatusError 429"] * record.retries
        assert record.retry_wait_s == pytest.approx(1.0 * record.retries)  # Retry-After: 1
        if record.status != "cancelled":  # the last attempt went out after every wait
            assert record.t_send is not None
            assert record.t_send - record.t_start >= record.retry_wait_s
        if record.ok:  # its timings are the last attempt's: TTFT is the server's
            assert record.ttft is not None and record.ttft < 0.5
    total = run.runtime.collector.total()
    assert total.retried == len(retried)
    assert total.retries == sum(r.retries for r in run.records)
    assert total.retry_failures == Counter({"HTTPStatusError 429": total.retries})
    assert total.failures.get("HTTPStatusError", 0) == len(final_429)
    row = stats_row(run.environment, "RETRY", ENDPOINT)
    assert row.num_requests == row.num_failures == total.retries
    aggregated = run.environment.stats.total
    assert aggregated.num_requests == sum(1 for line in lines if line["status"] != "cancelled")
    by_line = {line["id"]: line for line in lines}
    assert all(by_line[r.request_id]["retries"] == r.retries for r in run.records)


def test_a_refused_server_beside_a_healthy_one(tmp_path: Path, unused_port: int) -> None:
    """Refusal happens before HTTP, so it cannot be a per-request fault of a listening
    mock: a second User class points at a port where nothing listens."""
    refused_url = f"http://127.0.0.1:{unused_port}"

    class RefusedUser(OpenAIChatUser):
        host = refused_url

    with MockServerProcess(["--ttft-ms", "5", "--tbt-ms", "2"]) as mock:
        assert mock.url is not None

        class HealthyUser(OpenAIChatUser):
            host = mock.url

        records = tmp_path / "run.jsonl"
        args = ["--max-tokens", "8", "--model", "mock-llm", "--retries", "1"]
        args += ["--server-metrics-interval", "0", "--llm-records", str(records)]
        run = LocalRun([HealthyUser, RefusedUser], args)
        run.run_until(requests=60, users=4, timeout=60)
    lines = [orjson.loads(line) for line in records.read_bytes().splitlines()]
    assert len({line["id"] for line in lines}) == len(lines) == len(run.records)
    refused = [r for r in run.records if r.user == "RefusedUser" and r.status != "cancelled"]
    healthy = [r for r in run.records if r.user == "HealthyUser" and r.status != "cancelled"]
    assert refused and healthy
    for record in refused:
        assert record.error_class == "ConnectError"
        assert "Connection refused" in (record.error_message or "")
        assert record.retry_errors == ["ConnectError"]  # retried once, refused again
    assert all(r.ok and r.output_tokens == 8 for r in healthy)


def test_the_read_limits_are_options_of_the_run(tmp_path: Path) -> None:
    """--max-header-size above the gateway's 1 MB header line lets its 502 through (an
    HTTPStatusError, not ResponseTooLargeError); --max-error-body 1KiB cuts the excerpt
    there; --max-event-size below the 100 kB huge_event fails those streams."""
    mock_args = ["--ttft-ms", "5", "--tbt-ms", "2", "--seed", "5"]
    mock_args += ["--error-rate-huge-header", "0.2", "--error-rate-huge-error", "0.2"]
    mock_args += ["--error-rate-huge-event", "0.2", "--huge-event-bytes", "100000"]
    mock_args += ["--huge-error-bytes", "100000"]
    limits = ["--max-header-size", "2MiB", "--max-error-body", "1KiB"]
    limits += ["--max-event-size", "64KiB"]
    with MockServerProcess(mock_args) as mock:
        assert mock.url is not None
        run = run_against(mock.url, tmp_path / "run.jsonl", *limits, requests=60)
        injected = injected_faults(mock.url)
    assert set(injected) == {"huge_header", "huge_error", "huge_event"}
    failed = [r for r in run.records if r.status == "error"]
    by_status = Counter((r.error_class, r.http_status) for r in failed)
    assert set(by_status) == {
        ("HTTPStatusError", 502),
        ("HTTPStatusError", 500),
        ("ResponseTooLargeError", 200),
    }, by_status
    for record in failed:
        message = record.error_message or ""
        if record.http_status == 500:
            assert "body cut at the 1 KiB limit" in message, message
        elif record.http_status == 200:
            assert "an SSE event passed the 64 KiB limit" in message, message
            assert "--max-event-size" in message
        else:
            assert "HTTP 502 Bad Gateway" in message, message
