"""Several backends in one test, reported side by side (one row per backend and endpoint).

    SAGELLM_COMPARE="vllm=http://10.0.0.1:8000,lmdeploy:2=http://10.0.0.2:23333" \
        locust -f locustfiles/compare.py --headless -u 48 -r 8 -t 5m --llm-report compare.json

Each entry is BACKEND[:WEIGHT]=URL; WEIGHT (default 1) is Locust's user weight, so 48 users
split 16 / 32 above. The same backend may appear twice with different hosts. Without
SAGELLM_COMPARE, vLLM and LMDeploy users share the embedded mock (which speaks both), to
show the layout. Every row name starts with BACKEND@HOST, and each host's /metrics is
scraped for the server-side view.
"""

import os

from locust import events

from sagellm_users import compare_users, install

install(events)

_users = compare_users(os.environ.get("SAGELLM_COMPARE", "vllm=,lmdeploy="))
globals().update({cls.__name__: cls for cls in _users})
__all__ = [cls.__name__ for cls in _users]
