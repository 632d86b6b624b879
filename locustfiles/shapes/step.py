"""A step ramp: add to any user locustfile.

    locust -f locustfiles/chat.py,locustfiles/shapes/step.py --headless \
        --step-users 4:4:32 --stage-time 30s

Users start at START and rise by STEP every --stage-time up to MAX, then the test ends.
"""

from sagellm_users.shapes import StepLoadShape

__all__ = ["StepLoadShape"]
