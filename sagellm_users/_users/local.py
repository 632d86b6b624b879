"""Users that drive an engine in-process: vLLM's ``AsyncLLM``, LMDeploy's ``pipeline``.

No HTTP and no server: each load-generating process (local runner or worker) starts one
child process per engine before the test (see :mod:`sagellm_users._engine_host` for why a
child), and its users share it. TTFT and ITL are stamped by the engine's process the moment
the engine yields each output, so they are the engine's own latencies, free of HTTP,
serialisation and the load generator's scheduling.

    locust -f locustfiles/vllm_local.py --headless -u 8 -r 8 -t 1m \\
        --vllm-model /models/Qwen2.5-0.5B-Instruct --engine-arg max_model_len=2048
"""

from __future__ import annotations

from typing import ClassVar

from sagellm_users._backends import BackendClient
from sagellm_users._users.base import LLMUser

__all__ = [
    "LMDeployLocalCompletionsUser",
    "LMDeployLocalUser",
    "LocalEngineUser",
    "SageLLMLocalUser",
    "VLLMLocalCompletionsUser",
    "VLLMLocalUser",
]


class LocalEngineUser(LLMUser):
    """Base of the in-process users: ``engine`` names the engine the user drives."""

    abstract = True
    engine: ClassVar[str] = ""
    """``"vllm"``, ``"lmdeploy"`` or ``"sagellm"``; the model is ``--<engine>-model``."""

    def connect(self) -> BackendClient:
        self.backend_name = f"{self.engine}-local"
        return self.llm.local_client(self.engine)


class VLLMLocalUser(LocalEngineUser):
    """Chat through vLLM's engine in-process (the model's chat template applied)."""

    engine = "vllm"
    api = "chat"


class VLLMLocalCompletionsUser(LocalEngineUser):
    """Raw prompts through vLLM's engine in-process."""

    engine = "vllm"
    api = "completions"


class LMDeployLocalUser(LocalEngineUser):
    """Chat through LMDeploy's pipeline in-process (``stream_infer``, template applied)."""

    engine = "lmdeploy"
    api = "chat"


class LMDeployLocalCompletionsUser(LocalEngineUser):
    """Raw prompts through LMDeploy's pipeline in-process (no chat template)."""

    engine = "lmdeploy"
    api = "completions"


class SageLLMLocalUser(LocalEngineUser):
    """Chat through sageLLM's ``LLMEngine`` in-process (package ``isagellm``)."""

    engine = "sagellm"
    api = "chat"
