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


def features_from_dataframe(df: Any, spec: FeatureSpec) -> dict[str, Any]:
    """Extracts and checks the model inputs of `spec` from a DataFrame.

    Integer columns become int64, float columns float32, strings NumPy
    object arrays (what Keras string inputs need), list columns padded
    `[N, max_length]` arrays (`-1` / `""`, truncated to `max_length`).

    Args:
        df: pandas.DataFrame with a column per input of the spec.
        spec: FeatureSpec.

    Returns:
        dict input name -> NumPy array.

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
    return check_features({n: df[n].to_numpy() for n in spec.input_names}, spec)


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
                raise ValueError(
                    f"Scenario column {column!r} must hold ids in "
                    f"[0, {len(values)}) (values {values}). "
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
        array = array.astype(object)
    elif dtype == "int64":
        if array.dtype.kind not in "iub":
            raise ValueError(
                f"Feature {name!r} expects integer ids (int64); received "
                f"dtype {array.dtype}."
            )
        array = array.astype("int64")
    else:
        if array.dtype.kind not in "fiub":
            raise ValueError(
                f"Feature {name!r} expects float32 numbers; received dtype "
                f"{array.dtype}."
            )
        array = array.astype("float32")
    if array.shape[1:] != shape:
        raise ValueError(
            f"Feature {name!r} expects per-example shape {shape}; received "
            f"{array.shape[1:]}."
        )
    return array


def _pad_sequences(
    name: str, values: Any, max_length: int, dtype: str
) -> np.ndarray:
    values = list(values)
    pad = SEQUENCE_STRING_PAD if dtype == "string" else SEQUENCE_INT_PAD
    out = np.full(
        (len(values), max_length), pad, object if dtype == "string" else "int64"
    )
    for i, seq in enumerate(values):
        if seq is None:
            continue
        seq = np.asarray(seq)[:max_length]
        if seq.size == 0:
            continue
        if dtype == "int64" and seq.dtype.kind not in "iu":
            raise ValueError(
                f"Sequence feature {name!r} expects lists of integer ids; "
                f"row {i} holds dtype {seq.dtype}."
            )
        out[i, : len(seq)] = seq
    return out


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
            a sample space names a task not in `tasks`, or a binary label
            is not 0/1.
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
            label = label * df[col].to_numpy("float64")
        if task.kind == "binary" and not np.isin(label, (0.0, 1.0)).all():
            raise ValueError(
                f"Task {task.name!r} is binary but its label "
                f"{task.label!r} holds values other than 0 and 1."
            )
        if task.kind == "multiclass":
            labels[task.name] = label.astype("int32")
        else:
            labels[task.name] = label.astype("float32")
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
    features = features_from_dataframe(df, spec)
    if with_labels:
        labels, weights = labels_from_dataframe(df, tasks or spec.tasks)
        data = (features, labels, weights)
    else:
        data = features
    return batched_dataset(data, batch_size, shuffle=shuffle, seed=seed)
