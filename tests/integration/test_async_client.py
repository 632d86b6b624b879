"""The asyncio client against the mock: the gevent client's answers, errors and timings.

Both clients share the sans-I/O core (HTTP framing, SSE, event parsing, records), so for
every way the mock misbehaves the two must fail alike, and on a well-behaved stream they
must time the same events the same way.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from sagellm_users._aio import AsyncClient
from sagellm_users._backends import Completion, GenerationRequest, OpenAIClient, Timeouts
from sagellm_users._errors import ConfigError, ConnectError
from sagellm_users._metrics import RequestRecord
from sagellm_users.mock_server.faults import Fault
from sagellm_users.mock_server.launcher import MockServerProcess
from tests.conftest import MOCK_TBT_MS, MOCK_TTFT_MS

TIMEOUTS = Timeouts(connect=5.0, read=1.0, total=10.0)


def chat(max_tokens: int = 16, **kwargs: object) -> GenerationRequest:
    return GenerationRequest(prompt="hello there", max_tokens=max_tokens, **kwargs)  # type: ignore[arg-type]


def test_a_record_has_the_metric_contract_of_the_load_test(mock_url: str) -> None:
    """Every decode step stamped, TTFT and ITL the mock's, tokens the server's usage."""

    async def main() -> list[RequestRecord]:
        async with AsyncClient(mock_url, backend="vllm") as client:
            return [await client.measure(chat(api="chat", ignore_eos=True)) for _ in range(4)]

    records = asyncio.run(main())
    for record in records:
        assert record.ok, record.error_message
        assert record.model == "mock-llm", "the server's model, asked once"
        assert record.output_tokens == 16 and record.output_tokens_source == "usage"
        assert len(record.itl) == 15 and record.finish_reason == "length"
    ttfts = [r.ttft for r in records if r.ttft is not None]
    assert statistics.median(ttfts) == pytest.approx(MOCK_TTFT_MS / 1e3, abs=0.005)
    gaps = [gap for r in records for gap in r.itl]
    assert statistics.median(gaps) == pytest.approx(MOCK_TBT_MS / 1e3, abs=0.002)
    assert records[1].connect_s is None, "the second request reuses the connection"


def test_reads_are_stamped_on_arrival_not_when_the_consumer_takes_them(mock_url: str) -> None:
    """Consumers that take 30 ms over each chunk (the mock sends one every 8 ms): each
    chunk keeps the time its bytes were read off the socket, so the gaps are still the
    server's; a stamp taken when the consumer asked for the chunk would show 30 ms."""

    async def slow_consumer(client: AsyncClient) -> list[float]:
        times = []
        async with client.stream(chat(20, ignore_eos=True)) as stream:
            async for chunk in stream:
                if chunk.step:
                    times.append(chunk.t)
                await asyncio.sleep(0.03)
        return times

    async def main() -> list[list[float]]:
        async with AsyncClient(mock_url) as client:
            return list(await asyncio.gather(*(slow_consumer(client) for _ in range(8))))

    streams = asyncio.run(main())
    assert all(len(times) == 20 for times in streams)
    gaps = [b - a for times in streams for a, b in itertools.pairwise(times)]
    assert statistics.median(gaps) == pytest.approx(MOCK_TBT_MS / 1e3, abs=0.002)


def test_batches_keep_input_order_cap_concurrency_and_return_failures(mock_url: str) -> None:
    async def main() -> tuple[list[RequestRecord], list[Completion]]:
        async with AsyncClient(mock_url) as client:
            requests = [chat(8) for _ in range(9)]
            requests[4] = chat(8, model="no-such-model")
            records = await client.measure_batch(requests, max_concurrent=3)
            completions = await client.generate_batch(requests, max_concurrent=3)
            slow = await client.generate_batch([chat(200)], timeout=0.2)
            return records, [*completions, *slow]

    records, completions = asyncio.run(main())
    assert [r.status for r in records] == ["ok"] * 4 + ["error"] + ["ok"] * 4
    assert records[4].error_class == "HTTPStatusError" and "no-such-model" in str(
        records[4].error_message
    )
    spans = sorted(
        (t, step)
        for r in records
        if r.t_send is not None and r.t_done is not None
        for t, step in ((r.t_send, 1), (r.t_done, -1))
    )
    most = max(itertools.accumulate(step for _, step in spans))
    assert 2 <= most <= 3, f"{most} requests in flight at once with max_concurrent=3"
    errors = [c.error_class for c in completions]
    assert errors == [None] * 4 + ["HTTPStatusError"] + [None] * 4 + ["TotalTimeout"]


