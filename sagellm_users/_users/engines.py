"""Starting and stopping the in-process engines the test's user classes need.

Engines start in ``init``, before any user spawns, on each process that generates load
(a local runner or a worker; never a master): a model takes seconds to minutes to load,
and that time must not count as the test's, nor its first requests' latency. A missing
model option or an engine that fails to load stops the run before any load with the
engine's own reason.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from sagellm_users._backends.engine_process import EngineProcess, EngineSpec
from sagellm_users._errors import ConfigError
from sagellm_users._users.local import LocalEngineUser
from sagellm_users._users.options import LLMOptions, flag_of

__all__ = ["engine_specs", "engines_needed", "start_engines", "stop_engines"]

log = logging.getLogger("sagellm_users")

_MODEL_FLAGS = {engine: flag_of(f"{engine}_model") for engine in ("lmdeploy", "sagellm", "vllm")}


def engines_needed(user_classes: Iterable[type]) -> dict[str, list[str]]:
    """Engine name to the names of the user classes that drive it."""
    needed: dict[str, list[str]] = {}
    for cls in user_classes:
        if isinstance(cls, type) and issubclass(cls, LocalEngineUser):
            if cls.engine not in _MODEL_FLAGS:
                known = ", ".join(sorted(_MODEL_FLAGS))
                raise ConfigError(
                    f"{cls.__name__}.engine: unknown engine {cls.engine!r}; choose one of {known}"
                )
            needed.setdefault(cls.engine, []).append(cls.__name__)
    return needed


def engine_specs(needed: dict[str, list[str]], options: LLMOptions) -> dict[str, EngineSpec]:
    """Each needed engine's spec from the options, or a ConfigError naming what is missing."""
    specs: dict[str, EngineSpec] = {}
    for engine, users in needed.items():
        flag = _MODEL_FLAGS[engine]
        model = getattr(options, f"{engine}_model")
        if not model:
            raise ConfigError(
                f"{', '.join(users)} run {engine} in-process: pass {flag} with the model's "
                "directory"
            )
        if engine == "sagellm" and (options.ignore_eos or options.min_tokens):
            raise ConfigError(
                "--ignore-eos / --min-tokens: sageLLM's engine has neither (it stops at EOS "
                f"or --max-tokens); drop them for {', '.join(users)}"
            )
        log_path = options.engine_log or None
        if log_path is not None and len(needed) > 1:
            log_path = f"{log_path}.{engine}"  # one file per engine
        specs[engine] = EngineSpec(
            engine=engine,
            model=model,
            engine_args=dict(options.engine_args),
            python=options.engine_python or sys.executable,
            log_path=log_path,
        )
    return specs


def start_engines(specs: dict[str, EngineSpec], timeout: float) -> dict[str, EngineProcess]:
    """Start every engine, then wait for all of them (they load side by side)."""
    engines = {name: EngineProcess(spec) for name, spec in specs.items()}
    try:
        for name, engine in engines.items():
            log.info(
                "Starting the in-process %s engine on %s (its output: %s)",
                name,
                engine.spec.model,
                engine.log_path,
            )
            engine.start()
        for name, engine in engines.items():
            info = engine.wait_ready(timeout)
            log.info(
                "The %s %s engine is ready in %.1f s (model %s, pid %d)",
                name,
                info.version,
                info.start_s,
                info.model,
                info.pid,
            )
    except BaseException:
        stop_engines(engines)
        raise
    return engines


def stop_engines(engines: dict[str, EngineProcess]) -> None:
    for engine in engines.values():
        engine.stop()
