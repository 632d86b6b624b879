"""Load test for LMDeploy's api_server, on its native /generate route.

    locust -f locustfiles/lmdeploy.py --host http://127.0.0.1:23333 --headless -u 32 -r 4 -t 2m \
        --max-tokens 256 --ignore-eos

/generate reports the token count with every event, so output tokens and per-token
inter-token latency are exact. For LMDeploy's OpenAI chat route use LMDeployUser in your
own locustfile (or locustfiles/chat.py --backend lmdeploy).
"""

from locust import events

from sagellm_users import LMDeployGenerateUser, install

install(events)

__all__ = ["LMDeployGenerateUser"]
