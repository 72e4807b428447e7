"""`FeatureSpec` inference from Parquet or CSV files in one streaming pass,
with memory bounded by the vocabularies, not the rows."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np

from kmtl.data.arrow_columns import arrow_kind
from kmtl.data.arrow_sources import CSV_BLOCK_BYTES
from kmtl.data.arrow_sources import open_parquet
from kmtl.data.column_stats import IdStats
from kmtl.data.column_stats import Moments
from kmtl.data.column_stats import ValueCounts
from kmtl.data.files import expand_paths
from kmtl.data.files import file_format
from kmtl.features.spec import SEQUENCE_STRING_PAD
from kmtl.features.spec import CategoricalFeature
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import NumericalFeature
from kmtl.features.spec import ScenarioSpec
from kmtl.features.spec import SequenceFeature
from kmtl.features.spec import TaskSpec
from kmtl.features.spec import _infer_int_ids
from kmtl.validation import positive_int

TRACKED_PER_VOCABULARY = 100
"""With `min_frequency > 1`, distinct values counted per vocabulary entry
allowed (`max_tracked_values` defaults to this times `max_vocabulary`)."""


def spec_from_files(
    paths: str | os.PathLike | Sequence[Any],
    labels: Mapping[str, str | Sequence[str]] | Sequence[str],
    scenario: str | None = None,
    *,
    format: str | None = None,
    scenario_values: Sequence[str] | None = None,
    sample_spaces: Mapping[str, str] | None = None,
    exclude: Iterable[str] = (),
    max_vocabulary: int = 10_000,
    embedding_dim: int = 16,
    groups: Mapping[str, str] | None = None,
    min_frequency: int = 1,
    max_tracked_values: int | None = None,
    read_rows: int = 65_536,
) -> FeatureSpec:
    """Infers a `FeatureSpec` from Parquet or CSV files in one pass.

    The rules are `FeatureSpec.from_dataframe`'s, column by column, on the
    files' Arrow types: integers (and booleans) become categorical ids
    (`vocabulary_size = max + 1`, or hashing for sparse ids), floats
    normalised numericals (mean and variance of the finite values, by a
    streaming update), strings a sorted vocabulary or, past
    `max_vocabulary` values, hashing into `2 * max_vocabulary` bins, and
    list columns sequences. With `min_frequency=1` the spec equals
    `from_dataframe` on the same rows (means and variances to rounding).

    Beyond `from_dataframe`: a vocabulary keeps only values seen at least
    `min_frequency` times (rarer ones map to the OOV bucket); a
    fixed-size list of floats (as `write_parquet` writes a 2-D array)
    becomes a vector `NumericalFeature(dim=...)` with per-position
    statistics; and a string sequence with more than `max_tracked_values`
    distinct values is hashed into `2 * max_vocabulary` bins instead of
    listing them.

    Memory: ids keep their distinct values below `2**31` (the rows their
    embedding needs), strings count at most `max_vocabulary` values
    (`min_frequency=1`: one more means hashing) or `max_tracked_values`
    (`min_frequency > 1`: past it, hashing), numericals three numbers.

    CSV files take the column types Arrow infers from the first file's
    first block (a list column of a CSV is a string column).

    Args:
        paths: a path or glob, or a list of them.
        labels: dict task -> label column(s), or a list of label columns.
        scenario: str. The scenario column (integer ids >= 0). Defaults to
            `None`.
        format: str. `"parquet"` or `"csv"`. Defaults to the names'
            endings.
        scenario_values, sample_spaces, exclude, max_vocabulary,
        embedding_dim, groups: as `FeatureSpec.from_dataframe`.
        min_frequency: int. Fewest occurrences of a vocabulary entry.
            Defaults to 1.
        max_tracked_values: int. Most distinct values counted per string
            column with `min_frequency > 1`. Defaults to 100 times
            `max_vocabulary`.
        read_rows: int. Rows per record batch read. Defaults to 65,536.

    Returns:
        A `FeatureSpec`.

    Raises:
        ValueError: no file, no row, a named column missing from a file,
            a column of a type no feature takes, negative integer ids, or
            files whose columns disagree; the message names the file and
            the column.

    Example:

    ```python
    spec = kmtl.features.spec_from_files(
        "logs/*.parquet", labels=["click", "conversion"], scenario="scenario"
    )
    ```
    """
    max_vocabulary = positive_int(max_vocabulary, "max_vocabulary", _OWNER)
    min_frequency = positive_int(min_frequency, "min_frequency", _OWNER)
    read_rows = positive_int(read_rows, "read_rows", _OWNER)
    if max_tracked_values is None:
        max_tracked_values = TRACKED_PER_VOCABULARY * max_vocabulary
    max_tracked_values = positive_int(
        max_tracked_values, "max_tracked_values", _OWNER
    )
    files = expand_paths(paths)
    fmt = file_format(files, format)
    if fmt == "tfrecord":
        raise ValueError(
            f"{_OWNER}reads Parquet and CSV files: a TFRecord file holds no "
            "column types (and is written from a spec already). "
            f"Received: format={fmt!r}"
        )
    reader = _ParquetBatches(read_rows) if fmt == "parquet" else _CsvBatches()
    types = reader.types(files[0])
    label_map = (
        dict(labels)
        if isinstance(labels, Mapping)
        else {name: name for name in labels}
    )
    label_columns = set()
    for task, columns in label_map.items():
        columns = (columns,) if isinstance(columns, str) else tuple(columns)
        for column in columns:
            if column not in types:
                raise ValueError(
                    f"Label column {column!r} of task {task!r} is not in "
                    f"file {files[0]!r}. Expected one of {list(types)}."
                )
        label_columns.update(columns)
    exclude = set(exclude)
    for column in (scenario, *exclude):
        if column is not None and column not in types:
            raise ValueError(
                f"Column {column!r} is not in file {files[0]!r}. Expected "
                f"one of {list(types)}."
            )
    limit = max_vocabulary if min_frequency == 1 else max_tracked_values
    stats = {
        name: _stats_of(files[0], name, dtype, limit, max_tracked_values)
        for name, dtype in types.items()
        if name not in label_columns | exclude
    }
    scenario_ids = IdStats() if scenario is not None else None
    if scenario is not None and arrow_kind(types[scenario]) != "int":
        raise ValueError(
            f"Scenario column {scenario!r} must hold integer ids >= 0. "
            f"Received type {types[scenario]} in file {files[0]!r}."
        )
    rows = 0
    for path in files:
        for batch in reader.batches(path, types):
            rows += batch.num_rows
            for name, column_stats in stats.items():
                column_stats.update(path, name, batch.column(name))
            if scenario_ids is not None:
                scenario_ids.update(_ids(batch.column(scenario)))
    if rows == 0:
        raise ValueError(
            f"{_OWNER}the files hold no rows; vocabularies and statistics "
            f"need at least one. Received: files={files}"
        )
    groups = dict(groups or {})
    features = [
        column_stats.feature(
            name, groups.get(name), max_vocabulary, min_frequency
        )
        for name, column_stats in stats.items()
    ]
    scenario_spec = None
    if scenario is not None:
        if scenario_ids.minimum is None or scenario_ids.minimum < 0:
            raise ValueError(
                f"Scenario column {scenario!r} must hold integer ids >= 0. "
                f"Received: min={scenario_ids.minimum}"
            )
        scenario_spec = ScenarioSpec(
            scenario,
            values=scenario_values
            or [f"s{i}" for i in range(scenario_ids.maximum + 1)],
        )
    spaces = dict(sample_spaces or {})
    tasks = [
        TaskSpec(name, label=columns, sample_space=spaces.get(name))
        for name, columns in label_map.items()
    ]
    return FeatureSpec(
        features=features,
        tasks=tasks,
        scenario=scenario_spec,
        embedding_dim=embedding_dim,
    )


_OWNER = "spec_from_files: "


# === Reading ===


class _ParquetBatches:
    """Record batches of Parquet files, a row group at a time."""

    def __init__(self, read_rows: int) -> None:
        self.read_rows = read_rows

    def types(self, path: str) -> dict[str, Any]:
        schema = open_parquet(path).schema_arrow
        return {field.name: field.type for field in schema}

    def batches(self, path: str, types: dict[str, Any]) -> Iterator[Any]:
        import pyarrow as pa

        parquet = open_parquet(path)
        _same_columns(
            path, types, {f.name: f.type for f in parquet.schema_arrow}
        )
        try:
            for group in range(parquet.metadata.num_row_groups):
                # One row group at a time: the whole file's batches read
                # ahead (about twice the memory on 1M-row files).
                yield from parquet.iter_batches(
                    batch_size=self.read_rows,
                    row_groups=[group],
                    columns=list(types),
                )
        except (pa.ArrowException, OSError) as error:
            raise ValueError(
                f"File {path!r} cannot be read (truncated or corrupt?): {error}"
            ) from None


class _CsvBatches:
    """Record batches of CSV files, with the first file's column types."""

    def types(self, path: str) -> dict[str, Any]:
        reader = self._open(path, None)
        return {field.name: field.type for field in reader.schema}

    def batches(self, path: str, types: dict[str, Any]) -> Iterator[Any]:
        import pyarrow as pa

        reader = self._open(path, types)
        _same_columns(
            path, types, {field.name: field.type for field in reader.schema}
        )
        while True:
            try:
                yield reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowException as error:
                raise ValueError(
                    f"File {path!r} cannot be read as CSV with the column "
                    f"types of the first file ({error})."
                ) from None

    def _open(self, path: str, types: dict[str, Any] | None) -> Any:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        try:
            return pcsv.open_csv(
                path,
                read_options=pcsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                convert_options=pcsv.ConvertOptions(
                    column_types=types, strings_can_be_null=True
                ),
            )
        except (pa.ArrowException, OSError) as error:
            raise ValueError(
                f"File {path!r} cannot be read as CSV: {error}"
            ) from None


