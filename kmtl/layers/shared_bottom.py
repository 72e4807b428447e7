"""The shared-bottom switcher: one MLP whose output every task reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from kmtl import validation
from kmtl.layers.keras_objects import clone_initializer
from kmtl.layers.keras_objects import constructor_config
from kmtl.layers.mlp import MLP
from kmtl.layers.switcher import Switcher
from kmtl.layers.switcher import register_switcher
from kmtl.layers.switcher import shape_list


@register_switcher("shared_bottom")
@keras.saving.register_keras_serializable(package="kmtl")
class SharedBottomLayer(Switcher):
    """Hard parameter sharing: one bottom MLP, its output sent to every task.

    `y_k = MLP(x)` for every task `k = 1..K`.

    Args:
        num_tasks: int. The number of task branches `K`.
        dropout: float. Dropout rate after every MLP layer. Defaults to
            `0.0`.
        use_batch_norm: bool. Whether the MLP batch-normalizes its layers.
            Defaults to `False`.
        output_activation: str, callable or None. Activation of the
            bottom's last layer; `None` uses `activation`, `"linear"` gives
            a linear shared representation. Defaults to `None`.
        **kwargs: The `Switcher` arguments, `expert_units` being the widths
            of the bottom MLP (its one expert; `(256, 128)` by default),
            and base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor of shape `[B, d]`.
        training: bool or None. Training mode of dropout and batch
            normalization.

    Returns:
        A list of `num_tasks` tensors of shape `[B, expert_units[-1]]`,
        all equal.

    Example:

    ```python
    layer = kmtl.layers.SharedBottomLayer(num_tasks=2, expert_units=(32, 16))
    ctr, cvr = layer(np.random.rand(8, 10))  # two [8, 16] tensors

    inputs = keras.Input(shape=(10,))
    branches = kmtl.layers.SharedBottomLayer(num_tasks=2)(inputs)
    outputs = [keras.layers.Dense(1)(b) for b in branches]
    model = keras.Model(inputs, outputs)
    ```

    Reference:
        - [Caruana, 1997](https://doi.org/10.1023/A:1007379606734)
          (multitask learning, hard parameter sharing).
    """

    def __init__(
        self,
        num_tasks: int,
        dropout: float = 0.0,
        use_batch_norm: bool = False,
        output_activation: str | Any | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_tasks, **kwargs)
        self.dropout = validation.rate(dropout, "dropout")
        self.use_batch_norm = validation.boolean(
            use_batch_norm, "use_batch_norm"
        )
        self.output_activation = (
            None
            if output_activation is None
            else keras.activations.get(output_activation)
        )

    def build(self, input_shape: Sequence[int | None]) -> None:
        if shape_list(input_shape) is not None:
            raise ValueError(
                "`SharedBottomLayer` takes one tensor of shape [B, d]. "
                f"Received: input_shape={input_shape}"
            )
        self.bottom = MLP(
            units=self.expert_units,
            activation=self.activation,
            dropout=self.dropout,
            use_batch_norm=self.use_batch_norm,
            output_activation=self.output_activation,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name="bottom",
        )
        self.bottom.build(tuple(input_shape))
        self.built = True

    def call(self, inputs: Any, training: bool | None = None) -> list[Any]:
        shared = self.bottom(inputs, training=training)
        return [shared] * self.num_tasks

    def compute_output_shape(
        self, input_shape: Sequence[int | None]
    ) -> list[tuple[int | None, ...]]:
        shape = tuple(input_shape)[:-1] + (self.expert_units[-1],)
        return [shape] * self.num_tasks

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            **constructor_config(self, SharedBottomLayer),
        }


__all__ = ["SharedBottomLayer"]
