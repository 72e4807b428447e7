"""GroupGradientGate: a task's output learns only from the rows of the
groups that train it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kmtl import validation
from kmtl.layers.keras_objects import constructor_config


@keras.saving.register_keras_serializable(package="kmtl")
class GroupGradientGate(keras.layers.Layer):
    """Passes a prediction unchanged; only some groups' rows send gradient.

    With the one-hot membership `m` (`GroupMembership`) and the indices
    `trained_by` of the groups whose rows train this output:

    `keep[b] = sum_{g in trained_by} m[b, g] > 0`
    `y[b] = p[b]` if `keep[b]`, else `stop_gradient(p[b])`

    The forward value is `p` everywhere (so serving is unchanged), and the
    gradient of any loss on `y` is that of the loss with per-row sample
    weights `keep` (Keras's `sum_over_batch_size`: `sum_b keep_b l_b / B`):
    the output learns from its groups' rows only. The loss value itself
    still counts the other rows, as constants.

    Args:
        trained_by: list of int. The indices (columns of `m`) of the groups
            whose rows train the output.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list `[p, m]`: `p` a tensor `[B, w]`, `m` a float tensor
            `[B, G]`.

    Returns:
        `p`, shape `[B, w]`.

    Example:

    ```python
    # Rows of groups 0 ("new") and 1 ("regular") train this output.
    gate = kmtl.layers.GroupGradientGate(trained_by=[0, 1])
    y = gate([np.ones((2, 1), "float32"), np.eye(3, dtype="float32")[:2]])

    group = keras.Input(shape=(), dtype="string")
    x = keras.Input(shape=(4,))
    m = kmtl.layers.GroupMembership(["new", "regular"])(group)
    p = keras.layers.Dense(1, activation="sigmoid")(x)
    click_new = kmtl.layers.GroupGradientGate([0])([p, m])
    model = keras.Model([group, x], click_new)
    ```

    Reference:
        - Multi-Faceted Hierarchical Multi-Task Learning for Recommender
          Systems (MFH), CIKM 2022, section V.A.3 (new-user samples train
          every group's tasks).
    """

    def __init__(self, trained_by: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if (
            not isinstance(trained_by, (list, tuple))
            or not trained_by
            or not all(validation.is_integer(v) and v >= 0 for v in trained_by)
            or len(set(trained_by)) != len(trained_by)
        ):
            raise ValueError(
                "`trained_by` must be a non-empty list of distinct group "
                f"indices >= 0. Received: trained_by={trained_by!r}"
            )
        self.trained_by = tuple(int(v) for v in trained_by)

    def build(self, input_shape: Sequence[Any]) -> None:
        groups = input_shape[1][-1]
        if groups is not None and max(self.trained_by) >= groups:
            raise ValueError(
                f"`trained_by` indexes the {groups} columns of the "
                f"membership. Received: trained_by={list(self.trained_by)}"
            )
        self.built = True

    def call(self, inputs: Sequence[Any]) -> Any:
        prediction, membership = inputs
        chosen = ops.take(membership, list(self.trained_by), axis=1)
        keep = ops.greater(ops.sum(chosen, axis=1, keepdims=True), 0)
        return ops.where(keep, prediction, ops.stop_gradient(prediction))

    def compute_output_shape(
        self, input_shape: Sequence[Any]
    ) -> tuple[int | None, ...]:
        return tuple(input_shape[0])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, GroupGradientGate))
        return config


__all__ = ["GroupGradientGate"]
