"""`spec_from_files`: one streaming pass gives `FeatureSpec.from_dataframe`'s
spec (the ground truth) on the same rows, with bounded counters."""

import dataclasses

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from kmtl.data import write_parquet
from kmtl.data.column_stats import IdStats
from kmtl.data.column_stats import Moments
from kmtl.data.column_stats import ValueCounts
from kmtl.features.file_inference import spec_from_files
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import NumericalFeature

LABELS = {"ctr": "click", "cvr": "buy", "ctcvr": ["click", "buy"]}
OPTIONS = dict(
    labels=LABELS,
    scenario="domain",
    scenario_values=["home", "search", "cart"],
    sample_spaces={"cvr": "ctr"},
    exclude=["request_id"],
    max_vocabulary=40,
    embedding_dim=8,
    groups={"user": "user", "item": "item"},
)


def _log(rows, seed=0):
    """Columns of every kind `from_dataframe` infers, with the messiness of
    a log: Zipf-skewed string user ids (past `max_vocabulary`: hashed),
    int item ids, a nullable Int64 column with NA, sparse 40-bit ids, a
    rare-valued string column, floats with NaN and inf, booleans, int and
    string sequences with missing lists and events, imbalanced scenarios."""
    rng = np.random.default_rng(seed)
    sparse = np.where(rng.random(rows) < 0.5, rng.integers(0, 2**40, rows), 7)
    price = rng.lognormal(1.0, 0.8, rows)
    price[rng.random(rows) < 0.1] = np.nan
    price[rng.random(rows) < 0.01] = np.inf
    return pd.DataFrame(
        {
            "request_id": rng.integers(0, 2**60, rows),
            "user": [f"u{v}" for v in rng.zipf(1.3, rows) % 5000],
            "item": rng.zipf(1.5, rows) % 300,
            "count": pd.array(
                np.where(
                    rng.random(rows) < 0.2, None, rng.integers(0, 9, rows)
                ),
                dtype="Int64",
            ),
            "sparse_id": sparse,
            "city": rng.choice(["paris", "lyon", "nice", "", None], rows),
            "price": price,
            "age": rng.normal(40, 12, rows).astype("float32"),
            "vip": rng.random(rows) < 0.1,
            "history": [
                None if rng.random() < 0.1 else list(rng.integers(0, 500, k))
                for k in rng.integers(0, 9, rows)
            ],
            "tags": [
                [
                    None if rng.random() < 0.1 else f"t{t}"
                    for t in rng.integers(0, 30, k)
                ]
                for k in rng.integers(0, 4, rows)
            ],
            "domain": rng.choice(3, rows, p=[0.7, 0.25, 0.05]),
            "click": rng.integers(0, 2, rows),
            "buy": rng.integers(0, 2, rows),
        }
    )


def _assert_same_spec(got, expected):
    """Equal specs, means and variances to float rounding."""
    assert [f.name for f in got.features] == [f.name for f in expected.features]
    for a, b in zip(got.features, expected.features, strict=True):
        if isinstance(b, NumericalFeature):
            np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12)
            np.testing.assert_allclose(a.variance, b.variance, rtol=1e-10)
            b = dataclasses.replace(b, mean=a.mean, variance=a.variance)
        assert a == b
    assert (got.tasks, got.scenario, got.embedding_dim) == (
        expected.tasks,
        expected.scenario,
        expected.embedding_dim,
    )


@pytest.fixture(scope="module")
def log():
    return _log(6000)


def test_parquet_spec_equals_from_dataframe(log, tmp_path):
    # 4 files of 1500 rows in row groups of 500, read 333 rows at a time:
    # every statistic is merged across batches and files.
    write_parquet(
        log, tmp_path / "log.parquet", rows_per_file=1500, row_group_rows=500
    )
    expected = FeatureSpec.from_dataframe(log, **OPTIONS)
    got = spec_from_files(
        str(tmp_path / "log-*.parquet"), read_rows=333, **OPTIONS
    )
    _assert_same_spec(got, expected)
    kinds = {f.name: f for f in got.features}
    assert kinds["user"].hash_bins == 80  # > 40 distinct strings
    assert kinds["sparse_id"].hash_bins == 80  # 40-bit ids
    assert kinds["item"].vocabulary_size == log["item"].max() + 1
    assert kinds["city"].vocabulary == ("lyon", "nice", "paris")


def test_csv_spec_equals_from_dataframe_of_the_csv(log, tmp_path):
    # (CSV holds no lists; float64 text round-trips exactly, float32 not.)
    flat = log.drop(columns=["history", "tags"]).astype({"age": "float64"})
    flat.iloc[:3000].to_csv(tmp_path / "a.csv", index=False)
    flat.iloc[3000:].to_csv(tmp_path / "b.csv", index=False)
    expected = FeatureSpec.from_dataframe(flat, **OPTIONS)
    got = spec_from_files([tmp_path / "a.csv", tmp_path / "b.csv"], **OPTIONS)
    _assert_same_spec(got, expected)


