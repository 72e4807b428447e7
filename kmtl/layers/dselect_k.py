"""DSelect-k: a differentiable gate that selects k experts per task, and the
switcher that mixes experts with it."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from kmtl import validation
from kmtl.layers.keras_objects import constructor_config
from kmtl.layers.switcher import Switcher
from kmtl.layers.switcher import register_switcher
from kmtl.layers.switcher import shape_list

# Inside the entropy's log, as in the reference implementation.
_EPSILON = 1e-6


def smooth_step(x: Any, gamma: float = 1.0) -> Any:
    """The smooth-step function of DSelect-k (Hazimeh et al., 2020, 2021).

    `S(t) = 0` for `t <= -gamma / 2`, `1` for `t >= gamma / 2`, and
    `-2 t^3 / gamma^3 + 3 t / (2 gamma) + 1 / 2` between: continuously
    differentiable, and exactly 0 or 1 outside `(-gamma / 2, gamma / 2)`,
    where its gradient is 0.

    Args:
        x: tensor.
        gamma: float. The width of the polynomial region, `> 0`. Defaults
            to `1.0`.

    Returns:
        A tensor like `x` with values in [0, 1].

    Example:

    ```python
    kmtl.layers.dselect_k.smooth_step(np.array([-1.0, 0.0, 0.25, 1.0]))
    # [0.0, 0.5, 0.84375, 1.0]
    ```
    """
    x = ops.convert_to_tensor(x)
    cubic = ops.add(
        ops.add(
            ops.multiply(ops.power(x, 3), -2.0 / gamma**3),
            ops.multiply(x, 1.5 / gamma),
        ),
        0.5,
    )
    half = gamma / 2.0
    return ops.where(
        ops.less_equal(x, -half),
        ops.zeros_like(x),
        ops.where(ops.greater_equal(x, half), ops.ones_like(x), cubic),
    )


def binary_codes(n: int) -> np.ndarray:
    """`[n, m]` bool: row `i` is `i` in binary (most significant bit
    first), `m = max(1, ceil(log2 n))`."""
    width = max(1, math.ceil(math.log2(n)))
    return np.array(
        [[bit == "1" for bit in np.binary_repr(i, width)] for i in range(n)]
    )


def _check_selection(
    num_experts: int, num_selectors: int, gamma: float, entropy_weight: float
) -> tuple[int, int, float, float]:
    """The checked selection arguments shared by the gate and the switcher."""
    num_experts = validation.positive_int(num_experts, "num_experts")
    num_selectors = validation.positive_int(num_selectors, "num_selectors")
    if num_selectors > num_experts:
        raise ValueError(
            f"`num_selectors` must be at most `num_experts` ({num_experts})."
            f" Received: num_selectors={num_selectors}"
        )
    return (
        num_experts,
        num_selectors,
        validation.positive_float(gamma, "gamma"),
        validation.non_negative_float(entropy_weight, "entropy_weight"),
    )


@keras.saving.register_keras_serializable(package="kmtl")
class DSelectKGate(keras.layers.Layer):
    """`num_gates` DSelect-k gates, each mixing at most `k` of `n` experts.

    Each gate has `k = num_selectors` single-expert selectors. Selector `l`
    holds `m = ceil(log2 n)` logits `z_l` and picks expert `i` with weight

    `r_l[i] = prod_j (S(z_l[j]) if b_i[j] else 1 - S(z_l[j]))`

    where `b_i` is `i` in binary and `S` the `smooth_step`: a product of
    soft bits, so `r_l` sums to 1 over the `2^m` codes and is one-hot once
    every `|z_l[j]| >= gamma / 2`. The gate mixes its selectors with a
    softmax over logits `w`:

    `a = sum_l softmax(w)[l] * r_l`, at most `k` nonzero weights.

    Static gating (`per_example=False`, the paper's "task-only
    conditioning"): `z` and `w` are weights. Per-example gating: `z = x @
    A + c`, `w = x @ B + d`. With `k = 1` there is no `w`. In training,
    two losses are added with `add_loss` (mean over the batch, summed over
    gates and selectors):

    - the entropy regulariser `entropy_weight * sum_l H(r_l)`,
      `H(r) = -sum_i r[i] log(r[i] + 1e-6)`, which drives every selector to
      one expert;
    - when `n` is not a power of 2, `sum_l (1 / sum_{i < n} r_l[i] - 1)`
      (the sum floored at 1e-6), which keeps the selectors off the
      `2^m - n` codes with no expert (0 once they carry no weight).

    Args:
        num_gates: int. The number of gates `G` (tasks).
        num_experts: int. The number of experts `n`.
        num_selectors: int. The number of selectors `k` of each gate (the
            most experts a gate mixes), at most `num_experts`. Defaults to
            `2`.
        gamma: float. The width of the smooth-step's polynomial region,
            `> 0`. Defaults to `1.0`.
        per_example: bool. Whether the selectors depend on the input
            (per-example gating) or are the same for every example
            (static). Defaults to `True`.
        entropy_weight: float. Weight of the entropy regulariser (`0`
            disables it). Defaults to `0.01`.
        kernel_regularizer: str, `keras.regularizers.Regularizer` or None.
            Regularizer of the per-example kernels. Defaults to `None`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    The logits start small, as in the reference implementation: `z` (and
    its kernel and bias) uniform in `(-gamma / 100, gamma / 100)`, `w`
    uniform in `(-0.05, 0.05)`, so every expert starts near weight `1 /
    2^m`.

    Call arguments:
        inputs: tensor of shape `[B, d]`. With static gating only its
            presence matters.
        training: bool. Adds the regularisers when true.

    Returns:
        A tensor of shape `[B, G, n]` (the same on every row with static
        gating) of nonnegative weights; each row sums to 1 once the
        selectors carry no weight on codes without an expert (always when
        `n` is a power of 2).

    Example:

    ```python
    gate = kmtl.layers.DSelectKGate(num_gates=2, num_experts=4,
                                    num_selectors=1)
    weights = gate(np.random.rand(8, 10))  # [8, 2, 4]

    inputs = keras.Input(shape=(10,))
    experts = kmtl.layers.Experts(num_experts=4, units=(16,))(inputs)
    weights = kmtl.layers.DSelectKGate(num_gates=2, num_experts=4)(inputs)
    mixed = keras.ops.einsum("bge,beh->bgh", weights, experts)
    model = keras.Model(inputs, mixed)
    ```

    Reference:
        - [Hazimeh et al., 2021](https://arxiv.org/abs/2106.03760)
          (DSelect-k: Differentiable Selection in the Mixture of Experts
          with Applications to Multi-Task Learning, NeurIPS 2021), and
          google-research/dselect_k_moe.
    """

    def __init__(
        self,
        num_gates: int,
        num_experts: int,
        num_selectors: int = 2,
        gamma: float = 1.0,
        per_example: bool = True,
        entropy_weight: float = 0.01,
        kernel_regularizer: str | keras.regularizers.Regularizer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_gates = validation.positive_int(num_gates, "num_gates")
        (
            self.num_experts,
            self.num_selectors,
            self.gamma,
            self.entropy_weight,
        ) = _check_selection(num_experts, num_selectors, gamma, entropy_weight)
        self.per_example = validation.boolean(per_example, "per_example")
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self._codes = binary_codes(self.num_experts)

    @property
    def num_bits(self) -> int:
        """`m`, the binary logits of each selector."""
        return self._codes.shape[1]

    def build(self, input_shape: Any) -> None:
        shape = tuple(input_shape)
        if shape_list(input_shape) is not None or len(shape) != 2:
            raise ValueError(
                "`DSelectKGate` takes one tensor of shape [B, d]. "
                f"Received: input_shape={input_shape}"
            )
        selectors = self.num_gates * self.num_selectors
        bound = self.gamma / 100.0
        z_init = keras.initializers.RandomUniform(-bound, bound)
        w_init = keras.initializers.RandomUniform(-0.05, 0.05)
        if self.per_example:
            if shape[-1] is None:
                raise ValueError(
                    "The last dimension of the input of `DSelectKGate` "
                    f"must be known. Received: input_shape={shape}"
                )
            dim = int(shape[-1])
            self.z_kernel = self.add_weight(
                name="z_kernel",
                shape=(dim, selectors * self.num_bits),
                initializer=z_init,
                regularizer=self.kernel_regularizer,
            )
            self.z_bias = self.add_weight(
                name="z_bias",
                shape=(selectors * self.num_bits,),
                initializer=z_init,
            )
            if self.num_selectors > 1:
                self.w_kernel = self.add_weight(
                    name="w_kernel",
                    shape=(dim, selectors),
                    initializer=w_init,
                    regularizer=self.kernel_regularizer,
                )
                self.w_bias = self.add_weight(
                    name="w_bias", shape=(selectors,), initializer=w_init
                )
        else:
            self.z_logits = self.add_weight(
                name="z_logits",
                shape=(self.num_gates, self.num_selectors, self.num_bits),
                initializer=z_init,
            )
            if self.num_selectors > 1:
                self.w_logits = self.add_weight(
                    name="w_logits",
                    shape=(self.num_gates, self.num_selectors),
                    initializer=w_init,
                )
        self.built = True

    def selectors(self, inputs: Any) -> tuple[Any, Any]:
        """The selectors' outputs and their mixture weights.

        Args:
            inputs: tensor `[B, d]`.

        Returns:
            `(r, s)`: `r` of shape `[B, G, k, n]` (`[1, G, k, n]` with
            static gating), each selector's weights over the experts, and
            `s` of shape `[B or 1, G, k]`, `softmax(w)` (ones when `k = 1`).
        """
        if not self.built:
            self.build(tuple(inputs.shape))
        gates, k, bits = self.num_gates, self.num_selectors, self.num_bits
        if self.per_example:
            z = ops.add(ops.matmul(inputs, self.z_kernel), self.z_bias)
            z = ops.reshape(z, (-1, gates, k, bits))
        else:
            z = ops.expand_dims(self.z_logits, 0)
        bit = ops.expand_dims(smooth_step(z, self.gamma), -2)  # [., 1, m]
        codes = ops.convert_to_tensor(self._codes)  # [n, m]
        r = ops.prod(ops.where(codes, bit, ops.subtract(1.0, bit)), axis=-1)
        if k == 1:  # One selector: its weight is 1 (no `w`).
            return r, ops.ones_like(r[..., 0])
        if self.per_example:
            w = ops.add(ops.matmul(inputs, self.w_kernel), self.w_bias)
            w = ops.reshape(w, (-1, gates, k))
        else:
            w = ops.expand_dims(self.w_logits, 0)
        return r, ops.softmax(w, axis=-1)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        r, s = self.selectors(inputs)
        if training:
            self._add_regularizers(r)
        weights = ops.sum(ops.multiply(ops.expand_dims(s, -1), r), axis=-2)
        if self.per_example:
            return weights
        shape = (ops.shape(inputs)[0], self.num_gates, self.num_experts)
        return ops.broadcast_to(weights, shape)

    def _add_regularizers(self, r: Any) -> None:
        """The entropy and unused-code losses on the selector outputs `r`."""
        if self.entropy_weight > 0:
            entropy = -ops.sum(ops.multiply(r, ops.log(r + _EPSILON)), -1)
            self.add_loss(
                ops.multiply(
                    ops.mean(ops.sum(entropy, (1, 2))), self.entropy_weight
                )
            )
        if self.num_experts < 2**self.num_bits:
            # Floored: a selector saturated on unused codes (no gradient
            # left to move it) costs 1e6, not infinity.
            reachable = ops.maximum(ops.sum(r, axis=-1), _EPSILON)
            self.add_loss(
                ops.mean(ops.sum(ops.subtract(1.0 / reachable, 1.0), (1, 2)))
            )

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (tuple(input_shape)[0], self.num_gates, self.num_experts)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, DSelectKGate))
        return config


@register_switcher("dselect_k")
@keras.saving.register_keras_serializable(package="kmtl")
class DSelectKLayer(Switcher):
    """Experts mixed by one DSelect-k gate per task (at most k experts each).

    `y_t = sum_i a_t[i] * f_i(x)`, where `a_t` is task `t`'s
    `DSelectKGate` weights: `k = num_selectors` single-expert selectors
    with smooth-step binary codes, mixed by a softmax (see
    `DSelectKGate`). Unlike MMoE's softmax gates, each task ends up using
    at most `k` experts, exactly (the smooth-step reaches 0 and 1), and
    the selection stays differentiable. The experts are one batched
    `Experts` layer; the gate's regularisers are added with `add_loss` in
    training.

    Args:
        num_tasks: int. The number of task branches `K`.
        num_experts: int. The number of experts `n`. Defaults to `8`.
        num_selectors: int. The experts each task mixes at most (`k`), at
            most `num_experts`. Defaults to `2`.
        per_example: bool. Per-example gating (the selection depends on
            the input) or static (one selection per task). Defaults to
            `True`.
        gamma: float. The smooth-step's width, `> 0`. Defaults to `1.0`.
        entropy_weight: float. Weight of the entropy regulariser that
            drives each selector to one expert. Defaults to `0.01`.
        **kwargs: The `Switcher` arguments (`expert_units` (256, 128),
            `activation`, `kernel_initializer` (experts),
            `kernel_regularizer` (experts and gate)) and base layer keyword
            arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor of shape `[B, d]`.
        training: bool. Adds the gate's regularisers when true.

    Returns:
        A list of `num_tasks` tensors of shape `[B, expert_units[-1]]`.

    Example:

    ```python
    layer = kmtl.layers.DSelectKLayer(num_tasks=2, num_experts=4,
                                      num_selectors=1, expert_units=(16,))
    ctr, cvr = layer(np.random.rand(8, 10))  # two [8, 16] tensors
    weights = layer.gate_weights(np.random.rand(8, 10))  # [8, 2, 4]

    inputs = keras.Input(shape=(10,))
    ctr, cvr = kmtl.layers.get_switcher("dselect_k", 2, num_experts=4)(inputs)
    model = keras.Model(inputs, [keras.layers.Dense(1)(ctr), cvr])
    ```

    Reference:
        - [Hazimeh et al., 2021](https://arxiv.org/abs/2106.03760)
          (DSelect-k: Differentiable Selection in the Mixture of Experts
          with Applications to Multi-Task Learning, NeurIPS 2021).
    """

    expert_budget = "pooled"

    def __init__(
        self,
        num_tasks: int,
        num_experts: int = 8,
        num_selectors: int = 2,
        per_example: bool = True,
        gamma: float = 1.0,
        entropy_weight: float = 0.01,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_tasks, **kwargs)
        (
            self.num_experts,
            self.num_selectors,
            self.gamma,
            self.entropy_weight,
        ) = _check_selection(num_experts, num_selectors, gamma, entropy_weight)
        self.per_example = validation.boolean(per_example, "per_example")

    def build(self, input_shape: Any) -> None:
        shape = tuple(input_shape)
        if shape_list(input_shape) is not None or len(shape) != 2:
            raise ValueError(
                "`DSelectKLayer` takes one tensor of shape [B, d]. "
                f"Received: input_shape={input_shape}"
            )
        self.experts = self.build_experts(shape, self.num_experts)
        self.gate = DSelectKGate(
            num_gates=self.num_tasks,
            num_experts=self.num_experts,
            num_selectors=self.num_selectors,
            gamma=self.gamma,
            per_example=self.per_example,
            entropy_weight=self.entropy_weight,
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name="gate",
        )
        self.gate.build(shape)
        self.built = True

    def gate_weights(self, inputs: Any) -> Any:
        """Returns the gate weights `[B, K, n]` (inference mode)."""
        if not self.built:
            self.build(tuple(inputs.shape))
        return self.gate(inputs)

    def named_gate_weights(self, inputs: Any) -> dict[str, Any]:
        """The gate inspection protocol (`kmtl.inspection`).

        Args:
            inputs: tensor `[B, d]`, the layer's input.

        Returns:
            dict `"task_<k>"` -> `[B, n]` weights, zero on the experts the
            task's selectors left out.
        """
        weights = self.gate_weights(inputs)
        return {f"task_{k}": weights[:, k] for k in range(self.num_tasks)}

    def call(self, inputs: Any, training: bool | None = None) -> list[Any]:
        experts = self.experts(inputs)  # [B, n, H]
        weights = self.gate(inputs, training=training)  # [B, K, n]
        mixed = ops.matmul(weights, experts)  # as in MMoELayer.call
        return list(ops.unstack(mixed, num=self.num_tasks, axis=1))

    def compute_output_shape(self, input_shape: Any) -> list[tuple[Any, ...]]:
        shape = (tuple(input_shape)[0], self.expert_units[-1])
        return [shape] * self.num_tasks

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, DSelectKLayer))
        return config


__all__ = ["DSelectKGate", "DSelectKLayer", "binary_codes", "smooth_step"]
