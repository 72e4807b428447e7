"""`files_to_dataset` and the writers: the batches from Parquet, CSV and
TFRecord files are the batches `to_dataset` cuts from the DataFrame (the
ground truth), streamed in bounded memory, sharded and shuffled."""

import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

import kmtl
from kmtl.data import files_to_dataset
from kmtl.data import to_dataset
from kmtl.data import write_parquet
from kmtl.data import write_tfrecord
from kmtl.data.arrow_sources import LIST_DELIMITER
from kmtl.data.arrow_sources import ParquetSource
from kmtl.data.row_batcher import RowBatcher
from kmtl.data.row_batcher import ShuffleBuffer
from kmtl.data.synthetic import sigmoid
from kmtl.features.spec import CategoricalFeature
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import NumericalFeature
from kmtl.features.spec import ScenarioSpec
from kmtl.features.spec import SequenceFeature
from kmtl.features.spec import TaskSpec

USERS = [f"u{i:03d}" for i in range(60)]
TAGS = ["new", "sale", "gift", "eco"]

SPEC = FeatureSpec(
    features=[
        CategoricalFeature("user", vocabulary=USERS[:50]),  # 10 users OOV
        CategoricalFeature("item", vocabulary_size=40),
        CategoricalFeature("city", hash_bins=8, dtype="string"),
        NumericalFeature("price", mean=3.0, variance=4.0),
        NumericalFeature("key"),  # unique per row: identifies rows
        NumericalFeature("embedding", dim=3),
        SequenceFeature("history", max_length=4, shared_with="item"),
        SequenceFeature("tags", max_length=3, vocabulary=TAGS),
    ],
    tasks=[
        TaskSpec("ctr", label="click"),
        TaskSpec("cvr", label="buy", sample_space="ctr"),
    ],
    scenario=ScenarioSpec("domain", values=["home", "search", "cart"]),
)
ESMM_TASKS = kmtl.model_tasks("esmm", SPEC)  # ctcvr = click * buy


def _log(rows, seed=0):
    """An impression log with a known click probability: Zipf-skewed
    string user ids and int item ids with per-user and per-item effects,
    imbalanced scenarios (70/25/5 %), missing values in every kind of
    column (None strings, NA ids in a nullable column, NaN floats, missing
    lists and missing events), and `buy` only on clicks."""
    rng = np.random.default_rng(seed)
    user = np.minimum(rng.zipf(1.5, rows) - 1, len(USERS) - 1)
    item = np.minimum(rng.zipf(1.3, rows) - 1, 39)
    domain = rng.choice(3, rows, p=[0.7, 0.25, 0.05])
    price = rng.lognormal(1.0, 0.5, rows)
    user_effect = np.random.default_rng(99).normal(0, 0.7, len(USERS))
    item_effect = np.random.default_rng(98).normal(0, 0.7, 40)
    logit = -1.5 + user_effect[user] + item_effect[item] - 0.2 * price
    click = (rng.random(rows) < sigmoid(logit)).astype(int)
    buy = click * (rng.random(rows) < sigmoid(item_effect[item] - 1.0))
    missing = rng.random((6, rows)) < [
        [0.1],
        [0.1],
        [0.15],
        [0.1],
        [0.1],
        [0.1],
    ]
    history = [
        None if missing[4, i] else list(rng.integers(0, 45, rng.integers(0, 7)))
        for i in range(rows)
    ]
    tags = [
        [None if rng.random() < 0.1 else str(t) for t in rng.choice(TAGS, k)]
        for k in rng.integers(0, 5, rows)
    ]
    embedding = rng.normal(size=(rows, 3))
    embedding[missing[5]] = np.nan
    return pd.DataFrame(
        {
            "user": np.where(missing[0], None, np.asarray(USERS)[user]),
            "item": pd.array(np.where(missing[1], None, item), dtype="Int64"),
            "city": rng.choice(["paris", "lyon", "", None], rows),
            "price": np.where(missing[2], np.nan, price),
            "key": rng.random(rows),
            "embedding": list(embedding),
            "history": history,
            "tags": tags,
            "domain": domain,
            "click": click,
            "buy": buy,
        }
    )


def _write_csv(df, path):
    """A CSV of the log: lists as `|`-separated cells."""
    out = df.copy()
    for name in ("embedding", "history", "tags"):
        out[name] = [
            None
            if v is None
            else LIST_DELIMITER.join("" if x is None else str(x) for x in v)
            for v in df[name]
        ]
    out.to_csv(path, index=False)
    return path


