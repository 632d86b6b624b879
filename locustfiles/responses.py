"""OpenAI Responses API (``/v1/responses``) load test: vLLM, OpenAI, or the embedded mock.

    locust -f locustfiles/responses.py                  # embedded mock server, web UI
    locust -f locustfiles/responses.py --host http://127.0.0.1:8000 --backend vllm \
        --headless -u 32 -r 4 -t 2m --max-tokens 256 --ignore-eos

The conversation goes as ``input`` and --max-tokens as ``max_output_tokens``; vLLM takes
--ignore-eos on this route but has no min_tokens here, so --min-tokens is refused. The
stream ends at ``response.completed``, whose usage counts the output tokens.
"""

from locust import events

from sagellm_users import OpenAIResponsesUser, install

install(events)

__all__ = ["OpenAIResponsesUser"]
