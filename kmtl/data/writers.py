"""DataFrames -> Parquet and TFRecord files that `files_to_dataset` reads.

Each file is written beside its final name and renamed into place once
complete, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np

from kmtl.data.files import FORMATS
from kmtl.data.pandas import features_from_dataframe
from kmtl.data.pandas import labels_from_dataframe
from kmtl.data.tfrecord_source import compression
from kmtl.features.spec import SEQUENCE_INT_PAD
from kmtl.features.spec import SEQUENCE_STRING_PAD
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import TaskSpec
from kmtl.validation import OptionalPositiveInt
from kmtl.validation import PositiveInt
from kmtl.validation import hparam_checks

SERIALIZE_ROWS = 4096
"""Rows serialized to `tf.Example`s at a time by `write_tfrecord`."""


def write_parquet(
    data: Any,
    path: str | os.PathLike,
    *,
    rows_per_file: OptionalPositiveInt = None,
    row_group_rows: PositiveInt = 65_536,
) -> list[str]:
    """Writes a DataFrame (or a dict of column arrays) as Parquet files.

    Columns keep their types and missing values (pandas' conversion to
    Arrow: NaN and `None` become nulls, a list column a list column). In a
    dict, a 2-D NumPy array becomes a fixed-size list column, which feeds a
    vector `NumericalFeature(dim=...)` without per-row objects.

    Args:
        data: pandas.DataFrame, or dict column name -> array `[N, ...]`.
        path: str. The file (`train.parquet`); with `rows_per_file`, the
            files are `train-00000-of-00004.parquet`, ... beside it.
        rows_per_file: int. Rows per file. Defaults to `None` (one file).
        row_group_rows: int. Rows per row group: the unit a reader holds in
            memory, shuffles and shards by. Defaults to 65,536.

    Returns:
        list of the paths written.

    Example:

    ```python
    paths = kmtl.data.write_parquet(df, "logs/train.parquet",
                                    rows_per_file=1_000_000)
    ds = kmtl.data.files_to_dataset(paths, spec)
    ```
    """
    import pyarrow.parquet as pq

    for name, check in hparam_checks(write_parquet).items():
        check(locals()[name], name, "write_parquet: ")
    table = _arrow_table(data)
    written = []
    for target, start, stop in _files(path, table.num_rows, rows_per_file):
        with _atomic(target) as temporary:
            pq.write_table(
                table.slice(start, stop - start),
                temporary,
                row_group_size=row_group_rows,
            )
        written.append(target)
    return written


def write_tfrecord(
    df: Any,
    path: str | os.PathLike,
    spec: FeatureSpec,
    *,
    tasks: Sequence[TaskSpec] | None = None,
    rows_per_file: OptionalPositiveInt = None,
) -> list[str]:
    """Writes a DataFrame as TFRecord files of `tf.Example`s, one per row.

    Each row holds the model inputs of `spec` as the exported `examples`
    signature takes them, converted as `to_dataset` converts them (a
    missing string is `""`, a missing id `-1`, a missing numerical NaN, a
    sequence its events), and the label columns of `tasks` as floats.
    Inputs and labels are checked first, as `to_dataset` checks them.

    Args:
        df: pandas.DataFrame.
        path: str. The file (`train.tfrecord`, `.tfrecord.gz` for GZIP);
            with `rows_per_file`, `train-00000-of-00004.tfrecord`, ...
        spec: FeatureSpec.
        tasks: tasks whose label columns are written. Defaults to
            `spec.tasks`.
        rows_per_file: int. Rows per file. Defaults to `None` (one file).

    Returns:
        list of the paths written.

    Raises:
        ValueError: as `to_dataset` on the same DataFrame.

    Example:

    ```python
    paths = kmtl.data.write_tfrecord(df, "logs/train.tfrecord", spec)
    ds = kmtl.data.files_to_dataset(paths, spec)
    ```
    """
    import tensorflow as tf

    for name, check in hparam_checks(write_tfrecord).items():
        check(locals()[name], name, "write_tfrecord: ")
    tasks = tuple(tasks or spec.tasks)
    features = features_from_dataframe(df, spec)
    labels_from_dataframe(df, tasks)  # the checks only
    label_columns = dict.fromkeys(c for t in tasks for c in t.label_columns)
    for column in label_columns:
        if column not in features:
            features[column] = df[column].to_numpy("float32")
    sequences = set(spec.names("sequence"))
    written = []
    for target, start, stop in _files(path, len(df), rows_per_file):
        options = tf.io.TFRecordOptions(compression_type=compression(target))
        with _atomic(target) as temporary:
            with tf.io.TFRecordWriter(temporary, options) as writer:
                for first in range(start, stop, SERIALIZE_ROWS):
                    rows = slice(first, min(first + SERIALIZE_ROWS, stop))
                    batch = {n: v[rows] for n, v in features.items()}
                    for record in serialize_batch(batch, sequences).numpy():
                        writer.write(record)
        written.append(target)
    return written


def serialize_batch(
    features: Mapping[str, np.ndarray], sequences: set[str]
) -> Any:
    """Serializes rows as `tf.Example`s in one vectorised pass
    (`tf.io.encode_proto`), the records `serialize_examples` writes one by
    one in Python (about 100 times slower on the ae-synth rows).

    Each column becomes an Int64List (ints, bools), a FloatList (floats)
    or a BytesList (strings) of its row's values; a sequence's trailing
    padding (`-1`, `""`) is left out.

    Args:
        features: dict name -> array `[rows]` or `[rows, width]`.
        sequences: the names of the sequence columns.

    Returns:
        string tensor `[rows]` of serialized `tf.Example` protos.

    Example:

    ```python
    records = serialize_batch({"item": np.array([3, 4])}, set())
    tf.io.parse_example(records, {"item": tf.io.FixedLenFeature([], tf.int64)})
    ```
    """
    import tensorflow as tf

    rows = len(next(iter(features.values())))
    ones = tf.ones([rows, 1], tf.int32)

    def encode(message: str, fields: list[str], sizes: Any, values: list):
        return tf.io.encode_proto(
            sizes, values, fields, f"tensorflow.{message}"
        )

    entries = []
    for name, array in features.items():
        array = np.asarray(array)
        values = array.reshape(rows, -1)
        sizes = np.full((rows, 1), values.shape[1], np.int32)
        if name in sequences:
            sizes[:, 0] = _unpadded_lengths(values)
        if values.dtype.kind in "OSU":
            kind, list_type = "bytes_list", "BytesList"
            values = tf.constant(values.astype(object), tf.string)
        elif values.dtype.kind in "iub":
            kind, list_type = "int64_list", "Int64List"
            values = values.astype("int64")
        elif values.dtype.kind == "f":
            kind, list_type = "float_list", "FloatList"
            values = values.astype("float32")
        else:
            raise ValueError(
                f"Feature {name!r} has dtype {array.dtype}, which a "
                "tf.Example cannot hold (int, float, bool or string "
                "expected)."
            )
        value_list = encode(list_type, ["value"], sizes, [values])
        feature = encode("Feature", [kind], ones, [value_list[:, None]])
        entries.append(
            encode(
                "Features.FeatureEntry",
                ["key", "value"],
                tf.ones([rows, 2], tf.int32),
                [tf.fill([rows, 1], name), feature[:, None]],
            )
        )
    count = tf.fill([rows, 1], len(entries))
    feature_map = encode("Features", ["feature"], count, [tf.stack(entries, 1)])
    return encode("Example", ["features"], ones, [feature_map[:, None]])


def _unpadded_lengths(values: np.ndarray) -> np.ndarray:
    """Per row, the length without the trailing pad values (`-1`, `""`)."""
    if values.dtype.kind in "OSU":
        events = ~np.isin(values, (SEQUENCE_STRING_PAD, b""))
    else:
        events = values != SEQUENCE_INT_PAD
    last = values.shape[1] - np.argmax(events[:, ::-1], axis=1)
    return np.where(events.any(axis=1), last, 0)


def _arrow_table(data: Any) -> Any:
    import pyarrow as pa

    if not isinstance(data, Mapping):
        return pa.Table.from_pandas(data, preserve_index=False)
    columns = {}
    for name, values in data.items():
        values = np.asarray(values) if not isinstance(values, list) else values
        if isinstance(values, np.ndarray) and values.ndim == 2:
            columns[name] = pa.FixedSizeListArray.from_arrays(
                pa.array(values.reshape(-1)), values.shape[1]
            )
        else:
            columns[name] = pa.array(values)
    return pa.table(columns)


def _files(
    path: str | os.PathLike, rows: int, rows_per_file: int | None
) -> list[tuple[str, int, int]]:
    """(file name, first row, end row) of each file to write."""
    path = os.fspath(path)
    if rows_per_file is None or rows <= rows_per_file:
        return [(path, 0, rows)]
    count = -(-rows // rows_per_file)
    stem, ending = _split_ending(path)
    return [
        (
            f"{stem}-{i:05d}-of-{count:05d}{ending}",
            i * rows_per_file,
            min(rows, (i + 1) * rows_per_file),
        )
        for i in range(count)
    ]


def _split_ending(path: str) -> tuple[str, str]:
    """`("a/train", ".tfrecord.gz")` of `"a/train.tfrecord.gz"`."""
    for ending in sorted(FORMATS, key=len, reverse=True):
        if path.lower().endswith(ending):
            return path[: -len(ending)], path[-len(ending) :]
    return os.path.splitext(path)


@contextlib.contextmanager
def _atomic(target: str) -> Iterator[str]:
    """A temporary name beside `target`, renamed to it on success and
    removed on failure."""
    directory = os.path.dirname(target) or "."
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(
        directory, f".{os.path.basename(target)}.{os.getpid()}.tmp"
    )
    try:
        yield temporary
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    os.replace(temporary, target)
