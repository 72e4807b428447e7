"""pandas DataFrame -> (features, labels, sample weights) arrays and
`tf.data.Dataset`s for `fit`, `evaluate` and `predict`."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np

from kmtl.data.batching import batched_dataset
from kmtl.features.inputs import input_dtype
from kmtl.features.inputs import input_shape
from kmtl.features.spec import SEQUENCE_INT_PAD
from kmtl.features.spec import SEQUENCE_STRING_PAD
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import SequenceFeature
from kmtl.features.spec import TaskSpec

MISSING_STRING = SEQUENCE_STRING_PAD
"""What a missing string becomes: `""`, out of every inferred vocabulary,
so the lookup sends it to the OOV bucket."""
MISSING_ID = SEQUENCE_INT_PAD
"""What a missing integer id becomes: `-1`, always OOV."""
FLOAT_EXACT = 2**53


def features_from_dataframe(df: Any, spec: FeatureSpec) -> dict[str, Any]:
    """Extracts and checks the model inputs of `spec` from a DataFrame.

    Integer columns become int64, float columns float32, strings NumPy
    object arrays (what Keras string inputs need), list columns padded
    `[N, max_length]` arrays (`-1` / `""`, truncated to `max_length`).

    Missing values (NaN, `None`, `pd.NA`) are normal input, each mapped to
    what the model treats as missing: `""` for a string and `-1` for an
    integer id (both go to the OOV bucket), NaN for a numerical (the
    encoder fills it and masks it), an empty list for a sequence.

    Args:
        df: pandas.DataFrame with a column per input of the spec.
        spec: FeatureSpec.

    Returns:
        dict input name -> NumPy array (writable copies: editing one leaves
        the DataFrame as it was).

    Raises:
        ValueError: a column is missing or has the wrong dtype (the message
            names the feature and the expected dtype), or a scenario id is
            out of range.
    """
    missing = [n for n in spec.input_names if n not in df.columns]
    if missing:
        raise ValueError(
            f"Input feature(s) {missing} are not columns of the DataFrame. "
            f"Expected columns {spec.input_names}."
        )
    return check_features(
        {n: _column(df[n], input_dtype(spec, n)) for n in spec.input_names},
        spec,
    )


def _column(series: Any, dtype: str) -> np.ndarray:
    """A column as a writable NumPy array of its own, pandas' nullable
    dtypes (`Int64`, `Float64`, `boolean`) with their missing values as -1
    (ids) or NaN (floats)."""
    import pandas as pd

    if not isinstance(series.dtype, np.dtype) and series.hasnans:
        if dtype == "int64" and (
            pd.api.types.is_integer_dtype(series)
            or pd.api.types.is_bool_dtype(series)
        ):
            return series.to_numpy("int64", na_value=MISSING_ID)
        if dtype == "float32" and pd.api.types.is_numeric_dtype(series):
            return series.to_numpy("float64", na_value=np.nan)
    array = series.to_numpy()
    # pandas (3, copy-on-write) hands out read-only views of its columns:
    # copy them, so the arrays are the caller's to edit and editing one
    # never edits the DataFrame.
    own = array.flags.owndata and array.flags.writeable
    return array if own else array.copy()


def check_features(
    features: Mapping[str, Any], spec: FeatureSpec
) -> dict[str, Any]:
    """Validates a dict of raw feature arrays against a spec and converts
    each one to the dtype and shape of its model input.

    Args:
        features: dict name -> array-like (one entry per example).
        spec: FeatureSpec.

    Returns:
        dict name -> NumPy array, in `spec.input_names` order.

    Missing values are mapped as in `features_from_dataframe`.

    Raises:
        ValueError: an unknown or missing feature, a wrong dtype or shape,
            or a scenario id out of range; the message names the feature.
    """
    unknown = [n for n in features if n not in spec.input_names]
    if unknown:
        raise ValueError(
            f"Unknown feature(s) {unknown}: not inputs of this spec. "
            f"Expected some of {spec.input_names}."
        )
    missing = [n for n in spec.input_names if n not in features]
    if missing:
        raise ValueError(
            f"Missing input feature(s) {missing}. Expected {spec.input_names}."
        )
    out = {}
    for name in spec.input_names:
        out[name] = _convert(name, features[name], spec)
    sizes = {len(v) for v in out.values()}
    if len(sizes) > 1:
        raise ValueError(
            "Input features have different numbers of rows: "
            f"{ {n: len(v) for n, v in out.items()} }."
        )
    scenario = spec.scenario
    if scenario is not None:
        columns = ((scenario.name, scenario.values), *scenario.levels)
        for column, values in columns:
            ids = out[column]
            bad = (ids < 0) | (ids >= len(values))
            if bad.any():
                missing = (
                    " (-1 is a missing id)" if (ids == MISSING_ID).any() else ""
                )
                raise ValueError(
                    f"Scenario column {column!r} must hold ids in "
                    f"[0, {len(values)}) (values {values}){missing}. "
                    f"Received: {sorted(set(ids[bad].tolist()))[:10]}"
                )
    return out


def _convert(name: str, values: Any, spec: FeatureSpec) -> np.ndarray:
    dtype = input_dtype(spec, name)
    shape = input_shape(spec, name)
    feature = spec.feature(name) if name in spec.names() else None
    if isinstance(feature, SequenceFeature):
        return _pad_sequences(name, values, feature.max_length, dtype)
    array = np.asarray(values)
    if array.dtype == object and dtype != "string" and len(array):
        first = array.flat[0]
        if isinstance(first, (list, tuple, np.ndarray)):
            array = np.stack([np.asarray(v) for v in array])
    if dtype == "string":
        if array.dtype.kind not in "OUS":
            raise ValueError(
                f"Feature {name!r} expects strings; received dtype "
                f"{array.dtype}."
            )
        array = _strings(array)
    elif dtype == "int64":
        array = _int_ids(name, array)
    else:
        array = _floats(name, array)
    if array.shape[1:] != shape:
        raise ValueError(
            f"Feature {name!r} expects per-example shape {shape}; received "
            f"{array.shape[1:]}."
        )
    return array


def _strings(array: np.ndarray) -> np.ndarray:
    """An object array of `str`/`bytes`, missing values (None, NaN, pd.NA)
    as `""` and other values (numbers) as their `str`, as
    `FeatureSpec.from_dataframe` writes them in a vocabulary."""
    import pandas as pd

    array = array.astype(object)
    missing = pd.isna(array)
    if missing.any():
        array = array.copy()
        array[missing] = MISSING_STRING
    if pd.api.types.infer_dtype(array.ravel(), skipna=False) not in (
        "string",
        "bytes",
        "empty",
    ):
        array = np.vectorize(
            lambda v: v if isinstance(v, (str, bytes)) else str(v),
            otypes=[object],
        )(array)
    return array


def _floats(name: str, array: np.ndarray) -> np.ndarray:
    """Numbers as float32; in an object array (numbers and `None`), a
    missing value becomes NaN, which the encoder fills and masks."""
    import pandas as pd

    if array.dtype == object:
        missing = pd.isna(array)
        try:
            array = np.where(missing, np.nan, array).astype("float64")
        except (TypeError, ValueError):
            pass
    if array.dtype.kind not in "fiub":
        raise ValueError(
            f"Feature {name!r} expects float32 numbers; received dtype "
            f"{array.dtype}."
        )
    return array.astype("float32", copy=False)


def _int_ids(name: str, array: np.ndarray) -> np.ndarray:
    """Integer ids as int64 at full width. A float column (what pandas makes
    of an integer column with NaN) is accepted when its finite values are
    whole numbers; its missing values become `-1` (OOV)."""
    if array.dtype.kind == "f":
        present = np.isfinite(array)
        ids = array[present]
        if np.all(np.mod(ids, 1) == 0):
            if ids.size and np.abs(ids).max() > FLOAT_EXACT:
                raise ValueError(
                    f"Feature {name!r} holds integer ids as floats (a column "
                    "with NaN); past 2**53 floats no longer hold every "
                    "integer, so these ids are not exact. Use an int64 (or "
                    "nullable `Int64`) column. "
                    f"Received: column={name!r}, max={np.abs(ids).max()}"
                )
            return np.where(present, array, MISSING_ID).astype("int64")
    if array.dtype.kind not in "iub":
        raise ValueError(
            f"Feature {name!r} expects integer ids (int64); received "
            f"dtype {array.dtype}."
        )
    if array.dtype == np.uint64 and array.size and array.max() >= 2**63:
        raise ValueError(
            f"Feature {name!r} expects int64 ids; uint64 ids >= 2**63 do "
            "not fit (hash them to int64 first). "
            f"Received: column={name!r}, max={array.max()}"
        )
    return array.astype("int64", copy=False)


def _pad_sequences(
    name: str, values: Any, max_length: int, dtype: str
) -> np.ndarray:
    if _padded(values, max_length, dtype):
        # Already `[N, max_length]` (as the file readers give it).
        return _strings(values) if dtype == "string" else values.astype("int64")
    values = list(values)
    pad = SEQUENCE_STRING_PAD if dtype == "string" else SEQUENCE_INT_PAD
    out = np.full(
        (len(values), max_length), pad, object if dtype == "string" else "int64"
    )
    for i, seq in enumerate(values):
        if seq is None or (np.ndim(seq) == 0 and _is_missing(seq)):
            continue  # a missing list: no event
        seq = np.asarray(seq)[:max_length]
        if seq.size == 0:
            continue
        if dtype == "int64" and seq.dtype.kind not in "iu":
            raise ValueError(
                f"Sequence feature {name!r} expects lists of integer ids; "
                f"row {i} holds dtype {seq.dtype}."
            )
        if dtype == "string":
            seq = _strings(seq)  # a missing event is padding
        out[i, : len(seq)] = seq
    return out


def _padded(values: Any, max_length: int, dtype: str) -> bool:
    """Whether `values` is a padded `[N, max_length]` array of ids (ints)
    or strings (objects)."""
    return (
        isinstance(values, np.ndarray)
        and values.ndim == 2
        and values.shape[1] == max_length
        and values.dtype.kind in ("O" if dtype == "string" else "iu")
    )


def _is_missing(value: Any) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def labels_from_dataframe(
    df: Any, tasks: Sequence[TaskSpec]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Labels and per-output sample weights of `tasks` from a DataFrame.

    A task's label is its column (or the product of its columns). Its
    sample weight is 1 on every row, or, with a `sample_space`, the label
    of that task: a CVR task with `sample_space="ctr"` counts clicked rows
    only, in its loss and in its metrics.

    Args:
        df: pandas.DataFrame with the label columns.
        tasks: the model's output tasks (`kmtl.model_tasks(name, spec)`).

    Returns:
        (labels, sample_weights): dicts task name -> float32 array `[N]`
        (int32 for multiclass labels).

    Raises:
        ValueError: a label column is missing (naming task and column),
            a sample space names a task not in `tasks`, a label is missing
            or not finite (NaN, inf), a binary label is not 0/1, or a
            multiclass label is not an integer in `[0, num_classes)`; the
            message names the task, the column and the number of bad rows.
    """
    names = [t.name for t in tasks]
    labels, weights = {}, {}
    for task in tasks:
        for col in task.label_columns:
            if col not in df.columns:
                raise ValueError(
                    f"Label column {col!r} of task {task.name!r} is not in "
                    f"the DataFrame. Expected one of {list(df.columns)}."
                )
        label = np.ones(len(df), "float64")
        for col in task.label_columns:
            label = label * _label_column(df, col, task)
        labels[task.name] = _check_label(label, task)
    for task in tasks:
        if task.sample_space is None:
            weights[task.name] = np.ones(len(df), "float32")
        elif task.sample_space not in labels:
            raise ValueError(
                f"Task {task.name!r} has sample_space={task.sample_space!r}, "
                f"which is not one of the tasks {names}."
            )
        else:
            weights[task.name] = labels[task.sample_space].astype("float32")
    return labels, weights


