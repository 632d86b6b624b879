"""An embedded OpenAI-compatible mock LLM server speaking vLLM's streaming wire format.

It runs as its own process (``python -m sagellm_users.mock_server`` or
``sagellm-mock-server``), simulates TTFT, inter-token gaps, capacity limits and faults from a
seed, and is fast enough that one mock process out-streams what one Locust worker ingests.
:class:`MockServerProcess` starts one and waits for it to be ready; :func:`serve` runs one in
the current process.
"""

from .cli import check_mock_args
from .config import MockServerConfig
from .launcher import MockServerProcess, MockServerStartError
from .server import serve

__all__ = [
    "MockServerConfig",
    "MockServerProcess",
    "MockServerStartError",
    "check_mock_args",
    "serve",
]
