"""In-process engines: the engine host, its client and the local users, against fake
``vllm``, ``lmdeploy`` and ``sagellm_core`` packages (tests/fakes) whose timing is exact
and known.

The real adapters run unchanged in the child; only the engine library is a stand-in.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from time import perf_counter
from typing import ClassVar

import gevent
import pytest
from locust import User

from sagellm_users import (
    EngineError,
    EngineProcess,
    EngineSpec,
    EngineStartError,
    GenerationRequest,
    LMDeployLocalCompletionsUser,
    LMDeployLocalUser,
    LocalEngineClient,
    ReadTimeout,
    SageLLMLocalUser,
    VLLMLocalCompletionsUser,
    VLLMLocalUser,
)
from sagellm_users._backends import Timeouts
from sagellm_users._metrics import RequestRecord
from tests.locust_harness import LocalRun

FAKES = str(Path(__file__).resolve().parents[1] / "fakes")
TTFT_MS = 30.0
ITL_MS = 5.0
TIMING = {"ttft_ms": TTFT_MS, "itl_ms": ITL_MS}


@pytest.fixture(autouse=True)
def fake_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine child inherits this environment and imports the fakes."""
    monkeypatch.setenv("PYTHONPATH", FAKES)


@pytest.fixture
def model_dir(tmp_path: Path) -> str:
    return str(tmp_path)


def _log(model_dir: str) -> str:
    """The engine's own output goes beside the test's (temporary) model directory."""
    return str(Path(model_dir) / "engine.log")


def _engine(engine: str, model: str, **args: object) -> EngineProcess:
    process = EngineProcess(EngineSpec(engine, model, {**TIMING, **args}, log_path=_log(model)))
    process.start()
    process.wait_ready(30)
    return process


@pytest.fixture(params=["vllm", "lmdeploy"])
def engine(request: pytest.FixtureRequest, model_dir: str) -> Iterator[EngineProcess]:
    process = _engine(request.param, model_dir)
    try:
        yield process
    finally:
        process.stop()


def _request(**kw: object) -> GenerationRequest:
    values: dict[str, object] = {"prompt": "one two three", "max_tokens": 6, "ignore_eos": True}
    values.update(kw)
    return GenerationRequest(**values)  # type: ignore[arg-type]


# -- the client alone ----------------------------------------------------------------------
def test_a_request_streams_every_token_with_the_engines_stamps(engine: EngineProcess) -> None:
    client = LocalEngineClient(engine)
    with client.stream(_request()) as stream:
        chunks = list(stream)
    assert [c.text for c in chunks] == [f" w{k}" for k in range(6)]
    assert [c.n_tokens for c in chunks] == [1] * 6
    assert [c.usage.completion_tokens for c in chunks if c.usage] == [1, 2, 3, 4, 5, 6]
    assert chunks[-1].finish_reason == "length"
    assert stream.t_send is not None and stream.t_done is not None
    # The fake engine's schedule is absolute (token k is due at ttft + k * itl after it
    # starts), so a stamp is never early and a late wake-up does not push later ones: each
    # stamp is judged against its own due time, not against its neighbour, whose lateness on
    # a busy machine would make the gap between them short.
    since_send = [(c.t - stream.t_send) * 1e3 for c in chunks]
    due = [TTFT_MS + k * ITL_MS for k in range(len(chunks))]
    assert all(d - 0.5 <= s < d + 15 for s, d in zip(since_send, due, strict=True)), since_send
    assert stream.t_done >= chunks[-1].t
    assert engine.in_flight == 0


def test_generate_and_batch_keep_order_counts_and_engine_info(engine: EngineProcess) -> None:
    client = LocalEngineClient(engine)
    assert client.backend == f"{engine.spec.engine}-local"
    one = client.generate(_request(api="completions"))
    assert one.ok and one.text == "".join(f" w{k}" for k in range(6)) and one.chunks == 6
    assert one.usage is not None and one.usage.completion_tokens == 6
    assert one.ttft is not None and one.ttft >= TTFT_MS / 1e3
    sizes = [1, 4, 2, 7, 3]
    results = client.generate_batch([_request(max_tokens=n) for n in sizes], max_concurrent=5)
    assert [r.usage.completion_tokens for r in results if r.usage] == sizes
    health = client.health_check()
    assert health.healthy and health.version == "0.0.0+fake"
    assert health.models == [engine.spec.model] and health.pool["in_flight"] == 0


def test_without_ignore_eos_the_engine_stops_early_and_min_tokens_reaches_it(
    engine: EngineProcess,
) -> None:
    client = LocalEngineClient(engine)
    early = client.generate(_request(ignore_eos=False, max_tokens=10))
    held = client.generate(_request(ignore_eos=False, max_tokens=10, min_tokens=4))
    assert early.usage is not None and early.usage.completion_tokens == 1
    assert held.usage is not None and held.usage.completion_tokens == 4
    assert early.finish_reason == held.finish_reason == "stop"


