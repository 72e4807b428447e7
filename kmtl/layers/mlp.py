"""A stack of Dense layers: the towers, bottoms and experts of kmtl."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import keras

# --- Helpers shared by the kmtl layers (validation, initializer cloning) ---


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_positive_int(name: str, value: Any) -> None:
    if not _is_int(value) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )


def _check_non_negative_int(name: str, value: Any) -> None:
    if not _is_int(value) or value < 0:
        raise ValueError(
            f"`{name}` must be a non-negative integer. "
            f"Received: {name}={value!r}"
        )


def _as_units(units: Any) -> Any:
    """Turns a list or tuple of ints into a tuple of Python ints."""
    if isinstance(units, (list, tuple)) and all(_is_int(u) for u in units):
        return tuple(int(u) for u in units)
    return units


def _check_units(name: str, units: Any) -> None:
    if (
        not isinstance(units, (list, tuple))
        or not units
        or not all(_is_int(u) and u >= 1 for u in units)
    ):
        raise ValueError(
            f"`{name}` must be a non-empty sequence of positive integers. "
            f"Received: {name}={units!r}"
        )


def _check_rate(name: str, value: Any) -> None:
    if (
        not isinstance(value, numbers.Real)
        or isinstance(value, bool)
        or not 0.0 <= value < 1.0
    ):
        raise ValueError(
            f"`{name}` must be a float in [0, 1). Received: {name}={value!r}"
        )


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be a bool. Received: {name}={value!r}")


def _clone_initializer(
    initializer: keras.initializers.Initializer,
) -> keras.initializers.Initializer:
    """Returns a fresh copy, so that sub-layers do not share random values.

    An unseeded Keras 3 initializer draws the same values at every call, so
    two sub-layers given the same object would start identical.
    """
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer
    return initializer.__class__.from_config(initializer.get_config())


# --- The layer ---


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
        self.units = _as_units(units)
        self.activation = keras.activations.get(activation)
        self.dropout = dropout
        self.use_batch_norm = use_batch_norm
        self.output_activation = (
            None
            if output_activation is None
            else keras.activations.get(output_activation)
        )
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

        _check_units("units", units)
        _check_rate("dropout", dropout)
        _check_bool("use_batch_norm", use_batch_norm)
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
                kernel_initializer=_clone_initializer(self.kernel_initializer),
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
        config.update(
            {
                "units": list(self.units),
                "activation": keras.activations.serialize(self.activation),
                "dropout": self.dropout,
                "use_batch_norm": self.use_batch_norm,
                "output_activation": (
                    None
                    if self.output_activation is None
                    else keras.activations.serialize(self.output_activation)
                ),
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
            }
        )
        return config


__all__ = ["MLP"]
