"""Arrow columns (from Parquet or CSV record batches) -> the NumPy arrays
that `kmtl.data.check_features` takes, vectorised per record batch.

Missing values become what a DataFrame's would (see
`kmtl.data.features_from_dataframe`): `None` for a string (`check_features`
writes `""`), `-1` for an integer id, NaN for a float, an empty list for a
sequence. A missing vector (a null list) is NaN in every position, i.e.
missing, and a missing event inside a sequence is padding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kmtl.features.spec import SEQUENCE_INT_PAD
from kmtl.features.spec import SEQUENCE_STRING_PAD

MISSING_ID = SEQUENCE_INT_PAD


def arrow_kind(dtype: Any) -> str:
    """What an Arrow type holds: `"int"` (integers and booleans),
    `"float"`, `"string"` (strings, bytes, dictionaries of them),
    `"list"` (any list type), or `"other"`."""
    import pyarrow as pa

    if pa.types.is_dictionary(dtype):
        return arrow_kind(dtype.value_type)
    if pa.types.is_integer(dtype) or pa.types.is_boolean(dtype):
        return "int"
    if pa.types.is_floating(dtype):
        return "float"
    if (
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_binary(dtype)
        or pa.types.is_large_binary(dtype)
    ):
        return "string"
    if (
        pa.types.is_list(dtype)
        or pa.types.is_large_list(dtype)
        or pa.types.is_fixed_size_list(dtype)
    ):
        return "list"
    return "other"


def accepts(dtype: Any, input_dtype: str, shape: tuple[int, ...]) -> bool:
    """Whether a column of Arrow type `dtype` can feed a model input of
    `input_dtype` (`"int64"`, `"float32"`, `"string"`) and per-example
    `shape`: numbers for ids (whole floats, as a DataFrame's) and floats,
    strings for strings, lists of those for vectors and sequences."""
    kind = arrow_kind(dtype)
    if shape:
        if kind != "list":
            return False
        kind = arrow_kind(dtype.value_type)
        if input_dtype == "string":
            return kind in ("string", "int", "float")
    if input_dtype == "string":
        return kind == "string"
    return kind in ("int", "float")


def to_numpy(
    column: Any, input_dtype: str, shape: tuple[int, ...]
) -> np.ndarray:
    """One Arrow column as the array of a model input.

    Args:
        column: `pyarrow.Array` or `ChunkedArray` whose type `accepts` the
            input.
        input_dtype: str. `"int64"`, `"float32"` or `"string"`.
        shape: tuple. Per-example shape: `()`, `(dim,)` for a vector
            numerical, `(max_length,)` for a sequence (`input_dtype` int64
            or string).

    Returns:
        NumPy array `[rows, *shape]`: int64 ids (`-1` where missing),
        floats (NaN where missing), or an object array of `str`/`bytes`
        (`None` where missing).

    Raises:
        ValueError: a vector row holds another number of values than
            `dim` (the caller names the file and the column).

    Example:

    >>> to_numpy(pa.array([3, None]), "int64", ()).tolist()
    [3, -1]
    """
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if not shape:
        return _scalars(column, input_dtype)
    if input_dtype == "float32":
        return _vectors(column, shape[0])
    return _sequences(column, input_dtype, shape[0])


def _scalars(column: Any, input_dtype: str) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if input_dtype == "string":
        return column.to_numpy(zero_copy_only=False)
    if pa.types.is_boolean(column.type):
        column = column.cast(pa.int64())
    if input_dtype == "int64" and pa.types.is_integer(column.type):
        if column.null_count:
            column = pc.fill_null(column, MISSING_ID)
        return column.to_numpy(zero_copy_only=False)
    if column.null_count:
        column = column.cast(pa.float64())
    return column.to_numpy(zero_copy_only=False)


def _list_parts(column: Any) -> tuple[np.ndarray, Any]:
    """(per-row lengths, 0 for a null row; the flat values)."""
    import pyarrow.compute as pc

    lengths = pc.fill_null(pc.list_value_length(column), 0)
    return lengths.to_numpy().astype("int64"), pc.list_flatten(column)


def _vectors(column: Any, dim: int) -> np.ndarray:
    import pyarrow as pa

    lengths, values = _list_parts(column)
    present = column.is_valid().to_numpy(zero_copy_only=False)
    wrong = present & (lengths != dim)
    if wrong.any():
        raise ValueError(
            f"a vector of {dim} values per row was expected; row "
            f"{int(np.flatnonzero(wrong)[0])} holds "
            f"{int(lengths[wrong][0])}"
        )
    if values.null_count or not pa.types.is_floating(values.type):
        values = values.cast(pa.float64())
    flat = values.to_numpy(zero_copy_only=False).reshape(-1, dim)
    if present.all():
        return flat
    out = np.full((len(column), dim), np.nan, flat.dtype)
    out[present] = flat
    return out


def _sequences(column: Any, input_dtype: str, max_length: int) -> np.ndarray:
    """Lists padded (`-1` or `""`) or truncated to `max_length`, in one
    scatter: event `j` of row `i` lands at `[i, j]` when `j < max_length`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lengths, values = _list_parts(column)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    steps = np.arange(len(rows)) - np.repeat(starts, lengths)
    kept = steps < max_length
    if input_dtype == "string":
        if arrow_kind(values.type) != "string":
            values = values.cast(pa.string())
        flat = pc.fill_null(values, SEQUENCE_STRING_PAD)
        flat = flat.to_numpy(zero_copy_only=False)
        out = np.full((len(lengths), max_length), SEQUENCE_STRING_PAD, object)
    else:
        if not pa.types.is_integer(values.type):
            raise ValueError(
                "lists of integer ids were expected; the lists hold "
                f"{values.type}"
            )
        flat = pc.fill_null(values, SEQUENCE_INT_PAD).to_numpy()
        out = np.full((len(lengths), max_length), SEQUENCE_INT_PAD, "int64")
    out[rows[kept], steps[kept]] = flat[kept]
    return out
