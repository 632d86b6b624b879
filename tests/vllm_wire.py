"""Stream events exactly as vLLM 0.32's OpenAI server sends them, captured from a real one.

Captured with the tiny random Llama of tests/real (EOS id 1) and ``min_tokens: 4``,
``logit_bias: {"1": 100}``, so generation stops on EOS after four visible tokens: the last
step is a chunk with empty text and ``finish_reason: "stop"``, and ``usage`` counts it (5).
:func:`chat_script` builds longer streams of the same shape on an exact schedule.
"""

from __future__ import annotations

import orjson

from tests.replay_server import Script

__all__ = ["CHAT_EOS", "COMPLETIONS_EOS", "chat_script", "completions_script", "reasoning_script"]

COMPLETIONS_EOS: tuple[bytes, ...] = (
    b'{"id":"cmpl-887776c104f3c696","object":"text_completion","created":1796479486,"model":"tiny","choices":[{"index":0,"text":"Pure","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}',
    b'{"id":"cmpl-887776c104f3c696","object":"text_completion","created":1796479486,"model":"tiny","choices":[{"index":0,"text":"RED","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}',
    b'{"id":"cmpl-887776c104f3c696","object":"text_completion","created":1796479486,"model":"tiny","choices":[{"index":0,"text":" she","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}',
    b'{"id":"cmpl-887776c104f3c696","object":"text_completion","created":1796479486,"model":"tiny","choices":[{"index":0,"text":" est","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}',
    b'{"id":"cmpl-887776c104f3c696","object":"text_completion","created":1796479486,"model":"tiny","choices":[{"index":0,"text":"","logprobs":null,"finish_reason":"stop","stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}',
    b'{"id":"cmpl-887776c104f3c696","object":"text_completion","created":1796479486,"model":"tiny","choices":[],"usage":{"prompt_tokens":2,"total_tokens":7,"completion_tokens":5},"system_fingerprint":"vllm-0.32.0-a98d75e9"}',
)  # fmt: skip

CHAT_EOS: tuple[bytes, ...] = (
    b'{"id":"chatcmpl-92e28c85fa979b1a","object":"chat.completion.chunk","created":1796479486,"model":"tiny","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null,"prompt_text":null}',
    b'{"id":"chatcmpl-92e28c85fa979b1a","object":"chat.completion.chunk","created":1796479486,"model":"tiny","choices":[{"index":0,"delta":{"content":"arison"},"logprobs":null,"finish_reason":null,"token_ids":null}]}',
    b'{"id":"chatcmpl-92e28c85fa979b1a","object":"chat.completion.chunk","created":1796479486,"model":"tiny","choices":[{"index":0,"delta":{"content":"tin"},"logprobs":null,"finish_reason":null,"token_ids":null}]}',
    b'{"id":"chatcmpl-92e28c85fa979b1a","object":"chat.completion.chunk","created":1796479486,"model":"tiny","choices":[{"index":0,"delta":{"content":"nans"},"logprobs":null,"finish_reason":null,"token_ids":null}]}',
    b'{"id":"chatcmpl-92e28c85fa979b1a","object":"chat.completion.chunk","created":1796479486,"model":"tiny","choices":[{"index":0,"delta":{"content":" number"},"logprobs":null,"finish_reason":null,"token_ids":null}]}',
    b'{"id":"chatcmpl-92e28c85fa979b1a","object":"chat.completion.chunk","created":1796479486,"model":"tiny","choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":null,"token_ids":null}]}',
    b'{"id":"chatcmpl-92e28c85fa979b1a","object":"chat.completion.chunk","created":1796479486,"model":"tiny","choices":[],"usage":{"prompt_tokens":11,"total_tokens":16,"completion_tokens":5},"system_fingerprint":"vllm-0.32.0-a98d75e9"}',
)  # fmt: skip


def _chat_chunk(text: str, finish: str | None = None, field: str = "content") -> bytes:
    choice: dict[str, object] = {
        "index": 0,
        "delta": {field: text},
        "logprobs": None,
        "finish_reason": finish,
    }
    if finish is not None:
        choice["stop_reason"] = None
    choice["token_ids"] = None
    return _chunk([choice])


def _usage(prompt: int, completion: int, reasoning: int | None = None) -> bytes:
    usage: dict[str, object] = {"prompt_tokens": prompt, "total_tokens": prompt + completion}
    usage["completion_tokens"] = completion
    if reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return _chunk([], usage=usage, system_fingerprint="vllm-0.32.0-a98d75e9")


def reasoning_script(
    *,
    ttft_s: float,
    tbt_s: float,
    reasoning: int,
    answer: int,
    field: str = "reasoning",
    usage_says: bool = True,
) -> Script:
    """A reasoning model's chat stream as vLLM with a reasoning parser sends it: the role
    chunk, ``reasoning`` steps in ``delta.<field>``, then ``answer`` steps of content, the
    last the empty EOS chunk; one step every ``tbt_s`` from ``ttft_s``. Usage counts every
    step and, when ``usage_says``, the reasoning ones in ``completion_tokens_details``."""
    role = CHAT_EOS[0].replace(b"chatcmpl-92e28c85fa979b1a", b"chatcmpl-replay")
    script: list[tuple[float, bytes]] = [(ttft_s, role)]
    steps = reasoning + answer
    for step in range(steps):
        t = ttft_s + step * tbt_s
        if step < reasoning:
            script.append((t, _chat_chunk(f" r{step}", field=field)))
        elif step == steps - 1:
            script.append((t, _chat_chunk("", "stop")))
        else:
            script.append((t, _chat_chunk(f" a{step}")))
    usage = _usage(11, steps, reasoning if usage_says else None)
    script.append((ttft_s + (steps - 1) * tbt_s, usage))
    return script


def _chunk(choices: list[dict[str, object]], **extra: object) -> bytes:
    """A chat chunk with vLLM 0.32's envelope (key order as captured) around ``choices``."""
    return orjson.dumps(
        {
            "id": "chatcmpl-replay",
            "object": "chat.completion.chunk",
            "created": 1796479486,
            "model": "tiny",
            "choices": choices,
            **extra,
        }
    )


def chat_script(
    *, ttft_s: float, tbt_s: float, tokens: int, held_back: frozenset[int] = frozenset()
) -> Script:
    """A vLLM chat stream of ``tokens`` decode steps ending on EOS: the role chunk with the
    first token at ``ttft_s``, then one chunk every ``tbt_s``; the last is the empty EOS
    chunk with ``finish_reason: "stop"``; steps in ``held_back`` carry empty text (a token
    whose text vLLM holds back). Usage counts every step, EOS included."""
    role = CHAT_EOS[0].replace(b"chatcmpl-92e28c85fa979b1a", b"chatcmpl-replay")
    script: list[tuple[float, bytes]] = [(ttft_s, role)]
    for step in range(tokens):
        t = ttft_s + step * tbt_s
        if step == tokens - 1:
            script.append((t, _chat_chunk("", "stop")))
        else:
            script.append((t, _chat_chunk("" if step in held_back else f" w{step}")))
    script.append((ttft_s + (tokens - 1) * tbt_s, _usage(11, tokens)))
    return script


def completions_script(events: tuple[bytes, ...], *, ttft_s: float, tbt_s: float) -> Script:
    """``events`` (a captured completions stream, usage chunk last) on an exact schedule."""
    *steps, usage = events
    script = [(ttft_s + i * tbt_s, event) for i, event in enumerate(steps)]
    script.append((script[-1][0], usage))
    return script
