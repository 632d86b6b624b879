"""The child's main loop: load the engine, then serve generate / abort messages.

Each request runs as its own asyncio task, so the engine sees the concurrency the users
create; outputs go back through an asyncio write transport, which buffers instead of
blocking, so a busy parent never stalls the engine. When the parent goes away (the read
pipe closes) or says ``shutdown``, every request is cancelled and the engine stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sys
import traceback
from collections.abc import Callable
from time import perf_counter
from typing import Any

from .contract import Adapter, GenerateRequest, StartError
from .wire import LineSplitter, encode

__all__ = ["ADAPTERS", "main"]


def _vllm(model: str, args: dict[str, Any]) -> Adapter:
    from .vllm_adapter import VLLMAdapter  # noqa: PLC0415 - each engine loads only its own

    return VLLMAdapter(model, args)


def _lmdeploy(model: str, args: dict[str, Any]) -> Adapter:
    from .lmdeploy_adapter import LMDeployAdapter  # noqa: PLC0415

    return LMDeployAdapter(model, args)


def _sagellm(model: str, args: dict[str, Any]) -> Adapter:
    from .sagellm_adapter import SageLLMAdapter  # noqa: PLC0415

    return SageLLMAdapter(model, args)


ADAPTERS: dict[str, Callable[[str, dict[str, Any]], Adapter]] = {
    "lmdeploy": _lmdeploy,
    "sagellm": _sagellm,
    "vllm": _vllm,
}


class Host:
    """One engine and the requests in flight on it."""

    def __init__(self, adapter: Adapter, send: Callable[[dict[str, Any]], None]) -> None:
        self.adapter = adapter
        self.send = send
        self.tasks: dict[int, asyncio.Task[None]] = {}

    def handle(self, message: dict[str, Any]) -> bool:
        """Act on one message; False when the host should stop."""
        op = message.get("op")
        if op == "generate":
            request = GenerateRequest.from_message(message)
            task = asyncio.get_running_loop().create_task(self._run(request))
            self.tasks[request.id] = task
            task.add_done_callback(functools.partial(self._forget, request.id))
        elif op == "abort":
            running = self.tasks.get(int(message.get("id", -1)))
            if running is not None:
                running.cancel()
        elif op == "shutdown":
            return False
        return True

    def _forget(self, rid: int, _task: asyncio.Task[None]) -> None:
        self.tasks.pop(rid, None)

    async def _run(self, request: GenerateRequest) -> None:
        send = self.send
        rid = request.id
        try:
            async for output in self.adapter.stream(request):
                send(output.to_message(rid))
        except asyncio.CancelledError:
            return  # the parent aborted it and no longer listens
        except Exception as exc:
            send(
                {
                    "ev": "error",
                    "id": rid,
                    "t": perf_counter(),
                    "class": type(exc).__name__,
                    "message": str(exc) or repr(exc),
                }
            )
            return
        send({"ev": "end", "id": rid, "t": perf_counter()})

    async def cancel_all(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _serve(
    engine: str, model: str, engine_args: dict[str, Any], fd_in: int, fd_out: int
) -> int:
    loop = asyncio.get_running_loop()
    out_file = os.fdopen(fd_out, "wb", buffering=0)
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, out_file)

    def send(message: dict[str, Any]) -> None:
        if not transport.is_closing():
            transport.write(encode(message))

    adapter = ADAPTERS[engine](model, engine_args)
    try:
        await adapter.start()
    except StartError as exc:
        send({"ev": "fatal", "message": str(exc)})
        return 1
    except Exception as exc:
        traceback.print_exc()
        send({"ev": "fatal", "message": f"{type(exc).__name__}: {exc}"})
        return 1
    send(
        {
            "ev": "ready",
            "t": perf_counter(),
            "engine": engine,
            "version": adapter.version,
            "model": adapter.model_name,
            "pid": os.getpid(),
        }
    )
    reader = asyncio.StreamReader(limit=1 << 26)
    in_file = os.fdopen(fd_in, "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), in_file)
    host = Host(adapter, send)
    splitter = LineSplitter()
    try:
        running = True
        while running:
            data = await reader.read(1 << 16)
            if not data:
                break  # the parent is gone
            for line in splitter.feed(data):
                if not host.handle(json.loads(line)):
                    running = False
                    break
    finally:
        await host.cancel_all()
        await adapter.stop()
        transport.close()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sagellm-engine-host")
    parser.add_argument("--engine", choices=sorted(ADAPTERS), required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--engine-args", default="{}", help="JSON object")
    parser.add_argument("--fd-in", type=int, required=True)
    parser.add_argument("--fd-out", type=int, required=True)
    args = parser.parse_args(argv)
    engine_args = json.loads(args.engine_args)
    code = asyncio.run(_serve(args.engine, args.model, engine_args, args.fd_in, args.fd_out))
    sys.stdout.flush()
    return code
