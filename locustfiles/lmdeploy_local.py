"""LMDeploy's pipeline in-process (``stream_infer``): no server, no HTTP. Needs an NVIDIA GPU.

    locust -f locustfiles/lmdeploy_local.py --headless -u 8 -r 8 -t 1m \
        --lmdeploy-model /models/internlm2_5-7b-chat --engine-arg backend=turbomind \
        --engine-arg cache_max_entry_count=0.5 --max-tokens 128 --ignore-eos

``--engine-arg backend=pytorch`` picks LMDeploy's PyTorch engine; the other ``--engine-arg``
keys are fields of that backend's engine config (``tp``, ``session_len``, ...). Swap in
``LMDeployLocalCompletionsUser`` for raw prompts without the chat template.
"""

from locust import events

from sagellm_users import LMDeployLocalUser, install

install(events)

__all__ = ["LMDeployLocalUser"]
