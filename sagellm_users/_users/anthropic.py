"""A user for Anthropic's Messages API (``/v1/messages``) on any server that serves it."""

from __future__ import annotations

from sagellm_users._users.base import LLMUser

__all__ = ["AnthropicMessagesUser"]


class AnthropicMessagesUser(LLMUser):
    """Streams Anthropic's Messages API (``/v1/messages``), one request after another, with
    the client ``--backend`` names (``openai`` or ``vllm``, whose servers speak it; the key
    goes as a Bearer token, as vLLM wants). System messages go as ``system`` and
    ``--max-tokens`` as the required ``max_tokens``; ``--ignore-eos`` and ``--min-tokens``
    are refused (the API has neither)."""

    api = "messages"
