"""Anthropic Messages API (``/v1/messages``) load test: vLLM, or the embedded mock.

    locust -f locustfiles/messages.py                   # embedded mock server, web UI
    locust -f locustfiles/messages.py --host http://127.0.0.1:8000 --backend vllm \
        --headless -u 32 -r 4 -t 2m --max-tokens 256

System messages go as ``system`` and --max-tokens as the required ``max_tokens``. The
Messages API has neither ignore_eos nor min_tokens (vLLM's route drops both), so
--ignore-eos and --min-tokens are refused: answers end where the model stops. The stream
ends at ``message_stop``; ``message_delta`` carries the output tokens.
"""

from locust import events

from sagellm_users import AnthropicMessagesUser, install

install(events)

__all__ = ["AnthropicMessagesUser"]
