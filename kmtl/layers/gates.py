"""Gates: layers that output mixture weights over a group of experts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from kmtl import validation
from kmtl.layers.experts import stacked_initializer
from kmtl.layers.keras_objects import constructor_config

# Added to the logits of masked experts: exp() of it underflows to exactly 0
# in float32 and float16 (where it becomes -inf, still safe: at least one
# expert per gate stays unmasked, so the softmax maximum is finite).
_MASKED_LOGIT = -1e9


def _as_mask(expert_mask: Any) -> Any:
    """Turns a nested sequence (or array) of 0/1 into a tuple of tuples."""
    if expert_mask is None:
        return None
    try:
        array = np.asarray(expert_mask)
    except (TypeError, ValueError):
        return expert_mask
    if array.ndim != 2 or not np.isin(array, (0, 1)).all():
        return expert_mask
    return tuple(tuple(int(v) for v in row) for row in array.tolist())


def _mask_ok(mask: Any, num_gates: Any, num_experts: Any) -> bool:
    """Whether `mask` (as returned by `_as_mask`) is a valid [G][E] mask."""
    return (
        isinstance(mask, tuple)
        and len(mask) == num_gates
        and all(
            isinstance(row, tuple)
            and len(row) == num_experts
            and all(type(v) is int and v in (0, 1) for v in row)
            and any(row)
            for row in mask
        )
    )


# === MixtureGate: linear softmax gates (MMoE, OMoE, CGC/PLE) ===


@keras.saving.register_keras_serializable(package="kmtl")
class MixtureGate(keras.layers.Layer):
    """`num_gates` linear softmax gates over `num_experts` experts.

    Gate `g` maps its input to a distribution over the experts:

    `w[b, g] = softmax(x[b] @ W_g + c_g + log(m_g))`

    where `m_g` is row `g` of `expert_mask` (all ones by default): a masked
    expert gets a weight of exactly 0 and the remaining weights of each row
    sum to 1. With an input of shape `[B, d]` all gates see the same input
    and the logits are one matmul with a `[d, G * E]` kernel; with an input
    of shape `[B, G, d]` gate `g` sees `x[:, g]` (an einsum with a
    `[G, d, E]` kernel).

    Args:
        num_gates: int. The number of gates `G`.
        num_experts: int. The number of experts `E` each gate mixes.
        expert_mask: nested list of 0/1 of shape `[G][E]`, or None. Which
            experts each gate may use; each row needs at least one 1. `None`
            lets every gate use every expert. Defaults to `None`.
        use_bias: bool. Whether the gates have a bias. Defaults to `True`.
        kernel_initializer: str or `keras.initializers.Initializer`.
            Initializer of one gate's `[d, E]` kernel, drawn separately for
            each gate. Defaults to `"glorot_uniform"`.
        bias_initializer: str or `keras.initializers.Initializer`.
            Initializer of the biases. Defaults to `"zeros"`.
        kernel_regularizer: str, `keras.regularizers.Regularizer` or None.
            Regularizer of the kernel. Defaults to `None`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor of shape `[B, d]` (shared by all gates) or
            `[B, G, d]` (one input per gate). The rank seen at build time is
            kept.

    Returns:
        A tensor of shape `[B, G, E]` whose rows sum to 1.

    Example:

    ```python
    gate = kmtl.layers.MixtureGate(
        num_gates=2, num_experts=3, expert_mask=[[1, 1, 0], [0, 1, 1]]
    )
    w = gate(np.random.rand(8, 10))  # [8, 2, 3], w[:, 0, 2] == 0

    inputs = keras.Input(shape=(10,))
    experts = kmtl.layers.Experts(num_experts=3, units=(16,))(inputs)
    weights = kmtl.layers.MixtureGate(num_gates=2, num_experts=3)(inputs)
    mixed = keras.ops.einsum("bge,beh->bgh", weights, experts)
    model = keras.Model(inputs, mixed)
    ```

    Reference:
        - [Ma et al., 2018](https://dl.acm.org/doi/10.1145/3219819.3220007)
          (MMoE gates).
    """

    def __init__(
        self,
        num_gates: int,
        num_experts: int,
        expert_mask: Sequence[Sequence[int]] | None = None,
        use_bias: bool = True,
        kernel_initializer: str | keras.initializers.Initializer = (
            "glorot_uniform"
        ),
        bias_initializer: str | keras.initializers.Initializer = "zeros",
        kernel_regularizer: str | keras.regularizers.Regularizer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.expert_mask = _as_mask(expert_mask)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

        self.num_gates = validation.positive_int(num_gates, "num_gates")
        self.num_experts = validation.positive_int(num_experts, "num_experts")
        if self.expert_mask is not None:
            if not _mask_ok(self.expert_mask, num_gates, num_experts):
                raise ValueError(
                    "`expert_mask` must be a nested list of 0/1 of shape "
                    f"[num_gates, num_experts] = [{num_gates}, {num_experts}]"
                    " with at least one 1 in each row. "
                    f"Received: expert_mask={expert_mask!r}"
                )
        if not isinstance(use_bias, bool):
            raise ValueError(
                f"`use_bias` must be a bool. Received: use_bias={use_bias!r}"
            )

    def build(self, input_shape: Sequence[int | None]) -> None:
        shape = tuple(input_shape)
        if len(shape) == 3:
            if shape[1] is not None and shape[1] != self.num_gates:
                raise ValueError(
                    "A 3D input of `MixtureGate` must have one row per gate "
                    f"on axis 1 ({self.num_gates}). "
                    f"Received: input_shape={shape}"
                )
            self._per_gate_input = True
        elif len(shape) == 2:
            self._per_gate_input = False
        else:
            raise ValueError(
                "`MixtureGate` expects an input of shape [B, d] or "
                f"[B, num_gates, d]. Received: input_shape={shape}"
            )
        if shape[-1] is None:
            raise ValueError(
                "The last dimension of the input of `MixtureGate` must be "
                f"known. Received: input_shape={shape}"
            )
        dim = int(shape[-1])
        gates, experts = self.num_gates, self.num_experts
        if self._per_gate_input:
            kernel_shape = (gates, dim, experts)
            layout = "stacked"
        else:
            kernel_shape = (dim, gates * experts)
            layout = "concat"
        self.kernel = self.add_weight(
            name="kernel",
            shape=kernel_shape,
            initializer=stacked_initializer(
                self.kernel_initializer, (dim, experts), gates, layout
            ),
            regularizer=self.kernel_regularizer,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(gates, experts),
                initializer=self.bias_initializer,
            )
        self.built = True

    def call(self, inputs: Any) -> Any:
        shape = (-1, self.num_gates, self.num_experts)
        if self._per_gate_input:
            logits = ops.einsum("bgd,gde->bge", inputs, self.kernel)
            if self.bias is not None:
                logits = ops.add(logits, self.bias)
        else:
            logits = ops.matmul(inputs, self.kernel)  # [B, G * E]
            if self.bias is not None:
                # A 2D bias add (fused with the matmul on TensorFlow).
                logits = ops.add(logits, ops.reshape(self.bias, (-1,)))
            logits = ops.reshape(logits, shape)
        if self.expert_mask is None:
            return ops.softmax(logits, axis=-1)
        mask = ops.convert_to_tensor(np.asarray(self.expert_mask, dtype=bool))
        logits = ops.where(mask, logits, ops.full_like(logits, _MASKED_LOGIT))
        weights = ops.softmax(logits, axis=-1)
        return ops.multiply(weights, ops.cast(mask, weights.dtype))

    def compute_output_shape(
        self, input_shape: Sequence[int | None]
    ) -> tuple[int | None, ...]:
        return (tuple(input_shape)[0], self.num_gates, self.num_experts)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, MixtureGate))
        return config


# === Room for more gates (GateNU, ...) below ===


__all__ = ["MixtureGate"]
