"""The options that choose the traffic (workload) and the load model (open loop, shapes).

Kept apart from :mod:`sagellm_users.users.options` (transport, reports, engines): these say
what is sent and when. Each works on the command line and in a ``.conf`` file; a workload
file (``--workload``) holds what does not fit one flag (sessions, shared prefixes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sagellm_users.errors import ConfigError
from sagellm_users.workloads.arrivals import ARRIVAL_KINDS
from sagellm_users.workloads.spec import WorkloadSpec, load_workload, validate_workload

__all__ = ["add_workload_arguments", "arrival_values", "workload_from_namespace"]


def add_workload_arguments(parser: Any) -> None:
    """Add the workload, open-loop and shape options to Locust's parser."""
    add = parser.add_argument
    add(
        "--workload",
        default="",
        help="Workload file (.toml): prompt source, lengths, sessions, shared prefixes "
        "(see configs/workloads/ and README 'Workloads'); options below override its fields",
    )
    add(
        "--input-tokens",
        default="",
        help="Synthetic prompts of this many tokens: N, MIN:MAX, normal:MEAN,STD[,MIN:MAX] "
        "or file:PATH (one length per line)",
    )
    add(
        "--output-tokens",
        default="",
        help="Output tokens asked per request, same forms as --input-tokens (or 'dataset'); "
        "default --max-tokens",
    )
    add(
        "--dataset",
        default="",
        help="Prompts from a ShareGPT .json or a .jsonl file ({prompt} or {messages}, "
        "optional max_tokens)",
    )
    add(
        "--tokenizer",
        default="",
        help="How prompt tokens are counted: a model directory or tokenizer.json, 'server' "
        "(its /tokenize), 'estimate', or 'auto' (default)",
    )
    add("--seed", type=int, default=None, help="Seed for prompts, lengths and arrivals")
    add(
        "--request-rate",
        type=float,
        default=0.0,
        help="Open loop: requests per second across the whole test, whatever the responses "
        "do; each user is one in-flight slot (-u caps requests in flight). 0: closed loop "
        "(default)",
    )
    add(
        "--arrival",
        default="poisson",
        choices=ARRIVAL_KINDS,
        help="Open-loop arrivals: constant, poisson (default) or gamma (see --burstiness)",
    )
    add(
        "--burstiness",
        type=float,
        default=1.0,
        help="Gamma arrivals' shape: < 1 burstier, > 1 smoother, 1 = Poisson (default 1)",
    )


def workload_from_namespace(ns: Any) -> WorkloadSpec | None:
    """The workload the options describe, or None for the plain --prompt traffic."""
    get = getattr
    overrides: dict[str, Any] = {}
    for flag, key in (
        ("input_tokens", "input_tokens"),
        ("output_tokens", "output_tokens"),
        ("dataset", "dataset"),
        ("tokenizer", "tokenizer"),
    ):
        value = str(get(ns, flag, "") or "").strip()
        if value:
            overrides[key] = value
    seed = get(ns, "seed", None)
    if seed is not None:
        overrides["seed"] = int(seed)
    if "dataset" in overrides:
        overrides.setdefault("input_tokens", None)
    elif "input_tokens" in overrides:
        overrides.setdefault("dataset", None)
    path = str(get(ns, "workload", "") or "").strip()
    sourced = path or "input_tokens" in overrides or "dataset" in overrides
    if get(ns, "prompt_file", "") and sourced:
        raise ConfigError(
            "--prompt-file: choose it or a workload (--workload, --input-tokens, --dataset), "
            "not both"
        )
    if path:
        return load_workload(path, overrides)
    if not overrides.get("input_tokens") and not overrides.get("dataset"):
        extra = sorted(set(overrides) - {"seed"})
        if extra:
            flags = ", ".join(f"--{k.replace('_', '-')}" for k in extra)
            raise ConfigError(
                f"{flags}: needs a prompt source; add --input-tokens N (synthetic prompts), "
                "--dataset FILE or --workload FILE"
            )
        return None
    if overrides.get("dataset"):
        overrides["dataset"] = Path(overrides["dataset"])
    return validate_workload(overrides, where="options")


def arrival_values(ns: Any) -> dict[str, Any]:
    """The open-loop fields of :class:`~sagellm_users.users.options.LLMOptions`."""
    get = getattr
    rate = float(get(ns, "request_rate", 0.0) or 0.0)
    if rate < 0:
        raise ConfigError(f"--request-rate: must be >= 0 (0 = closed loop), got {rate:g}")
    raw = get(ns, "burstiness", 1.0)
    burstiness = 1.0 if raw is None else float(raw)
    if burstiness <= 0:
        raise ConfigError(f"--burstiness: must be > 0 (1 = Poisson), got {burstiness:g}")
    kind = str(get(ns, "arrival", "poisson") or "poisson")
    if kind not in ARRIVAL_KINDS:
        kinds = ", ".join(ARRIVAL_KINDS)
        raise ConfigError(f"--arrival: unknown kind {kind!r}; choose one of {kinds}")
    # Closed-loop runs have no arrivals: shaping them would be silently ignored.
    if rate == 0 and kind != "poisson":
        raise ConfigError(
            f"--arrival {kind}: arrivals exist only in an open-loop run; add --request-rate "
            "R (requests per second), or drop --arrival"
        )
    if burstiness != 1.0 and kind != "gamma":
        raise ConfigError(
            f"--burstiness {burstiness:g}: only gamma arrivals have a burstiness; add "
            "--arrival gamma (and --request-rate R), or drop --burstiness"
        )
    return {"request_rate": rate, "arrival": kind, "burstiness": burstiness}
