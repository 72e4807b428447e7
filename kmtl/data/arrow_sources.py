"""Parquet and CSV files -> chunks of model inputs and label columns,
streamed record batch by record batch with pyarrow.

Parquet is read one row group at a time (`ParquetFile.iter_batches`), so
memory holds a row group, never a file; a file's row groups are the units
that shuffling reorders and sharding deals out. CSV is read block by block
(`pyarrow.csv.open_csv`) with the column types the spec sets: integer ids
as int64, numbers as float64, strings as strings, and vectors and
sequences as strings of `LIST_DELIMITER`-separated values (`3|5|7`, an
empty cell is an empty list).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

from kmtl.data.arrow_columns import accepts
from kmtl.data.arrow_columns import arrow_kind
from kmtl.data.arrow_columns import to_numpy
from kmtl.data.file_columns import Chunk
from kmtl.data.file_columns import FileColumns

LIST_DELIMITER = "|"
"""Separates the values of a vector or a sequence in a CSV cell."""
CSV_BLOCK_BYTES = 8 << 20
"""Bytes of CSV parsed at a time (about 10k-50k rows of a wide log)."""


class ArrowSource:
    """What the Parquet and CSV readers share: the check of a file's
    columns and the conversion of a record batch to a `Chunk`.

    Args:
        columns: `FileColumns`. What to read.
        read_rows: int. Rows per record batch (Parquet; CSV reads blocks of
            `CSV_BLOCK_BYTES`).
    """

    def __init__(self, columns: FileColumns, read_rows: int) -> None:
        self.columns = columns
        self.read_rows = read_rows

    def check_types(self, path: str, types: dict[str, Any]) -> None:
        """Raises a `ValueError` naming the file and the column when a
        column is absent or of a type its input or label cannot take."""
        for name in self.columns.names:
            if name not in types:
                raise ValueError(
                    f"File {path!r} has no column {name!r}, the "
                    f"{self.columns.describe(name)}. Its columns: "
                    f"{list(types)}."
                )
            dtype = types[name]
            if name in self.columns.inputs:
                ok = accepts(dtype, *self.columns.inputs[name])
            else:
                ok = arrow_kind(dtype) in ("int", "float")
            if not ok:
                raise ValueError(
                    f"File {path!r}: column {name!r} holds {dtype}, but the "
                    f"{self.columns.describe(name)} expects other values. "
                    f"Received: column={name!r}, type={dtype}"
                )

    def chunk(self, path: str, first_row: int, batch: Any) -> Chunk:
        """One record batch as a `Chunk` (the error names file, rows and
        column)."""
        import pyarrow as pa

        inputs, labels = {}, {}
        rows = f"rows {first_row}-{first_row + batch.num_rows - 1}"
        for name in self.columns.names:
            column = batch.column(name)
            try:
                if name in self.columns.inputs:
                    inputs[name] = to_numpy(column, *self.columns.inputs[name])
                if name in self.columns.labels:
                    labels[name] = column.cast(pa.float64()).to_numpy(
                        zero_copy_only=False
                    )
            except (ValueError, pa.ArrowException) as error:
                raise ValueError(
                    f"File {path!r}, {rows}: column {name!r}, the "
                    f"{self.columns.describe(name)}: {error}"
                ) from None
        return Chunk(path, first_row, inputs, labels)


class ParquetSource(ArrowSource):
    """Parquet files, read a row group at a time.

    Example:

    ```python
    source = ParquetSource(FileColumns.of(spec, spec.tasks), 16384)
    source.check("logs/part-0.parquet")
    for unit in source.units("logs/part-0.parquet"):
        for chunk in source.read(unit):
            ...
    ```
    """

    def open(self, path: str) -> Any:
        """The file's `pyarrow.parquet.ParquetFile` (see `open_parquet`)."""
        return open_parquet(path)

    def check(self, path: str) -> None:
        """Checks the file's footer and its columns' types."""
        schema = self.open(path).schema_arrow
        self.check_types(path, {f.name: f.type for f in schema})

    def units(self, path: str) -> list[tuple[str, int, int, int]]:
        """The file's row groups: `(path, index, first row, rows)`."""
        meta = self.open(path).metadata
        units, first = [], 0
        for group in range(meta.num_row_groups):
            rows = meta.row_group(group).num_rows
            units.append((path, group, first, rows))
            first += rows
        return units

    def unit_rows(self, unit: tuple[str, int, int, int]) -> int:
        """Rows in one row group."""
        return unit[3]

    def read(
        self,
        unit: tuple[str, int, int, int],
        owned: Callable[[int], bool] | None = None,
    ) -> Iterator[Chunk]:
        """The chunks of one row group.

        Args:
            unit: a row group, from `units`.
            owned: a test on the chunk's index in the row group; chunks it
                rejects are skipped (sharding a file among workers).
                Defaults to `None` (every chunk).

        Returns:
            An iterator of `Chunk`s of at most `read_rows` rows.
        """
        import pyarrow as pa

        path, group, first, _ = unit
        parquet = self.open(path)
        batches = parquet.iter_batches(
            batch_size=self.read_rows,
            row_groups=[group],
            columns=self.columns.names,
        )
        index = 0
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as error:
                raise ValueError(
                    f"File {path!r}, row group {group} (rows from {first}): "
                    f"cannot be read (truncated or corrupt?): {error}"
                ) from None
            if owned is None or owned(index):
                yield self.chunk(path, first, batch)
            first += batch.num_rows
            index += 1


