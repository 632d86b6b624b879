"""Chat-completions load test against any OpenAI-compatible server.

    locust -f locustfiles/chat.py                       # embedded mock server, web UI
    locust -f locustfiles/chat.py --host http://127.0.0.1:8000 --headless -u 32 -r 4 -t 2m

Without --host the embedded mock LLM server is started on a free port and stopped at exit.
Every request shows in Locust's table as three rows: E2E (the request), TTFT and TBT.
`locust -f locustfiles/chat.py --llm-help` lists every option (docs/options.md); Locust
prints its own in --help.
"""

from locust import events

from sagellm_users import OpenAIChatUser, install

install(events)

__all__ = ["OpenAIChatUser"]
