"""Against a real vLLM: the load test's counts equal vLLM's own counters.

Runs the real ``locust`` command (headless) with VLLMUser and with OpenAIChatUser. With
``--ignore-eos`` every request yields exactly ``--max-tokens``; ``--stop-timeout`` lets
the last requests finish, so nothing is aborted and the counts must match exactly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from sagellm_users._workloads.calibration import MAX_CALLS
from tests.real.conftest import TIER_TIMEOUT_S

pytestmark = [pytest.mark.real_vllm, pytest.mark.timeout(TIER_TIMEOUT_S)]

ROOT = Path(__file__).resolve().parents[2]
MAX_TOKENS = 16


def _locust_report(
    locustfile: str, tmp_path: Path, *extra: str, timeout: float = 180, **env: str
) -> dict[str, Any]:
    """Run the real locust command headless (4 users, 8 s, every request allowed to finish)
    and return its JSON report, once the run itself and its totals are clean: no failure,
    nothing cancelled, exactly --max-tokens per request."""
    report_path = tmp_path / "report.json"
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / locustfile),
        "--headless", "-u", "4", "-r", "4", "-t", "8s", "--stop-timeout", "30",
        "--max-tokens", str(MAX_TOKENS), "--ignore-eos", "--llm-report", str(report_path),
        "--only-summary", *extra,
    ]  # fmt: skip
    run = subprocess.run(
        command,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    report: dict[str, Any] = orjson.loads(report_path.read_bytes())
    total = report["total"]
    assert total["failed"] == 0 and total["cancelled"] == 0 and total["completed"] > 0
    assert total["total_output_tokens"] == MAX_TOKENS * total["completed"]
    return report


@pytest.mark.parametrize("locustfile", ["vllm.py", "chat.py"])
def test_counts_match_vllms_own_counters(vllm_url: str, locustfile: str, tmp_path: Path) -> None:
    report = _locust_report(
        locustfile, tmp_path, "--host", vllm_url, "--server-metrics-interval", "1"
    )
    total = report["total"]
    (server,) = report["server"]
    assert server["version"], "vLLM's /version is in the report"
    assert server["requests"] == total["completed"]
    assert server["generation_tokens"] == total["total_output_tokens"]
    assert server["prompt_tokens"] == total["total_input_tokens"]
    # The client's TTFT adds HTTP and parsing to vLLM's own: close to it, never below it
    # by more than vLLM's bucket resolution.
    client, own = total["ttft_ms"], server["ttft_ms"]
    assert own["count"] == total["completed"]
    assert own["mean"] <= client["mean"] + 1.0
    assert client["mean"] - own["mean"] < 50.0


def test_the_in_process_engine_on_the_same_model(
    vllm_python: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """VLLMLocalUser: vLLM's AsyncLLM in a child process run by the vLLM venv's Python,
    every token stamped by the engine's process; exact token counts, per-token ITL.

    vLLM merges the deltas of a request its reader has not taken yet, so on a busy machine
    an output can carry two tokens: it then says so, and ITL has one gap per output."""
    records = tmp_path / "records.jsonl"
    report = _locust_report(
        "vllm_local.py", tmp_path, "--vllm-model", str(tiny_model),
        "--engine-python", str(vllm_python),
        "--engine-arg", "load_format=dummy", "--engine-arg", "dtype=float32",
        "--engine-arg", "max_model_len=512", "--engine-arg", "served_model_name=tiny",
        "--engine-log", str(tmp_path / "engine.log"), "--llm-records", str(records),
        timeout=600, VLLM_CPU_KVCACHE_SPACE="1", HF_HUB_OFFLINE="1",
    )  # fmt: skip
    total = report["total"]
    ok = [r for r in map(orjson.loads, records.read_bytes().splitlines()) if r["status"] == "ok"]
    assert len(ok) == total["completed"]
    for row in ok:
        assert len(row["tokens_per_chunk"]) == len(row["out_ms"])
        assert sum(row["tokens_per_chunk"]) == MAX_TOKENS
    assert total["itl_ms"]["count"] == sum(len(row["out_ms"]) - 1 for row in ok)
    # Counted by token, not by request: on a loaded machine a tenth of the requests may
    # carry one merged pair, yet nearly every token still comes alone; a reader that took
    # whole responses (or every other delta) would fail this by far.
    alone = sum(n == 1 for row in ok for n in row["tokens_per_chunk"])
    assert alone >= 0.9 * MAX_TOKENS * len(ok), "nearly every token arrives in an output of its own"
    assert total["ttft_ms"]["min"] > 0
    (engine,) = report["engines"]
    assert (engine["engine"], engine["version"], engine["model"]) == ("vllm", "0.32.0", "tiny")
    assert report["by_name"][0]["name"] == "in-process chat"


@pytest.mark.parametrize("counter", ["model", "server"])
def test_prompts_have_the_exact_length_vllm_counts(
    vllm_url: str, tiny_model: Path, counter: str, tmp_path: Path
) -> None:
    """Synthetic prompts built to 20-200 tokens with the model's own tokenizer.json, or
    from words measured with vLLM's /tokenize before the load: vLLM's usage counts each one
    as built (plus the BOS token its tokenizer adds to every prompt, the same for all)."""
    records = tmp_path / "records.jsonl"
    tokenizer = str(tiny_model) if counter == "model" else "server"
    report = _locust_report(
        "completions.py", tmp_path, "--host", vllm_url, "--input-tokens", "20:200",
        "--tokenizer", tokenizer, "--llm-records", str(records),
    )  # fmt: skip
    workload = report["workload"]
    assert workload["token_source"] == ("tokenizer" if counter == "model" else "server")
    assert workload["prompt_lengths"] == "exact", workload
    if counter == "server":  # the words were measured before the load, in a few calls
        assert 0 < workload["tokenize_calls"] <= 1 + MAX_CALLS, workload
    rows = [orjson.loads(line) for line in records.read_bytes().splitlines()]
    built = [row["prompt_tokens"] for row in rows]
    assert all(isinstance(n, int) and 20 <= n <= 200 for n in built)
    assert len(set(built)) > 5
    extra = {row["input_tokens"] - row["prompt_tokens"] for row in rows}
    assert len(extra) == 1 and extra <= {0, 1}, extra
