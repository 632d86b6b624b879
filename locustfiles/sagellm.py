"""Load test for a sageLLM gateway: OpenAI chat streaming behind a Bearer key.

    SAGELLM_API_KEY=... locust -f locustfiles/sagellm.py --host http://127.0.0.1:8000 \
        --headless -u 32 -r 4 -t 2m

The model is discovered from the gateway's /info (else /v1/models) unless --model is given.
"""

from locust import events

from sagellm_users import SageLLMUser, install

install(events)

__all__ = ["SageLLMUser"]
