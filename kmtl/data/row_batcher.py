"""Streamed chunks of rows -> whole batches, in order or shuffled through
a bounded buffer."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Columns = list[np.ndarray]


class RowBatcher:
    """Cuts chunks of rows (equal-length column arrays) into batches, in
    order and across chunk boundaries, as `kmtl.data.to_dataset` cuts a
    DataFrame: every batch has `batch_size` rows but the last.

    Args:
        batch_size: int. Rows per batch.

    Example:

    >>> batcher = RowBatcher(batch_size=4)
    >>> [len(b[0]) for b in batcher.push([np.arange(6)])]
    [4]
    >>> [len(b[0]) for b in batcher.flush()]
    [2]
    """

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self._rest: Columns | None = None

    def push(self, columns: Sequence[np.ndarray]) -> list[Columns]:
        """Adds a chunk of rows and returns the batches that are ready.

        Args:
            columns: list of arrays with equal first dimensions.

        Returns:
            A list of batches, each a list of arrays in `columns`' order.
        """
        columns = list(columns)
        if self._rest is not None:
            columns = [
                np.concatenate(p) for p in zip(self._rest, columns, strict=True)
            ]
        cut = len(columns[0]) // self.batch_size * self.batch_size
        self._rest = (
            [c[cut:] for c in columns] if cut < len(columns[0]) else None
        )
        return self._batches([c[:cut] for c in columns])

    def flush(self) -> list[Columns]:
        """Returns the rows still held (a last, shorter batch), if any."""
        rest, self._rest = self._rest, None
        return [] if rest is None else [rest]

    def _batches(self, columns: Columns) -> list[Columns]:
        return [
            [c[start : start + self.batch_size] for c in columns]
            for start in range(0, len(columns[0]), self.batch_size)
        ]


class ShuffleBuffer:
    """A buffer of rows that hands out random ones, as
    `tf.data.Dataset.shuffle` does, a chunk at a time.

    The buffer fills with the first `size` rows; then each chunk of `n`
    new rows takes the places of `n` rows drawn uniformly from the
    buffer, which leave it. At the end the rows left leave in random
    order. Memory: `size` rows plus one chunk.

    Args:
        size: int. Rows held.
        rng: `numpy.random.Generator`.

    Example:

    >>> buffer = ShuffleBuffer(size=4, rng=np.random.default_rng(0))
    >>> buffer.push([np.arange(6)])[0].size  # 2 rows leave, 4 stay
    2
    """

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size = size
        self.rng = rng
        self._rows: Columns | None = None

    @property
    def rows(self) -> int:
        """Rows held now."""
        return 0 if self._rows is None else len(self._rows[0])

    def push(self, columns: Sequence[np.ndarray]) -> Columns:
        """Adds a chunk of rows; returns as many rows drawn at random.

        Args:
            columns: list of arrays with equal first dimensions.

        Returns:
            The rows that leave, one array per column (none while the
            buffer fills).
        """
        columns = list(columns)
        if self._rows is None:
            self._rows = [c[: self.size].copy() for c in columns]
            columns = [c[self.size :] for c in columns]
        elif self.rows < self.size:
            room = self.size - self.rows
            self._rows = [
                np.concatenate([b, c[:room]])
                for b, c in zip(self._rows, columns, strict=True)
            ]
            columns = [c[room:] for c in columns]
        count = len(columns[0])
        if count > self.size:  # more rows than places: trade the first part
            first = self.push([c[: self.size] for c in columns])
            rest = self.push([c[self.size :] for c in columns])
            return [np.concatenate(p) for p in zip(first, rest, strict=True)]
        places = self.rng.choice(self.size, count, replace=False)
        leaving = [b[places] for b in self._rows]
        for b, c in zip(self._rows, columns, strict=True):
            b[places] = c
        return leaving

    def flush(self) -> Columns:
        """Empties the buffer; returns its rows in random order."""
        rows, self._rows = self._rows, None
        if rows is None:
            return []
        order = self.rng.permutation(len(rows[0]))
        return [c[order] for c in rows]