def _same_columns(
    path: str, expected: dict[str, Any], found: dict[str, Any]
) -> None:
    for name, dtype in expected.items():
        if name not in found:
            raise ValueError(
                f"File {path!r} has no column {name!r}, which the first "
                f"file has. Its columns: {list(found)}."
            )
        if arrow_kind(found[name]) != arrow_kind(dtype):
            raise ValueError(
                f"File {path!r}: column {name!r} holds {found[name]}, the "
                f"first file {dtype}. Received: column={name!r}"
            )


# === Per-column statistics ===


def _stats_of(
    path: str, name: str, dtype: Any, limit: int, max_tracked_values: int
) -> Any:
    """The statistics that decide column `name`'s feature."""
    import pyarrow as pa

    kind = arrow_kind(dtype)
    if kind == "int":
        return _IdColumn()
    if kind == "float":
        return _NumericalColumn()
    if kind == "string":
        return _StringColumn(limit)
    if kind == "list":
        value_kind = arrow_kind(dtype.value_type)
        if pa.types.is_fixed_size_list(dtype) and value_kind == "float":
            return _NumericalColumn(dtype.list_size)
        if value_kind in ("int", "float", "string"):
            return _SequenceColumn(value_kind == "int", max_tracked_values)
    raise ValueError(
        f"File {path!r}: column {name!r} holds {dtype}, which no feature "
        f"takes (integers, floats, strings or lists of them). Exclude it "
        f"(`exclude=[{name!r}]`). Received: column={name!r}, type={dtype}"
    )


