"""The columns a file reader must return for a spec and its tasks, and the
chunks of rows it returns them in."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from kmtl.features.inputs import input_dtype
from kmtl.features.inputs import input_shape
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import TaskSpec

EXPECTED = {
    "int64": "integer ids",
    "float32": "numbers",
    "string": "strings",
}


@dataclasses.dataclass(frozen=True)
class FileColumns:
    """What to read from each file: the model inputs (dtype and
    per-example shape) and the label columns of the tasks.

    Args:
        inputs: dict input name -> (dtype, shape): `"int64"`, `"float32"`
            or `"string"`, and `()`, `(dim,)` or `(max_length,)`.
        labels: dict label column -> the names of the tasks it labels.

    Example:

    ```python
    columns = FileColumns.of(spec, spec.tasks)
    columns.names  # ['item', 'price', ..., 'click']
    ```
    """

    inputs: dict[str, tuple[str, tuple[int, ...]]]
    labels: dict[str, tuple[str, ...]]

    @classmethod
    def of(cls, spec: FeatureSpec, tasks: Sequence[TaskSpec]) -> FileColumns:
        """The inputs of `spec` and the label columns of `tasks`."""
        labels: dict[str, tuple[str, ...]] = {}
        for task in tasks:
            for column in task.label_columns:
                labels[column] = (*labels.get(column, ()), task.name)
        return cls(
            inputs={
                name: (input_dtype(spec, name), input_shape(spec, name))
                for name in spec.input_names
            },
            labels=labels,
        )

    @property
    def names(self) -> list[str]:
        """Every column to read, inputs first."""
        return list(dict.fromkeys([*self.inputs, *self.labels]))

    def describe(self, column: str) -> str:
        """What `column` is for and holds, for error messages: "feature
        'price' (numbers)" or "label column 'click' of task(s) ['ctr']"."""
        if column in self.inputs:
            dtype, shape = self.inputs[column]
            what = EXPECTED[dtype]
            if shape:
                what = f"lists of {what}, {shape[0]} per row at most"
                if dtype == "float32":
                    what = f"lists of exactly {shape[0]} numbers"
            return f"input {column!r} ({what})"
        return (
            f"label column {column!r} of task(s) {list(self.labels[column])} "
            "(numbers)"
        )


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Consecutive rows of one file, as read.

    Args:
        path: str. The file.
        first_row: int. Position of the first row in the file.
        inputs: dict input name -> array, as `kmtl.data.check_features`
            takes it.
        labels: dict label column -> float64 array (NaN where missing).
    """

    path: str
    first_row: int
    inputs: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]

    @property
    def where(self) -> str:
        """`File 'x.parquet', rows 0-16383`, for error messages."""
        rows = len(next(iter({**self.inputs, **self.labels}.values())))
        last = self.first_row + rows - 1
        return f"File {self.path!r}, rows {self.first_row}-{last}"