def test_vector_column_gets_per_position_statistics(tmp_path):
    rng = np.random.default_rng(0)
    dense = rng.normal([1.0, -2.0, 5.0], [1.0, 3.0, 0.5], (4000, 3))
    dense[::7, 1] = np.nan
    write_parquet(
        {"dense": dense, "click": rng.integers(0, 2, 4000)},
        tmp_path / "v.parquet",
        row_group_rows=300,
    )
    (feature,) = spec_from_files(
        tmp_path / "v.parquet", ["click"], read_rows=128
    ).features
    assert feature.dim == 3
    np.testing.assert_allclose(feature.mean, np.nanmean(dense, 0), rtol=1e-12)
    np.testing.assert_allclose(
        feature.variance, np.nanvar(dense, 0), rtol=1e-10
    )


def test_min_frequency_keeps_the_values_seen_often_enough(tmp_path):
    rng = np.random.default_rng(1)
    city = [f"c{v}" for v in rng.zipf(1.6, 20_000) % 2000]
    pd.DataFrame({"city": city, "click": 1}).to_parquet(tmp_path / "c.parquet")
    counts = pd.Series(city).value_counts()
    for min_frequency in (1, 5, 50):
        (feature,) = spec_from_files(
            tmp_path / "c.parquet",
            ["click"],
            max_vocabulary=1000,
            read_rows=1000,
            min_frequency=min_frequency,
        ).features
        frequent = sorted(counts.index[counts >= min_frequency])
        if len(frequent) > 1000:
            assert feature.hash_bins == 2000
        else:
            assert list(feature.vocabulary) == frequent
    # Past `max_tracked_values` distinct values, the counter gives up.
    (feature,) = spec_from_files(
        tmp_path / "c.parquet",
        ["click"],
        max_vocabulary=1000,
        min_frequency=5,
        max_tracked_values=100,
    ).features
    assert feature.hash_bins == 2000


def test_counters_hold_the_vocabulary_not_the_rows():
    counts = ValueCounts(limit=100)
    for start in range(0, 1_000_000, 100_000):  # a million distinct values
        counts.update(pa.array(np.arange(start, start + 100_000).astype(str)))
        assert counts.overflowed and not counts._tables
    assert counts.frequent(1) is None
    ids = IdStats()
    rng = np.random.default_rng(0)
    for _ in range(50):
        ids.update(rng.integers(0, 1000, 100_000))
    assert len(ids.distinct()) == 1000 and ids._pending_rows <= 2 * 65_536
    ids.update(np.array([2**40]))  # sparse for good: nothing more is kept
    assert ids.distinct().tolist() == [2**40]


def test_moments_merge_like_numpy():
    rng = np.random.default_rng(2)
    values = rng.normal(3.0, 2.0, (10_000, 2))
    values[rng.random((10_000, 2)) < 0.1] = np.nan
    moments = Moments(dim=2)
    for chunk in np.array_split(values, 37):
        moments.update(chunk)
    np.testing.assert_allclose(moments.mean, np.nanmean(values, 0), rtol=1e-12)
    np.testing.assert_allclose(
        moments.variance, np.nanvar(values, 0), rtol=1e-10
    )


def test_bad_files_are_named(log, tmp_path):
    write_parquet(log.iloc[:100], tmp_path / "a.parquet")
    with pytest.raises(ValueError, match=r"'nope' of task 'x' .*a\.parquet"):
        spec_from_files(tmp_path / "a.parquet", {"x": "nope"})
    negative = log.iloc[:100].assign(item=-log["item"].iloc[:100])
    write_parquet(negative, tmp_path / "b.parquet")
    with pytest.raises(ValueError, match=r"b\.parquet.*'item' holds negative"):
        spec_from_files(tmp_path / "b.parquet", **OPTIONS)
    times = pd.DataFrame({"when": pd.date_range("2026", periods=3), "click": 1})
    times.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=r"t\.parquet.*'when' holds timestamp"):
        spec_from_files(tmp_path / "t.parquet", ["click"])
    write_parquet(
        log.iloc[:100].drop(columns=["price"]), tmp_path / "c.parquet"
    )
    with pytest.raises(ValueError, match=r"c\.parquet' has no column 'price'"):
        spec_from_files(
            [tmp_path / "a.parquet", tmp_path / "c.parquet"], **OPTIONS
        )
    with pytest.raises(ValueError, match="No file matches"):
        spec_from_files(str(tmp_path / "*.csv"), ["click"])
