"""TFRecord files of `tf.Example`s -> chunks of model inputs and label
columns, parsed in parallel with the spec's feature description.

Each record is one row: its inputs as the `examples` signature of an
exported model takes them (`kmtl.export.examples`: a scalar is a list of
one value, a vector `dim` values, a sequence any number of values, an
absent numerical is missing), and each label column a list of one float.
`kmtl.data.write_tfrecord` writes them so.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

from kmtl.data.file_columns import Chunk
from kmtl.data.file_columns import FileColumns
from kmtl.export.examples import feature_description
from kmtl.features.spec import SEQUENCE_INT_PAD
from kmtl.features.spec import SEQUENCE_STRING_PAD
from kmtl.features.spec import FeatureSpec

GZIP_SUFFIX = ".gz"


def compression(path: str) -> str:
    """The TFRecord compression of `path`: `"GZIP"` for `.gz`, else none."""
    return "GZIP" if path.endswith(GZIP_SUFFIX) else ""


class TFRecordSource:
    """TFRecord files, parsed `read_rows` records at a time.

    Args:
        spec: FeatureSpec. Marks the sequences and numericals.
        columns: `FileColumns`. What to read.
        read_rows: int. Records parsed at a time.

    Example:

    ```python
    source = TFRecordSource(spec, FileColumns.of(spec, spec.tasks), 16384)
    chunks = list(source.read(("train.tfrecord", None)))
    ```
    """

    def __init__(
        self, spec: FeatureSpec, columns: FileColumns, read_rows: int
    ) -> None:
        import tensorflow as tf

        self.columns = columns
        self.read_rows = read_rows
        signature = {
            name: tf.TensorSpec([None, *shape], dtype)
            for name, (dtype, shape) in columns.inputs.items()
        }
        for name in columns.labels:
            signature.setdefault(name, tf.TensorSpec([None], tf.float32))
        # The inputs as the `examples` signature parses them, and the labels.
        self.description = feature_description(signature, spec)

    def check(self, path: str) -> None:
        """Parses the file's first record (an empty file passes)."""
        next(self._records(path, 1), None)

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
        """The chunks of one file (as `ParquetSource.read`; here `owned`
        takes the chunk index as a tensor, and rejected chunks are not
        parsed)."""
        path = unit[0]
        for index, parsed in self._records(path, self.read_rows, owned):
            inputs = {n: parsed[n] for n in self.columns.inputs}
            labels = {
                n: parsed[n].astype("float64") for n in self.columns.labels
            }
            yield Chunk(path, index * self.read_rows, inputs, labels)

    def _records(
        self,
        path: str,
        rows: int,
        owned: Callable[[int], bool] | None = None,
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """(index, parsed batch as NumPy) of each batch of `rows` records
        (of those `owned` keeps); a `ValueError` names the file on a
        truncated or corrupt file, or a record without a column or of the
        wrong type."""
        import tensorflow as tf

        records = (
            tf.data.TFRecordDataset(path, compression_type=compression(path))
            .batch(rows)
            .enumerate()
        )
        if owned is not None:
            records = records.filter(lambda i, _: owned(i))
        parsed = records.map(
            lambda i, batch: (i, self._parse(batch)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        ).prefetch(1)
        iterator = iter(parsed)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except tf.errors.OpError as error:
                raise ValueError(
                    f"File {path!r} cannot be read as TFRecord tf.Examples "
                    f"of the spec's inputs and labels {self.columns.names} "
                    f"(truncated or corrupt, a missing column, or values of "
                    f"another type): {error.message}"
                ) from None
            index, values = batch
            yield int(index), {n: v.numpy() for n, v in values.items()}

    def _parse(self, serialized: Any) -> dict[str, Any]:
        """`kmtl.export.examples.parse_examples` without its wire check of
        each row (a quarter of the speed on wide rows), which TFRecord's
        per-record checksums make redundant here."""
        import tensorflow as tf

        parsed = tf.io.parse_example(serialized, self.description)
        for name, (dtype, shape) in self.columns.inputs.items():
            value = parsed[name]
            if isinstance(value, tf.RaggedTensor):
                pad = (
                    SEQUENCE_STRING_PAD
                    if dtype == "string"
                    else SEQUENCE_INT_PAD
                )
                parsed[name] = value.to_tensor(
                    default_value=tf.cast(pad, value.dtype),
                    shape=[None, *shape],
                )
        return parsed