def _ids(column: Any) -> np.ndarray:
    """The present integer ids of an Arrow column."""
    import pyarrow as pa

    column = column.drop_null()
    if pa.types.is_boolean(column.type):
        column = column.cast(pa.int64())
    return column.to_numpy(zero_copy_only=False).astype("int64", copy=False)


def _as_strings(values: list[Any]) -> list[str]:
    """Vocabulary entries as `from_dataframe` writes them (`str(v)`),
    without missing values and `""`."""
    strings = {
        str(v)
        for v in values
        if v is not None and not (isinstance(v, float) and math.isnan(v))
    }
    return sorted(strings - {SEQUENCE_STRING_PAD})


class _IdColumn:
    """An integer column: a categorical feature of ids."""

    def __init__(self) -> None:
        self.ids = IdStats()

    def update(self, path: str, name: str, column: Any) -> None:
        ids = _ids(column)
        if ids.size and ids.min() < 0:
            raise ValueError(
                f"File {path!r}: column {name!r} holds negative "
                "integers; integer categorical ids must be >= 0 (or cast it "
                "to float for a numerical feature). "
                f"Received: min={ids.min()}"
            )
        self.ids.update(ids)

    def feature(
        self,
        name: str,
        group: str | None,
        max_vocabulary: int,
        min_frequency: int,
    ) -> CategoricalFeature:
        return CategoricalFeature(
            name,
            **_infer_int_ids(self.ids.distinct(), max_vocabulary),
            group=group,
        )


