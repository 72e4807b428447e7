"""EPNet: scenario-personalised scaling of the field embeddings (PEPNet)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kmtl.layers.gate_nu import GateNU
from kmtl.layers.keras_objects import constructor_config


@keras.saving.register_keras_serializable(package="kmtl")
class EPNet(keras.layers.Layer):
    """Embedding Personalized Network (Chang et al., KDD 2023).

    Scales each field embedding by a gate computed from the scenario
    context and the (gradient-stopped) embeddings themselves:

    `delta = GateNU(context ++ stop_gradient(flatten(E)))`, `[B, F]` in
    `(0, gamma)`; `O = delta[..., None] * E`.

    The gradient stop keeps the gate from reshaping the embeddings it
    reads; only the context and the gate learn from it.

    Args:
        hidden_units: int. Width of the gate's hidden layer. Defaults to
            the number of fields.
        gamma: float. Upper bound of the gate. Defaults to 2.0.
        **kwargs: Base layer keyword arguments.

    Call arguments:
        inputs: list `[embeddings, context]`: `embeddings` `[B, F, D]`,
            `context` `[B, c]` (e.g. the scenario embedding).

    Returns:
        The scaled embeddings, `[B, F, D]`.

    Example:

    ```python
    layer = kmtl.layers.EPNet()
    out = layer([np.ones((4, 3, 8)), np.ones((4, 5))])  # [4, 3, 8]
    ```
    """

    def __init__(
        self,
        hidden_units: int | None = None,
        gamma: float = 2.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hidden_units = hidden_units
        self.gamma = gamma

    def build(self, input_shape: Sequence[Any]) -> None:
        fields_shape, context_shape = (tuple(s) for s in input_shape)
        if len(fields_shape) != 3 or None in fields_shape[1:]:
            raise ValueError(
                "`EPNet` expects embeddings of shape [B, F, D] with F and D "
                f"known. Received: {fields_shape}"
            )
        num_fields, dim = fields_shape[1], fields_shape[2]
        self.gate = GateNU(
            num_fields,
            hidden_units=self.hidden_units or num_fields,
            gamma=self.gamma,
            dtype=self.dtype_policy,
            name="gate",
        )
        self.gate.build((None, context_shape[-1] + num_fields * dim))
        self.built = True

    def field_gates(self, inputs: Sequence[Any]) -> Any:
        """The gate `delta` of each field, `[B, F]` in `(0, gamma)`."""
        fields, context = inputs
        flat = ops.reshape(
            ops.stop_gradient(fields), (-1, fields.shape[1] * fields.shape[2])
        )
        return self.gate(ops.concatenate([context, flat], axis=-1))

    def named_gate_weights(self, inputs: Sequence[Any]) -> dict[str, Any]:
        """The gate inspection protocol (`kmtl.inspection`).

        Args:
            inputs: as in `call`.

        Returns:
            `{"fields": [B, F]}`: each field's gate, in the order of the
            embeddings' field axis.
        """
        return {"fields": self.field_gates(inputs)}

    def call(self, inputs: Sequence[Any]) -> Any:
        delta = self.field_gates(inputs)
        return ops.multiply(inputs[0], ops.expand_dims(delta, -1))

    def compute_output_shape(self, input_shape: Sequence[Any]) -> Any:
        return tuple(input_shape[0])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, EPNet))
        return config
