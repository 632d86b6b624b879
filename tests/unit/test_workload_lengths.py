"""Length distributions: the command-line grammar, config coercion, and sampler statistics."""

from __future__ import annotations

import random
import statistics
from collections import Counter
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from sagellm_users._errors import ConfigError
from sagellm_users._workloads.lengths import (
    EmpiricalLength,
    FixedLength,
    LengthField,
    LengthSpec,
    NormalLength,
    UniformLength,
    describe_length,
    length_sampler,
    mean_length,
    parse_length,
)

N = 20_000
FORMS = "give N, MIN:MAX, normal:MEAN,STD[,MIN:MAX] or file:PATH"


def draw(spec: LengthSpec, seed: int = 7, n: int = N) -> list[int]:
    sample = length_sampler(spec, random.Random(seed))
    return [sample() for _ in range(n)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("256", FixedLength(value=256)),
        (" 1 ", FixedLength(value=1)),
        ("128:512", UniformLength(min=128, max=512)),
        ("7:7", UniformLength(min=7, max=7)),
        ("normal:256,64", NormalLength(mean=256, std=64)),
        ("normal:256.5,0", NormalLength(mean=256.5, std=0)),
        ("Normal: 256, 64, 16:1024", NormalLength(mean=256, std=64, min=16, max=1024)),
    ],
)
def test_grammar(text: str, expected: LengthSpec) -> None:
    assert parse_length(text) == expected


def test_grammar_file(tmp_path: Path) -> None:
    file = tmp_path / "lengths.txt"
    file.write_text("3\n5\n")
    spec = parse_length(f"file:{file}")
    assert isinstance(spec, EmpiricalLength)
    assert (spec.values, spec.file) == ((3, 5), file)