class _NumericalColumn:
    """A float column (or fixed-size float lists): a normalised numerical."""

    def __init__(self, dim: int = 1) -> None:
        self.dim = dim
        self.moments = Moments(dim)

    def update(self, path: str, name: str, column: Any) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.dim > 1:
            values = pc.list_flatten(column).cast(pa.float64())
            values = values.to_numpy(zero_copy_only=False).reshape(-1, self.dim)
        else:
            values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        self.moments.update(values)

    def feature(
        self,
        name: str,
        group: str | None,
        max_vocabulary: int,
        min_frequency: int,
    ) -> NumericalFeature:
        present = self.moments.count > 0
        mean = np.where(present, self.moments.mean, 0.0)
        variance = self.moments.variance
        variance = np.where(
            present & (variance > 0) & (variance < math.inf), variance, 1.0
        )
        return NumericalFeature(
            name,
            dim=self.dim,
            mean=mean.tolist() if self.dim > 1 else float(mean[0]),
            variance=variance.tolist() if self.dim > 1 else float(variance[0]),
            group=group,
        )


class _StringColumn:
    """A string column: a vocabulary, or hashing."""

    def __init__(self, limit: int) -> None:
        self.counts = ValueCounts(limit)

    def update(self, path: str, name: str, column: Any) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        present = column.drop_null()
        empty = pa.scalar(SEQUENCE_STRING_PAD).cast(present.type)
        self.counts.update(present.filter(pc.not_equal(present, empty)))

    def feature(
        self,
        name: str,
        group: str | None,
        max_vocabulary: int,
        min_frequency: int,
    ) -> CategoricalFeature:
        values = self.counts.frequent(min_frequency)
        if values is not None:
            values = _as_strings(values)
        if values is None or len(values) > max_vocabulary:
            return CategoricalFeature(
                name, hash_bins=2 * max_vocabulary, dtype="string", group=group
            )
        if not values:  # every value missing (or rare): one bin for all
            return CategoricalFeature(
                name, hash_bins=1, dtype="string", group=group
            )
        return CategoricalFeature(name, vocabulary=values, group=group)


class _SequenceColumn:
    """A list column: a sequence of ids or of vocabulary entries."""

    def __init__(self, integer: bool, max_tracked_values: int) -> None:
        self.integer = integer
        self.rows = 0
        self.max_length = 0
        self.ids = IdStats() if integer else None
        self.counts = None if integer else ValueCounts(max_tracked_values)
        self.events = 0

    def update(self, path: str, name: str, column: Any) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        present = column.drop_null()
        self.rows += len(present)
        if len(present):
            lengths = pc.list_value_length(present)
            self.max_length = max(self.max_length, pc.max(lengths).as_py())
        values = pc.list_flatten(present)
        self.events += len(values)
        if self.integer:
            ids = _ids(values)
            self.ids.update(ids[ids >= 0])
        else:
            if not pa.types.is_floating(values.type):
                values = values.cast(pa.string())
            self.counts.update(values)

    def feature(
        self,
        name: str,
        group: str | None,
        max_vocabulary: int,
        min_frequency: int,
    ) -> Any:
        if not self.rows:  # as `from_dataframe` on a column of missing lists
            return CategoricalFeature(
                name, hash_bins=1, dtype="string", group=group
            )
        max_length = max(1, self.max_length)
        if self.integer and self.events:
            return SequenceFeature(
                name,
                max_length=max_length,
                **_infer_int_ids(self.ids.distinct(), max_vocabulary),
                group=group,
            )
        values = [] if self.integer else self.counts.frequent(min_frequency)
        if values is None:
            return SequenceFeature(
                name,
                max_length=max_length,
                hash_bins=2 * max_vocabulary,
                dtype="string",
                group=group,
            )
        return SequenceFeature(
            name,
            max_length=max_length,
            vocabulary=_as_strings(values) or ["?"],
            group=group,
        )