def test_chat_goes_through_the_template_and_completions_do_not(engine: EngineProcess) -> None:
    client = LocalEngineClient(engine)
    chat = client.generate(_request(messages=[{"role": "user", "content": "one two three"}]))
    raw = client.generate(_request(api="completions"))
    assert chat.usage is not None and raw.usage is not None
    # "<user> one two three <assistant>" against "one two three" (vLLM adds a BOS token to
    # a raw prompt; the chat template already holds the special tokens it wants)
    bos = 1 if engine.spec.engine == "vllm" else 0
    assert (chat.usage.prompt_tokens, raw.usage.prompt_tokens) == (5, 3 + bos)


def test_no_stream_yields_one_answer_at_the_end(engine: EngineProcess) -> None:
    client = LocalEngineClient(engine)
    with client.stream(_request(stream=False)) as stream:
        chunks = list(stream)
    assert len(chunks) == 1 and chunks[0].text == "".join(f" w{k}" for k in range(6))
    assert chunks[0].usage is not None and chunks[0].usage.completion_tokens == 6
    assert stream.t_send is not None
    assert chunks[0].t - stream.t_send >= (TTFT_MS + 5 * ITL_MS) / 1e3


def test_a_closed_stream_is_aborted_and_the_engine_serves_on(engine: EngineProcess) -> None:
    client = LocalEngineClient(engine)
    stream = client.stream(_request(max_tokens=200))
    chunks = iter(stream)
    assert next(chunks).text == " w0" and engine.in_flight == 1
    stream.close()
    assert engine.in_flight == 0
    assert client.generate(_request(max_tokens=2)).chunks == 2


def test_an_engine_that_stays_silent_past_the_read_timeout_fails_the_request(
    model_dir: str,
) -> None:
    process = _engine("vllm", model_dir, ttft_ms=5000)
    try:
        client = LocalEngineClient(process, Timeouts(read=0.2))
        started = perf_counter()
        with pytest.raises(ReadTimeout, match=r"the engine sent nothing for 0\.2 s"):
            client.generate(_request())
        assert perf_counter() - started < 2
        assert process.in_flight == 0
    finally:
        process.stop()


def test_a_request_the_engine_refuses_is_an_engine_error(engine: EngineProcess) -> None:
    client = LocalEngineClient(engine)
    with pytest.raises(EngineError, match=r"TypeError.*no_such_param"):
        client.generate(_request(extra_body={"no_such_param": 1}))
    assert client.generate(_request(max_tokens=1)).ok  # the engine serves on


def test_an_lmdeploy_error_finish_is_an_engine_error(model_dir: str) -> None:
    process = _engine("lmdeploy", model_dir, fail_after=2, backend="pytorch")
    try:
        client = LocalEngineClient(process)
        with pytest.raises(EngineError, match="LMDeploy ended the request with an error"):
            client.generate(_request())
    finally:
        process.stop()


def test_an_engine_process_that_dies_fails_its_requests_with_its_log(
    engine: EngineProcess,
) -> None:
    client = LocalEngineClient(engine)
    stream = client.stream(_request(max_tokens=500))
    chunks = iter(stream)
    assert next(chunks).text == " w0"
    assert engine.info is not None
    os.kill(engine.info.pid, signal.SIGKILL)
    with pytest.raises(EngineError, match=r"engine process ended \(exit code -9\)"):
        list(chunks)
    with pytest.raises(EngineError, match="engine process ended"):
        client.generate(_request())
    assert not client.health_check().healthy


@pytest.mark.parametrize(
    ("engine_name", "args", "message"),
    [
        ("vllm", {"no_such_arg": 1}, "--engine-arg: .*no_such_arg.*AsyncEngineArgs"),
        ("vllm", {"fail_start": "out of memory"}, "RuntimeError: out of memory"),
        ("lmdeploy", {"backend": "tensorrt"}, "backend=tensorrt: LMDeploy has the turbomind"),
        ("lmdeploy", {"no_such_arg": 1}, "--engine-arg: .*no_such_arg.*TurbomindEngineConfig"),
    ],
)
def test_an_engine_that_cannot_start_says_why(
    model_dir: str, engine_name: str, args: dict[str, object], message: str
) -> None:
    process = EngineProcess(EngineSpec(engine_name, model_dir, args, log_path=_log(model_dir)))
    process.start()
    with pytest.raises(EngineStartError, match=message):
        process.wait_ready(30)
    process.stop()


