"""An in-process Locust master with two workers: the master's numbers are every worker's."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import locust.runners
import orjson
import pytest
from locust.rpc import Message
from locust.runners import STATE_STOPPED, WorkerRunner

from sagellm_users import VLLMLocalUser
from sagellm_users._metrics import RequestRecord
from sagellm_users._users import runtime_of
from sagellm_users._users.roles import role_of
from tests.locust_harness import capture_submitted, make_env, start_cluster, wait_until


def test_master_merges_worker_deltas_exactly(mock_url: str, fast_reports: None) -> None:
    args = ["--host", mock_url, "--max-tokens", "8"]
    master_env, master, workers = start_cluster(args, workers=2)
    worker_records = [capture_submitted(worker.environment) for worker in workers]
    master.start(4, spawn_rate=4)
    assert wait_until(lambda: all(len(seen) >= 10 for seen in worker_records))
    assert wait_until(lambda: runtime_of(master_env).collector.total().requests >= 10)
    master.quit()  # workers stop, send a final report, and the master merges it

    for worker in workers:
        worker.quit()
    every = [record for seen in worker_records for record in seen]
    total = runtime_of(master_env).collector.total()
    assert total.requests == len(every), "every request counted once, none lost or doubled"
    assert total.succeeded == sum(r.status == "ok" for r in every)
    assert total.cancelled == sum(r.status == "cancelled" for r in every)
    assert total.total_output_tokens == sum(r.output_tokens for r in every if r.ok)
    assert total.itl.count == sum(len(r.itl) for r in every if r.ok)
    ttfts = sorted(r.ttft for r in every if r.ok and r.ttft is not None)
    assert total.ttft.percentile(0) == ttfts[0] and total.ttft.percentile(100) == ttfts[-1]
    users = {user for user, _name in runtime_of(master_env).collector.by_key}
    assert users == {"OpenAIChatUser"}
    # The timeline holds every worker's requests, each in the second it ended, and every
    # token that arrived (the cancelled requests' too) in the second it arrived.
    timeline = runtime_of(master_env).timeline
    points = [*timeline.points, *timeline.open_points()]
    assert timeline.late == 0 and timeline.late_tokens == 0
    assert sum(p["requests"] for p in points) == sum(r.status != "cancelled" for r in every)
    assert sum(p["completed_output_tokens"] for p in points) == total.total_output_tokens
    assert sum(p["output_tokens"] for p in points) == sum(r.output_tokens for r in every)
    ends = {int(r.wall_done) for r in every if r.status != "cancelled"}
    assert {int(p["t"]) for p in points if p["requests"]} == ends
    assert any(p["users"] == 4 and p["in_flight"] is not None for p in points)
    # Each worker's self-measurements reach the master under its own id, none on the master.
    health = runtime_of(master_env).health
    assert set(health.processes) == {str(w.client_id) for w in workers}
    assert all(h.loop_lag.count > 0 for h in health.processes.values())
    assert sum(h.start_lag.count for h in health.processes.values()) == sum(
        r.start_lag_s is not None for r in every
    )


def test_master_stops_the_test_once_an_slo_is_lost(mock_url: str, fast_reports: None) -> None:
    """--slo-early-stop judges the merged data on the master and quits every worker."""
    args = ["--host", mock_url, "--max-tokens", "4", "--slo", "ttft_max<=1ms", "--slo-early-stop"]
    master_env, master, workers = start_cluster(args, workers=2)
    runtime = runtime_of(master_env)
    master.start(2, spawn_rate=2)
    assert wait_until(lambda: runtime.early_stop is not None)
    assert wait_until(lambda: len(master.greenlet) == 0), "the master quit"
    for worker in workers:
        worker.quit()
    assert runtime.early_stop is not None
    ((slo, reason),) = runtime.early_stop.reasons
    assert slo == "ttft_max<=1ms" and "already" in reason
    master_env.events.quitting.fire(environment=master_env)
    report = runtime.final_report
    assert report is not None and report.early_stop is not None
    assert not report.slos_passed and report.slos[0].lost_early == reason
    assert master_env.process_exit_code == 3


def test_each_worker_runs_its_own_in_process_engine(
    fast_reports: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The master starts no engine and no mock; each worker loads its own before the test;
    the master's report names both workers' engines."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1] / "fakes"))
    args = ["--vllm-model", str(tmp_path), "--max-tokens", "4", "--ignore-eos"]
    args += ["--engine-log", str(tmp_path / "engine.log")]
    master_env = make_env(args, VLLMLocalUser)
    master = master_env.create_master_runner("127.0.0.1", 0)
    master_env.events.init.fire(environment=master_env, runner=master, web_ui=None)
    assert runtime_of(master_env).engines == {} and master_env.host is None
    worker_envs = []
    for _ in range(2):
        env = make_env(args, VLLMLocalUser)
        worker = env.create_worker_runner("127.0.0.1", master.server.port)
        env.events.init.fire(environment=env, runner=worker, web_ui=None)
        assert runtime_of(env).engines["vllm"].alive
        worker_envs.append(env)
    assert wait_until(lambda: master.worker_count == 2)
    master.start(4, spawn_rate=4)
    runtime = runtime_of(master_env)
    assert wait_until(lambda: runtime.collector.total().succeeded >= 20)
    assert wait_until(lambda: len(runtime.remote_engines) == 2)
    master.quit()
    for env in worker_envs:
        assert env.runner is not None
        env.runner.quit()
        env.events.quitting.fire(environment=env)
        assert not runtime_of(env).engines["vllm"].alive
    entries = sorted(runtime.engine_entries().values(), key=lambda e: str(e["process"]))
    assert [e["process"] for e in entries] == ["worker 0", "worker 1"]
    assert {e["engine"] for e in entries} == {"vllm"}
    assert runtime.collector.total().total_output_tokens == 4 * runtime.collector.total().succeeded


def test_a_lost_worker_is_named_and_the_report_is_partial(
    mock_url: str, fast_reports: None, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """A worker that dies without a word (its greenlets killed: no quit message, no more
    heartbeats) is noticed by the master, which keeps what it reported, goes on with the
    other worker and marks the report partial."""
    monkeypatch.setattr(locust.runners, "HEARTBEAT_INTERVAL", 0.2)
    monkeypatch.setattr(locust.runners, "HEARTBEAT_LIVENESS", 2)
    master_env, master, workers = start_cluster(["--host", mock_url, "--max-tokens", "4"])
    master.start(4, spawn_rate=4)
    runtime = runtime_of(master_env)
    assert wait_until(lambda: runtime.collector.total().requests >= 20)

    doomed, survivor = workers
    doomed.user_greenlets.kill(block=True)
    doomed.greenlet.kill(block=True)  # heartbeats and reports stop; the master hears nothing
    before = runtime.collector.total().requests
    watch = runtime.worker_watch
    assert watch is not None
    assert wait_until(lambda: doomed.client_id in watch.lost, timeout=20)
    assert wait_until(lambda: runtime.collector.total().requests >= before + 20)  # goes on
    master.quit()
    survivor.quit()
    master_env.events.quitting.fire(environment=master_env)  # the final report is built

    report = runtime.final_report
    assert report is not None and report.partial
    assert [lost.worker for lost in report.lost_workers] == [doomed.client_id]
    lost = report.lost_workers[0]
    assert lost.last_report_at is not None and lost.last_report_at <= lost.lost_at
    assert report.total.requests >= before  # what the lost worker had reported stays
    assert any(doomed.client_id in m and "stopped sending heartbeats" in m for m in caplog.messages)
    assert orjson.loads(report.model_dump_json())["partial"] is True


def test_workers_stop_cleanly_when_their_master_is_gone(
    mock_url: str,
    fast_reports: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: Any,
) -> None:
    """A master that dies without a word (killed, its host gone) sends no more heartbeats:
    each worker stops its users once Locust's master heartbeat timeout passes, records the
    requests it had in flight as cancelled and closes a whole records file."""
    monkeypatch.setattr(locust.runners, "HEARTBEAT_INTERVAL", 0.1)
    args = ["--host", mock_url, "--max-tokens", "64", "--llm-records", str(tmp_path / "run.jsonl")]
    _master_env, master, workers = start_cluster(args, workers=2)
    submitted: dict[int, list[RequestRecord]] = {}
    for worker in workers:
        submitted[worker.worker_index] = capture_submitted(worker.environment)
    master.start(4, spawn_rate=4)
    assert wait_until(lambda: all(len(seen) >= 5 for seen in submitted.values()))

    # Short only now: a loaded CI machine can stall this one process (master and workers)
    # for more than 1.5 s while the load starts, and the workers would stop too early.
    monkeypatch.setattr(locust.runners, "MASTER_HEARTBEAT_TIMEOUT", 1.5)
    master.greenlet.kill(block=True)  # no quit message, no more heartbeats
    master.server.close(linger=0)

    def stopped(worker: WorkerRunner) -> bool:
        return worker.state == STATE_STOPPED and not worker.user_greenlets

    assert wait_until(lambda: all(stopped(worker) for worker in workers), 20)
    for worker in workers:
        worker.environment.events.quitting.fire(environment=worker.environment)

    assert any("Didn't get heartbeat from master" in m for m in caplog.messages)
    for worker in workers:
        seen = submitted[worker.worker_index]
        path = tmp_path / f"run.worker{worker.worker_index}.jsonl"
        lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
        assert [line["id"] for line in lines] == [r.request_id for r in seen]
        statuses = [line["status"] for line in lines]
        assert set(statuses) == {"ok", "cancelled"}, "in-flight requests are there, cancelled"
        assert runtime_of(worker.environment).in_flight == 0


def _orphaned_worker(args: list[str]) -> tuple[WorkerRunner, int]:
    """A worker running two users whose master died: the worker, and the master's port."""
    _old_env, old, workers = start_cluster(args, workers=1)
    old.start(2, spawn_rate=2)
    (worker,) = workers
    assert wait_until(lambda: len(worker.user_greenlets) == 2)
    port = old.server.port
    old.greenlet.kill(block=True)
    old.server.close(linger=0)
    return worker, port


