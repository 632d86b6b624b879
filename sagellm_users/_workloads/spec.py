"""What the traffic looks like: a workload file (TOML) or the equivalent options, validated.

A workload says *what* is sent (prompt source, input and output lengths, multi-turn
sessions, shared prefixes, the seed); *how much* is sent (users, rate, shapes) stays in
Locust's options and ``.conf`` files, so one workload runs under any load model. Every field
is checked by pydantic before any load, and a bad file is refused with the field and the
reason in one line.

Example (``configs/workloads/multiturn.toml``)::

    name = "multiturn"
    seed = 7
    input_tokens = "64:256"
    output_tokens = 64

    [session]
    turns = "3:6"
    think_time = "0.5:2"
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from sagellm_users._errors import ConfigError
from sagellm_users._workloads.lengths import FixedLength, LengthField, describe_length

__all__ = [
    "SessionSpec",
    "SharedPrefixSpec",
    "ThinkTime",
    "WorkloadSpec",
    "load_workload",
    "parse_think_time",
]


def parse_think_time(value: Any) -> tuple[float, float]:
    """Seconds between turns: ``2`` / ``"2s"`` (fixed) or ``"0.5:2"`` (uniform range)."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        low, high = float(value[0]), float(value[1])
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        low = high = float(value)
    elif isinstance(value, str):
        low_text, _, high_text = value.strip().partition(":")
        try:
            low = float(low_text.strip().removesuffix("s"))
            high = float(high_text.strip().removesuffix("s")) if high_text else low
        except ValueError:
            raise ValueError(
                f"cannot read {value!r} as seconds; give 2, '2s' or a range '0.5:2'"
            ) from None
    else:
        raise ValueError(f"cannot read {value!r} as seconds; give 2, '2s' or a range '0.5:2'")
    if not 0 <= low <= high or not math.isfinite(high):
        raise ValueError(f"{value!r}: need 0 <= min <= max seconds, both finite")
    return (low, high)


ThinkTime = Annotated[tuple[float, float], BeforeValidator(parse_think_time)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SessionSpec(_Strict):
    """Multi-turn conversations: each user holds one, its history growing turn by turn."""

    turns: LengthField = Field(default_factory=lambda: FixedLength(value=3))
    """Turns per conversation (with a dataset: at most this many of the entry's turns)."""
    think_time: ThinkTime = (0.0, 0.0)
    """Seconds the user waits after a reply before the next turn."""
    input_tokens: LengthField | None = None
    """Tokens of each later user message (synthetic prompts); default: ``input_tokens``."""


class SharedPrefixSpec(_Strict):
    """``groups`` system prompts of ``tokens`` tokens; each user sends its group's prefix
    before its own (unique) prompt, so a prefix cache can share exactly that part."""

    groups: int = Field(1, ge=1)
    tokens: int = Field(ge=1)


class WorkloadSpec(_Strict):
    """The whole workload; see the module docstring and docs/workloads.md."""

    name: str = "custom"
    description: str = ""
    seed: int = 0
    """Makes prompts, lengths and arrivals reproducible; workers and users draw from their
    own streams derived from it, so no two of them send the same prompts by accident."""
    tokenizer: str = "auto"
    """How prompt tokens are counted: a path (a model directory or tokenizer.json),
    ``server`` (its /tokenize), ``estimate`` (4 characters per token, flagged), or ``auto``
    (an in-process model's tokenizer, else the server's /tokenize, else the estimate)."""
    input_tokens: LengthField | None = None
    """Synthetic prompts of exactly this many tokens (drawn per request)."""
    output_tokens: LengthField | Literal["dataset"] | None = None
    """Output tokens to ask for per request (default: --max-tokens); ``dataset`` takes each
    entry's ``max_tokens``, else the length of its reference reply."""
    dataset: Path | None = None
    """A ShareGPT JSON or JSONL file of prompts (instead of synthetic prompts)."""
    dataset_format: Literal["auto", "sharegpt", "jsonl"] = "auto"
    shared_prefix: SharedPrefixSpec | None = None
    session: SessionSpec | None = None

    @model_validator(mode="after")
    def _one_source(self) -> WorkloadSpec:
        if self.dataset is not None and self.input_tokens is not None:
            raise ValueError(
                "give input_tokens (synthetic prompts) or dataset (prompts from a file), not both"
            )
        if self.dataset is None and self.input_tokens is None:
            raise ValueError("give input_tokens (synthetic prompts) or dataset (a prompt file)")
        if self.output_tokens == "dataset" and self.dataset is None:
            raise ValueError("output_tokens = 'dataset' needs a dataset")
        return self

    def describe(self) -> dict[str, Any]:
        """The workload as the report shows it."""
        out: dict[str, Any] = {"name": self.name, "seed": self.seed}
        if self.dataset is not None:
            out["prompts"] = f"dataset {self.dataset.name} ({self.dataset_format})"
        if self.input_tokens is not None:
            out["input_tokens"] = describe_length(self.input_tokens)
        if self.output_tokens is not None:
            out["output_tokens"] = (
                "from the dataset"
                if self.output_tokens == "dataset"
                else describe_length(self.output_tokens)
            )
        if self.shared_prefix is not None:
            p = self.shared_prefix
            out["shared_prefix"] = f"{p.groups} groups x {p.tokens} tokens"
        if self.session is not None:
            s = self.session
            low, high = s.think_time
            think = f"{low:g}s" if low == high else f"{low:g}-{high:g}s"
            out["session"] = f"{describe_length(s.turns)} turns, think {think}"
        return out


def load_workload(path: str | Path, overrides: dict[str, Any] | None = None) -> WorkloadSpec:
    """Read and validate a workload file; ``overrides`` (from options) win over its fields.

    Relative ``dataset`` paths are taken from the file's directory, as a reader expects."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--workload: no such file {str(file)!r}; give a workload .toml file")
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--workload: cannot read {str(file)!r}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--workload {file}: not valid TOML ({exc})") from None
    dataset = data.get("dataset")
    if isinstance(dataset, str) and not Path(dataset).is_absolute():
        data["dataset"] = str(file.parent / dataset)
    data.update(overrides or {})
    return validate_workload(data, where=f"--workload {file}")


def validate_workload(data: dict[str, Any], *, where: str = "workload") -> WorkloadSpec:
    """A :class:`WorkloadSpec` from plain data, or one line naming the field and reason."""
    try:
        return WorkloadSpec.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function"))
        reason = error["msg"].removeprefix("Value error, ")
        where_field = f"{where}: {field}" if field else where
        raise ConfigError(f"{where_field}: {reason}") from None
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