def _write(df, directory, fmt, parts=3):
    """The log as `parts` files of one format; returns their glob."""
    os.makedirs(directory, exist_ok=True)
    rows = -(-len(df) // parts)
    if fmt == "parquet":
        write_parquet(
            df,
            f"{directory}/log.parquet",
            rows_per_file=rows,
            row_group_rows=97,
        )
    elif fmt == "tfrecord":
        write_tfrecord(
            df,
            f"{directory}/log.tfrecord",
            SPEC,
            tasks=ESMM_TASKS,
            rows_per_file=rows,
        )
    else:
        for i, start in enumerate(range(0, len(df), rows)):
            _write_csv(df[start : start + rows], f"{directory}/log-{i}.csv")
    return f"{directory}/log*.{fmt}"


def _arrays(element):
    return tf.nest.map_structure(lambda t: t.numpy(), element)


def _assert_same_batches(expected, got):
    expected, got = list(expected), list(got)
    assert len(got) == len(expected)
    for want, have in zip(expected, got, strict=True):
        tf.nest.assert_same_structure(want, have)
        for a, b in zip(
            tf.nest.flatten(_arrays(want)),
            tf.nest.flatten(_arrays(have)),
            strict=True,
        ):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)  # NaN == NaN here


def _keys(dataset):
    """The `key` of every row, in order (a row's identity)."""
    return np.concatenate(
        [
            (element[0] if isinstance(element, tuple) else element)["key"]
            for element in _arrays(list(dataset))
        ]
    )


@pytest.fixture(scope="module")
def log():
    return _log(1000)


@pytest.fixture(scope="module")
def written(log, tmp_path_factory):
    base = tmp_path_factory.mktemp("logs")
    return {
        fmt: _write(log, base / fmt, fmt)
        for fmt in ("parquet", "csv", "tfrecord")
    }


@pytest.mark.parametrize("fmt", ["parquet", "csv", "tfrecord"])
def test_same_batches_as_the_dataframe(fmt, log, written):
    # 1000 rows in 3 files, batches of 64: batches span files and row
    # groups; ESMM's derived ctcvr label and the cvr sample space too.
    expected = to_dataset(log, SPEC, tasks=ESMM_TASKS, batch_size=64)
    got = files_to_dataset(
        written[fmt], SPEC, tasks=ESMM_TASKS, batch_size=64, read_rows=50
    )
    _assert_same_batches(expected, got)
    features = to_dataset(log, SPEC, batch_size=300, with_labels=False)
    _assert_same_batches(
        features,
        files_to_dataset(written[fmt], SPEC, batch_size=300, with_labels=False),
    )


def test_missing_values_arrive_as_in_a_dataframe(written):
    features, labels, weights = _arrays(
        next(iter(files_to_dataset(written["parquet"], SPEC, batch_size=1000)))
    )
    assert (features["user"] == b"").mean() > 0.05  # None -> ""
    assert (features["item"] == -1).mean() > 0.05  # NA -> -1
    assert np.isnan(features["price"]).mean() > 0.1  # NaN kept
    assert np.isnan(features["embedding"]).all(axis=1).mean() > 0.05
    assert (features["history"] == -1).all(axis=1).mean() > 0.1
    np.testing.assert_array_equal(weights["cvr"], labels["ctr"])


def test_two_shards_partition_the_rows(log, written, tmp_path):
    every = np.sort(log["key"].to_numpy("float32"))
    # Parquet: 12 row groups dealt out; one TFRecord file: chunks dealt out.
    single = _write(log, tmp_path, "tfrecord", parts=1)
    for pattern in (written["parquet"], written["csv"], single):
        shards = [
            _keys(
                files_to_dataset(
                    pattern,
                    SPEC,
                    batch_size=128,
                    read_rows=100,
                    num_shards=2,
                    shard_index=i,
                )
            )
            for i in range(2)
        ]
        assert 300 < len(shards[0]) < 700, pattern  # both shards work
        assert not set(shards[0]) & set(shards[1])
        np.testing.assert_array_equal(np.sort(np.concatenate(shards)), every)


def test_input_context_gives_the_shard_and_the_replica_batch(written):
    context = tf.distribute.InputContext(
        num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2
    )
    ds = files_to_dataset(
        written["parquet"], SPEC, batch_size=128, input_context=context
    )
    explicit = files_to_dataset(
        written["parquet"], SPEC, batch_size=64, num_shards=2, shard_index=1
    )
    _assert_same_batches(explicit, ds)
    assert ds.cardinality().numpy() == len(list(explicit))


SHUFFLED = dict(batch_size=100, shuffle=True, shuffle_buffer=200)