def _label_column(df: Any, col: str, task: TaskSpec) -> np.ndarray:
    """One label column as float64, checked to be finite everywhere."""
    try:
        values = df[col].to_numpy("float64", na_value=np.nan)
    except (TypeError, ValueError):
        raise ValueError(
            f"Task {task.name!r}: label column {col!r} must hold numbers. "
            f"Received: column={col!r} of dtype {df[col].dtype}"
        ) from None
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"Task {task.name!r}: label column {col!r} holds {bad.sum()} "
            f"missing or non-finite value(s) (NaN, inf) of {len(values)} "
            "rows; a NaN label makes the loss NaN. Drop or fill those rows. "
            f"Received: column={col!r}, task={task.name!r}, "
            f"bad_rows={int(bad.sum())}, first at row positions "
            f"{np.flatnonzero(bad)[:5].tolist()}"
        )
    return values


def _check_label(label: np.ndarray, task: TaskSpec) -> np.ndarray:
    """A task's (finite) label checked against its kind, as float32 (int32
    for a multiclass task)."""
    if task.kind == "binary":
        bad = ~np.isin(label, (0.0, 1.0))
        expected = "0 and 1"
    elif task.kind == "multiclass":
        bad = (
            (np.mod(label, 1) != 0) | (label < 0) | (label >= task.num_classes)
        )
        expected = f"integer classes in [0, {task.num_classes})"
    else:
        bad = np.zeros(len(label), bool)
    if bad.any():
        raise ValueError(
            f"Task {task.name!r} is {task.kind} but its label "
            f"{task.label!r} holds {int(bad.sum())} value(s) other than "
            f"{expected}. Received: task={task.name!r}, "
            f"label={task.label!r}, bad_rows={int(bad.sum())}, values "
            f"{sorted(set(label[bad].tolist()))[:5]}"
        )
    return label.astype("int32" if task.kind == "multiclass" else "float32")


