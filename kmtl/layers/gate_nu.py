"""GateNU: PEPNet's Gate Neural Unit, a two-layer gate with outputs in
(0, gamma)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kmtl import validation
from kmtl.layers.keras_objects import clone_initializer
from kmtl.layers.keras_objects import constructor_config


@keras.saving.register_keras_serializable(package="kmtl")
class GateNU(keras.layers.Layer):
    """Gate Neural Unit: a two-layer network whose outputs lie in (0, gamma).

    `h = relu(x @ W1 + b1)`, `y = gamma * sigmoid(h @ W2 + b2)`

    With `gamma = 2` a gate of 1 leaves its target unchanged, and the gate
    can amplify (up to 2x) as well as damp it. EPNet multiplies the
    embeddings by a GateNU of the scenario features (with the embeddings'
    gradient stopped); PPNet multiplies each tower layer's input by one.
    The layer is not scenario-indexed itself: its input is whatever context
    the caller concatenates (scenario embedding, user/item priors, ...).
    In float32 a very large logit saturates the sigmoid to exactly 1, so an
    output can reach `gamma` itself.

    Args:
        units: int. The output width (the width of the gated tensor).
        hidden_units: int or None. The width of the hidden layer; `None`
            uses `units`. Defaults to `None`.
        gamma: float. The upper bound of the output, `> 0`. Defaults to
            `2.0`.
        kernel_initializer: str or `keras.initializers.Initializer`.
            Initializer of both kernels (cloned for each). Defaults to
            `"glorot_uniform"`.
        kernel_regularizer: str, `keras.regularizers.Regularizer` or None.
            Regularizer of both kernels. Defaults to `None`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: float tensor of shape `[B, d]`.

    Returns:
        A tensor of shape `[B, units]` with values in `(0, gamma)`.

    Example:

    ```python
    gate = kmtl.layers.GateNU(units=16)
    delta = gate(np.random.rand(8, 24))  # [8, 16], in (0, 2)

    embeddings = keras.Input(shape=(16,))
    context = keras.Input(shape=(8,))
    delta = kmtl.layers.GateNU(units=16)(
        keras.layers.Concatenate()(
            [context, keras.ops.stop_gradient(embeddings)]
        )
    )
    model = keras.Model([embeddings, context], delta * embeddings)
    ```

    Reference:
        - [Chang et al., 2023](https://arxiv.org/abs/2302.01115)
          (PEPNet: Parameter and Embedding Personalized Network for
          Infusing with Personalized Prior Information, KDD 2023),
          section 3.2.
    """

    def __init__(
        self,
        units: int,
        hidden_units: int | None = None,
        gamma: float = 2.0,
        kernel_initializer: str | keras.initializers.Initializer = (
            "glorot_uniform"
        ),
        kernel_regularizer: str | keras.regularizers.Regularizer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hidden_units = (
            None
            if hidden_units is None
            else validation.positive_int(hidden_units, "hidden_units")
        )
        self.gamma = validation.positive_float(gamma, "gamma")
        self.units = validation.positive_int(units, "units")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape: Sequence[int | None]) -> None:
        shape = tuple(input_shape)
        if len(shape) != 2 or shape[-1] is None:
            raise ValueError(
                "`GateNU` expects an input of shape [B, d] with d known. "
                f"Received: input_shape={shape}"
            )
        self.hidden = keras.layers.Dense(
            self.hidden_units or self.units,
            activation="relu",
            kernel_initializer=clone_initializer(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name="hidden",
        )
        self.hidden.build(shape)
        self.output_dense = keras.layers.Dense(
            self.units,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name="output",
        )
        self.output_dense.build(shape[:-1] + (self.hidden.units,))
        self.built = True

    def call(self, inputs: Any) -> Any:
        logits = self.output_dense(self.hidden(inputs))
        return ops.multiply(ops.sigmoid(logits), self.gamma)

    def named_gate_weights(self, inputs: Any) -> dict[str, Any]:
        """The gate inspection protocol (`kmtl.inspection`).

        Args:
            inputs: tensor `[B, d]`, the layer's input.

        Returns:
            `{"units": [B, units]}`: the gate values, in `(0, gamma)`.
        """
        return {"units": self(inputs)}

    def compute_output_shape(
        self, input_shape: Sequence[int | None]
    ) -> tuple[int | None, ...]:
        return tuple(input_shape)[:-1] + (self.units,)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, GateNU))
        return config


__all__ = ["GateNU"]
