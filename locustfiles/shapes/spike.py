"""A spike: add to any user locustfile.

    locust -f locustfiles/chat.py,locustfiles/shapes/spike.py --headless \
        --spike-users 4:32 --spike-at 30s --spike-hold 10s

BASE users, PEAK users from --spike-at for --spike-hold, then BASE again for as long as
before the spike, to show how fast latency recovers.
"""

from sagellm_users.shapes import SpikeLoadShape

__all__ = ["SpikeLoadShape"]
