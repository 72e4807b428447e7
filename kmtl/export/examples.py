"""Serialized `tf.Example` protos in and out of the `examples` signature.

The `examples` signature of an exported model takes a 1-D string tensor of
serialized `tf.Example` protos, one per row, and parses it inside the graph
with the feature description built here. Each model input is one feature of
the `tf.Example`, named after it:

- a scalar (an id, a string, a float) is a list of one value, required;
- a vector (`NumericalFeature(dim=k)`, or any fixed trailing shape) is a
  list of exactly `k` values, required;
- a `SequenceFeature` is a list of any length (missing means empty): it is
  truncated or padded to `max_length` with the spec's pad value (`-1` for
  ids, `""` for strings), as `kmtl.data` pads a list column.

A required feature that is missing fails the request with an
`InvalidArgument` error naming the feature. A row that is not a serialized
`tf.Example` at all fails with an `InvalidArgument` naming the signature
and the rows, checked before parsing (see `kmtl.export.wire`: TF's own
message would hold the raw bytes, which Python cannot decode).
`tf.Example` holds int64, float and bytes lists only; inputs of other
dtypes (int32, float64, bool) are parsed as int64 or float32 and cast.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

import numpy as np

from kmtl.export.wire import assert_readable
from kmtl.features.spec import SEQUENCE_INT_PAD
from kmtl.features.spec import SEQUENCE_STRING_PAD
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import SequenceFeature

if TYPE_CHECKING:
    import tensorflow as tf

EXAMPLES_KEY = "examples"
"""The name of the `tf.Example` signature and of its one input."""


def _sequence_lengths(
    signature: Mapping[str, tf.TensorSpec], spec: FeatureSpec | None
) -> dict[str, int]:
    """Inputs parsed as variable-length lists: name -> max_length."""
    if spec is None:
        return {}
    return {
        f.name: f.max_length
        for f in spec.features
        if isinstance(f, SequenceFeature) and f.name in signature
    }


def _parse_dtype(dtype: tf.DType) -> tf.DType:
    """The `tf.Example` list type that holds values of `dtype`."""
    import tensorflow as tf

    if dtype == tf.string:
        return tf.string
    if dtype.is_floating:
        return tf.float32
    if dtype.is_integer or dtype == tf.bool:
        return tf.int64
    raise ValueError(
        f"A tf.Example cannot hold a {dtype.name} input; the `examples` "
        "signature takes int, float, bool and string inputs only."
    )


def feature_description(
    signature: Mapping[str, tf.TensorSpec], spec: FeatureSpec | None = None
) -> dict[str, Any]:
    """Returns the `tf.io.parse_example` description of a model's inputs.

    Args:
        signature: dict name -> `tf.TensorSpec`. The model inputs, as
            `serving_input_signature(model)` returns them.
        spec: FeatureSpec or None. Marks which inputs are sequences (parsed
            as variable-length lists and padded) and which are numericals,
            which may be absent from an example: an absent numerical is
            parsed as NaN, i.e. missing, and filled by the model as a NaN in
            a DataFrame is. Defaults to `None`: every input is a required
            fixed-length feature.

    Returns:
        dict name -> `tf.io.FixedLenFeature` or `tf.io.RaggedFeature`.

    Example:

    ```python
    description = feature_description(
        serving_input_signature(model), spec
    )
    description["price"]  # FixedLenFeature(shape=(), dtype=tf.float32, ...)
    ```
    """
    import tensorflow as tf

    sequences = _sequence_lengths(signature, spec)
    numericals = set(spec.names("numerical")) if spec is not None else set()
    description = {}
    for name, tensor_spec in signature.items():
        dtype = _parse_dtype(tensor_spec.dtype)
        if name in sequences:
            description[name] = tf.io.RaggedFeature(dtype)
        elif name in numericals:
            shape = tensor_spec.shape[1:]
            description[name] = tf.io.FixedLenFeature(
                shape, dtype, default_value=np.full(shape, np.nan, "float32")
            )
        else:
            description[name] = tf.io.FixedLenFeature(
                tensor_spec.shape[1:], dtype
            )
    return description


def parse_examples(
    serialized: tf.Tensor,
    signature: Mapping[str, tf.TensorSpec],
    spec: FeatureSpec | None = None,
    *,
    signature_name: str = EXAMPLES_KEY,
) -> dict[str, tf.Tensor]:
    """Parses serialized `tf.Example`s into the model's raw inputs.

    Args:
        serialized: string tensor `[batch]`. One serialized `tf.Example`
            per row.
        signature: dict name -> `tf.TensorSpec`. The model inputs.
        spec: FeatureSpec or None. As for `feature_description`.
        signature_name: str. Named in the error on rows that are not
            serialized `tf.Example`s. Defaults to `"examples"`.

    Returns:
        dict name -> tensor of the input's dtype and shape `[batch, ...]`.

    Raises:
        tf.errors.InvalidArgumentError: when run, if a row is not a
            serialized `tf.Example` (naming the signature and the rows), or
            lacks a required feature or holds one of another type or length
            (TF's message, naming the feature).

    Example:

    ```python
    features = parse_examples(
        tf.constant(serialize_examples(batch, spec)),
        serving_input_signature(model),
        spec,
    )
    ```
    """
    import tensorflow as tf

    sequences = _sequence_lengths(signature, spec)
    parsed = tf.io.parse_example(
        assert_readable(serialized, signature_name),
        feature_description(signature, spec),
    )
    features = {}
    for name, tensor_spec in signature.items():
        value = parsed[name]
        if name in sequences:
            pad = (
                SEQUENCE_STRING_PAD
                if value.dtype == tf.string
                else SEQUENCE_INT_PAD
            )
            value = value.to_tensor(
                default_value=tf.cast(pad, value.dtype),
                shape=[None, sequences[name]],
            )
        features[name] = tf.cast(value, tensor_spec.dtype)
    return features


def serialize_examples(
    features: Mapping[str, Any], spec: FeatureSpec | None = None
) -> list[bytes]:
    """Serializes a batch of raw features as one `tf.Example` per row.

    Sequences (with a spec) are written without their trailing padding;
    every other input is written whole, flattened.

    Args:
        features: dict name -> array `[batch, ...]` (strings as object,
            `str` or `bytes` arrays).
        spec: FeatureSpec or None. Marks the sequences. Defaults to `None`.

    Returns:
        A list of serialized `tf.Example` protos, one per row.

    Example:

    ```python
    batch = kmtl.data.features_from_dataframe(df[:2], spec)
    protos = serialize_examples(batch, spec)
    served = loaded.signatures["examples"](examples=tf.constant(protos))
    ```
    """
    from tensorflow.core.example import example_pb2
    from tensorflow.core.example import feature_pb2

    arrays = {name: np.asarray(value) for name, value in features.items()}
    sizes = {len(value) for value in arrays.values()}
    if len(sizes) != 1:
        raise ValueError(
            "All features must have the same number of rows. Received: "
            f"{ {name: len(value) for name, value in arrays.items()} }"
        )
    sequences = set()
    if spec is not None:
        sequences = {
            f.name for f in spec.features if isinstance(f, SequenceFeature)
        }
    protos = []
    for row in range(sizes.pop()):
        example = example_pb2.Example()
        for name, array in arrays.items():
            values = np.ravel(array[row])
            if name in sequences:
                values = _strip_padding(values)
            feature = example.features.feature[name]
            _fill(feature, feature_pb2, name, values)
        protos.append(example.SerializeToString())
    return protos


def _strip_padding(values: np.ndarray) -> np.ndarray:
    """Drops the trailing pad values (`-1` or `""`) of one sequence."""
    if values.dtype.kind in "OSU":
        is_pad = [v in (SEQUENCE_STRING_PAD, b"") for v in values]
    else:
        is_pad = list(values == SEQUENCE_INT_PAD)
    end = len(values)
    while end and is_pad[end - 1]:
        end -= 1
    return values[:end]


def _fill(feature: Any, feature_pb2: Any, name: str, values: Any) -> None:
    kind = values.dtype.kind
    if kind in "OSU":
        feature.bytes_list.value.extend(
            v if isinstance(v, bytes) else str(v).encode() for v in values
        )
    elif kind in "iub":
        feature.int64_list.value.extend(int(v) for v in values)
    elif kind == "f":
        feature.float_list.value.extend(float(v) for v in values)
    else:
        raise ValueError(
            f"Feature {name!r} has dtype {values.dtype}, which a tf.Example "
            "cannot hold (int, float, bool or string expected)."
        )