@pytest.mark.parametrize(
    "text", ["abc", "", "-5", "1.5", "12:", ":12", "1:2:3", "normal:256", "normal:a,b", "file:"]
)
def test_unreadable_text_names_option_text_and_forms(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_length(text, option="--input-tokens")
    message = str(caught.value)
    assert message == f"--input-tokens: cannot read {text!r} as a length; {FORMS}"
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0", "value: Input should be greater than or equal to 1"),
        ("512:128", "min 512 is above max 128"),
        ("0:5", "min: Input should be greater than or equal to 1"),
        ("normal:0,5", "mean: Input should be greater than 0"),
        ("normal:256,64,512:16", "min 512 is above max 16"),
        ("normal:5,1,16:1024", "mean 5 lies outside the clip range [16, 1024]"),
        ("file:/no/such/lengths.txt", "/no/such/lengths.txt: cannot read lengths file"),
    ],
)
def test_invalid_values_are_one_line_naming_option_and_text(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_length(text, option="--output-tokens")
    message = str(caught.value)
    assert message.startswith(f"--output-tokens: invalid length {text!r}: ")
    assert problem in message
    assert "\n" not in message


def test_default_option_name() -> None:
    with pytest.raises(ConfigError, match=r"^length: cannot read 'x'"):
        parse_length("x")


def test_models_reject_bad_fields() -> None:
    with pytest.raises(ValidationError):
        FixedLength(value=5, extra=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        NormalLength(mean=10, std=-1)
    with pytest.raises(ValidationError, match="either values"):
        EmpiricalLength()
    with pytest.raises(ValidationError, match="either values"):
        EmpiricalLength(values=(1,), file=Path("x"))
    with pytest.raises(ValidationError, match="at least one length"):
        EmpiricalLength(values=())
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        EmpiricalLength(values=(3, 0))
    with pytest.raises(ValidationError):
        FixedLength(value=5).value = 6


class Config(BaseModel):
    tokens: LengthField


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (256, FixedLength(value=256)),
        ("128:512", UniformLength(min=128, max=512)),
        ({"kind": "normal", "mean": 256, "std": 64}, NormalLength(mean=256, std=64)),
        ({"kind": "uniform", "min": 1, "max": 2}, UniformLength(min=1, max=2)),
        ({"kind": "empirical", "values": [4, 4, 9]}, EmpiricalLength(values=(4, 4, 9))),
    ],
)
def test_config_coercion(raw: object, expected: LengthSpec) -> None:
    assert Config.model_validate({"tokens": raw}).tokens == expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (0, "greater than or equal to 1"),
        ("abc", "cannot read 'abc' as a length"),
        ({"kind": "poisson"}, "does not match any of the expected tags"),
        ({"kind": "uniform", "min": 9, "max": 3}, "min 9 is above max 3"),
        (True, "valid dictionary"),
    ],
)
def test_config_coercion_errors(raw: object, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Config.model_validate({"tokens": raw})


def test_empirical_file_round_trips_through_a_dump(tmp_path: Path) -> None:
    file = tmp_path / "lengths.txt"
    file.write_text("10\n20\n")
    config = Config.model_validate({"tokens": {"kind": "empirical", "file": str(file)}})
    dumped = config.model_dump()
    assert dumped["tokens"] == {"kind": "empirical", "file": file}
    assert Config.model_validate(dumped) == config


def test_fixed_sampler_is_exact() -> None:
    assert set(draw(FixedLength(value=300))) == {300}


def test_uniform_sampler_is_flat_and_inclusive() -> None:
    low, high = 100, 499
    values = draw(UniformLength(min=low, max=high))
    assert min(values) == low
    assert max(values) == high
    assert statistics.fmean(values) == pytest.approx((low + high) / 2, rel=0.01)
    quarters = Counter((value - low) * 4 // (high - low + 1) for value in values)
    assert sorted(quarters) == [0, 1, 2, 3]
    for count in quarters.values():
        assert count == pytest.approx(N / 4, rel=0.10)


def test_normal_sampler_matches_its_parameters_far_from_the_clip() -> None:
    values = draw(NormalLength(mean=1000, std=100, min=1, max=10_000))
    assert statistics.fmean(values) == pytest.approx(1000, rel=0.01)
    assert statistics.pstdev(values) == pytest.approx(100, rel=0.03)


def test_normal_sampler_respects_a_tight_clip() -> None:
    values = draw(NormalLength(mean=100, std=50, min=80, max=120))
    assert all(80 <= value <= 120 for value in values)
    counts = Counter(values)
    assert counts[80] > 0
    assert counts[120] > 0
    # About 34% of a normal lies beyond 0.4 sd on each side: the mass piles on the bounds.
    assert counts[80] / N == pytest.approx(0.34, abs=0.03)


def test_normal_sampler_without_max_clips_only_below() -> None:
    values = draw(NormalLength(mean=5, std=20))
    assert min(values) == 1
    assert max(values) > 40


def test_normal_sampler_with_zero_std_is_constant() -> None:
    assert set(draw(NormalLength(mean=64.4, std=0), n=100)) == {64}


def test_empirical_sampler_follows_the_frequencies() -> None:
    spec = EmpiricalLength(values=(10, 20, 20, 30, 30, 30))
    counts = Counter(draw(spec))
    assert set(counts) == {10, 20, 30}
    for value, share in ((10, 1 / 6), (20, 2 / 6), (30, 3 / 6)):
        assert counts[value] == pytest.approx(N * share, rel=0.10)


@pytest.mark.parametrize(
    "spec",
    [
        UniformLength(min=1, max=1000),
        NormalLength(mean=500, std=100),
        EmpiricalLength(values=tuple(range(1, 100))),
    ],
)
def test_seed_replays_the_sequence(spec: LengthSpec) -> None:
    assert draw(spec, seed=1, n=500) == draw(spec, seed=1, n=500)
    assert draw(spec, seed=1, n=500) != draw(spec, seed=2, n=500)


def test_sampler_uses_only_the_given_rng() -> None:
    spec = UniformLength(min=1, max=10**6)
    random.seed(1)
    first = draw(spec, n=50)
    random.seed(2)
    assert draw(spec, n=50) == first


def test_empirical_file_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    file = tmp_path / "lengths.txt"
    file.write_text("# measured on Monday\n\n 12 \n# more\n7\n\n12\n")
    spec = EmpiricalLength(file=file)
    assert spec.values == (12, 7, 12)
    assert describe_length(spec) == "empirical, 3 values (mean 10.3) from lengths.txt"


def test_empirical_file_as_json_list(tmp_path: Path) -> None:
    file = tmp_path / "lengths.json"
    file.write_text(" [5, 6, 7]\n")
    assert EmpiricalLength(file=file).values == (5, 6, 7)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("10\n# fine\n\n12x\n", "line 4: '12x' is not a positive integer"),
        ("10\n0\n", "line 2: '0' is not a positive integer"),
        ("10\n-3\n", "line 2: '-3' is not a positive integer"),
        ("# only a comment\n\n", "holds no lengths"),
        ("[1, 2, 0]", "item 2: 0 is not a positive integer"),
        ('[1, "2"]', "item 1: '2' is not a positive integer"),
        ("[1, true]", "item 1: True is not a positive integer"),
        ("[1, 2", "invalid JSON list"),
        ("[]", "holds no lengths"),
    ],
)
def test_bad_empirical_file_names_file_and_place(
    tmp_path: Path, content: str, problem: str
) -> None:
    file = tmp_path / "lengths.txt"
    file.write_text(content)
    with pytest.raises(ConfigError) as caught:
        parse_length(f"file:{file}", option="--input-tokens")
    message = str(caught.value)
    assert message.startswith("--input-tokens: invalid length")
    assert f"{file} {problem}" in message or f"{file}: {problem}" in message
    assert "\n" not in message


def test_empirical_file_not_utf8(tmp_path: Path) -> None:
    file = tmp_path / "lengths.txt"
    file.write_bytes(b"12\n\xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        parse_length(f"file:{file}")


@pytest.mark.parametrize(
    ("spec", "text", "mean"),
    [
        (FixedLength(value=256), "fixed 256", 256.0),
        (UniformLength(min=128, max=512), "uniform 128-512", 320.0),
        (
            NormalLength(mean=256, std=64, min=16, max=1024),
            "normal mean 256 sd 64, clipped 16-1024",
            256.0,
        ),
        (NormalLength(mean=256.5, std=64), "normal mean 256.5 sd 64, clipped to >= 1", 256.5),
        (EmpiricalLength(values=(1, 2, 4)), "empirical, 3 values (mean 2.3)", 7 / 3),
        (EmpiricalLength(values=(9,)), "empirical, 1 value (mean 9.0)", 9.0),
    ],
)
def test_describe_and_mean(spec: LengthSpec, text: str, mean: float) -> None:
    assert describe_length(spec) == text
    assert mean_length(spec) == pytest.approx(mean)


def test_mean_length_matches_samples_when_clipping_is_symmetric() -> None:
    spec = NormalLength(mean=200, std=80, min=100, max=300)
    assert statistics.fmean(draw(spec)) == pytest.approx(mean_length(spec), rel=0.01)
