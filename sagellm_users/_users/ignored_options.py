"""Options this run would silently ignore: refused before any load.

An option whose user class or load shape is not in the locustfiles does nothing, and the
test then measures something other than what its command line says: ``--step-users 4:4:32``
without ``shapes/step.py`` runs a constant load, ``--vllm-model`` without an in-process
vLLM user runs none. Each such option stops the run with one line naming what to add (or
to drop).
"""

from __future__ import annotations

from collections.abc import Iterable

from sagellm_users._errors import ConfigError
from sagellm_users._users.option_spec import declared
from sagellm_users._users.options import LLMOptions, flag_of

__all__ = ["check_engine_options", "check_shape_options"]

_ENGINE_USERS = {
    "vllm": (flag_of("vllm_model"), "VLLMLocalUser", "locustfiles/vllm_local.py"),
    "lmdeploy": (flag_of("lmdeploy_model"), "LMDeployLocalUser", "locustfiles/lmdeploy_local.py"),
    "sagellm": (flag_of("sagellm_model"), "SageLLMLocalUser", "locustfiles/sagellm_local.py"),
}

_SHAPE_OF = {
    "step_users": ("StepLoadShape", "step.py"),
    "spike_users": ("SpikeLoadShape", "spike.py"),
    "spike_at": ("SpikeLoadShape", "spike.py"),
    "spike_hold": ("SpikeLoadShape", "spike.py"),
    "sweep": ("SLOSweepShape", "sweep.py"),
    "sweep_settle": ("SLOSweepShape", "sweep.py"),
    "stage_time": ("LLMLoadShape", "step.py, spike.py or sweep.py"),
}


def check_engine_options(engines: Iterable[str], options: LLMOptions) -> None:
    """In-process engine options need a user class that runs that engine."""
    engines = set(engines)
    for engine, (flag, user, locustfile) in _ENGINE_USERS.items():
        if getattr(options, f"{engine}_model") and engine not in engines:
            raise ConfigError(
                f"{flag}: no user class in the locustfiles runs {engine} in-process "
                f"({user}), so it would be ignored; add -f {locustfile}, or drop {flag} "
                "(to count prompt tokens with that model's tokenizer, give --tokenizer DIR)"
            )
    if engines:
        return
    defaults = LLMOptions.model_fields
    for field in ("engine_args", "engine_python", "engine_log", "engine_start_timeout"):
        if getattr(options, field) != defaults[field].get_default(call_default_factory=True):
            flag = flag_of(field)
            raise ConfigError(
                f"{flag}: no user class in the locustfiles runs an in-process engine, so it "
                "would be ignored; add one (e.g. -f locustfiles/vllm_local.py), or drop "
                f"{flag}"
            )


def check_shape_options(options: LLMOptions, shape: object | None) -> None:
    """A shape option needs its shape among the locustfiles (Locust runs at most one)."""
    classes = {cls.__name__ for cls in type(shape).__mro__} if shape is not None else set()
    for option in declared(LLMOptions):
        if option.opt.group != "Load shapes":
            continue
        value = getattr(options, option.field)
        if value in (None, "", option.default):
            continue
        name, locustfile = _SHAPE_OF[option.field]
        if name in classes:
            continue
        flag = option.opt.flag
        running = (
            f"the load shape is {type(shape).__name__}"
            if shape is not None
            else "no load shape runs"
        )
        shape_name = "a sagellm load shape" if name == "LLMLoadShape" else name
        raise ConfigError(
            f"{flag}: {running}, so it would be ignored; it is an option of {shape_name}: add "
            f"it to -f (e.g. -f locustfiles/chat.py,locustfiles/shapes/{locustfile}), or drop "
            f"{flag}"
        )
