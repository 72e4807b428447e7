"""One named `keras.Input` per raw column of a `FeatureSpec`."""

from __future__ import annotations

import keras
import numpy as np

from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import NumericalFeature
from kmtl.features.spec import SequenceFeature


def input_shape(spec: FeatureSpec, name: str) -> tuple[int, ...]:
    """Per-example shape of the raw input `name` (no batch axis)."""
    if name not in spec.names():
        return ()  # scenario columns are scalar integer ids
    feature = spec.feature(name)
    if isinstance(feature, SequenceFeature):
        return (feature.max_length,)
    if isinstance(feature, NumericalFeature) and feature.dim > 1:
        return (feature.dim,)
    return ()


def input_dtype(spec: FeatureSpec, name: str) -> str:
    """Raw dtype of the input `name`: `"int64"`, `"string"` or `"float32"`."""
    if name not in spec.names():
        return "int64"
    feature = spec.feature(name)
    if isinstance(feature, SequenceFeature) and feature.shared_with:
        return spec.feature(feature.shared_with).dtype
    return feature.dtype


def inputs(spec: FeatureSpec) -> dict[str, keras.KerasTensor]:
    """Builds the model inputs of a spec: one `keras.Input` per raw column.

    Each input is named after its column so that the dict keys, the Keras
    input names and the SavedModel signature names are the same. Scalars
    have shape `[batch]`, vector numericals `[batch, dim]`, sequences
    `[batch, max_length]`.

    Args:
        spec: FeatureSpec. The features (and scenario columns).

    Returns:
        dict name -> `keras.KerasTensor`, in `spec.input_names` order.

    Example:

    ```python
    x = kmtl.inputs(spec)
    encoded = kmtl.features.FeatureEncoder(spec)(x)
    ```
    """
    return {
        name: keras.Input(
            shape=input_shape(spec, name),
            dtype=input_dtype(spec, name),
            name=name,
        )
        for name in spec.input_names
    }


def missing_inputs(
    spec: FeatureSpec, names: list[str], rows: int
) -> dict[str, np.ndarray]:
    """Raw inputs of `rows` rows in which every value is missing: `""` for
    strings, `-1` for ids, NaN for numericals (as `kmtl.data` writes missing
    values). The serving signatures send the bias features, which they do
    not take, this way.

    Args:
        spec: FeatureSpec.
        names: the input names to fill.
        rows: int. Batch size.

    Returns:
        dict name -> NumPy array `[rows, ...]` of the input's dtype.
    """
    out = {}
    for name in names:
        shape = (rows, *input_shape(spec, name))
        dtype = input_dtype(spec, name)
        if dtype == "string":
            out[name] = np.full(shape, "", dtype=object)
        else:
            out[name] = np.full(
                shape, np.nan if dtype == "float32" else -1, dtype=dtype
            )
    return out
