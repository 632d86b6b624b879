"""sageLLM's engine in-process (``LLMEngine.stream``, package ``isagellm``): no gateway, no HTTP.

    locust -f locustfiles/sagellm_local.py --headless -u 4 -r 4 -t 1m \
        --sagellm-model /models/Qwen2.5-0.5B-Instruct --engine-arg backend_type=cpu \
        --max-tokens 128

``--engine-arg`` keys are fields of sageLLM's ``LLMEngineConfig`` (``backend_type``,
``dtype``, ``max_model_len``, ...). The engine has no ignore_eos and no min_tokens, so
``--ignore-eos`` and ``--min-tokens`` are refused before load.
"""

from locust import events

from sagellm_users import SageLLMLocalUser, install

install(events)

__all__ = ["SageLLMLocalUser"]
