"""Scrape each target server's ``/metrics`` while a test runs, for the server-side view.

Runs where the report is built (the master, or a local runner): at test start it reads
each host's ``/version`` and a baseline scrape, then scrapes every
``--server-metrics-interval`` seconds and once more at test stop, so the report's server
counters cover the test. A host without vLLM metrics (or without ``/metrics``) is dropped
with one warning and the test goes on; a scrape that fails mid-test is counted and retried
at the next interval. The hosts are ``--host`` and every user class's own ``host``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import gevent

from sagellm_users._backends.openai import OpenAIClient
from sagellm_users._backends.vllm import scrape_server_metrics
from sagellm_users._errors import FeatureUnavailable, LLMError
from sagellm_users._metrics.server_series import ServerSeries
from sagellm_users._users.service import Service

if TYPE_CHECKING:
    from sagellm_users._users.runtime import LLMRuntime

__all__ = ["ServerWatch", "target_hosts"]

log = logging.getLogger(__name__)


def target_hosts(runtime: LLMRuntime) -> dict[str, str]:
    """``--host`` and the user classes' own hosts, each once, in that order, with the
    backend whose dialect reads its version: sageLLM's gateway where a sageLLM user sends
    to it, else vLLM's (``/version``; a server without it has no version)."""
    environment = runtime.environment
    hosts: dict[str, str] = {}
    for cls in environment.user_classes:
        host = getattr(cls, "host", None) or environment.host or ""
        backend = getattr(cls, "backend", None) or runtime.options.backend
        if host and hosts.get(host) != "sagellm":
            hosts[host] = "sagellm" if backend == "sagellm" else "vllm"
    if environment.host:
        hosts.setdefault(environment.host, "vllm")
    first = environment.host
    return {first: hosts.pop(first), **hosts} if first else hosts


class ServerWatch(Service):
    """The scraper of one environment; :meth:`series` feeds the report."""

    def __init__(self, runtime: LLMRuntime) -> None:
        self.runtime = runtime
        self._series: dict[str, ServerSeries] = {}
        self._clients: dict[str, OpenAIClient] = {}
        self._loop: gevent.Greenlet | None = None

    def start(self) -> None:
        self.stop()
        self._series = {}
        interval = self.runtime.options.server_metrics_interval
        if not interval:
            return
        for host, backend in target_hosts(self.runtime).items():
            client = self.runtime.create_client(backend, host)
            assert isinstance(client, OpenAIClient)
            series = ServerSeries(host)
            try:
                series.add(scrape_server_metrics(client))
            except LLMError as exc:
                client.close()
                reason = "" if isinstance(exc, FeatureUnavailable) else "cannot scrape: "
                log.warning("Server metrics from %s left out: %s%s", host, reason, exc)
                continue
            series.version = client.version()
            self._series[host] = series
            self._clients[host] = client
        if self._clients:
            self._loop = gevent.spawn(self._run, interval)

    def _run(self, interval: float) -> None:
        while True:
            gevent.sleep(interval)
            self.scrape()

    def scrape(self) -> None:
        for host, client in list(self._clients.items()):
            try:
                self._series[host].add(scrape_server_metrics(client))
            except LLMError as exc:
                self._series[host].failed(str(exc))

    def stop(self) -> None:
        """The test ended: one last scrape, so the counters include its last requests."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        loop.kill()
        self.scrape()
        for client in self._clients.values():
            client.close()
        self._clients = {}

    def reset(self) -> None:
        """Locust's "reset stats": the server view restarts from the latest scrape."""
        for series in self._series.values():
            series.reset()

    def series(self) -> list[ServerSeries]:
        return list(self._series.values())
