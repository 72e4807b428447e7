"""Parquet, CSV and TFRecord files -> the `(features, labels,
sample_weights)` batches of `kmtl.data.to_dataset`, streaming with bounded
memory.

Each file is read a chunk of rows at a time (a Parquet row group's record
batches, a CSV block, a batch of TFRecord records); each chunk goes
through the conversion a DataFrame goes through (`check_features`,
`labels_from_dataframe`), so missing values, label checks, per-task sample
spaces and derived labels (ESMM's `ctcvr`) are the same; then chunks are
cut into batches across file boundaries, or shuffled through a buffer of
rows. Memory holds a chunk, the shuffle buffer and a few batches, whatever
the number of rows.
"""

from __future__ import annotations

import glob
import itertools
import os
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Annotated
from typing import Any

import numpy as np

from kmtl.data.arrow_sources import CsvSource
from kmtl.data.arrow_sources import ParquetSource
from kmtl.data.batching import PREFETCH_BATCHES
from kmtl.data.file_columns import Chunk
from kmtl.data.file_columns import FileColumns
from kmtl.data.pandas import check_features
from kmtl.data.pandas import labels_from_dataframe
from kmtl.data.row_batcher import RowBatcher
from kmtl.data.row_batcher import ShuffleBuffer
from kmtl.data.tfrecord_source import TFRecordSource
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import TaskSpec
from kmtl.validation import Bool
from kmtl.validation import Check
from kmtl.validation import OptionalPositiveInt
from kmtl.validation import PositiveInt
from kmtl.validation import hparam_checks
from kmtl.validation import non_negative_int

OptionalNonNegativeInt = Annotated[
    int | None, Check(non_negative_int, optional=True)
]

FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tfrecord": "tfrecord",
    ".tfrecords": "tfrecord",
    ".tfrecord.gz": "tfrecord",
}
"""File name endings -> format."""


