"""The summary's workload block: how prompts were counted, and the /tokenize calls that
took before the load (added up over the workers on a master)."""

from __future__ import annotations

from sagellm_users._report.workload import render_workload

EXACT = {
    "name": "chat",
    "input_tokens": "uniform 16-64",
    "token_counter": "server /tokenize at http://h",
    "token_source": "server",
    "prompt_lengths": "exact",
    "prompt_build": "exact, from 254 one-token words (4 checked as first words) measured "
    "with the server's /tokenize",
    "tokenize_calls": 8,
}


def test_server_counted_prompts_say_how_and_how_many_calls() -> None:
    assert render_workload(EXACT).splitlines() == [
        "Workload:",
        "  name: chat",
        "  input tokens: uniform 16-64",
        "  token counter: server /tokenize at http://h",
        "  prompts: exact, from 254 one-token words (4 checked as first words) measured with "
        "the server's /tokenize; 8 /tokenize calls, all before the load",
    ]


def test_a_master_names_its_processes() -> None:
    text = render_workload({**EXACT, "tokenize_calls": 16, "processes": 2})
    assert text.endswith("; 16 /tokenize calls from 2 processes, all before the load")
    assert "processes:" not in text and "tokenize calls:" not in text


def test_estimated_lengths_are_flagged_first() -> None:
    why = "ESTIMATED at 1.83 tokens per word: the server's tokenizer merges words across spaces"
    lines = render_workload(
        {**EXACT, "prompt_lengths": "estimated", "prompt_build": why, "tokenize_calls": 1}
    ).splitlines()
    assert lines[1].startswith("  prompt lengths are ESTIMATED, not exact")
    assert "--tokenizer PATH" in lines[1]
    assert lines[-1] == f"  prompts: {why}; 1 /tokenize call, all before the load"
    estimate = {**EXACT, "token_source": "estimate", "tokenize_calls": 0}
    estimate["prompt_build"] = "estimated at 4 characters per token"
    lines = render_workload(estimate).splitlines()
    assert lines[1].startswith("  prompt lengths are ESTIMATED (4 characters per token)")
    assert lines[-1].endswith("; 0 /tokenize calls, all before the load")


def test_a_dataset_shows_its_calls_only_when_there_were_some() -> None:
    dataset = {"name": "d", "prompts": "dataset a.jsonl (jsonl)", "token_source": "server"}
    assert render_workload({**dataset, "tokenize_calls": 0}).splitlines() == [
        "Workload:",
        "  name: d",
        "  prompts: dataset a.jsonl (jsonl)",
    ]
    text = render_workload({**dataset, "tokenize_calls": 1})
    assert text.endswith("\n  /tokenize calls before the load: 1")
