"""The engine host: runs an LLM engine (vLLM, LMDeploy, sageLLM) in a child process.

Why a child process: the engines run asyncio event loops, native threads and their own
subprocesses, and Locust monkey-patches the standard library for gevent. In one process
the two fight (a patched ``threading`` under vLLM's loop, a blocking CUDA call starving
every greenlet). A worker therefore owns one child per engine, in which the engine runs
exactly as it runs under its own server, unpatched. The child stamps every output with
``time.perf_counter()`` the moment the engine yields it; that clock is the system's
monotonic clock, shared by every process on the host, so TTFT and ITL are measured at the
engine however late the worker's greenlets read the pipe.

Everything in this package uses the standard library only and imports its siblings
relatively: the child may run under another interpreter (``--engine-python``, e.g. a venv
that has vLLM) where sagellm_users and its dependencies are not installed. The parent
loads it there by path (see :data:`BOOTSTRAP`).
"""

from __future__ import annotations

BOOTSTRAP = (
    "import importlib.util as u, sys\n"
    "d = sys.argv[1]\n"
    "s = u.spec_from_file_location('sagellm_engine_host', d + '/__init__.py', "
    "submodule_search_locations=[d])\n"
    "m = u.module_from_spec(s)\n"
    "sys.modules[s.name] = m\n"
    "s.loader.exec_module(m)\n"
    "from sagellm_engine_host.host import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)
"""``python -c BOOTSTRAP <this directory> <host arguments>`` runs the host in any
interpreter, importing nothing but this directory and the engine itself."""
