"""Text-completions (``/v1/completions``) load test against any OpenAI-compatible server.

    locust -f locustfiles/completions.py --host http://127.0.0.1:8000 --headless -u 16 -t 1m

Without --host the embedded mock LLM server is started on a free port and stopped at exit.
"""

from locust import events

from sagellm_users import OpenAICompletionsUser, install

install(events)

__all__ = ["OpenAICompletionsUser"]
