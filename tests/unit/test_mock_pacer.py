"""The mock's shared token clock: never early, in deadline order, robust to bad callbacks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from sagellm_users.mock_server.pacer import RESOLUTION_S, Pacer


def run(body: Callable[[asyncio.AbstractEventLoop, Pacer], asyncio.Future[None]]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        pacer = Pacer(loop)
        try:
            await asyncio.wait_for(body(loop, pacer), 5)
        finally:
            pacer.close()

    asyncio.run(main())


def test_callbacks_run_in_deadline_order_and_never_early() -> None:
    fired: list[tuple[float, float]] = []

    def body(loop: asyncio.AbstractEventLoop, pacer: Pacer) -> asyncio.Future[None]:
        done: asyncio.Future[None] = loop.create_future()
        start = loop.time()
        deadlines = [start + d for d in (0.012, 0.003, 0.0031, 0.020, 0.001, 0.0)]

        def make(when: float) -> Callable[[], None]:
            def callback() -> None:
                fired.append((when, loop.time()))
                if len(fired) == len(deadlines):
                    done.set_result(None)

            return callback

        for when in deadlines:
            pacer.call_at(when, make(when))
        return done

    run(body)
    assert [w for w, _ in fired] == sorted(w for w, _ in fired)
    assert all(t >= w for w, t in fired)
    # Lateness is the epoll millisecond plus at most one tick (generous bound for CI).
    assert max(t - w for w, t in fired) < 0.05


def test_a_zero_gap_chain_lets_io_run_between_steps() -> None:
    """A callback that reschedules itself in the past runs again only after the loop polls."""
    steps: list[int] = []
    soon: list[int] = []

    def body(loop: asyncio.AbstractEventLoop, pacer: Pacer) -> asyncio.Future[None]:
        done: asyncio.Future[None] = loop.create_future()
        when = loop.time()

        def step() -> None:
            steps.append(len(soon))
            if len(steps) == 3:
                done.set_result(None)
                return
            loop.call_soon(soon.append, len(steps))
            pacer.call_at(when, step)

        pacer.call_at(when, step)
        return done

    run(body)
    # Each step saw the call_soon queued by the step before it already run.
    assert steps == [0, 1, 2]


def test_a_failing_callback_does_not_stop_the_rest_of_its_tick() -> None:
    ran: list[str] = []
    errors: list[dict[str, object]] = []

    def body(loop: asyncio.AbstractEventLoop, pacer: Pacer) -> asyncio.Future[None]:
        done: asyncio.Future[None] = loop.create_future()
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        when = loop.time() + 0.002

        def broken() -> None:
            raise RuntimeError("boom")

        def after() -> None:
            ran.append("after")
            done.set_result(None)

        pacer.call_at(when, broken)
        pacer.call_at(when, after)
        return done

    run(body)
    assert ran == ["after"]
    assert len(errors) == 1 and isinstance(errors[0]["exception"], RuntimeError)


def test_an_earlier_deadline_rearms_the_timer() -> None:
    order: list[str] = []

    def body(loop: asyncio.AbstractEventLoop, pacer: Pacer) -> asyncio.Future[None]:
        done: asyncio.Future[None] = loop.create_future()
        now = loop.time()

        def early() -> None:
            order.append("early")
            done.set_result(None)

        pacer.call_at(now + 1.0, lambda: order.append("late"))
        pacer.call_at(now + 0.001, early)
        return done

    run(body)
    assert order == ["early"]


def test_pending_counts_callbacks_and_close_drops_them() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        pacer = Pacer(loop)
        now = loop.time()
        for i in range(5):
            pacer.call_at(now + 10 + i * RESOLUTION_S / 3, lambda: None)
        assert pacer.pending == 5
        pacer.close()
        assert pacer.pending == 0

    asyncio.run(main())


@pytest.mark.parametrize("offset", [0.0, 1e-9, RESOLUTION_S / 2, RESOLUTION_S])
def test_a_deadline_maps_to_the_first_tick_at_or_after_it(offset: float) -> None:
    fired: list[float] = []

    def body(loop: asyncio.AbstractEventLoop, pacer: Pacer) -> asyncio.Future[None]:
        done: asyncio.Future[None] = loop.create_future()
        when = loop.time() + 0.002 + offset

        def callback() -> None:
            fired.append(loop.time() - when)
            done.set_result(None)

        pacer.call_at(when, callback)
        return done

    run(body)
    assert fired and fired[0] >= 0.0
