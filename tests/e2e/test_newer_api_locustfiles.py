"""``locustfiles/responses.py`` and ``locustfiles/messages.py`` with the real ``locust``
command against the embedded mock, as a user runs them."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.e2e.locust_process import ROOT, run_locust

pytestmark = pytest.mark.e2e

RUN = ["--headless", "-u", "2", "-r", "2", "-t", "3s", "--max-tokens", "8"]


def _records(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.mark.parametrize(
    ("locustfile", "path", "extra"),
    [("responses.py", "/v1/responses", ["--ignore-eos"]), ("messages.py", "/v1/messages", [])],
)
def test_each_locustfile_runs_against_the_embedded_mock(
    locustfile: str, path: str, extra: list[str], tmp_path: Path
) -> None:
    records = tmp_path / "records.jsonl"
    result = run_locust(
        "-f", str(ROOT / "locustfiles" / locustfile), *RUN, *extra,
        "--llm-records", str(records),
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert path in result.stdout and "TTFT (ms)" in result.stdout
    ok = [line for line in _records(records) if line["status"] == "ok"]
    assert ok and all(line["name"] == path for line in ok)
    if extra:  # --ignore-eos: exactly what was asked, from the usage of response.completed
        assert all(line["output_tokens"] == 8 for line in ok)
    assert not [line for line in _records(records) if line["status"] == "error"]


def test_ignore_eos_on_the_messages_api_stops_the_command() -> None:
    result = run_locust(
        "-f", str(ROOT / "locustfiles" / "messages.py"), *RUN, "--ignore-eos", timeout=60
    )  # fmt: skip
    assert result.returncode == 1
    assert "--ignore-eos: AnthropicMessagesUser sends the 'messages' API" in result.stderr
