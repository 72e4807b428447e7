"""The shared-bottom switcher: one MLP whose output every task reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from kmtl.layers.mlp import MLP
from kmtl.layers.mlp import _as_units
from kmtl.layers.mlp import _check_bool
from kmtl.layers.mlp import _check_positive_int
from kmtl.layers.mlp import _check_rate
from kmtl.layers.mlp import _check_units
from kmtl.layers.mlp import _clone_initializer
from kmtl.layers.switcher import Switcher
from kmtl.layers.switcher import _shape_list


@keras.saving.register_keras_serializable(package="kmtl")
class SharedBottomLayer(Switcher):
    """Hard parameter sharing: one bottom MLP, its output sent to every task.

    `y_k = MLP(x)` for every task `k = 1..K`.

    Args:
        num_tasks: int. The number of task branches `K`.
        units: sequence of int. The widths of the bottom MLP. Defaults to
            `(256, 128)`.
        activation: str or callable. Activation of every MLP layer.
            Defaults to `"relu"`.
        dropout: float. Dropout rate after every MLP layer. Defaults to
            `0.0`.
        use_batch_norm: bool. Whether the MLP batch-normalizes its layers.
            Defaults to `False`.
        kernel_initializer: str or `keras.initializers.Initializer`.
            Initializer of the MLP kernels. Defaults to `"glorot_uniform"`.
        kernel_regularizer: str, `keras.regularizers.Regularizer` or None.
            Regularizer of the MLP kernels. Defaults to `None`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor of shape `[B, d]`.
        training: bool or None. Training mode of dropout and batch
            normalization.

    Returns:
        A list of `num_tasks` tensors of shape `[B, units[-1]]`, all equal.

    Example:

    ```python
    layer = kmtl.layers.SharedBottomLayer(num_tasks=2, units=(32, 16))
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
        units: Sequence[int] = (256, 128),
        activation: str | Any = "relu",
        dropout: float = 0.0,
        use_batch_norm: bool = False,
        kernel_initializer: str | keras.initializers.Initializer = (
            "glorot_uniform"
        ),
        kernel_regularizer: str | keras.regularizers.Regularizer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_tasks = num_tasks
        self.units = _as_units(units)
        self.activation = keras.activations.get(activation)
        self.dropout = dropout
        self.use_batch_norm = use_batch_norm
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

        _check_positive_int("num_tasks", num_tasks)
        _check_units("units", units)
        _check_rate("dropout", dropout)
        _check_bool("use_batch_norm", use_batch_norm)

    @property
    def num_outputs(self) -> int:
        return self.num_tasks

    def build(self, input_shape: Sequence[int | None]) -> None:
        if _shape_list(input_shape) is not None:
            raise ValueError(
                "`SharedBottomLayer` takes one tensor of shape [B, d]. "
                f"Received: input_shape={input_shape}"
            )
        self.bottom = MLP(
            units=self.units,
            activation=self.activation,
            dropout=self.dropout,
            use_batch_norm=self.use_batch_norm,
            kernel_initializer=_clone_initializer(self.kernel_initializer),
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
        shape = tuple(input_shape)[:-1] + (self.units[-1],)
        return [shape] * self.num_tasks

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_tasks": self.num_tasks,
                "units": list(self.units),
                "activation": keras.activations.serialize(self.activation),
                "dropout": self.dropout,
                "use_batch_norm": self.use_batch_norm,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
            }
        )
        return config


__all__ = ["SharedBottomLayer"]
