"""An SLO sweep: add to any user locustfile to find the load the deployment can take.

    locust -f locustfiles/chat.py,locustfiles/shapes/sweep.py --headless \
        --sweep 2:2:32 --stage-time 30s --slo 'ttft_p99<=500ms'

Users rise by STEP each stage (or, with --request-rate, the open-loop rate does); each stage
is judged on its own requests, the sweep stops at the first that breaks an objective, and
the summary names the highest load that met them all. Exit code 3 when none did.
"""

from sagellm_users.shapes import SLOSweepShape

__all__ = ["SLOSweepShape"]
