"""The fixed fine bins behind Distribution: keys grow with values, read back within a tenth
of the percentile tolerance, agree between the batch and single paths, bound memory."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from sagellm_users._metrics.bins import (
    COARSE,
    FINE,
    LINEAR_LIMIT,
    add_counts,
    batch_keys,
    bin_key,
    bin_value,
)
from sagellm_users._metrics.distribution import EXACT_LIMIT, Distribution


def tolerance(value: float) -> float:
    return max(1e-3 * abs(value), 5e-5)


def test_grid_keys_grow_with_values_and_read_back_within_a_tenth_of_the_tolerance() -> None:
    rng = random.Random(11)
    values = [10 ** rng.uniform(-9, 7) for _ in range(50_000)]
    values += [LINEAR_LIMIT * (1 + i * 1e-7) for i in range(-1000, 1000)]  # around the switch
    values += [i * 5e-6 for i in range(-2000, 2000)]  # linear bin edges, both signs
    values += [-v for v in values[:20_000]] + [0.0, -0.0]
    values.sort()
    keys = [bin_key(v) for v in values]
    assert keys == sorted(keys)
    assert batch_keys(values, min(values)) == keys
    positive = [v for v in values if v >= 0]
    assert batch_keys(positive, 0.0) == [bin_key(v) for v in positive]
    for value, key in zip(values, keys, strict=True):
        assert abs(bin_value(key) - value) <= tolerance(value) / 10 * 1.0001, value
    distinct = sorted(set(keys))
    readings = [bin_value(k) for k in distinct]
    assert readings == sorted(set(readings)), "a bin's value grows with its key"
    assert bin_value(bin_key(0.0)) == 0.0


def test_keys_span_a_known_range() -> None:
    """The bound the modules state: 5,001 linear keys, then 11,514 per decade."""
    assert bin_key(LINEAR_LIMIT * (1 - 1e-12)) == 5000
    assert bin_key(LINEAR_LIMIT * 1.0001) == 5001
    decades = bin_key(LINEAR_LIMIT * 1e6) - bin_key(LINEAR_LIMIT)
    assert 6 * 11_514 <= decades <= 6 * 11_515
    assert bin_key(3600.0) < 61_000
    rng = random.Random(2)
    wide = Distribution(rng.lognormvariate(0, 3) * 1e-3 for _ in range(EXACT_LIMIT + 1))
    bins = len(wide.to_wire()["bins"]["counts"])
    assert bins <= 5001 + 11_515 * math.log10((wide.max or 0) / LINEAR_LIMIT) + 1


@pytest.mark.parametrize("seed", range(5))
def test_adding_counts_equals_counters_own_addition(seed: int) -> None:
    """The master's merge of a worker's bins: the same table Counter.update gives, with
    shared keys, keys of either side alone, and an empty side."""
    rng = random.Random(seed)
    into = Counter({rng.randrange(-50, 5000): rng.randrange(1, 9) for _ in range(300)})
    other = Counter({rng.randrange(-50, 5000): rng.randrange(1, 9) for _ in range(300)})
    expected = into + other
    add_counts(into, other.keys(), other.values())
    assert into == expected
    assert isinstance(into, Counter)
    before = Counter(into)
    add_counts(into, [], [])
    assert into == before
    empty: Counter[int] = Counter()
    add_counts(empty, list(other), list(other.values()))
    assert empty == other


def test_counts_of_unequal_length_are_refused() -> None:
    """A damaged report (one more key than counts) adds nothing silently wrong."""
    table = Counter({1: 5})
    with pytest.raises(ValueError, match="2 bin keys but 1 counts"):
        add_counts(table, [1, 2], [3])
    assert table == Counter({1: 5})


def test_a_table_added_to_itself_doubles() -> None:
    table = Counter({1: 2, 7: 3})
    copy = dict(table)
    add_counts(table, copy.keys(), copy.values())
    assert table == Counter({1: 4, 7: 6})


def test_the_fine_grid_is_what_the_inlined_functions_compute() -> None:
    """Distribution inlines the fine grid for speed: both must give the same keys/values."""
    rng = random.Random(11)
    values = [rng.choice([rng.uniform(0, 0.05), rng.expovariate(2), -rng.uniform(0, 1), 0.05])
              for _ in range(50_000)]  # fmt: skip
    assert FINE.keys(values, min(values)) == batch_keys(values, min(values))
    assert all(FINE.key(v) == bin_key(v) for v in values[:5000])
    keys = {bin_key(v) for v in values}
    assert all(FINE.value(k) == bin_value(k) for k in keys)


def test_the_coarse_grid_reads_within_the_tolerance_and_keeps_order() -> None:
    """Ten times wider: each value reads back within max(0.1%, 0.05 ms) (the fine grid
    within a tenth of it), zero reads as zero, and keys grow with values."""
    rng = random.Random(12)
    values = sorted(
        [rng.uniform(0, 0.06) for _ in range(30_000)]
        + [rng.expovariate(1 / 0.3) for _ in range(30_000)]
        + [0.0, LINEAR_LIMIT, 3600.0]
    )
    for grid, share in ((COARSE, 1.0), (FINE, 0.1)):
        worst = max(abs(grid.value(grid.key(v)) - v) / max(1e-3 * v, 5e-5) for v in values)
        assert share * 0.9 < worst <= share * (1 + 1e-9), grid.name
        keys = grid.keys(values, 0.0)
        assert keys == sorted(keys), grid.name
    assert COARSE.value(COARSE.key(0.0)) == 0.0
    assert COARSE.key(-0.02) == -COARSE.key(0.02)
    assert len(set(COARSE.keys(values, 0.0))) * 5 < len(set(FINE.keys(values, 0.0)))