def test_a_restarted_master_ignores_the_old_runs_workers(
    mock_url: str, fast_reports: None, caplog: Any
) -> None:
    """A master restarted on the same port gets reports from the previous master's workers,
    which run their users until their heartbeat timeout: none of it enters the new run."""
    args = ["--host", mock_url, "--max-tokens", "8"]
    worker, port = _orphaned_worker(args)

    new_env = make_env(args)
    new = new_env.create_master_runner("127.0.0.1", port)
    new_env.events.init.fire(environment=new_env, runner=new, web_ui=None)
    stranger = f"ignoring reports from worker {worker.client_id}, which never joined this master"
    assert wait_until(lambda: any(stranger in m for m in caplog.messages))
    assert runtime_of(new_env).collector.total().requests == 0
    assert sum(stranger in m for m in caplog.messages) == 1, "named once"
    new.quit()
    worker.quit()


def _released(port: int) -> bool:
    """Whether a listening socket can bind ``port`` again (as zmq's, with SO_REUSEADDR)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_a_stranger_hammering_a_gone_mock_is_kept_out_of_locusts_tables_and_told_to_quit(
    fast_reports: None, unused_port: int, caplog: Any
) -> None:
    """The old master died and its embedded mock with it: its worker's users fail at once,
    thousands of connection errors a second, and it reports them to whatever master binds
    the port next. Locust's own request table, error report and exit code stay this run's,
    and the stranger is asked to quit instead of hammering the closed port for Locust's
    master heartbeat timeout (a minute)."""
    closed = f"http://127.0.0.1:{unused_port}"  # nothing listens: the mock that was is gone
    args = ["--host", closed, "--max-tokens", "8", "--skip-host-check"]
    worker, port = _orphaned_worker(args)
    assert wait_until(lambda: _released(port)), "zmq unbinds in its own thread"

    new_env = make_env(args)
    new = new_env.create_master_runner("127.0.0.1", port)
    new_env.events.init.fire(environment=new_env, runner=new, web_ui=None)
    sent: list[dict[str, Any]] = []  # what the stranger reported to the new master
    inner = new.handle_message

    def spy(client_id: str, msg: Message) -> None:
        if msg.type == "stats" and msg.node_id == worker.client_id:
            sent.append(msg.data)
        inner(client_id, msg)

    new.handle_message = spy  # type: ignore[method-assign]
    assert wait_until(lambda: any(data["stats_total"]["num_failures"] for data in sent))
    assert (new_env.stats.total.num_requests, new_env.stats.errors) == (0, {})
    assert wait_until(lambda: worker.state == STATE_STOPPED and not worker.user_greenlets)
    # Its last report (sent as it quits) has no user running: nothing of it was kept either.
    assert wait_until(lambda: any(data["user_count"] == 0 for data in sent))
    assert (new_env.stats.total.num_requests, new_env.stats.errors) == (0, {})
    assert new_env.stats.total.num_failures == 0
    assert runtime_of(new_env).collector.total().requests == 0
    new.quit()


def test_workers_that_joined_before_the_plugin_was_set_up_are_merged(
    mock_url: str, fast_reports: None
) -> None:
    """With --processes (and the web UI) Locust's forked workers join the master before its
    init event sets sagellm up: their reports count like any other worker's."""
    args = ["--host", mock_url, "--max-tokens", "4"]
    master_env, master, workers = start_cluster(args, workers=2, set_up_master_last=True)
    master.start(2, spawn_rate=2)
    runtime = runtime_of(master_env)
    assert wait_until(lambda: runtime.collector.total().requests >= 10)
    master.quit()
    for worker in workers:
        worker.quit()
    watch = runtime.worker_watch
    assert watch is not None
    assert all(watch.accepts(str(worker.client_id)) for worker in workers)


