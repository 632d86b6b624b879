"""The public API is what ``sagellm_users`` exports, and nothing else by accident.

A name added to ``__all__`` (or dropped from it) fails here until this list says so: the
package's surface changes on purpose only. Everything else lives in private modules (their
names start with an underscore), as in httpx; the public modules are the package itself,
its load shapes and the mock server (a command of its own).
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import sagellm_users

PUBLIC = {
    # clients, alone or in asyncio programs
    "AsyncClient", "LMDeployClient", "LocalEngineClient", "OpenAIClient", "SageLLMClient",
    "VLLMClient", "create_client",
    # what a client speaks
    "Chunk", "Completion", "GenerationRequest", "HealthStatus", "ReadLimits", "Timeouts",
    "Usage", "RequestRecord",
    # in-process engines
    "EngineProcess", "EngineSpec",
    # Locust users and the glue a locustfile calls
    "LLMUser", "LMDeployGenerateUser", "LMDeployLocalCompletionsUser", "LMDeployLocalUser",
    "LMDeployUser", "OpenAIChatUser", "OpenAICompletionsUser", "SageLLMLocalUser",
    "SageLLMUser", "VLLMCompletionsUser", "VLLMLocalCompletionsUser", "VLLMLocalUser",
    "VLLMUser", "install", "runtime_of", "compare_users",
    # the newer APIs: OpenAI's Responses, Anthropic's Messages
    "OpenAIResponsesUser", "AnthropicMessagesUser", "VLLMResponsesUser", "VLLMMessagesUser",
    # a load test from Python, its options and its report
    "LLMOptions", "LLMReport", "run_load_test",
    # one error tree
    "ConfigError", "ConnectError", "ConnectTimeout", "EngineError", "EngineStartError",
    "FeatureUnavailable", "HTTPStatusError", "LLMError", "MalformedEventError",
    "MissingDoneError", "ProtocolError", "ReadTimeout", "RequestTimeout",
    "ResponseTooLargeError", "ServerErrorEvent", "StreamCutError", "TotalTimeout",
}  # fmt: skip


def test_the_exports_are_the_public_api() -> None:
    assert set(sagellm_users.__all__) == PUBLIC
    assert len(sagellm_users.__all__) == len(PUBLIC), "a name exported twice"


def test_every_export_resolves() -> None:
    for name in sagellm_users.__all__:
        assert getattr(sagellm_users, name) is not None, name


def test_a_client_alone_imports_neither_locust_nor_the_asyncio_client() -> None:
    code = (
        "import sys\n"
        "from sagellm_users import VLLMClient, GenerationRequest\n"
        "print(sorted(m for m in ('locust', 'sagellm_users._aio') if m in sys.modules))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0 and run.stdout.strip() == "[]", run.stdout + run.stderr


PUBLIC_MODULES = {"sagellm_users", "sagellm_users.shapes", "sagellm_users.mock_server"}


def test_every_other_module_is_private() -> None:
    """A module a user may import is public on purpose; every other one's own name (or a
    package above it) starts with an underscore."""
    public = set()
    for module in pkgutil.walk_packages(sagellm_users.__path__, "sagellm_users."):
        names = module.name.split(".")[1:]
        if not any(name.startswith("_") for name in names):
            public.add(module.name)
    inside_mock = {m for m in public if m.startswith("sagellm_users.mock_server.")}
    assert public - inside_mock == PUBLIC_MODULES - {"sagellm_users"}
