"""vLLM's engine in-process: no server, no HTTP; TTFT and ITL as the engine yields them.

    locust -f locustfiles/vllm_local.py --headless -u 8 -r 8 -t 1m \
        --vllm-model /models/Qwen2.5-0.5B-Instruct --engine-arg max_model_len=2048 \
        --max-tokens 128 --ignore-eos

Each load-generating process (the local runner, or each worker) starts one engine process
before the test and its users share it. ``--engine-python /path/venv/bin/python`` runs the
engine under another interpreter (a venv that has vLLM); ``--engine-arg KEY=VALUE`` sets
any field of vLLM's ``AsyncEngineArgs``. Swap in ``VLLMLocalCompletionsUser`` for raw
prompts without the chat template.
"""

from locust import events

from sagellm_users import VLLMLocalUser, install

install(events)

__all__ = ["VLLMLocalUser"]
