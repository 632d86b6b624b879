"""The engine host's wire and request types, and its promise to need only the stdlib."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sagellm_users import _engine_host as engine_host
from sagellm_users._engine_host.contract import GenerateRequest, Output
from sagellm_users._engine_host.wire import LineSplitter, encode

HOST_DIR = str(Path(engine_host.__file__).parent)


def test_a_message_is_one_line_of_json() -> None:
    data = encode({"ev": "out", "text": "a\nb", "t": 1.5})
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert json.loads(data) == {"ev": "out", "text": "a\nb", "t": 1.5}


@pytest.mark.parametrize("cut", [1, 5, 17, 30])
def test_lines_split_anywhere_come_out_whole(cut: int) -> None:
    stream = encode({"id": 1, "text": "é"}) + encode({"id": 2}) + encode({"id": 3})
    splitter = LineSplitter()
    lines = splitter.feed(stream[:cut]) + splitter.feed(stream[cut:])
    assert [json.loads(line)["id"] for line in lines] == [1, 2, 3]
    assert splitter.pending == b""


def test_a_request_message_round_trips_and_converts_between_apis() -> None:
    message = {"id": 4, "api": "completions", "prompt": "hi", "max_tokens": 3, "extra": {"k": 1}}
    request = GenerateRequest.from_message(message)
    assert (request.id, request.api, request.max_tokens, request.extra) == (
        4,
        "completions",
        3,
        {"k": 1},
    )
    assert request.chat_messages() == [{"role": "user", "content": "hi"}]
    chat = GenerateRequest.from_message(
        {
            "id": 5,
            "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
        }
    )
    assert chat.api == "chat" and chat.prompt_text() == "s\nu"


def test_an_output_message_carries_the_stamp_and_counts() -> None:
    message = Output(2.5, " x", 2, 10, 6, "length").to_message(9)
    assert message == {
        "ev": "out", "id": 9, "t": 2.5, "text": " x", "n": 2, "pt": 10, "ct": 6, "fin": "length",
    }  # fmt: skip


def test_the_host_loads_with_the_standard_library_alone() -> None:
    """The child may run under a venv without sagellm_users or its dependencies: -S -I
    leave only the standard library importable, and every module must still load."""
    code = engine_host.BOOTSTRAP.replace(
        "from sagellm_engine_host.host import main\nsys.exit(main(sys.argv[2:]))\n",
        "import importlib\n"
        "for name in ('wire', 'contract', 'vllm_adapter', 'lmdeploy_adapter', 'sagellm_adapter'):\n"
        "    importlib.import_module('sagellm_engine_host.' + name)\n"
        "host = importlib.import_module('sagellm_engine_host.host')\n"
        "print('loaded', sorted(host.ADAPTERS))\n",
    )
    done = subprocess.run(
        [sys.executable, "-S", "-I", "-c", code, HOST_DIR],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "loaded ['lmdeploy', 'sagellm', 'vllm']" in done.stdout


def test_the_host_refuses_bad_arguments_with_usage() -> None:
    done = subprocess.run(
        [sys.executable, "-c", engine_host.BOOTSTRAP, HOST_DIR, "--engine", "nope"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "invalid choice: 'nope'" in done.stderr
