"""Against sageLLM itself (package ``isagellm``, on CPU), on the tiny model with random
weights: its engine in-process (``SageLLMLocalUser``) and its gateway (``sagellm serve``,
``SageLLMUser``), both through the real ``locust`` command.

The venv is ``$SAGELLM_ISAGELLM_PYTHON`` when set, else a cached one installed on first use
(see conftest); pip's refusal skips these tests, anything after a good install fails them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.real.conftest import TIER_TIMEOUT_S

pytestmark = [pytest.mark.real_sagellm, pytest.mark.timeout(TIER_TIMEOUT_S)]

ROOT = Path(__file__).resolve().parents[2]
MAX_TOKENS = 16
PROMPT = "Tell me about load tests."


def _locust(tmp_path: Path, locustfile: str, *extra: str) -> tuple[dict[str, Any], str]:
    """Run ``locust`` headless; its JSON report and its output."""
    report_path = tmp_path / "report.json"
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / locustfile),
        "--headless", "-r", "4", "--stop-timeout", "30", "--max-tokens", str(MAX_TOKENS),
        "--llm-report", str(report_path), "--only-summary", *extra,
    ]  # fmt: skip
    run = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    return orjson.loads(report_path.read_bytes()), output


def test_the_in_process_sagellm_engine(
    sagellm_python: Path, sagellm_model: Path, tmp_path: Path
) -> None:
    report, output = _locust(
        tmp_path, "sagellm_local.py", "-u", "2", "-t", "8s",
        "--sagellm-model", str(sagellm_model), "--engine-python", str(sagellm_python),
        "--engine-arg", "backend_type=cpu", "--engine-arg", "comm_type=gloo",
        "--engine-arg", "device=cpu", "--engine-arg", "dtype=float32",
        "--engine-arg", "max_model_len=512", "--engine-log", str(tmp_path / "engine.log"),
    )  # fmt: skip
    total = report["total"]
    assert total["failed"] == 0 and total["cancelled"] == 0 and total["completed"] > 0, output
    # Random weights never reach EOS in 16 tokens: every request runs to --max-tokens.
    assert total["total_output_tokens"] == MAX_TOKENS * total["completed"]
    assert total["itl_ms"]["count"] == (MAX_TOKENS - 1) * total["completed"]
    assert total["token_provenance"]["output_from_usage"] == total["completed"]
    (engine,) = report["engines"]
    assert engine["engine"] == "sagellm" and engine["version"]


def _truth(gateway: str, model: str) -> int:
    """The gateway's own count for PROMPT answered greedily: a non-streamed answer carries
    usage (a streamed one never does), and greedy decoding makes every answer the same."""
    body = {
        "model": model, "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS, "temperature": 0,
    }  # fmt: skip
    request = urllib.request.Request(
        gateway + "/v1/chat/completions", json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=120) as answer:
        return int(json.loads(answer.read())["usage"]["completion_tokens"])


def test_the_gateway_through_sagellm_user(
    sagellm_gateway: str, sagellm_model: Path, tmp_path: Path
) -> None:
    """The gateway sends no usage: the model's tokenizer counts each reply, and the totals
    match the gateway's own count; the report names the model and the gateway's version."""
    report, output = _locust(
        tmp_path, "sagellm.py", "--host", sagellm_gateway, "-u", "4", "-t", "10s",
        "--tokenizer", str(sagellm_model), "--temperature", "0", "--prompt", PROMPT,
    )  # fmt: skip
    total = report["total"]
    completed = total["completed"]
    assert completed > 20 and total["failed"] == 0, output
    assert total["token_provenance"]["output_tokenized"] == completed, output
    truth = _truth(sagellm_gateway, str(sagellm_model)) * completed
    assert abs(total["total_output_tokens"] - truth) <= 0.02 * truth, (truth, output)
    assert total["models"] == [str(sagellm_model)], "the model, from /info's engines"
    assert "the tokenizer counted their output tokens" in output
    # One decode step per token: the gateway's own end chunk is none.
    assert total["itl_ms"]["count"] == total["total_output_tokens"] - completed
    # Its quirk: "stop" also where max_tokens ended the answer.
    assert total["stopped_at_limit"] == completed
    assert "said finish_reason 'stop' with exactly max_tokens out" in output
    (server,) = report["server"]
    assert server["version"].startswith("sageLLM Gateway "), server
    assert server["gateway_ok"] >= total["requests"] and server["gateway_failed"] == 0
    assert server["gateway_response_start_ms"]["count"] == server["gateway_ok"]


def test_the_gateway_without_a_tokenizer_counts_chunks_and_says_so(
    sagellm_gateway: str, tmp_path: Path
) -> None:
    report, output = _locust(
        tmp_path, "sagellm.py", "--host", sagellm_gateway, "-u", "2", "-t", "4s"
    )
    total = report["total"]
    assert total["completed"] > 0 and total["failed"] == 0, output
    assert total["token_provenance"]["output_estimated"] == total["completed"]
    assert "chunk counts (estimate" in output


def test_streamed_completions_are_refused_before_any_load(
    sagellm_gateway: str, sagellm_model: Path, tmp_path: Path
) -> None:
    """The gateway answers 400 to every streamed /v1/completions: refused before load."""
    payload = {"model": str(sagellm_model), "prompt": PROMPT, "max_tokens": 4, "stream": True}
    body = json.dumps(payload).encode()
    request = urllib.request.Request(
        sagellm_gateway + "/v1/completions", body, {"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 400, "the truth the refusal stands on"
    locustfile = tmp_path / "gateway_completions.py"
    locustfile.write_text(
        "from locust import events\n"
        "from sagellm_users import SageLLMUser, install\n"
        "install(events)\n"
        "class GatewayCompletions(SageLLMUser):\n"
        "    api = 'completions'\n"
    )
    command = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--host", sagellm_gateway,
        "--headless", "-u", "1", "-t", "3s",
    ]  # fmt: skip
    run = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "streamed 'completions' requests would all fail" in run.stderr
