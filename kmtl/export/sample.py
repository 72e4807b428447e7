"""Synthetic rows of a `FeatureSpec`: the default sample of `kmtl.export`.

When `export` is given no sample, it checks every signature and writes the
warmup requests on rows drawn here: in-vocabulary ids and strings, one
out-of-vocabulary value, normalised-scale numericals, sequences of varied
lengths, and every scenario in turn, so that each branch of the graph runs.
"""

from __future__ import annotations

import numpy as np

from kmtl.features.inputs import input_dtype
from kmtl.features.inputs import input_shape
from kmtl.features.spec import SEQUENCE_INT_PAD
from kmtl.features.spec import SEQUENCE_STRING_PAD
from kmtl.features.spec import CategoricalFeature
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import NumericalFeature
from kmtl.features.spec import SequenceFeature

OOV_STRING = "kmtl-out-of-vocabulary"


def synthetic_rows(
    spec: FeatureSpec, num_rows: int = 8, *, seed: int = 0
) -> dict[str, np.ndarray]:
    """Draws raw model inputs of a spec, as `kmtl.data` would produce them.

    Args:
        spec: FeatureSpec. The features and scenario column.
        num_rows: int. Number of rows, >= 1. Defaults to 8.
        seed: int. NumPy seed. Defaults to 0.

    Returns:
        dict input name -> array `[num_rows, ...]` in `spec.input_names`
        order: int64 ids, float32 numericals, object arrays of strings,
        padded sequences. Row 0 holds out-of-vocabulary categorical values;
        scenario ids cycle through every scenario.

    Example:

    ```python
    rows = synthetic_rows(spec, 4)
    model.predict_on_batch({k: tf.constant(v) for k, v in rows.items()})
    ```
    """
    if isinstance(num_rows, bool) or not isinstance(num_rows, int):
        raise ValueError(f"`num_rows` must be an int. Received: {num_rows!r}")
    if num_rows < 1:
        raise ValueError(
            f"`num_rows` must be at least 1. Received: num_rows={num_rows}"
        )
    rng = np.random.default_rng(seed)
    rows = {}
    for name in spec.input_names:
        shape = (num_rows, *input_shape(spec, name))
        dtype = input_dtype(spec, name)
        if name not in spec.names():  # a scenario column only
            rows[name] = _scenario_ids(spec, name, num_rows, dtype)
            continue
        feature = spec.feature(name)
        if isinstance(feature, NumericalFeature):
            rows[name] = _numerical(feature, shape, rng)
        elif isinstance(feature, SequenceFeature):
            rows[name] = _sequence(spec, feature, shape, rng)
        elif spec.scenario is not None and name == spec.scenario.name:
            rows[name] = _scenario_ids(spec, name, num_rows, dtype)
        else:
            rows[name] = _values(feature, shape, rng)
            rows[name][0] = OOV_STRING if dtype == "string" else -1
    return rows


def _scenario_ids(
    spec: FeatureSpec, name: str, num_rows: int, dtype: str
) -> np.ndarray:
    count = spec.scenario.num_scenarios if name == spec.scenario.name else 1
    return (np.arange(num_rows) % count).astype(dtype)


def _numerical(
    feature: NumericalFeature, shape: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    values = rng.standard_normal(shape)
    if feature.normalized:
        mean = np.asarray(feature.mean, "float64")
        values = mean + values * np.sqrt(np.asarray(feature.variance))
    return values.astype("float32")


def _values(
    feature: CategoricalFeature,
    shape: tuple[int, ...],
    rng: np.random.Generator,
) -> np.ndarray:
    """In-vocabulary raw values of a categorical (or a sequence's owner)."""
    if feature.vocabulary is not None:
        return rng.choice(np.asarray(feature.vocabulary, dtype=object), shape)
    if feature.hash_bins is not None:
        ids = rng.integers(0, 10 * feature.hash_bins, shape)
        return (
            ids.astype(str).astype(object) if feature.dtype == "string" else ids
        )
    return rng.integers(0, feature.vocabulary_size, shape).astype("int64")


def _sequence(
    spec: FeatureSpec,
    feature: SequenceFeature,
    shape: tuple[int, ...],
    rng: np.random.Generator,
) -> np.ndarray:
    owner = (
        spec.feature(feature.shared_with) if feature.shared_with else feature
    )
    values = _values(owner, shape, rng)
    pad = SEQUENCE_STRING_PAD if values.dtype == object else SEQUENCE_INT_PAD
    lengths = rng.integers(0, feature.max_length + 1, shape[0])
    lengths[-1] = feature.max_length
    for row, length in enumerate(lengths):
        values[row, length:] = pad
    return values