def expand_paths(paths: str | os.PathLike | Sequence[Any]) -> list[str]:
    """Files named by paths and glob patterns, each pattern's sorted.

    Args:
        paths: a path or glob (`"logs/*.parquet"`), or a list of them.

    Returns:
        list of file paths, without duplicates, in the order given.

    Raises:
        ValueError: a pattern matches no file, or a path is not a file.

    Example:

    >>> expand_paths("logs/day=*/*.parquet")
    ['logs/day=1/a.parquet', 'logs/day=2/a.parquet']
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise ValueError("No file given. Received: paths=[]")
    files: list[str] = []
    for path in map(os.fspath, paths):
        if glob.has_magic(path):
            matched = sorted(p for p in glob.glob(path) if os.path.isfile(p))
            if not matched:
                raise ValueError(
                    f"No file matches {path!r}. Received: paths={path!r}"
                )
            files.extend(matched)
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise ValueError(
                f"File {path!r} does not exist (or is not a file). "
                f"Received: paths={path!r}"
            )
    return list(dict.fromkeys(files))


def file_format(files: Sequence[str], format: str | None = None) -> str:
    """The one format of `files`: `format` if given, else from the names'
    endings (`FORMATS`).

    Raises:
        ValueError: an unknown format, an unknown ending, or endings of
            several formats.
    """
    known = sorted(set(FORMATS.values()))
    if format is not None:
        if format not in known:
            raise ValueError(
                f"`format` must be one of {known}. Received: format={format!r}"
            )
        return format
    found = {}
    for path in files:
        ending = next(
            (
                e
                for e in sorted(FORMATS, key=len, reverse=True)
                if path.lower().endswith(e)
            ),
            None,
        )
        if ending is None:
            raise ValueError(
                f"File {path!r}: its name does not say its format (one of "
                f"{sorted(FORMATS)}); pass `format=` ({known}). "
                f"Received: path={path!r}"
            )
        found.setdefault(FORMATS[ending], path)
    if len(found) > 1:
        raise ValueError(
            f"The files mix formats {found}; read one format at a time."
        )
    return next(iter(found))


def source_of(
    format: str, spec: FeatureSpec, columns: FileColumns, read_rows: int
) -> Any:
    """The reader of one format: `ParquetSource`, `CsvSource` or
    `TFRecordSource`."""
    if format == "parquet":
        return ParquetSource(columns, read_rows)
    if format == "csv":
        return CsvSource(columns, read_rows)
    return TFRecordSource(spec, columns, read_rows)


def files_to_dataset(
    paths: str | os.PathLike | Sequence[Any],
    spec: FeatureSpec,
    *,
    format: str | None = None,
    tasks: Sequence[TaskSpec] | None = None,
    batch_size: PositiveInt = 2048,
    shuffle: Bool = False,
    shuffle_buffer: PositiveInt = 65_536,
    seed: int | None = None,
    num_shards: OptionalPositiveInt = None,
    shard_index: OptionalNonNegativeInt = None,
    input_context: Any = None,
    with_labels: Bool = True,
    read_rows: PositiveInt = 16_384,
) -> Any:
    """Streams files into a `tf.data.Dataset` of `to_dataset`'s batches.

    Without shuffling, the batches are the rows in file order (files in
    the order given, each glob sorted), cut every `batch_size` rows
    across file boundaries: the batches `to_dataset(df, ...)` gives on the
    concatenated DataFrame. With shuffling, each epoch reads the files'
    units (Parquet row groups, CSV and TFRecord files) in a new random
    order and draws rows at random from a buffer of `shuffle_buffer` rows
    (see `ShuffleBuffer`).

    Sharding deals the units out: shard `i` of `n` reads units `i, i + n,
    ...`, so `n` shards partition the rows; with fewer units than shards,
    every shard reads every unit and keeps its chunks `i, i + n, ...`.
    With `input_context` (from `strategy.distribute_datasets_from_function`)
    the shard is the input pipeline and `batch_size` the global batch,
    split among the replicas (`get_per_replica_batch_size`).

    Every file's columns are checked before the dataset is returned (the
    Parquet footer and schema, the CSV header and first block, the first
    TFRecord record); a bad value deeper in a file fails while reading,
    with the same message (naming the file, the rows and the column)
    inside TensorFlow's error.

    Args:
        paths: a path or glob, or a list of them (`"logs/*.parquet"`).
        spec: FeatureSpec.
        format: str. `"parquet"`, `"csv"` or `"tfrecord"`. Defaults to
            the files' name endings (`.parquet`, `.csv`, `.tfrecord`,
            with `.gz` for compressed CSV and TFRecord).
        tasks: the model's output tasks (`model.tasks`). Defaults to
            `spec.tasks`.
        batch_size: int. Defaults to 2048.
        shuffle: bool. Shuffle unit order and rows each epoch. Defaults
            to `False`.
        shuffle_buffer: int. Rows kept back to shuffle with. Defaults to
            65,536.
        seed: int. Seed of the file order and the row shuffle (epoch `e`
            uses `(seed, e)`). Defaults to `None`.
        num_shards: int. Number of shards (workers). Defaults to
            `input_context`'s, else 1.
        shard_index: int. This shard, in `[0, num_shards)`. Defaults to
            `input_context`'s, else 0.
        input_context: `tf.distribute.InputContext`. Defaults to `None`.
        with_labels: bool. `False` yields features only (for `predict`).
            Defaults to `True`.
        read_rows: int. Rows read and converted at a time. Defaults to
            16,384.

    Returns:
        A prefetched `tf.data.Dataset` of `(features, labels,
        sample_weights)` dicts (of `features` with `with_labels=False`).

    Raises:
        ValueError: no file matches, a file is unreadable or lacks a
            column, or a column holds values of the wrong type; the
            message names the file and the column.

    Example:

    ```python
    model = kmtl.build("esmm", spec)
    train = kmtl.data.files_to_dataset(
        "logs/*.parquet", spec, tasks=model.tasks, shuffle=True, seed=0
    )
    model.fit(train, epochs=2)
    ```
    """
    import tensorflow as tf

    for name, check in hparam_checks(files_to_dataset).items():
        check(locals()[name], name, "files_to_dataset: ")
    shards, index = _shard(num_shards, shard_index, input_context)
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    files = expand_paths(paths)
    fmt = file_format(files, format)
    tasks = tuple(tasks or spec.tasks) if with_labels else ()
    columns = FileColumns.of(spec, tasks)
    source = source_of(fmt, spec, columns, read_rows)
    for path in files:
        source.check(path)
    units = [unit for path in files for unit in source.units(path)]
    if not units:
        raise ValueError(f"The files hold no rows. Received: files={files}")
    stride = None
    if len(units) >= shards:
        units = units[index::shards]
    else:
        stride = (shards, index)
    convert = _converter(spec, tasks)
    epochs = itertools.count()

    def batches() -> Iterator[Any]:
        epoch = next(epochs)
        rng = None
        if shuffle:
            rng = np.random.default_rng(None if seed is None else (seed, epoch))
        order = rng.permutation(len(units)) if shuffle else range(len(units))
        batcher = RowBatcher(batch_size)
        buffer = ShuffleBuffer(shuffle_buffer, rng) if shuffle else None
        for position in order:
            owned = None
            if stride is not None:
                owned = _owned(stride, int(position))
            for chunk in source.read(units[position], owned):
                rows = convert(chunk)
                if buffer is not None:
                    rows = buffer.push(rows)
                for batch in batcher.push(rows):
                    yield _nest(batch, columns, tasks)
        if buffer is not None:
            rows = buffer.flush()
            if rows:
                yield from (
                    _nest(b, columns, tasks) for b in batcher.push(rows)
                )
        for batch in batcher.flush():
            yield _nest(batch, columns, tasks)

    dataset = tf.data.Dataset.from_generator(
        batches, output_signature=_signature(spec, columns, tasks)
    )
    rows = [source.unit_rows(unit) for unit in units]
    if stride is None and None not in rows:
        # Known (Parquet): `fit` then knows its steps from the first epoch.
        dataset = dataset.apply(
            tf.data.experimental.assert_cardinality(-(-sum(rows) // batch_size))
        )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF
    )
    return dataset.prefetch(PREFETCH_BATCHES).with_options(options)


def _shard(
    num_shards: int | None, shard_index: int | None, input_context: Any
) -> tuple[int, int]:
    """(number of shards, this shard) from the arguments or the context."""
    if input_context is not None:
        num_shards = (
            input_context.num_input_pipelines
            if num_shards is None
            else num_shards
        )
        shard_index = (
            input_context.input_pipeline_id
            if shard_index is None
            else shard_index
        )
    num_shards = 1 if num_shards is None else num_shards
    shard_index = 0 if shard_index is None else shard_index
    if shard_index >= num_shards:
        raise ValueError(
            "files_to_dataset: `shard_index` must be in [0, num_shards). "
            f"Received: shard_index={shard_index}, num_shards={num_shards}"
        )
    return num_shards, shard_index


def _owned(stride: tuple[int, int], unit: int) -> Callable[[Any], Any]:
    """Whether chunk `i` of unit `unit` is this shard's (also on tensors)."""
    shards, index = stride
    return lambda i: (unit + i) % shards == index


