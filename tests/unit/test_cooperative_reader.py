"""The one-syscall read path's waiting, on a gevent socket pair (no network)."""

from __future__ import annotations

from collections.abc import Iterator

import gevent
import gevent.socket
import pytest
from gevent.hub import get_hub

from sagellm_users._backends.cooperative import READ_BUFFER_BYTES, CooperativeReader, Expired


@pytest.fixture
def pair() -> Iterator[tuple[gevent.socket.socket, gevent.socket.socket]]:
    a, b = gevent.socket.socketpair()
    yield a, b
    a.close()
    b.close()


def _reader(sock: gevent.socket.socket) -> CooperativeReader:
    reader = CooperativeReader.for_socket(sock)
    assert reader is not None
    return reader


def test_waits_without_hub_wait(
    pair: tuple[gevent.socket.socket, gevent.socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hub.wait allocates a Waiter per wait, which thousands of open streams keep alive
    for the young GC to scan; the reader binds its greenlet's switch instead."""
    a, b = pair
    reader = _reader(a)
    hub_type = type(get_hub())
    original = hub_type.wait
    waited_on: list[object] = []

    def wait(hub: object, watcher: object) -> None:
        waited_on.append(watcher)
        original(hub, watcher)

    monkeypatch.setattr(hub_type, "wait", wait)
    reading = gevent.spawn(lambda: [reader.recv(64), reader.recv(64)])
    gevent.idle()
    b.sendall(b"first")
    gevent.idle()
    b.sendall(b"second")
    assert reading.get(timeout=10) == [b"first", b"second"]
    assert waited_on  # gevent.idle() went through the patched Hub.wait ...
    assert a._read_event not in waited_on  # ... the reader never did


def test_a_stray_switch_into_the_reader_only_makes_it_wait_again(
    pair: tuple[gevent.socket.socket, gevent.socket.socket],
) -> None:
    a, b = pair
    reader = _reader(a)
    reading = gevent.spawn(reader.recv, 64)
    gevent.idle()  # the reader is waiting for the socket
    get_hub().loop.run_callback(reading.switch)
    gevent.idle()
    assert not reading.ready()
    b.sendall(b"data")
    assert reading.get(timeout=10) == b"data"


def test_expire_wakes_a_waiting_reader(
    pair: tuple[gevent.socket.socket, gevent.socket.socket],
) -> None:
    a, _ = pair
    reader = _reader(a)
    reading = gevent.spawn(reader.recv, 64)
    gevent.idle()
    reader.expire()
    with pytest.raises(Expired):
        reading.get(timeout=10)
    with pytest.raises(Expired):
        reader.recv(64)  # and every later read


def test_readers_on_one_loop_share_a_buffer_but_never_each_others_bytes() -> None:
    """Each read is copied out of the loop's one buffer at its exact size, so a later read
    by another reader cannot change what an earlier one returned."""
    pairs = [gevent.socket.socketpair() for _ in range(3)]
    try:
        readers = [_reader(a) for a, _b in pairs]
        assert len({id(r._buffer.obj) for r in readers}) == 1, "one buffer per event loop"
        reading = [gevent.spawn(lambda r=r: [r.recv(65536), r.recv(65536)]) for r in readers]
        gevent.idle()
        for turn in range(2):
            for index, (_a, b) in enumerate(pairs):
                b.sendall(bytes([65 + index]) * (100 * (index + 1) + turn))
            gevent.idle()
        results = [g.get(timeout=10) for g in reading]
        for index, (first, second) in enumerate(results):
            letter = bytes([65 + index])
            assert first == letter * (100 * (index + 1))
            assert second == letter * (100 * (index + 1) + 1)
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_a_read_returns_no_more_than_the_buffer_holds(
    pair: tuple[gevent.socket.socket, gevent.socket.socket],
) -> None:
    a, b = pair
    reader = _reader(a)
    payload = bytes(range(256)) * 1024  # 256 KiB, more than one read takes
    sending = gevent.spawn(b.sendall, payload)
    received = b""
    while len(received) < len(payload):
        data = gevent.spawn(reader.recv, 1 << 20).get(timeout=10)
        assert 0 < len(data) <= READ_BUFFER_BYTES
        received += data
    sending.get(timeout=10)
    assert received == payload
