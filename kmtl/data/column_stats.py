"""Streaming statistics of columns, updated a record batch at a time, in
memory bounded by what they describe (the distinct values kept), never by
the number of rows: what `spec_from_files` infers a `FeatureSpec` from."""

from __future__ import annotations

from typing import Any

import numpy as np

from kmtl.features.spec import SPARSE_ID_MIN

COMPACT_ROWS = 1 << 16
"""Pending per-batch results merged once they exceed this many rows (or
the merged size, whichever is larger)."""


class IdStats:
    """Minimum, maximum and distinct values of integer ids.

    The distinct ids are kept (as a sorted array) while they can decide
    whether the ids are sparse (`FeatureSpec.from_dataframe` hashes ids
    whose `max + 1` is far above their number), i.e. until the largest id
    reaches `SPARSE_ID_MIN`, past which ids are hashed whatever their
    number. So memory is bounded by the distinct ids below `2**31`, the
    rows an embedding of them would need.

    Example:

    >>> stats = IdStats()
    >>> stats.update(np.array([3, 1, 3]))
    >>> stats.maximum, len(stats.distinct())
    (3, 2)
    """

    def __init__(self) -> None:
        self.minimum: int | None = None
        self.maximum: int | None = None
        self._distinct = np.empty(0, np.int64)
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0

    def update(self, ids: np.ndarray) -> None:
        """Adds a batch of ids (int64, no missing values)."""
        if not ids.size:
            return
        low, high = int(ids.min()), int(ids.max())
        self.minimum = low if self.minimum is None else min(self.minimum, low)
        self.maximum = high if self.maximum is None else max(self.maximum, high)
        if self.maximum >= SPARSE_ID_MIN:
            self._distinct, self._pending = np.empty(0, np.int64), []
            return
        batch = np.unique(ids)
        self._pending.append(batch)
        self._pending_rows += len(batch)
        if self._pending_rows > max(len(self._distinct), COMPACT_ROWS):
            self._compact()

    def distinct(self) -> np.ndarray:
        """The distinct ids (sorted), or just the maximum once it is past
        `SPARSE_ID_MIN`; empty before any id. Both give
        `FeatureSpec.from_dataframe`'s rule the same answer as every id."""
        if self.maximum is not None and self.maximum >= SPARSE_ID_MIN:
            return np.array([self.maximum], np.int64)
        self._compact()
        return self._distinct

    def _compact(self) -> None:
        if self._pending:
            self._distinct = np.unique(
                np.concatenate([self._distinct, *self._pending])
            )
            self._pending, self._pending_rows = [], 0


class Moments:
    """Count, mean and variance of the finite values (NaN and inf are
    missing), per position for vectors, merged batch by batch with Chan et
    al.'s update:

        n = n_a + n_b,  d = mean_b - mean_a,
        mean = mean_a + d n_b / n,  M2 = M2_a + M2_b + d^2 n_a n_b / n,

    and `variance = M2 / n` (NumPy's `var`, ddof 0).

    Args:
        dim: int. Values per row (1 for a scalar column). Defaults to 1.

    Reference:
        Chan, Golub and LeVeque, "Updating formulae and a pairwise
        algorithm for computing sample variances", 1979.

    Example:

    >>> stats = Moments()
    >>> stats.update(np.array([1.0, np.nan])); stats.update(np.array([3.0]))
    >>> stats.mean.tolist(), stats.variance.tolist()
    ([2.0], [1.0])
    """

    def __init__(self, dim: int = 1) -> None:
        self.count = np.zeros(dim)
        self.mean = np.zeros(dim)
        self._m2 = np.zeros(dim)

    @property
    def variance(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._m2 / self.count

    def update(self, values: np.ndarray) -> None:
        """Adds a batch `[rows]` or `[rows, dim]` of numbers."""
        values = np.asarray(values, np.float64).reshape(len(values), -1)
        finite = np.isfinite(values)
        count = finite.sum(axis=0)
        zeroed = np.where(finite, values, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, zeroed.sum(axis=0) / count, 0.0)
        m2 = (np.where(finite, values - mean, 0.0) ** 2).sum(axis=0)
        total = self.count + count
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, count / total, 0.0)
        delta = mean - self.mean
        self.mean = self.mean + delta * share
        self._m2 = self._m2 + m2 + delta**2 * self.count * share
        self.count = total


class ValueCounts:
    """How often each value occurs, kept while there are at most `limit`
    distinct values; past that the counter gives up (`overflowed`), as a
    vocabulary that long is hashed anyway.

    Per batch, Arrow counts the values (`pyarrow.compute.value_counts`);
    the counts are merged (`Table.group_by`) once the pending ones exceed
    the merged size, so memory holds about twice `limit` values.

    Args:
        limit: int. Most distinct values kept.

    Example:

    >>> counts = ValueCounts(limit=10)
    >>> counts.update(pa.array(["a", "b", "a"]))
    >>> counts.frequent(2)
    ['a']
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.overflowed = False
        self._tables: list[Any] = []
        self._size = 0
        self._pending = 0

    def update(self, values: Any) -> None:
        """Adds a `pyarrow.Array` of values (nulls are skipped)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.overflowed:
            return
        counted = pc.value_counts(values.drop_null())
        self._tables.append(
            pa.table(
                {"value": counted.field("values"), "n": counted.field("counts")}
            )
        )
        self._pending += len(counted)
        if self._pending > max(self._size, COMPACT_ROWS):
            self._compact()

    def frequent(self, min_count: int) -> list[Any] | None:
        """The values seen at least `min_count` times, or `None` when the
        counter overflowed."""
        import pyarrow.compute as pc

        self._compact()
        if self.overflowed:
            return None
        if not self._tables:
            return []
        table = self._tables[0]
        kept = pc.greater_equal(table["n"], min_count)
        return table["value"].filter(kept).to_pylist()

    def _compact(self) -> None:
        import pyarrow as pa

        if self.overflowed or self._pending == 0:
            return
        table = pa.concat_tables(self._tables)
        if len(self._tables) > 1:
            summed = table.group_by("value").aggregate([("n", "sum")])
            table = pa.table({"value": summed["value"], "n": summed["n_sum"]})
        self._tables, self._size, self._pending = [table], len(table), 0
        if self._size > self.limit:
            self.overflowed, self._tables = True, []
