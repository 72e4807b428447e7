"""GroupRouter: each row gets the prediction of its own group's task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kmtl")
class GroupRouter(keras.layers.Layer):
    """Selects, for each row, the prediction of the row's group.

    With the one-hot membership `m` (`GroupMembership`) and one prediction
    `p_g` per group:

    `y[b] = sum_g m[b, g] * p_g[b]`, i.e. `y[b] = p_{group(b)}[b]` exactly.

    Args:
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list `[m, p_1, ..., p_G]`: `m` a float tensor `[B, G]`
            with one 1 per row, each `p_g` a tensor `[B, w]`.

    Returns:
        A tensor `[B, w]`.

    Example:

    ```python
    m = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    p_new = np.array([[0.1], [0.2]], "float32")
    p_regular = np.array([[0.7], [0.8]], "float32")
    kmtl.layers.GroupRouter()([m, p_new, p_regular])  # [[0.1], [0.8]]

    group = keras.Input(shape=(), dtype="string")
    x = keras.Input(shape=(4,))
    m = kmtl.layers.GroupMembership(["new", "regular"])(group)
    p = [keras.layers.Dense(1, activation="sigmoid")(x) for _ in range(2)]
    click = kmtl.layers.GroupRouter()([m, *p])
    model = keras.Model([group, x], click)
    ```

    Reference:
        - Multi-Faceted Hierarchical Multi-Task Learning for Recommender
          Systems (MFH), CIKM 2022, section V.A.3 ("in serving only do
          inference through the corresponding user group tasks").
    """

    def build(self, input_shape: Sequence[Any]) -> None:
        membership, *predictions = input_shape
        if (
            len(predictions) != membership[-1]
            or len({tuple(p[1:]) for p in predictions}) != 1
        ):
            raise ValueError(
                "`GroupRouter` takes `[m, p_1, ..., p_G]`: a membership "
                "`[B, G]` and G predictions of one shape `[B, w]`. "
                f"Received: input_shape={list(input_shape)}"
            )
        self.built = True

    def call(self, inputs: Sequence[Any]) -> Any:
        membership, *predictions = inputs
        stacked = ops.stack(predictions, axis=1)  # [B, G, w]
        weights = ops.expand_dims(ops.cast(membership, stacked.dtype), -1)
        return ops.sum(ops.multiply(weights, stacked), axis=1)

    def compute_output_shape(
        self, input_shape: Sequence[Any]
    ) -> tuple[int | None, ...]:
        return tuple(input_shape[1])


__all__ = ["GroupRouter"]