def test_shuffling_is_a_seeded_permutation_across_files(log, written):
    ordered = _keys(files_to_dataset(written["parquet"], SPEC))
    ds = files_to_dataset(written["parquet"], SPEC, **SHUFFLED, seed=3)
    first, second = _keys(ds), _keys(ds)
    again = _keys(
        files_to_dataset(written["parquet"], SPEC, **SHUFFLED, seed=3)
    )
    for epoch in (first, second):
        np.testing.assert_array_equal(np.sort(epoch), np.sort(ordered))
    assert not np.array_equal(first, ordered)
    assert not np.array_equal(first, second)  # a new order each epoch
    np.testing.assert_array_equal(first, again)  # the same with the seed
    # Rows move far, not only within a row group: the first batch draws
    # from several of the 12 row groups of 97 rows (file order shuffled).
    position = {k: i for i, k in enumerate(ordered)}
    groups = {position[k] // 97 for k in first[:100]}
    assert len(groups) >= 3


def test_shuffle_buffer_holds_at_most_its_size_and_permutes():
    rng = np.random.default_rng(0)
    buffer = ShuffleBuffer(size=50, rng=rng)
    out = []
    for start in range(0, 1000, 30):
        out.append(buffer.push([np.arange(start, min(start + 30, 1000))])[0])
        assert buffer.rows <= 50
    out.append(buffer.flush()[0])
    rows = np.concatenate(out)
    np.testing.assert_array_equal(np.sort(rows), np.arange(1000))
    # Mixed, yet local: a row leaves about `size` rows after it came.
    displacement = np.abs(rows - np.arange(1000))
    assert 10 < np.median(displacement) < 150


def test_row_batcher_cuts_across_chunks():
    batcher = RowBatcher(batch_size=4)
    sizes = [len(b[0]) for c in (3, 3, 7) for b in batcher.push([np.ones(c)])]
    sizes += [len(b[0]) for b in batcher.flush()]
    assert sizes == [4, 4, 4, 1]


def test_reading_streams_row_groups_never_the_whole_file(tmp_path, monkeypatch):
    # 100 row groups of 1000 rows; one shuffled batch reads a few of them.
    rng = np.random.default_rng(1)
    rows = 100_000
    df = pd.DataFrame(
        {
            "item": rng.integers(0, 40, rows),
            "key": rng.random(rows),
            "click": rng.integers(0, 2, rows),
        }
    )
    spec = FeatureSpec(
        features=[SPEC.feature("item"), SPEC.feature("key")],
        tasks=[SPEC.task("ctr")],
    )
    path = write_parquet(df, tmp_path / "big.parquet", row_group_rows=1000)[0]
    read = []
    original = ParquetSource.read

    def counting(self, unit, owned=None):
        for chunk in original(self, unit, owned):
            read.append(len(chunk.inputs["key"]))
            yield chunk

    monkeypatch.setattr(ParquetSource, "read", counting)
    ds = files_to_dataset(
        path,
        spec,
        batch_size=256,
        shuffle=True,
        seed=0,
        shuffle_buffer=2000,
        read_rows=500,
    )
    next(iter(ds))
    # The buffer (2000), the batch and the prefetched ones (3 x 256), and
    # one chunk of 500: under 5 % of the file.
    assert 2000 <= sum(read) <= 2000 + 3 * 256 + 2 * 500


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_missing_column_names_file_and_column(fmt, log, tmp_path):
    pattern = _write(log.drop(columns=["price"]), tmp_path, fmt, parts=1)
    with pytest.raises(
        ValueError, match=rf"log.*\.{fmt}' has no column 'price'"
    ):
        files_to_dataset(pattern, SPEC)


def test_a_tfrecord_without_a_column_is_named_before_reading(log, tmp_path):
    pattern = _write(log, tmp_path, "tfrecord", parts=1)
    wider = FeatureSpec(
        features=[*SPEC.features, CategoricalFeature("age", vocabulary_size=3)],
        tasks=SPEC.tasks,
        scenario=SPEC.scenario,
    )
    with pytest.raises(ValueError, match=r"log\.tfrecord.*\bage\b"):
        files_to_dataset(pattern, wider)


def test_a_wrong_type_names_file_and_column(log, tmp_path):
    df = log.assign(item=log["item"].astype(str))
    pattern = _write(df, tmp_path, "parquet", parts=1)
    with pytest.raises(
        ValueError,
        match=r"log\.parquet.*column 'item'.*"
        r"integer ids",
    ):
        files_to_dataset(pattern, SPEC)
    csv = _write_csv(log.assign(item=["x"] * len(log)), tmp_path / "a.csv")
    with pytest.raises(ValueError, match=r"a\.csv.*column 'item'"):
        files_to_dataset(csv, SPEC)


def test_truncated_files_are_named(log, tmp_path):
    parquet = _write(log, tmp_path, "parquet", parts=1)
    (path,) = [str(p) for p in tmp_path.glob("log*.parquet")]
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"log\.parquet.*not a readable"):
        files_to_dataset(parquet, SPEC)
    # A TFRecord's end is read last: the stream fails, naming the file.
    record = _write(log, tmp_path, "tfrecord", parts=1)
    (path,) = [str(p) for p in tmp_path.glob("log*.tfrecord")]
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[:-10])
    truncated = r"ValueError: File .*log\.tfrecord.*truncated"
    with pytest.raises(tf.errors.InvalidArgumentError, match=truncated):
        list(files_to_dataset(record, SPEC))