class CsvSource(ArrowSource):
    """CSV files (with a header row), read a block at a time.

    Example:

    ```python
    source = CsvSource(FileColumns.of(spec, spec.tasks), 16384)
    chunks = list(source.read(("logs.csv", None)))
    ```
    """

    def check(self, path: str) -> None:
        """Checks the header and the first block's values."""
        header = _header(path)
        for name in self.columns.names:
            if name not in header:
                raise ValueError(
                    f"File {path!r} has no column {name!r}, the "
                    f"{self.columns.describe(name)}. Its columns: {header}."
                )
        next(self.read((path, None)), None)

    def units(self, path: str) -> list[tuple[str, None]]:
        """The whole file, `(path, None)`."""
        return [(path, None)]

    def unit_rows(self, unit: tuple[str, None]) -> None:
        """Unknown before reading."""
        return None

    def read(
        self,
        unit: tuple[str, None],
        owned: Callable[[int], bool] | None = None,
    ) -> Iterator[Chunk]:
        """The chunks of one CSV file (as `ParquetSource.read`)."""
        import pyarrow as pa
        import pyarrow.csv as pcsv

        path = unit[0]
        try:
            reader = pcsv.open_csv(
                path,
                read_options=pcsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                convert_options=pcsv.ConvertOptions(
                    column_types=self._types(),
                    include_columns=self.columns.names,
                    strings_can_be_null=True,
                ),
            )
        except (pa.ArrowException, OSError) as error:
            raise self._error(path, 0, error) from None
        first, index = 0, 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as error:
                raise self._error(path, first, error) from None
            if owned is None or owned(index):
                yield self.chunk(path, first, self._lists(path, first, batch))
            first += batch.num_rows
            index += 1

    def _types(self) -> dict[str, Any]:
        import pyarrow as pa

        types = {name: pa.float64() for name in self.columns.labels}
        for name, (dtype, shape) in self.columns.inputs.items():
            if shape or dtype == "string":
                types[name] = pa.string()
            else:
                types[name] = pa.int64() if dtype == "int64" else pa.float64()
        return types

    def _lists(self, path: str, first: int, batch: Any) -> Any:
        """The batch with its vector and sequence cells split into lists."""
        import pyarrow as pa
        import pyarrow.compute as pc

        names = [n for n, (_, shape) in self.columns.inputs.items() if shape]
        if not names:
            return batch
        columns = dict(zip(batch.schema.names, batch.columns, strict=True))
        for name in names:
            dtype = self.columns.inputs[name][0]
            lists = pc.split_pattern(columns[name], LIST_DELIMITER)
            value_type = {"int64": pa.int64(), "float32": pa.float64()}.get(
                dtype, pa.string()
            )
            try:
                columns[name] = lists.cast(pa.list_(value_type))
            except pa.ArrowException as error:
                raise ValueError(
                    f"File {path!r}, rows from {first}: column {name!r}, the "
                    f"{self.columns.describe(name)}, holds a value that is "
                    f"not one: {error}"
                ) from None
        return pa.RecordBatch.from_pydict(columns)

    def _error(self, path: str, first: int, error: Exception) -> ValueError:
        """A parse error naming the file and the column (Arrow names the
        column by its position)."""
        message = str(error)
        found = re.search(r"column #(\d+)", message)
        header = _header(path) if found else []
        if found and int(found.group(1)) < len(header):
            column = header[int(found.group(1))]
            message = (
                f"column {column!r}, the {self.columns.describe(column)}: "
                f"{message}"
            )
        return ValueError(
            f"File {path!r}, rows from {first}: cannot be read as CSV: "
            f"{message}"
        )


def open_parquet(path: str) -> Any:
    """The `pyarrow.parquet.ParquetFile` of `path` (a `ValueError` names a
    file that is not Parquet, or is truncated)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise ValueError(
            f"File {path!r} is not a readable Parquet file (truncated or "
            f"corrupt?): {error}"
        ) from None


def _header(path: str) -> list[str]:
    """The column names of a CSV file's first line."""
    import pyarrow as pa

    try:
        with pa.input_stream(path, compression="detect") as raw:
            line = b""
            while b"\n" not in line:
                block = raw.read(1 << 16)
                if not block:
                    break
                line += block
        line = line.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")
    except (OSError, UnicodeDecodeError, pa.ArrowException) as error:
        raise ValueError(
            f"File {path!r} is not a readable CSV file: {error}"
        ) from None
    return next(csv.reader([line]), [])
