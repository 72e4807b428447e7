"""The base of every layer that mixes a pool of expert MLPs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from kmtl import validation
from kmtl.layers.experts import Experts
from kmtl.layers.gates import MixtureGate
from kmtl.layers.keras_objects import clone_initializer
from kmtl.layers.keras_objects import constructor_config


class ExpertMixture(keras.layers.Layer):
    """Base class of the layers that mix expert MLPs through gates.

    It owns, checks and serializes the arguments every mixture shares (the
    experts' widths, their activation, the kernels' initializer and
    regularizer) and builds the two parts mixtures are made of: one batched
    `Experts` layer and a `MixtureGate`. Subclasses add their own arguments
    (a short `get_config`) and the routing in `call`:

    `y = sum_e gate(x)[e] * expert_e(x)`

    The switchers (`Switcher`: shared-bottom, MMoE, OMoE, CGC) are mixtures
    with one output per task; HiNet's `ScenarioExtractionLayer` and AESM2's
    `ExpertSelectionLayer` are mixtures routed by a scenario id.

    Args:
        expert_units: sequence of int. The widths of each expert MLP.
            Defaults to `(256, 128)`.
        activation: str or callable. Activation of every expert layer.
            Defaults to `"relu"`.
        kernel_initializer: str or `keras.initializers.Initializer`.
            Initializer of the expert and gate kernels (drawn per expert and
            per gate). Defaults to `"glorot_uniform"`.
        kernel_regularizer: str, `keras.regularizers.Regularizer` or None.
            Regularizer of the expert and gate kernels. Defaults to `None`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).
    """

    def __init__(
        self,
        expert_units: Sequence[int] = (256, 128),
        activation: str | Any = "relu",
        kernel_initializer: str | keras.initializers.Initializer = (
            "glorot_uniform"
        ),
        kernel_regularizer: str | keras.regularizers.Regularizer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.expert_units = validation.units(expert_units, "expert_units")
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build_experts(
        self, input_shape: Any, num_experts: int, name: str = "experts"
    ) -> Experts:
        """Builds the layer's `Experts` on `input_shape` (`[B, d]` or
        `[B, num_experts, d]`) with the shared arguments."""
        experts = Experts(
            num_experts=num_experts,
            units=self.expert_units,
            activation=self.activation,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name=name,
        )
        experts.build(input_shape)
        return experts

    def build_gate(
        self,
        input_shape: Any,
        num_gates: int,
        num_experts: int,
        expert_mask: Sequence[Sequence[int]] | None = None,
        name: str = "gate",
    ) -> MixtureGate:
        """Builds a `MixtureGate` on `input_shape` with the shared kernel
        initializer and regularizer."""
        gate = MixtureGate(
            num_gates=num_gates,
            num_experts=num_experts,
            expert_mask=expert_mask,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name=name,
        )
        gate.build(input_shape)
        return gate

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            **constructor_config(self, ExpertMixture),
        }


__all__ = ["ExpertMixture"]
