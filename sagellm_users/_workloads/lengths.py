"""Token-length distributions for the prompts and answers a workload generates.

Real traffic does not send one prompt length: a chat service sees short questions and long
pasted documents, and the mix decides how a server batches. A length is therefore a small
distribution: fixed, uniform, normal, or empirical (a list of lengths measured elsewhere, for
instance from production logs).

Choices that keep runs comparable and cheap:

* Samplers draw only from the ``random.Random`` they are given, so one seed replays a run.
* A normal length is clipped into ``[min, max]`` rather than resampled until it lands there:
  clipping costs O(1) per draw whatever the bounds, and its shape stays known (the normal
  with its tails piled on the bounds), where rejection turns into a different, truncated
  distribution and can loop for long when the bounds cut most of the mass away.
* An empirical file is read once, while the spec is validated, so drawing never touches disk
  and a bad file fails before any load is sent.
"""

from __future__ import annotations

import random
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic_core import ErrorDetails

from sagellm_users._errors import ConfigError

__all__ = [
    "EmpiricalLength",
    "FixedLength",
    "LengthField",
    "LengthSpec",
    "NormalLength",
    "UniformLength",
    "describe_length",
    "length_sampler",
    "mean_length",
    "parse_length",
]

_FORMS = "give N, MIN:MAX, normal:MEAN,STD[,MIN:MAX] or file:PATH"
_NUM = r"(\d+(?:\.\d*)?|\.\d+)"
_FIXED = re.compile(r"(\d+)")
_UNIFORM = re.compile(r"(\d+):(\d+)")
_NORMAL = re.compile(rf"normal:{_NUM},{_NUM}(?:,(\d+):(\d+))?", re.IGNORECASE)
_FILE_PREFIX = "file:"
_FROZEN = ConfigDict(frozen=True, extra="forbid")


class FixedLength(BaseModel):
    """Every request the same length: the baseline that isolates one batch shape."""

    model_config = _FROZEN
    kind: Literal["fixed"] = "fixed"
    value: int = Field(ge=1)


class UniformLength(BaseModel):
    """Every length from ``min`` to ``max`` (both included) equally likely."""

    model_config = _FROZEN
    kind: Literal["uniform"] = "uniform"
    min: int = Field(ge=1)
    max: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> UniformLength:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class NormalLength(BaseModel):
    """A normal length, rounded and clipped into ``[min, max]`` (see the module docstring)."""

    model_config = _FROZEN
    kind: Literal["normal"] = "normal"
    mean: float = Field(gt=0)
    std: float = Field(ge=0)
    min: int = Field(default=1, ge=1)
    max: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> NormalLength:
        if self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        # A mean outside the clip range would pile most draws on one bound: surely a typo.
        if self.mean < self.min or (self.max is not None and self.mean > self.max):
            top = "" if self.max is None else f", {self.max}"
            raise ValueError(f"mean {self.mean:g} lies outside the clip range [{self.min}{top}]")
        return self