def to_dataset(
    df: Any,
    spec: FeatureSpec,
    *,
    tasks: Sequence[TaskSpec] | None = None,
    batch_size: int = 2048,
    shuffle: bool = False,
    seed: int | None = None,
    with_labels: bool = True,
) -> Any:
    """Builds a batched, prefetched `tf.data.Dataset` from a DataFrame.

    Args:
        df: pandas.DataFrame with the input and label columns.
        spec: FeatureSpec.
        tasks: the model's output tasks. Defaults to `spec.tasks`; models
            with derived outputs (ESMM's `ctcvr`) need
            `kmtl.model_tasks(name, spec)`.
        batch_size: int. Defaults to 2048.
        shuffle: bool. Shuffle the rows each epoch. Defaults to `False`.
        seed: int. Shuffle seed. Defaults to `None`.
        with_labels: bool. `False` yields features only (for `predict`).

    Returns:
        A `tf.data.Dataset` of `(features, labels, sample_weights)` dicts
        (or of `features` with `with_labels=False`).

    Example:

    ```python
    model = kmtl.build("mmoe", spec)
    model.fit(kmtl.data.to_dataset(train_df, spec, shuffle=True), epochs=3)
    ```
    """
    if batch_size < 1:
        raise ValueError(
            f"`batch_size` must be a positive integer. Received: "
            f"batch_size={batch_size}"
        )
    if len(df) == 0:
        raise ValueError(
            "to_dataset: the DataFrame is empty; `fit`, `evaluate` and "
            "`predict` need at least one row. Received: a DataFrame of 0 "
            f"rows, columns {list(df.columns)}"
        )
    features = features_from_dataframe(df, spec)
    if with_labels:
        labels, weights = labels_from_dataframe(df, tasks or spec.tasks)
        data = (features, labels, weights)
    else:
        data = features
    return batched_dataset(data, batch_size, shuffle=shuffle, seed=seed)
