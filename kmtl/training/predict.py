"""`kmtl.predict`: a trained model's predictions on a DataFrame."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from kmtl.features.spec import FeatureSpec


def predict(
    model: keras.Model,
    df: Any,
    *,
    spec: FeatureSpec | None = None,
    batch_size: int = 4096,
) -> Any:
    """Predicts a DataFrame: one column per output, one row per input row.

    The features are read as for training and `kmtl.evaluate`
    (`kmtl.data.features_from_dataframe`: strings as object arrays, ids as
    int64, floats as float32, missing values as the model treats them);
    label columns may be present and are ignored.

    Args:
        model: a model from `kmtl.build` (or any model holding a
            `FeatureEncoder`).
        df: pandas.DataFrame with the input (and scenario) columns.
        spec: FeatureSpec. Defaults to the one the model's encoder holds.
        batch_size: int. Prediction batch size. Defaults to 4096.

    Returns:
        pandas.DataFrame with the index of `df` and a column per output
        named after it (a probability for a binary task, the value for a
        regression). An output of width `K > 1` (a multiclass task's
        softmax) gives `K` columns `<output>_<k>`, the probability of
        class `k`.

    Raises:
        ValueError: `df` is not a DataFrame, an input column is missing or
            of the wrong dtype (naming the feature), or the model holds no
            spec and none is given.

    Example:

    ```python
    scores = kmtl.predict(model, test_df)  # columns ctr, cvr
    test_df.join(scores).groupby("scenario")["ctr"].mean()
    ```
    """
    import pandas as pd

    from kmtl.data.pandas import features_from_dataframe
    from kmtl.export.saved_model import find_spec

    if not isinstance(df, pd.DataFrame):
        raise ValueError(
            f"kmtl.predict(model {model.name!r}, df): `df` must be a "
            "pandas.DataFrame (for arrays or a tf.data.Dataset, use "
            f"`model.predict`). Received: df of type {type(df).__name__}"
        )
    if len(df) == 0:
        raise ValueError(
            f"kmtl.predict(model {model.name!r}, df): the DataFrame is "
            f"empty. Received: 0 rows, columns {list(df.columns)}"
        )
    if batch_size < 1:
        raise ValueError(
            "`batch_size` must be a positive integer. "
            f"Received: batch_size={batch_size}"
        )
    spec = spec or find_spec(model)
    if spec is None:
        raise ValueError(
            f"Model {model.name!r} holds no FeatureEncoder; pass `spec=` "
            "to `kmtl.predict`."
        )
    features = features_from_dataframe(df, spec)
    outputs = model.predict(features, batch_size=batch_size, verbose=0)
    if not isinstance(outputs, dict):
        outputs = dict(
            zip(model.output_names, keras.tree.flatten(outputs), strict=True)
        )
    outputs = {name: outputs[name] for name in model.output_names}
    columns = {}
    for name, values in outputs.items():
        values = np.asarray(values).reshape(len(df), -1)
        names = [name]
        if values.shape[1] > 1:
            names = [f"{name}_{k}" for k in range(values.shape[1])]
        for column, column_values in zip(names, values.T, strict=True):
            if column in columns:
                raise ValueError(
                    f"kmtl.predict(model {model.name!r}): two outputs give "
                    f"the column {column!r}. Outputs: {sorted(outputs)}"
                )
            columns[column] = column_values
    return pd.DataFrame(columns, index=df.index)


__all__ = ["predict"]
