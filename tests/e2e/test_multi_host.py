"""Master, two workers and the server on four hosts of their own: Linux network namespaces.

Each process runs in its own namespace with its own loopback and one veth link to a bridge
(a fifth namespace, the switch), at an address the test assigns, so no process can reach
another over 127.0.0.1: the workers find the master and the server only by the addresses
they are given, as on separate machines. Made with iproute2 (``ip netns``) as root, which
CI is; skipped with the reason where namespaces cannot be made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from tests.e2e.locust_process import ROOT, locust_env

pytestmark = pytest.mark.e2e

CHAT = str(ROOT / "locustfiles" / "chat.py")
SUBNET = "10.77.41"
HOSTS = {"master": 1, "worker1": 2, "worker2": 3, "server": 4}


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)


@dataclass
class Network:
    """The namespaces (by host name) and their addresses; removed with :meth:`close`."""

    tag: str
    names: dict[str, str] = field(default_factory=dict)

    def address(self, host: str) -> str:
        return f"{SUBNET}.{HOSTS[host]}"

    def run(self, host: str, command: list[str], log: Path | None = None) -> subprocess.Popen[str]:
        """Start ``command`` on ``host`` (in its namespace), stdout and stderr merged: into
        ``log``, else a pipe the caller reads to the end."""
        out = subprocess.PIPE if log is None else log.open("w")
        return subprocess.Popen(
            ["ip", "netns", "exec", self.names[host], *command],
            cwd=ROOT, env=locust_env(), stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip

    def close(self) -> None:
        for name in self.names.values():
            _ip("netns", "del", name)  # its veth ends go with it


def _make(tag: str) -> Network:
    net = Network(tag)
    switch = f"sg{tag}sw"
    checked = [
        ("netns", "add", switch),
        ("-n", switch, "link", "add", "br0", "type", "bridge"),
        ("-n", switch, "link", "set", "br0", "up"),
    ]
    net.names["switch"] = switch
    for host, n in HOSTS.items():
        ns, here, there = f"sg{tag}{host}", f"sg{tag}h{n}", f"sg{tag}s{n}"
        net.names[host] = ns
        checked += [
            ("netns", "add", ns),
            ("link", "add", here, "type", "veth", "peer", "name", there),
            ("link", "set", here, "netns", ns),
            ("link", "set", there, "netns", switch),
            ("-n", switch, "link", "set", there, "master", "br0", "up"),
            ("-n", ns, "addr", "add", f"{SUBNET}.{n}/24", "dev", here),
            ("-n", ns, "link", "set", here, "up"),
            ("-n", ns, "link", "set", "lo", "up"),
        ]
    for args in checked:
        result = _ip(*args)
        if result.returncode != 0:
            net.close()
            raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return net


@pytest.fixture
def network() -> Iterator[Network]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2's ip command")
    try:
        net = _make(str(os.getpid() % 10_000))
    except RuntimeError as exc:
        pytest.skip(f"network namespaces cannot be made here: {exc}")
    try:
        yield net
    finally:
        net.close()


def _ready_url(process: subprocess.Popen[str]) -> str:
    """The mock's URL from its ready line; the rest of its output is read (and dropped) as
    it comes, so it never waits on a full pipe."""
    stdout = process.stdout
    assert stdout is not None
    for line in stdout:
        if line.startswith('{"event": "ready"'):
            threading.Thread(target=lambda: [None for _ in stdout], daemon=True).start()
            return str(orjson.loads(line)["url"])
    raise AssertionError("the mock server ended before it was ready")


def test_master_two_workers_and_the_server_each_on_a_host_of_their_own(
    network: Network, tmp_path: Path
) -> None:
    server = network.run(
        "server",
        [sys.executable, "-m", "sagellm_users.mock_server", "--host",
         network.address("server"), "--port", "0", "--ttft-ms", "20", "--tbt-ms", "2"],
    )  # fmt: skip
    processes = [server]
    try:
        url = _ready_url(server)
        assert url.startswith(f"http://{network.address('server')}:")
        # 5557 is free: the master's namespace is a network stack of its own.
        master = network.run(
            "master",
            [sys.executable, "-m", "locust", "-f", CHAT, "--master", "--headless",
             "--master-bind-host", network.address("master"), "--master-bind-port", "5557",
             "--expect-workers", "2", "-u", "4", "-r", "4", "-t", "6s", "--host", url,
             "--max-tokens", "8", "--llm-report", str(tmp_path / "run.json")],
        )  # fmt: skip
        processes.append(master)
        for worker in ("worker1", "worker2"):
            command = [
                sys.executable, "-m", "locust", "-f", CHAT, "--worker",
                "--master-host", network.address("master"), "--master-port", "5557",
                "--llm-records", str(tmp_path / "run.jsonl"),
            ]  # fmt: skip
            processes.append(network.run(worker, command, log=tmp_path / f"{worker}.log"))
        output, _ = master.communicate(timeout=120)
        logs = "".join(p.read_text() for p in sorted(tmp_path.glob("worker*.log")))
        assert master.returncode == 0, output + logs
        for process in processes[2:]:
            process.wait(timeout=60)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    report = orjson.loads((tmp_path / "run.json").read_bytes())
    files = sorted(tmp_path.glob("run.worker*.jsonl"))
    assert [f.name for f in files] == ["run.worker0.jsonl", "run.worker1.jsonl"]
    rows = [[orjson.loads(line) for line in f.read_bytes().splitlines()] for f in files]
    assert all(any(r["status"] == "ok" for r in worker_rows) for worker_rows in rows), (
        "both workers, each on its own host, reached the server"
    )
    ok = sum(r["status"] == "ok" for worker_rows in rows for r in worker_rows)
    assert report["total"]["completed"] == ok > 0, "the master merged every worker's requests"
    assert report["total"]["failed"] == 0
    assert len(report["client"]["by_process"]) == 2, "each worker measured itself"
