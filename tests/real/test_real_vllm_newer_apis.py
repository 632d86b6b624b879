"""Against a real vLLM 0.32: OpenAI's Responses API and Anthropic's Messages API, streamed.

What these routes give a load test, as measured here (tiny model, CPU):

* ``/v1/responses`` takes ``ignore_eos``: every answer is exactly the tokens asked, and
  ``response.completed``'s usage says so (``status: "incomplete"``, cut at
  ``max_output_tokens``).
* ``/v1/messages`` takes neither ``ignore_eos`` nor ``min_tokens`` (vLLM's Anthropic
  request model drops them): an answer ends where the model stops, and ``message_delta``'s
  usage counts it.
* Neither route sends an event for a token whose text is empty (held back, EOS), and like
  chat both send two tokens in one event when vLLM's API server falls behind the engine:
  so a client sees at most one decode step per token, not always exactly one.

The client's counts must equal vLLM's own counters (``/metrics``), request for request.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from sagellm_users import GenerationRequest, VLLMClient
from sagellm_users._metrics import RequestRecord
from sagellm_users._metrics.folding import fold_chunks
from tests.real.conftest import TIER_TIMEOUT_S

pytestmark = [pytest.mark.real_vllm, pytest.mark.timeout(TIER_TIMEOUT_S)]

ROOT = Path(__file__).resolve().parents[2]
MAX_TOKENS = 16
CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is a paged KV cache?"},
]


def _measure(client: VLLMClient, request: GenerationRequest) -> RequestRecord:
    """One request folded into its record, as a Locust user folds it."""
    record = RequestRecord(
        request_id=1, user="test", backend="vllm", api=request.api, name="", model="tiny",
        stream=True, wall_start=0.0, t_start=0.0,
    )  # fmt: skip
    stream = client.stream(request)
    with stream:
        fold_chunks(stream, record)
    record.t_send, record.t_done = stream.t_send, stream.t_done
    return record


@pytest.mark.parametrize("api", ["responses", "messages"])
def test_each_api_streams_decode_steps_with_usage_at_the_end(vllm_url: str, api: str) -> None:
    ignore_eos = api == "responses"  # the Messages API has no ignore_eos
    steps = tokens = 0
    with VLLMClient(vllm_url) as client:
        for _ in range(8):
            request = GenerationRequest(
                api=api,  # type: ignore[arg-type]
                model="tiny",
                messages=CONVERSATION,
                max_tokens=MAX_TOKENS,
                ignore_eos=ignore_eos,
            )
            record = _measure(client, request)
            assert record.usage_completion_tokens is not None, "usage from the last events"
            assert record.usage_prompt_tokens is not None and record.usage_prompt_tokens > 0
            if ignore_eos or record.finish_reason == "length":
                assert record.usage_completion_tokens == MAX_TOKENS
                assert record.finish_reason == "length"
            else:  # the model's own EOS, before the cap
                assert record.finish_reason == "stop"
                assert record.usage_completion_tokens < MAX_TOKENS
            # At most one step per token: none for a token without text, one for two
            # tokens vLLM's API server sent together.
            assert 1 <= len(record.t_out) <= record.usage_completion_tokens
            assert record.t_send is not None and record.t_done is not None
            ttft, e2e = record.t_out[0] - record.t_send, record.t_out[-1] - record.t_send
            assert 0 < ttft <= e2e <= record.t_done - record.t_send
            assert record.t_out == sorted(record.t_out)
            assert record.response_id is not None
            steps += len(record.t_out)
            tokens += record.usage_completion_tokens
    print(f"{api}: {steps} decode steps seen for {tokens} output tokens")


@pytest.mark.parametrize(
    ("locustfile", "extra"), [("responses.py", ["--ignore-eos"]), ("messages.py", [])]
)
def test_the_locustfiles_count_what_vllm_counts(
    vllm_url: str, locustfile: str, extra: list[str], tmp_path: Path
) -> None:
    """The real locust command: every request finishes (``--stop-timeout``), none fails,
    and the requests, output and input tokens equal vLLM's own counters."""
    report_path, records_path = tmp_path / "report.json", tmp_path / "records.jsonl"
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / locustfile),
        "--host", vllm_url, "--backend", "vllm", "--headless", "-u", "4", "-r", "4",
        "-t", "8s", "--stop-timeout", "30", "--max-tokens", str(MAX_TOKENS),
        "--server-metrics-interval", "1", "--llm-report", str(report_path), "--only-summary",
        "--llm-records", str(records_path), *extra,
    ]  # fmt: skip
    run = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=180, env=dict(os.environ)
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    report: dict[str, Any] = orjson.loads(report_path.read_bytes())
    total = report["total"]
    assert total["failed"] == 0 and total["cancelled"] == 0 and total["completed"] > 0
    if extra:
        assert total["total_output_tokens"] == MAX_TOKENS * total["completed"]
    (server,) = report["server"]
    assert server["requests"] == total["completed"]
    assert server["generation_tokens"] == total["total_output_tokens"]
    assert server["prompt_tokens"] == total["total_input_tokens"]
    # A reply whose only token is EOS (the random model's first token, 1 in 8,000; CI once saw
    # a completed request with no step in 348 on /v1/messages) has no event on these routes
    # (no event for a token without text) and so no TTFT; usage still counts its token.
    rows = [orjson.loads(line) for line in records_path.read_bytes().splitlines()]
    ok = [row for row in rows if row["status"] == "ok"]
    no_step = [row for row in ok if not row["out_ms"]]
    assert all(row["output_tokens"] == 1 and not extra for row in no_step), no_step
    assert total["ttft_ms"]["count"] == total["completed"] - len(no_step)
    print(run.stdout[-2500:])
