"""What a signature accepts: checked on the host, and inside the graph.

A SignatureDef fixes one dtype and one shape per input. What TensorFlow
does with a request that does not fit, measured on TF 2.21:

- another dtype (int32 ids, float64 numericals) is refused before the graph
  runs, by TF's own check, which names the input by position only
  (`tf.saved_model.load`: "input #8 (zero-based) was expected to be a
  int64 tensor but is a int32 tensor"; TF Serving refuses the request the
  same way); `saved_model_cli run` and `tf.compat.v1.Session` cast the feed
  to the signature's dtype without a word. No graph can change that: a
  signature is one concrete function per dtype. So the request paths of
  kmtl convert and check on the host first, and name the feature:
  `check_inputs` (which `export` runs on its sample and
  `predict_request(..., input_signature=...)` on a request), and
  `kmtl.serving.Client` with the model's spec.
- another shape is not refused at the boundary (neither `tf.saved_model.
  load` nor TF Serving check it), and an op deep in the model failed with a
  message naming no feature ("ConcatOp : Ranks of all input tensors should
  match"). So every raw-feature signature runs `assert_inputs` before the
  model: each input's rank and fixed trailing dimensions, then that all
  inputs have the same batch size. A failure is an `InvalidArgument`
  naming the signature, the input(s), what was expected and what came.

The in-graph checks cost a few small ops per input (about 30 us a request
for nine inputs on a 2-core CPU). They read the runtime rank through
`tf.where` on the shape vector: `tf.rank` and `tf.size(tf.shape(x))` of an
input whose static shape is `[None]` are constant-folded (by tracing or by
Grappler) into the static rank, and would check nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf


PANDAS_HINT = (
    " Columns of a pandas DataFrame (an int column with NaN is float64, a "
    "string column with missing values an object array holding NaN) "
    "convert as the training data does with "
    "`kmtl.data.features_from_dataframe(df, kmtl.export.load_spec(path))`; "
    "`kmtl.serving.Client(..., spec=spec)` sends a DataFrame that way, and "
    "`kmtl.predict(model, df)` predicts one with the Keras model."
)
"""Appended to a dtype error: where the usual culprit, pandas, is handled."""


def check_inputs(
    features: Mapping[str, Any],
    input_signature: Mapping[str, tf.TensorSpec],
    *,
    what: str = "features",
) -> dict[str, np.ndarray]:
    """Checks a batch against a signature's inputs and converts it.

    Use it before calling a served signature with data of uncertain dtypes:
    TF refuses a mismatched dtype naming only the input's position, and
    `saved_model_cli` casts it silently; this names the feature.

    Args:
        features: dict name -> array-like `[batch, ...]`. Strings may be
            object, `str` or `bytes` arrays.
        input_signature: dict name -> `tf.TensorSpec`. The signature's
            inputs, e.g. `signature_inputs(export_dir)` or
            `serving_input_signature(model)`.
        what: str. How the messages call `features`. Defaults to
            `"features"`.

    Returns:
        dict name -> NumPy array of the signature's dtype, in the
        signature's order. Numbers are cast when NumPy's `same_kind` rule
        allows it (int32 -> int64, float64 -> float32) and integers fit the
        target dtype; strings stay object arrays.

    Raises:
        ValueError: naming the feature, if a feature is missing or unknown,
            has another rank or trailing shape, a dtype that does not
            convert (floats for int ids, numbers for strings), or integers
            out of the target's range; or if the batch sizes differ.

    Example:

    ```python
    served = tf.saved_model.load(path).signatures["serving_default"]
    batch = check_inputs(batch, signature_inputs(path))
    served(**{k: tf.constant(v) for k, v in batch.items()})
    ```
    """
    if not isinstance(features, Mapping):
        raise ValueError(
            f"`{what}` must be a dict from feature name to array. "
            f"Received: {what} of type {type(features).__name__}"
        )
    expected = sorted(input_signature)
    missing = [name for name in input_signature if name not in features]
    if missing:
        raise ValueError(
            f"`{what}` is missing the feature(s) {missing} that the model "
            f"takes. Expected features: {expected}"
        )
    unknown = [name for name in features if name not in input_signature]
    if unknown:
        raise ValueError(
            f"`{what}` has the feature(s) {unknown} that the model does "
            f"not take. Expected features: {expected}"
        )
    arrays = {}
    for name, spec in input_signature.items():
        value = np.asarray(features[name])
        where = f"`{what}[{name!r}]`"
        if value.ndim != spec.shape.rank or any(
            want is not None and got != want
            for got, want in zip(value.shape[1:], spec.shape[1:], strict=True)
        ):
            raise ValueError(
                f"{where} has shape {value.shape}; the model takes "
                f"{tuple(spec.shape)} (None = any size)."
            )
        arrays[name] = _convert(where, value, spec.dtype)
    sizes = {name: len(value) for name, value in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(
            f"All features of `{what}` must have the same batch size. "
            f"Received: {sizes}"
        )
    return arrays


def _convert(where: str, value: np.ndarray, dtype: tf.DType) -> np.ndarray:
    """`value` as an array of `dtype`, or a `ValueError` naming `where`."""
    import tensorflow as tf

    message = (
        f"{where} has dtype {value.dtype}, which does not convert to the "
        f"model's {dtype.name}.{PANDAS_HINT}"
    )
    is_text = value.dtype.kind in "OSU"
    if dtype.name == "string":
        if not is_text:
            raise ValueError(message)
        try:  # an object array may hold other things (a NaN from pandas)
            tf.convert_to_tensor(value, dtype=tf.string)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{message} {err}") from err
        return value.astype(object)
    target = np.dtype(dtype.as_numpy_dtype)
    if is_text or not np.can_cast(value.dtype, target, casting="same_kind"):
        raise ValueError(message)
    if target.kind in "iu" and value.dtype.kind in "iu" and value.size:
        info = np.iinfo(target)
        low, high = value.min(), value.max()
        if low < info.min or high > info.max:
            raise ValueError(
                f"{where} holds values in [{low}, {high}], outside the "
                f"range of the model's {dtype.name}."
            )
    return value.astype(target, copy=False)


def assert_inputs(
    features: Mapping[str, tf.Tensor],
    input_signature: Mapping[str, tf.TensorSpec],
    signature_name: str,
) -> dict[str, tf.Tensor]:
    """In-graph checks of a request: rank, trailing shape, batch sizes.

    Call it inside a signature's function, before the model. Each input
    must have the signature's rank and fixed trailing dimensions; then all
    inputs must have the batch size of the first. The checks are
    `tf.raw_ops.Assert`s: a failure raises `InvalidArgument` ("assertion
    failed: [Signature serving_default: input user_id must have shape
    [batch] (int64); received shape] [4 1]"). The messages quote no names:
    the op would print quotes escaped (`\\'`).

    Args:
        features: dict name -> tensor. The signature's inputs.
        input_signature: dict name -> `tf.TensorSpec`. What they should be.
        signature_name: str. Named in the messages.

    Returns:
        The same tensors (dict name -> tensor), which run only after the
        checks have passed.
    """
    import tensorflow as tf

    checks = []
    dims = {}
    for name, value in features.items():
        spec = input_signature[name]
        shape = tf.shape(value, out_type=tf.int64)
        # The shape through `tf.where`: its length is the runtime rank, which
        # tracing and Grappler cannot replace by the static one.
        dims[name] = tf.gather(shape, tf.where(shape >= 0)[:, 0])
        rank = spec.shape.rank
        ok = tf.equal(tf.size(dims[name], out_type=tf.int64), rank)
        fixed = [
            (i, d) for i, d in enumerate(spec.shape) if i and d is not None
        ]
        if fixed:
            padded = tf.concat([dims[name], tf.zeros([rank], tf.int64)], 0)
            got = tf.gather(padded, [i for i, _ in fixed])
            want = tf.constant([d for _, d in fixed], tf.int64)
            ok = tf.logical_and(ok, tf.reduce_all(tf.equal(got, want)))
        expected = ", ".join(
            ["batch", *("any" if d is None else str(d) for d in spec.shape[1:])]
        )
        checks.append(
            tf.raw_ops.Assert(
                condition=ok,
                data=[
                    f"Signature {signature_name}: input {name} must have "
                    f"shape [{expected}] ({spec.dtype.name}); received shape",
                    dims[name],
                ],
                summarize=16,
            )
        )
    names = list(features)
    with tf.control_dependencies(checks):  # a batch dim exists from here on
        first = dims[names[0]][0]
        for name in names[1:]:
            batch = dims[name][0]
            checks.append(
                tf.raw_ops.Assert(
                    condition=tf.equal(batch, first),
                    data=[
                        f"Signature {signature_name}: inputs {names[0]} "
                        f"and {name} must have the same batch size; "
                        "received",
                        first,
                        "and",
                        batch,
                    ],
                    summarize=16,
                )
            )
    with tf.control_dependencies(checks):
        return {name: tf.identity(value) for name, value in features.items()}
