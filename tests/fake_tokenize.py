"""A vLLM client whose ``/tokenize`` answers as vLLM's does, from a real ``tokenizers``
tokenizer in the test process: no server, no network, real token counts and strings."""

from __future__ import annotations

from typing import Any

import orjson
from tokenizers import Tokenizer

from sagellm_users._backends import VLLMClient

__all__ = ["TokenizeClient"]


class TokenizeClient(VLLMClient):
    """Answers ``POST /tokenize`` like vLLM's OpenAI server: the ids without special tokens,
    ``token_strs`` (the vocabulary's own strings, as ``convert_ids_to_tokens`` gives them)
    when asked and ``token_strs`` is on, and a 400 for a text longer than ``max_model_len``.
    Counts the calls and keeps the texts it was asked."""

    def __init__(self, tokenizer: Tokenizer, *, token_strs: bool = True, max_model_len: int = 4096):
        super().__init__("http://tokenize.invalid")
        self.tokenizer = tokenizer
        self.token_strs = token_strs
        self.max_model_len = max_model_len
        self.texts: list[str] = []

    @property
    def calls(self) -> int:
        return len(self.texts)

    def request(self, method: str, path: str, payload: Any = None) -> tuple[int, bytes]:
        assert (method, path) == ("POST", "/tokenize") and payload["add_special_tokens"] is False
        text = payload["prompt"]
        self.texts.append(text)
        encoding = self.tokenizer.encode(text, add_special_tokens=False)
        if len(encoding.ids) > self.max_model_len:
            message = f"This model's maximum context length is {self.max_model_len} tokens."
            return 400, orjson.dumps({"error": {"message": message, "code": 400}})
        strs = encoding.tokens if self.token_strs and payload.get("return_token_strs") else None
        answer = {
            "count": len(encoding.ids),
            "max_model_len": self.max_model_len,
            "tokens": encoding.ids,
            "token_strs": strs,
        }
        return 200, orjson.dumps(answer)

    def close(self) -> None:
        pass
