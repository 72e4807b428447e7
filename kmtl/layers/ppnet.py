"""PPNet: an MLP whose hidden units are gated by a persona (PEPNet)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kmtl import validation
from kmtl.layers.gate_nu import GateNU
from kmtl.layers.keras_objects import constructor_config


@keras.saving.register_keras_serializable(package="kmtl")
class PPNetMLP(keras.layers.Layer):
    """Parameter Personalized Network tower (Chang et al., KDD 2023).

    An MLP on `x` whose every hidden layer is scaled by its own gate on the
    persona and the gradient-stopped input:

    `g = persona ++ stop_gradient(x)`,
    `h_{i+1} = GateNU_i(g) * act(h_i W_i + b_i)`, with gates in
    `(0, gamma)`.

    The persona is what makes the tower personal: the scenario embedding,
    user / item id embeddings. One `PPNetMLP` per task gives PEPNet's task
    towers.

    Args:
        units: sequence of int. Hidden widths.
        activation: str. Defaults to `"relu"`.
        gamma: float. Upper bound of the gates. Defaults to 2.0.
        **kwargs: Base layer keyword arguments.

    Call arguments:
        inputs: list `[x, persona]`: `x` `[B, d]`, `persona` `[B, p]`.

    Returns:
        `[B, units[-1]]`.

    Example:

    ```python
    tower = kmtl.layers.PPNetMLP((16, 8))
    out = tower([np.ones((4, 10)), np.ones((4, 3))])  # [4, 8]
    ```
    """

    def __init__(
        self,
        units: Sequence[int],
        activation: str = "relu",
        gamma: float = 2.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = validation.units(units, "units")
        self.activation = keras.activations.get(activation)
        self.gamma = gamma

    def build(self, input_shape: Sequence[Any]) -> None:
        x_shape, persona_shape = (tuple(s) for s in input_shape)
        gate_input = (None, persona_shape[-1] + x_shape[-1])
        self.dense_layers, self.gates = [], []
        width = x_shape[-1]
        for i, units in enumerate(self.units):
            dense = keras.layers.Dense(
                units, dtype=self.dtype_policy, name=f"dense_{i}"
            )
            dense.build((None, width))
            gate = GateNU(
                units,
                gamma=self.gamma,
                dtype=self.dtype_policy,
                name=f"gate_{i}",
            )
            gate.build(gate_input)
            self.dense_layers.append(dense)
            self.gates.append(gate)
            width = units
        self.built = True

    def named_gate_weights(self, inputs: Sequence[Any]) -> dict[str, Any]:
        """The gate inspection protocol (`kmtl.inspection`).

        Args:
            inputs: as in `call`.

        Returns:
            dict `"layer_<i>"` -> `[B, units[i]]`: the gate of each hidden
            layer's units, in `(0, gamma)`.
        """
        gate_input = self._gate_input(inputs)
        return {
            f"layer_{i}": gate(gate_input) for i, gate in enumerate(self.gates)
        }

    def _gate_input(self, inputs: Sequence[Any]) -> Any:
        x, persona = inputs
        return ops.concatenate([persona, ops.stop_gradient(x)], axis=-1)

    def call(self, inputs: Sequence[Any]) -> Any:
        x, _ = inputs
        gate_input = self._gate_input(inputs)
        h = x
        for dense, gate in zip(self.dense_layers, self.gates, strict=True):
            h = ops.multiply(self.activation(dense(h)), gate(gate_input))
        return h

    def compute_output_shape(self, input_shape: Sequence[Any]) -> Any:
        return tuple(input_shape[0])[:-1] + (self.units[-1],)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, PPNetMLP))
        return config