def test_a_bad_label_deep_in_a_file_names_file_rows_and_task(log, tmp_path):
    df = log.assign(click=log["click"].astype(float))
    df.loc[900, "click"] = np.nan
    pattern = _write(df, tmp_path, "parquet", parts=1)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"log\.parquet', rows 873-969: Task 'ctr': "
        r"label column 'click'",
    ):
        list(files_to_dataset(pattern, SPEC))


def test_no_file_and_no_format(tmp_path):
    with pytest.raises(ValueError, match="No file matches"):
        files_to_dataset(str(tmp_path / "*.parquet"), SPEC)
    (tmp_path / "log.txt").write_text("a")
    with pytest.raises(ValueError, match="log.txt.*does not say its format"):
        files_to_dataset(str(tmp_path / "log.txt"), SPEC)
    with pytest.raises(ValueError, match="`batch_size` must be a positive"):
        files_to_dataset(str(tmp_path / "log.txt"), SPEC, batch_size=0)


def test_writers_split_files_and_leave_no_temporary(log, tmp_path):
    paths = write_parquet(
        log, tmp_path / "x.parquet", rows_per_file=400, row_group_rows=150
    )
    assert [os.path.basename(p) for p in paths] == [
        f"x-{i:05d}-of-00003.parquet" for i in range(3)
    ]
    assert [pq.ParquetFile(p).metadata.num_rows for p in paths] == [400] * 2 + [
        200
    ]
    assert pq.ParquetFile(paths[0]).metadata.num_row_groups == 3
    gz = write_tfrecord(log, tmp_path / "x.tfrecord.gz", SPEC)
    assert sorted(os.listdir(tmp_path)) == sorted(
        os.path.basename(p) for p in [*paths, *gz]
    )
    _assert_same_batches(
        to_dataset(log, SPEC, batch_size=500),
        files_to_dataset(gz, SPEC, batch_size=500),
    )
    with pytest.raises(ValueError, match="Task 'ctr'.*'click'"):
        write_tfrecord(log.assign(click=2), tmp_path / "y.tfrecord", SPEC)
    assert not (tmp_path / "y.tfrecord").exists()


@pytest.mark.slow
def test_a_model_trained_from_files_reaches_the_oracle(tmp_path):
    # ESMM from 4 shuffled Parquet files whose spec is inferred from them,
    # against the AUC of the true probabilities on held-out rows, with
    # test_learning.py's margins (measured there on the same data: 100k
    # rows, 3 epochs); an untrained model sits near 0.5.
    import keras

    from kmtl.data import make_synthetic
    from kmtl.data.synthetic import true_probabilities
    from kmtl.features.file_inference import spec_from_files
    from kmtl.testing import synthetic_spec
    from kmtl.training.metrics import evaluate_predictions

    train, _ = make_synthetic(100_000, seed=0)
    test, truth = make_synthetic(40_000, seed=1)
    write_parquet(train, tmp_path / "log.parquet", rows_per_file=25_000)
    spec = spec_from_files(
        str(tmp_path / "log-*.parquet"),
        labels={"ctr": "click", "cvr": "purchase"},
        scenario="scenario",
        sample_spaces={"cvr": "ctr"},
    )
    for a, b in zip(spec.features, synthetic_spec(train).features, strict=True):
        assert a == b or np.isclose(a.mean, b.mean, rtol=1e-9), (a, b)
    keras.utils.set_random_seed(0)
    model = kmtl.build("esmm", spec, tower_units=(128, 64, 32))
    model.fit(
        files_to_dataset(
            str(tmp_path / "log-*.parquet"),
            spec,
            tasks=model.tasks,
            batch_size=512,
            shuffle=True,
            seed=0,
        ),
        epochs=3,
        verbose=0,
    )
    predictions = model.predict(
        to_dataset(test, spec, with_labels=False), verbose=0
    )
    got = evaluate_predictions(test, predictions, model.tasks)
    oracle = evaluate_predictions(
        test, true_probabilities(truth, model.tasks), model.tasks
    )
    gaps = oracle.set_index("task").auc - got.set_index("task").auc
    assert gaps["ctr"] <= 0.02 and gaps["ctcvr"] <= 0.02, gaps
