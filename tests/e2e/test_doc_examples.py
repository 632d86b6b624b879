"""Every Python example in README.md and docs/ runs, as written, against the mock.

Each ``python`` block is run in its own interpreter with only what a reader would change to
try it here: the example server URL points at the embedded mock, an in-process engine's
model directory at an empty one (the engine is tests/fakes' vLLM), a long run time is cut
to seconds. A locustfile block is run by the real ``locust`` command in
tests/e2e/test_locust_command.py. The measured defect: README's "Every client alone"
example sent ``"model": ""`` and every request got 404, unnoticed, since nothing ran it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sagellm_users.mock_server import MockServerProcess
from tests.e2e.locust_process import ROOT

pytestmark = pytest.mark.e2e

EXAMPLE_URL = "http://127.0.0.1:8000"
EXAMPLE_MODEL_DIR = "/models/Qwen2.5-0.5B-Instruct"
FAKES = str(ROOT / "tests" / "fakes")
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _examples() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for n, code in enumerate(re.findall(r"```python\n(.*?)```", text, re.S)):
            found.append((f"{doc.name}#{n}", code))
    return found


EXAMPLES = _examples()
LOCUSTFILES = [(name, code) for name, code in EXAMPLES if "llm.install(events)" in code]
PROGRAMS = [(name, code) for name, code in EXAMPLES if (name, code) not in LOCUSTFILES]


def test_the_docs_hold_the_examples_this_file_knows() -> None:
    assert len(PROGRAMS) >= 4 and len(LOCUSTFILES) == 1, [name for name, _ in EXAMPLES]


@pytest.mark.parametrize(("name", "code"), PROGRAMS, ids=[name for name, _ in PROGRAMS])
def test_the_example_runs(name: str, code: str, tmp_path: Path) -> None:
    with MockServerProcess(["--ttft-ms", "5", "--tbt-ms", "1"]) as mock:
        assert mock.url is not None
        program = (
            code.replace(EXAMPLE_URL, mock.url)
            .replace(EXAMPLE_MODEL_DIR, str(tmp_path))
            .replace("run_time=60", "run_time=2")
        )
        env = dict(os.environ, PYTHONPATH=FAKES, PYTHONUNBUFFERED="1")
        env.pop("OPENAI_API_KEY", None)
        result = subprocess.run(
            [sys.executable, "-c", program],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert result.stdout.strip(), "the example prints what it promises"
    assert "False" not in result.stdout.split(), f"a request failed:\n{result.stdout}"