def test_an_engine_library_missing_from_the_interpreter_is_named(
    model_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONPATH")
    process = EngineProcess(EngineSpec("lmdeploy", model_dir, log_path=_log(model_dir)))
    process.start()
    with pytest.raises(EngineStartError, match=r"LMDeploy is not importable.*--engine-python"):
        process.wait_ready(30)
    process.stop()


def test_an_interpreter_that_does_not_exist_is_named(model_dir: str) -> None:
    spec = EngineSpec("vllm", model_dir, python="/nonexistent/python", log_path=_log(model_dir))
    process = EngineProcess(spec)
    with pytest.raises(EngineStartError, match="cannot run the engine's interpreter"):
        process.start()


# -- the users ----------------------------------------------------------------------------
def _local_run(user: type[User], model: str, *extra: str) -> LocalRun:
    flag = "--vllm-model" if "VLLM" in user.__name__ else "--lmdeploy-model"
    args = [flag, model, "--max-tokens", "8", "--ignore-eos", "--engine-log", _log(model), *extra]
    for key, value in TIMING.items():
        args += ["--engine-arg", f"{key}={value}"]
    return LocalRun([user], args)


@pytest.mark.parametrize(
    ("user", "name"),
    [
        (VLLMLocalUser, "in-process chat"),
        (VLLMLocalCompletionsUser, "in-process completions"),
        (LMDeployLocalUser, "in-process chat"),
        (LMDeployLocalCompletionsUser, "in-process completions"),
    ],
)
def test_each_local_user_measures_at_the_engine(
    model_dir: str, user: type[User], name: str
) -> None:
    run = _local_run(user, model_dir)
    assert run.environment.host is None  # no embedded mock: nothing talks HTTP
    run.run_until(requests=12, users=3)
    ok = [r for r in run.records if r.ok]
    engine = "vllm" if "VLLM" in user.__name__ else "lmdeploy"
    assert len(ok) >= 12 and not [r for r in run.records if r.status == "error"]
    assert {r.backend for r in ok} == {f"{engine}-local"} and {r.name for r in ok} == {name}
    assert {r.model for r in ok} == {model_dir}
    assert all(r.output_tokens == 8 and r.output_tokens_source == "usage" for r in ok)
    assert all(r.tokens_per_chunk == [1] * 8 for r in ok)
    assert all(r.ttft is not None and TTFT_MS / 1e3 <= r.ttft < (TTFT_MS + 20) / 1e3 for r in ok)
    report = run.runtime.final_report
    assert report is not None and len(report.engines) == 1
    assert report.engines[0].engine == engine and report.engines[0].process == "local"
    assert not run.runtime.engines[engine].alive  # stopped when Locust quit


def test_a_local_user_without_its_model_option_stops_before_load(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        LocalRun([VLLMLocalUser], ["--max-tokens", "8"])
    assert exit_info.value.code == 1
    assert "VLLMLocalUser run vllm in-process: pass --vllm-model" in capsys.readouterr().err


def test_an_engine_that_fails_to_load_stops_the_run_with_its_reason(
    model_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        LocalRun(
            [VLLMLocalUser],
            [
                "--vllm-model",
                model_dir,
                "--engine-arg",
                "fail_start=boom",
                "--engine-log",
                _log(model_dir),
            ],
        )
    assert "the vllm engine did not start: RuntimeError: boom" in capsys.readouterr().err


# -- isolation under concurrency -----------------------------------------------------------
class CountingVLLMUser(VLLMLocalUser):
    """Counts finished requests per user instance, to show that none starves."""

    done: ClassVar[dict[int, int]] = {}

    def send(self, request: GenerationRequest, name: str | None = None) -> RequestRecord:
        record = super().send(request, name)
        self.done[id(self)] = self.done.get(id(self), 0) + 1
        return record


def test_many_users_share_one_engine_and_none_starves(model_dir: str) -> None:
    """32 users on one engine: every user progresses, the event loop stays responsive, and
    every TTFT and ITL is the engine's (30 ms, 5 ms) within scheduling noise."""
    CountingVLLMUser.done.clear()
    run = _local_run(CountingVLLMUser, model_dir, "--max-tokens", "16")
    lags: list[float] = []

    def heartbeat() -> None:
        while True:
            before = perf_counter()
            gevent.sleep(0.01)
            lags.append(perf_counter() - before - 0.01)

    beat = gevent.spawn(heartbeat)
    try:
        run.run_until(requests=320, users=32, timeout=90)
    finally:
        beat.kill()
    ok = [r for r in run.records if r.ok]
    assert len(ok) >= 320
    assert len(CountingVLLMUser.done) == 32 and min(CountingVLLMUser.done.values()) >= 5
    assert max(lags) < 0.1, f"event loop stalled {max(lags) * 1e3:.0f} ms"
    ttfts = sorted(r.ttft for r in ok if r.ttft is not None)
    assert ttfts[0] >= TTFT_MS / 1e3 and ttfts[len(ttfts) // 2] < (TTFT_MS + 10) / 1e3
    gaps = [g for r in ok for g in r.itl]
    assert len(gaps) == 15 * len(ok)
    assert sorted(gaps)[len(gaps) // 2] == pytest.approx(ITL_MS / 1e3, abs=0.002)


def test_a_stalled_load_generator_does_not_bend_the_engines_timestamps(model_dir: str) -> None:
    """The worker's event loop is blocked for 150 ms at a time while tokens stream: a
    client that stamped tokens on reading would see 150 ms gaps; the engine's stamps
    still show its 5 ms."""
    run = _local_run(VLLMLocalUser, model_dir, "--max-tokens", "40")
    stalls: list[float] = []

    def hog() -> None:
        while True:
            gevent.sleep(0.05)
            started = perf_counter()
            while perf_counter() - started < 0.15:
                pass  # holds the event loop, as a CPU-bound locustfile would
            stalls.append(perf_counter() - started)

    hogger = gevent.spawn(hog)
    try:
        run.run_until(requests=8, users=4, timeout=60)
    finally:
        hogger.kill()
    ok = [r for r in run.records if r.ok]
    assert len(stalls) >= 3 and min(stalls) >= 0.15
    gaps = [g for r in ok for g in r.itl]
    assert len(gaps) == 39 * len(ok)
    assert max(gaps) < 0.05, f"largest ITL {max(gaps) * 1e3:.0f} ms"


# -- sageLLM's engine ----------------------------------------------------------------------
@pytest.fixture
def sagellm_engine(model_dir: str) -> Iterator[EngineProcess]:
    process = _engine("sagellm", model_dir, backend_type="cpu")
    try:
        yield process
    finally:
        process.stop()


def test_sagellm_streams_one_delta_per_token_with_the_engines_stamps(
    sagellm_engine: EngineProcess,
) -> None:
    client = LocalEngineClient(sagellm_engine)
    with client.stream(_request(ignore_eos=False)) as stream:
        chunks = list(stream)
    out = [c for c in chunks if c.has_output]
    assert [c.text for c in out] == [f" w{k}" for k in range(6)]
    assert [c.usage.completion_tokens for c in out if c.usage] == [1, 2, 3, 4, 5, 6]
    assert chunks[-1].finish_reason == "length" and not chunks[-1].has_output
    assert stream.t_send is not None
    assert TTFT_MS <= (out[0].t - stream.t_send) * 1e3 < TTFT_MS + 15
    chat = client.generate(
        _request(ignore_eos=False, messages=[{"role": "user", "content": "a b"}])
    )
    assert chat.usage is not None and chat.usage.prompt_tokens == 4  # "<user> a b <assistant>"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"ignore_eos": True}, "has no ignore_eos and no min_tokens"),
        ({"ignore_eos": False, "min_tokens": 3}, "has no ignore_eos and no min_tokens"),
        ({"ignore_eos": False, "extra_body": {"top_k": 5}}, "does not take 'top_k'"),
    ],
)
def test_sagellm_refuses_what_its_engine_cannot_do(
    sagellm_engine: EngineProcess, kw: dict[str, object], message: str
) -> None:
    with pytest.raises(EngineError, match=message):
        LocalEngineClient(sagellm_engine).generate(_request(**kw))


def test_sagellm_error_end_is_an_engine_error(model_dir: str) -> None:
    process = _engine("sagellm", model_dir, fail_after=2)
    try:
        with pytest.raises(EngineError, match="sageLLM ended the request with an error: boom"):
            LocalEngineClient(process).generate(_request(ignore_eos=False))
    finally:
        process.stop()


def test_sagellm_local_user_runs_and_refuses_ignore_eos_before_load(
    model_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--sagellm-model", model_dir, "--max-tokens", "8", "--engine-log", _log(model_dir)]
    for key, value in TIMING.items():
        args += ["--engine-arg", f"{key}={value}"]
    run = LocalRun([SageLLMLocalUser], args)
    run.run_until(requests=6, users=2)
    ok = [r for r in run.records if r.ok]
    assert len(ok) >= 6 and {r.backend for r in ok} == {"sagellm-local"}
    assert all(r.output_tokens == 8 and r.tokens_per_chunk == [1] * 8 for r in ok)
    with pytest.raises(SystemExit):
        LocalRun([SageLLMLocalUser], [*args, "--ignore-eos"])
    assert "sageLLM's engine has neither" in capsys.readouterr().err
