"""Load test for a vLLM OpenAI server: chat streaming with vLLM's extras and its /metrics.

    locust -f locustfiles/vllm.py --host http://127.0.0.1:8000 --headless -u 32 -r 4 -t 2m \
        --max-tokens 256 --ignore-eos --llm-report vllm.json

The report puts vLLM's own /metrics (requests, tokens, TTFT / ITL / E2E histograms,
running / waiting, KV-cache usage, preemptions) beside the client-side view. Without --host
the embedded mock stands in (it exports the same metric names).
"""

from locust import events

from sagellm_users import VLLMUser, install

install(events)

__all__ = ["VLLMUser"]