def _converter(
    spec: FeatureSpec, tasks: Sequence[TaskSpec]
) -> Callable[[Chunk], list[np.ndarray]]:
    """A chunk -> its columns, in `_nest`'s order: the inputs checked and
    converted as a DataFrame's are, then the labels and sample weights."""
    import pandas as pd

    def convert(chunk: Chunk) -> list[np.ndarray]:
        try:
            features = check_features(chunk.inputs, spec)
            out = list(features.values())
            if tasks:
                labels, weights = labels_from_dataframe(
                    pd.DataFrame(chunk.labels), tasks
                )
                out += [labels[t.name] for t in tasks]
                out += [weights[t.name] for t in tasks]
        except ValueError as error:
            raise ValueError(f"{chunk.where}: {error}") from None
        return out

    return convert


def _nest(
    batch: list[np.ndarray], columns: FileColumns, tasks: Sequence[TaskSpec]
) -> Any:
    """Flat columns -> `features` or `(features, labels, sample_weights)`."""
    inputs = len(columns.inputs)
    features = dict(zip(columns.inputs, batch[:inputs], strict=True))
    if not tasks:
        return features
    names = [t.name for t in tasks]
    labels = dict(zip(names, batch[inputs : inputs + len(tasks)], strict=True))
    weights = dict(zip(names, batch[inputs + len(tasks) :], strict=True))
    return features, labels, weights


def _signature(
    spec: FeatureSpec, columns: FileColumns, tasks: Sequence[TaskSpec]
) -> Any:
    import tensorflow as tf

    features = {
        name: tf.TensorSpec([None, *shape], dtype, name=name)
        for name, (dtype, shape) in columns.inputs.items()
    }
    if not tasks:
        return features
    labels = {
        t.name: tf.TensorSpec(
            [None], tf.int32 if t.kind == "multiclass" else tf.float32
        )
        for t in tasks
    }
    weights = {t.name: tf.TensorSpec([None], tf.float32) for t in tasks}
    return features, labels, weights
