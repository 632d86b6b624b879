"""Choosing the token counter a workload builds its prompts with, and building the workload.

Exact prompt lengths need the tokenizer the server uses. ``auto`` takes the best one at
hand: an in-process model's own tokenizer, else the server's ``/tokenize`` (vLLM and the
mock have it), else the character estimate, which the report then flags.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from sagellm_users._errors import ConfigError
from sagellm_users._workloads.datasets import Conversation, load_dataset
from sagellm_users._workloads.spec import WorkloadSpec
from sagellm_users._workloads.tokens import (
    EstimateCounter,
    TokenCounter,
    TokenizerCounter,
    load_tokenizer,
    server_counter,
)
from sagellm_users._workloads.traffic import Workload

__all__ = ["DatasetCache", "build_workload", "make_counter", "output_counter"]

log = logging.getLogger("sagellm_users")


def check_tokenizer(choice: str) -> None:
    """Load a tokenizer named by path now, before any load: the counter itself is built at
    each test start, where a bad path would only stop the test it had just started."""
    if choice and choice not in ("auto", "server", "estimate"):
        load_tokenizer(choice)


def make_counter(
    choice: str,
    *,
    host: str | None,
    model_dirs: Iterable[str] = (),
    model: str = "",
    api_key: str | None = None,
    headers: dict[str, str] | None = None,
    verify: bool | str = True,
) -> TokenCounter:
    """The counter ``choice`` names (see ``WorkloadSpec.tokenizer``)."""
    if choice == "estimate":
        return EstimateCounter()
    if choice == "server":
        if not host:
            raise ConfigError(
                "tokenizer 'server' needs a server: pass --host, or give a tokenizer path"
            )
        return server_counter(host, model, api_key=api_key, headers=headers, verify=verify)
    if choice != "auto":
        return load_tokenizer(choice)
    local = _model_tokenizer(model_dirs)
    if local is not None:
        return local
    if host:
        try:
            return server_counter(host, model, api_key=api_key, headers=headers, verify=verify)
        except ConfigError as exc:
            log.warning(
                "sagellm: prompt lengths are estimated (4 characters per token), not exact: "
                "%s. Pass --tokenizer PATH for exact lengths",
                exc,
            )
    return EstimateCounter()


def output_counter(
    choice: str, model_dirs: Iterable[str] = (), prompts: TokenCounter | None = None
) -> TokenizerCounter | None:
    """The local tokenizer that counts a reply's tokens when the server sends no usage, or
    None (the counts are then one per decode step, flagged estimate).

    Only a local tokenizer counts here: the workload's, the one ``choice`` (--tokenizer)
    names, or an in-process model's. A server's ``/tokenize`` would be one more request per
    request, sent to the server under test while it is measured. Called at test start: the
    returned counter has already built what counting a reply needs."""
    if isinstance(prompts, TokenizerCounter):
        counter: TokenizerCounter | None = prompts
    elif choice in ("server", "estimate"):
        counter = None
    elif choice and choice != "auto":
        counter = load_tokenizer(choice)
    else:
        counter = _model_tokenizer(model_dirs)
    return None if counter is None else counter.ready_for_replies()


def _model_tokenizer(model_dirs: Iterable[str]) -> TokenizerCounter | None:
    """The tokenizer of the first in-process model directory that holds one."""
    for directory in model_dirs:
        if directory and (Path(directory) / "tokenizer.json").is_file():
            return load_tokenizer(directory)
    return None


class DatasetCache:
    """Reads a dataset file once per process, however often the options are re-validated
    (the web UI's start form does so at every start)."""

    def __init__(self) -> None:
        self._key: tuple[Path, str, float] | None = None
        self._conversations: list[Conversation] = []

    def get(self, spec: WorkloadSpec) -> list[Conversation]:
        if spec.dataset is None:
            return []
        path = spec.dataset
        try:
            mtime = path.stat().st_mtime
        except OSError:
            mtime = -1.0  # load_dataset names the problem
        key = (path, spec.dataset_format, mtime)
        if key != self._key:
            self._conversations = load_dataset(path, spec.dataset_format)
            self._key = key
        return self._conversations


def build_workload(
    spec: WorkloadSpec,
    counter: TokenCounter,
    conversations: Sequence[Conversation],
    process: str,
) -> Workload:
    """The process's workload, with all it asks the server made now, before any load: the
    words server-counted prompts are built from, and the shared prefixes."""
    workload = Workload(spec, counter, conversations, process=process)
    workload.prepare()
    return workload
