"""A stack of Dense layers: the towers, bottoms and experts of kmtl."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from kmtl import validation
from kmtl.layers.keras_objects import clone_initializer
from kmtl.layers.keras_objects import constructor_config


@keras.saving.register_keras_serializable(package="kmtl")
class MLP(keras.layers.Layer):
    """A stack of Dense layers, each optionally batch-normalized and dropped.

    For each layer `i`:

    `h_{i+1} = dropout(act_i(bn(h_i @ W_i + b_i)))`

    where `act_i` is `activation` for the hidden layers and
    `output_activation` for the last one, `bn` is a batch normalization
    (only with `use_batch_norm=True`, in which case the Dense layers have no
    bias: the normalization's `beta` replaces it) and `dropout` is applied
    after every layer, the last one included, when `dropout > 0`.

    Args:
        units: sequence of int. The width of each Dense layer, in order.
        activation: str or callable. Activation of the hidden layers.
            Defaults to `"relu"`.
        dropout: float. Dropout rate in `[0, 1)` applied after every layer
            during training. Defaults to `0.0`.
        use_batch_norm: bool. Whether to batch-normalize each layer's
            pre-activation. Defaults to `False`.
        output_activation: str, callable or None. Activation of the last
            layer; `None` uses `activation` for every layer, `"linear"` gives
            a linear output. Defaults to `None`.
        kernel_initializer: str or `keras.initializers.Initializer`.
            Initializer of the Dense kernels (cloned for each layer).
            Defaults to `"glorot_uniform"`.
        kernel_regularizer: str, `keras.regularizers.Regularizer` or None.
            Regularizer of the Dense kernels. Defaults to `None`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor of shape `[..., d]`.
        training: bool or None. Whether dropout and batch normalization run
            in training mode.

    Returns:
        A tensor of shape `[..., units[-1]]`.

    Example:

    ```python
    layer = kmtl.layers.MLP(units=(64, 32), dropout=0.1)
    y = layer(np.random.rand(8, 16))  # [8, 32]

    inputs = keras.Input(shape=(16,))
    hidden = kmtl.layers.MLP(units=(64, 32))(inputs)
    outputs = keras.layers.Dense(1, activation="sigmoid")(hidden)
    model = keras.Model(inputs, outputs)
    ```

    Reference:
        - [Covington et al., 2016](https://dl.acm.org/doi/10.1145/2959100.2959190)
          (deep towers in recommendation).
    """

    def __init__(
        self,
        units: Sequence[int],
        activation: str | Any = "relu",
        dropout: float = 0.0,
        use_batch_norm: bool = False,
        output_activation: str | Any | None = None,
        kernel_initializer: str | keras.initializers.Initializer = (
            "glorot_uniform"
        ),
        kernel_regularizer: str | keras.regularizers.Regularizer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = validation.units(units, "units")
        self.activation = keras.activations.get(activation)
        self.output_activation = (
            None
            if output_activation is None
            else keras.activations.get(output_activation)
        )
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

        self.dropout = validation.rate(dropout, "dropout")
        self.use_batch_norm = validation.boolean(
            use_batch_norm, "use_batch_norm"
        )
        self.supports_masking = True

    def build(self, input_shape: Sequence[int | None]) -> None:
        shape = tuple(input_shape)
        if shape[-1] is None:
            raise ValueError(
                "The last dimension of the input of `MLP` must be known. "
                f"Received: input_shape={shape}"
            )
        self._dense_layers = []
        self._norm_layers = []
        self._dropout_layers = []
        for i, width in enumerate(self.units):
            dense = keras.layers.Dense(
                width,
                use_bias=not self.use_batch_norm,
                kernel_initializer=clone_initializer(self.kernel_initializer),
                kernel_regularizer=self.kernel_regularizer,
                dtype=self.dtype_policy,
                name=f"dense_{i}",
            )
            dense.build(shape)
            shape = shape[:-1] + (width,)
            self._dense_layers.append(dense)
            if self.use_batch_norm:
                norm = keras.layers.BatchNormalization(
                    dtype=self.dtype_policy, name=f"batch_norm_{i}"
                )
                norm.build(shape)
                self._norm_layers.append(norm)
            if self.dropout > 0:
                drop = keras.layers.Dropout(
                    self.dropout, dtype=self.dtype_policy, name=f"dropout_{i}"
                )
                drop.build(shape)
                self._dropout_layers.append(drop)
        self.built = True

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        last = len(self.units) - 1
        x = inputs
        for i, dense in enumerate(self._dense_layers):
            x = dense(x)
            if self.use_batch_norm:
                x = self._norm_layers[i](x, training=training)
            if i == last and self.output_activation is not None:
                x = self.output_activation(x)
            else:
                x = self.activation(x)
            if self.dropout > 0:
                x = self._dropout_layers[i](x, training=training)
        return x

    def compute_output_shape(
        self, input_shape: Sequence[int | None]
    ) -> tuple[int | None, ...]:
        return tuple(input_shape)[:-1] + (self.units[-1],)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, MLP))
        return config


__all__ = ["MLP"]