def test_a_masters_second_test_is_its_own_run(mock_url: str, fast_reports: None) -> None:
    """Stop, then start again (as from the web UI): the master's numbers hold the second
    test's requests alone, and the first test's report is kept, with every worker's last
    report of it."""
    master_env, master, workers = start_cluster(["--host", mock_url, "--max-tokens", "8"], 2)
    worker_records = [capture_submitted(worker.environment) for worker in workers]
    runtime = runtime_of(master_env)
    master.start(2, spawn_rate=2)
    assert wait_until(lambda: runtime.collector.total().requests >= 6)
    master.stop()
    assert wait_until(lambda: master.state == STATE_STOPPED)
    first = [record for seen in worker_records for record in seen]
    assert wait_until(lambda: runtime.collector.total().requests == len(first))
    for seen in worker_records:
        seen.clear()
    master.start(2, spawn_rate=2)
    assert wait_until(lambda: runtime.collector.total().succeeded >= 4)
    master.quit()
    for worker in workers:
        worker.quit()
    second = [record for seen in worker_records for record in seen]
    assert runtime.collector.total().requests == len(second), "the second test alone"
    role = role_of(master_env)
    assert role.runs is not None
    [earlier] = role.runs.finished
    assert earlier.number == 1 and earlier.report.total.requests == len(first)
    load = earlier.report.run.load
    assert load is not None and load.processes == 2 and load.run_number == 1