def test_bad_input_and_unreachable_servers_are_named(unused_port: int) -> None:
    with pytest.raises(ConfigError, match="unknown backend 'vlm': choose one of"):
        AsyncClient("http://127.0.0.1:1", backend="vlm")
    with pytest.raises(ConfigError, match="is not an http"):
        AsyncClient("127.0.0.1:8000")

    async def main() -> None:
        async with AsyncClient(f"http://127.0.0.1:{unused_port}", model="m") as client:
            health = await client.health_check()
            assert not health.healthy and "cannot connect" in str(health.error)
            with pytest.raises(ConnectError, match=r"cannot connect to 127\.0\.0\.1"):
                await client.generate(chat())
            with pytest.raises(ConfigError, match="no 'generate' API"):
                client.stream(chat(api="generate"))

    asyncio.run(main())


def test_importing_it_patches_nothing_and_loads_no_locust() -> None:
    code = (
        "import sys, socket\n"
        "import sagellm_users._aio\n"
        "from gevent import monkey\n"
        "assert 'locust' not in sys.modules, 'locust imported'\n"
        "assert not monkey.is_module_patched('socket'), 'socket patched'\n"
        "print('clean')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0 and run.stdout.strip() == "clean", run.stderr


# -- the same faults, the same verdicts --------------------------------------------------
FAULTS = [f for f in Fault if f is not Fault.NONE]


@pytest.fixture(scope="module")
def fault_servers() -> Iterator[dict[Fault, str]]:
    """One mock per fault, each injecting it into every generation request."""
    servers: dict[Fault, MockServerProcess] = {}
    try:
        for fault in FAULTS:
            flag = "--" + fault.rate_field.replace("_", "-")
            servers[fault] = MockServerProcess(
                ["--ttft-ms", "5", "--tbt-ms", "2", flag, "1", "--trickle-interval-ms", "1"]
            )
        yield {fault: server.start() for fault, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()


def _verdict(record: RequestRecord) -> tuple[str, str | None, int | None, int]:
    return record.status, record.error_class, record.http_status, len(record.t_out)


def _sync_record(url: str, request: GenerationRequest) -> RequestRecord:
    """The gevent client's record of ``request``, folded as a Locust user folds it."""
    from time import perf_counter

    from sagellm_users._metrics.folding import fold_chunks

    record = RequestRecord(
        request_id=1, user="sync", backend="openai", api=request.api, name="", model="",
        stream=request.stream, wall_start=0.0, t_start=perf_counter(),
    )  # fmt: skip
    with OpenAIClient(url, timeouts=TIMEOUTS) as client:
        stream = client.stream(request)
        try:
            fold_chunks(stream, record)
        except Exception as exc:
            record.status, record.error_class = "error", type(exc).__name__
        record.http_status = stream.status
    return record


@pytest.mark.parametrize("fault", FAULTS, ids=[f.value for f in FAULTS])
def test_every_mock_fault_gets_the_gevent_clients_verdict(
    fault: Fault, fault_servers: dict[Fault, str]
) -> None:
    url = fault_servers[fault]
    request = chat(6, api="chat")

    async def main() -> RequestRecord:
        async with AsyncClient(url, timeouts=TIMEOUTS) as client:
            return await client.measure(request)

    ours = asyncio.run(main())
    theirs = _sync_record(url, chat(6, api="chat", model=ours.model))
    assert _verdict(ours) == _verdict(theirs), (ours.error_message, theirs.error_message)


def test_https_is_verified_against_the_ca_bundle_and_refused_without_it(
    tmp_path: Path,
) -> None:
    """The same TLS rules as the gevent client: a private CA's server is refused by
    default and read whole once ``verify`` names the CA bundle."""
    ca = trustme.CA()
    served, bundle = tmp_path / "served.pem", tmp_path / "ca.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(served))
    ca.cert_pem.write_to_path(str(bundle))
    tls = ["--ttft-ms", "1", "--tbt-ms", "1", "--tls-cert", str(served), "--tls-key", str(served)]

    async def main(url: str) -> tuple[list[Completion], Completion]:
        async with AsyncClient(url, verify=str(bundle)) as client:
            verified = await client.generate_batch([chat(8, ignore_eos=True)] * 4, max_concurrent=4)
        async with AsyncClient(url, model="m") as client:
            (refused,) = await client.generate_batch([chat(8)])
        return verified, refused

    with MockServerProcess(tls) as mock:
        assert mock.url is not None and mock.url.startswith("https://")
        verified, refused = asyncio.run(main(mock.url))
    assert [c.error for c in verified] == [None] * 4
    assert all(c.usage is not None and c.usage.completion_tokens == 8 for c in verified)
    assert refused.error_class == "ConnectError"
    assert "certificate verify failed" in (refused.error or "")