class EmpiricalLength(BaseModel):
    """Lengths drawn, with replacement, from observed ones: ``values`` or a ``file`` of them."""

    model_config = _FROZEN
    kind: Literal["empirical"] = "empirical"
    values: tuple[Annotated[int, Field(ge=1)], ...] | None = None
    file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_file(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        values, file = data.get("values"), data.get("file")
        if (values is None) == (file is None):
            raise ValueError("give either values (a list of token counts) or file (a path)")
        if isinstance(file, str | Path):
            data = {**data, "values": _read_lengths(Path(file))}
        return data

    @model_validator(mode="after")
    def _not_empty(self) -> EmpiricalLength:
        if not self.values:
            raise ValueError("give at least one length")
        return self

    @model_serializer(mode="wrap")
    def _dump_as_written(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Drop what was read from the file, so a dump validates again as the spec it was.
        data = handler(self)
        if self.file is not None and isinstance(data, dict):
            data.pop("values", None)
        return data


LengthSpec = Annotated[
    FixedLength | UniformLength | NormalLength | EmpiricalLength, Field(discriminator="kind")
]


def _read_lengths(path: Path) -> tuple[int, ...]:
    """One positive integer per line (``#`` comments allowed) or a JSON list of them."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValueError(f"{path}: cannot read lengths file ({reason})") from None
    if text.lstrip().startswith("["):
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{path}: invalid JSON list ({exc})") from None
        for index, item in enumerate(items):
            if not isinstance(item, int) or isinstance(item, bool) or item < 1:
                raise ValueError(f"{path} item {index}: {item!r} is not a positive integer")
        if not items:
            raise ValueError(f"{path} holds no lengths; give at least one token count")
        return tuple(items)
    lengths: list[int] = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if not _FIXED.fullmatch(entry) or int(entry) < 1:
            raise ValueError(
                f"{path} line {number}: {entry!r} is not a positive integer;"
                " give one token count per line"
            )
        lengths.append(int(entry))
    if not lengths:
        raise ValueError(f"{path} holds no lengths; give one token count per line")
    return tuple(lengths)


def parse_length(text: str, *, option: str = "length") -> LengthSpec:
    """Read the command-line grammar; any problem is one :class:`ConfigError` line, led by
    ``option`` when given (a workload file's field names itself)."""
    where = f"{option}: " if option else ""
    stripped = text.strip()
    try:
        if stripped.lower().startswith(_FILE_PREFIX) and stripped[len(_FILE_PREFIX) :].strip():
            return EmpiricalLength(file=Path(stripped[len(_FILE_PREFIX) :].strip()))
        compact = "".join(stripped.split())
        if match := _FIXED.fullmatch(compact):
            return FixedLength(value=int(match[1]))
        if match := _UNIFORM.fullmatch(compact):
            return UniformLength(min=int(match[1]), max=int(match[2]))
        if match := _NORMAL.fullmatch(compact):
            mean, std, low, high = match.groups()
            if low is None:
                return NormalLength(mean=float(mean), std=float(std))
            return NormalLength(mean=float(mean), std=float(std), min=int(low), max=int(high))
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise ConfigError(f"{where}invalid length {text!r}: {problems}") from None
    raise ConfigError(f"{where}cannot read {text!r} as a length; {_FORMS}")


def _problem(error: ErrorDetails) -> str:
    message = error["msg"].removeprefix("Value error, ")
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {message}" if where else message


def _coerce(value: object) -> object:
    """Let config files write ``256`` or ``"128:512"`` where a length spec goes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"kind": "fixed", "value": value}
    if isinstance(value, str):
        return parse_length(value, option="")
    return value


LengthField = Annotated[LengthSpec, BeforeValidator(_coerce)]


def length_sampler(spec: LengthSpec, rng: random.Random) -> Callable[[], int]:
    """A zero-argument sampler bound to ``rng``: cheap enough to call once per request."""
    if isinstance(spec, FixedLength):
        value = spec.value
        return lambda: value
    if isinstance(spec, UniformLength):
        randint, low, high = rng.randint, spec.min, spec.max
        return lambda: randint(low, high)
    if isinstance(spec, NormalLength):
        gauss, mean, std = rng.gauss, spec.mean, spec.std
        floor, ceiling = spec.min, sys.maxsize if spec.max is None else spec.max

        def normal() -> int:
            drawn = round(gauss(mean, std))
            return floor if drawn < floor else ceiling if drawn > ceiling else drawn

        return normal
    choice, values = rng.choice, spec.values or ()
    return lambda: choice(values)


def mean_length(spec: LengthSpec) -> float:
    """The expected length, for planning token budgets and labelling reports.

    For a normal length this is its mean clipped into ``[min, max]``: exact when clipping
    cuts both tails alike or hardly at all, and off by the lopsided tail mass otherwise.
    """
    if isinstance(spec, FixedLength):
        return float(spec.value)
    if isinstance(spec, UniformLength):
        return (spec.min + spec.max) / 2
    if isinstance(spec, NormalLength):
        high = float("inf") if spec.max is None else spec.max
        return min(max(spec.mean, spec.min), high)
    values = spec.values or ()
    return sum(values) / len(values) if values else 0.0


def describe_length(spec: LengthSpec) -> str:
    """A short phrase for reports, so a result names the workload that produced it."""
    if isinstance(spec, FixedLength):
        return f"fixed {spec.value}"
    if isinstance(spec, UniformLength):
        return f"uniform {spec.min}-{spec.max}"
    if isinstance(spec, NormalLength):
        clip = f"to >= {spec.min}" if spec.max is None else f"{spec.min}-{spec.max}"
        return f"normal mean {spec.mean:g} sd {spec.std:g}, clipped {clip}"
    count = len(spec.values or ())
    source = f" from {spec.file.name}" if spec.file is not None else ""
    noun = "value" if count == 1 else "values"
    return f"empirical, {count} {noun} (mean {mean_length(spec):.1f}){source}"
