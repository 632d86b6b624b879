"""``generate_batch``: many requests through one client at bounded concurrency.

The client used alone, outside a load test (the role of the seeds' ``BenchmarkClient``): a
gevent pool runs up to ``max_concurrent`` requests at once on the client's connection pool,
results come back in input order, and a request that fails, times out or hits a bug comes
back as a failed :class:`Completion` instead of raising, so one bad request never loses
the others' results. Memory is the results list and the requests in flight, nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import gevent
from gevent.pool import Pool

from sagellm_users._backends.base import (
    Completion,
    GenerationRequest,
    batch_timeout,
    check_batch_args,
)

__all__ = ["BatchMixin", "run_batch"]


def _one(
    generate: Callable[[GenerationRequest], Completion],
    request: GenerationRequest,
    timeout: float | None,
) -> Completion:
    limit = None if timeout is None else batch_timeout(timeout)
    try:
        with gevent.Timeout(timeout, limit):
            return generate(request)
    except Exception as exc:  # a batch returns failures, it never raises them
        return Completion.failed(exc)


def run_batch(
    generate: Callable[[GenerationRequest], Completion],
    requests: Iterable[GenerationRequest],
    *,
    max_concurrent: int = 8,
    timeout: float | None = None,
) -> list[Completion]:
    """Run ``generate`` over ``requests``; results in input order, failures as results."""
    check_batch_args(max_concurrent, timeout)
    pool = Pool(max_concurrent)
    return list(pool.imap(lambda request: _one(generate, request, timeout), requests))


class BatchMixin:
    """Gives a client with ``generate`` the batch method every backend client offers."""

    __slots__ = ()

    def generate(self, request: GenerationRequest) -> Completion:
        raise NotImplementedError

    def generate_batch(
        self,
        requests: Iterable[GenerationRequest],
        *,
        max_concurrent: int = 8,
        timeout: float | None = None,
    ) -> list[Completion]:
        """Send ``requests``, at most ``max_concurrent`` at a time; each may take at most
        ``timeout`` seconds. Never raises for a failed request: see :attr:`Completion.error`.
        """
        return run_batch(self.generate, requests, max_concurrent=max_concurrent, timeout=timeout)
