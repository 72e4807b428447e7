"""The SNR switchers: sub-networks routed by hard-concrete coding variables."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from kmtl import validation
from kmtl.layers.experts import stacked_initializer
from kmtl.layers.keras_objects import constructor_config
from kmtl.layers.switcher import Switcher
from kmtl.layers.switcher import register_switcher
from kmtl.layers.switcher import shape_list

KINDS = ("trans", "aver")

# Keeps the uniform noise of the hard-concrete draw off 0 and 1, where its
# logit is infinite.
_EPSILON = 1e-6


@register_switcher("snr_trans", kind="trans")
@register_switcher("snr_aver", kind="aver")
@keras.saving.register_keras_serializable(package="kmtl")
class SNRLayer(Switcher):
    """Sub-Network Routing: experts connected to branches by coding variables.

    `E` lower sub-networks (experts) `u_e = f_e(x)` feed `K` branches (task
    towers, or the next level of sub-networks) through connections gated by
    coding variables `z[k, e]` in `[0, 1]`:

    - SNR-Trans (`kind="trans"`): `v_k = sum_e z[k, e] * (u_e @ W[k, e])`,
      a `[H, H]` transformation matrix per connection;
    - SNR-Aver (`kind="aver"`): `v_k = sum_e z[k, e] * u_e`, a weighted
      sum (the paper's "weighted average" of `I` connections).

    Each `z[k, e]` is a hard-concrete variable (Louizos et al., 2018) with
    a trainable `log_alpha[k, e]`. In training, one draw per batch:

    `u ~ U(0, 1)`, `s = sigmoid((log u - log(1 - u) + log_alpha) / beta)`,
    `z = clip(s * (zeta - gamma) + gamma, 0, 1)`

    so `z` is exactly 0 or 1 with positive probability; at inference it is
    deterministic, `z = clip(sigmoid(log_alpha) * (zeta - gamma) + gamma,
    0, 1)`. The L0 penalty, the expected number of open connections,

    `L0 = sum_{k, e} P(z[k, e] != 0) = sum_{k, e} sigmoid(log_alpha[k, e]
    - beta * log(-gamma / zeta))`,

    is added with `add_loss`, times `l0_weight`: a large weight closes
    connections (`z = 0` at inference), which serving can skip.

    Cost: SNR-Trans's connections are one `[B, E H] @ [E H, K H]` matmul
    (`E K H^2` multiply-adds per example, beside the experts'); SNR-Aver's
    cost `E K H`.

    With a list input of `num_experts` tensors (the outputs of an SNR layer
    whose branches are this level's sub-networks), expert `e` reads input
    `e`; stacked that way, SNR layers route between levels of sub-networks.

    Args:
        num_tasks: int. The number of branches `K`: tasks, or the next
            level's sub-networks.
        num_experts: int. The number of sub-networks `E`. Defaults to `4`.
        kind: str. `"trans"` (SNR-Trans, registered as `"snr_trans"`) or
            `"aver"` (SNR-Aver, `"snr_aver"`). Defaults to `"trans"`.
        l0_weight: float. Weight of the L0 penalty (`0` disables it).
            Defaults to `0.001`.
        beta: float. Temperature of the hard-concrete distribution, `> 0`.
            Defaults to `2 / 3`.
        gamma: float. Lower end of the stretch interval, `< 0`. Defaults to
            `-0.1`.
        zeta: float. Upper end of the stretch interval, `> 1`. Defaults to
            `1.1`.
        log_alpha_initializer: str or `keras.initializers.Initializer`.
            Initializer of `log_alpha`. Defaults to `"zeros"` (each
            connection open with probability 0.83, `z = 0.5` at inference).
        seed: int or None. Seed of the hard-concrete draws. Defaults to
            `None`.
        **kwargs: The `Switcher` arguments (`expert_units` (256, 128),
            `activation`, `kernel_initializer` (experts and `W`),
            `kernel_regularizer`) and base layer keyword arguments (`name`,
            `dtype`, ...).

    Call arguments:
        inputs: tensor of shape `[B, d]`, or a list of `num_experts` tensors
            of shape `[B, d]` (one per sub-network).
        training: bool. Draws the coding variables when true.

    Returns:
        A list of `num_tasks` tensors of shape `[B, expert_units[-1]]`.

    Example:

    ```python
    layer = kmtl.layers.SNRLayer(num_tasks=2, num_experts=3,
                                 expert_units=(16,))
    ctr, cvr = layer(np.random.rand(8, 10))  # two [8, 16] tensors
    z = layer.coding_variables()  # [2, 3], deterministic

    # Two levels of sub-networks, then task towers.
    inputs = keras.Input(shape=(10,))
    level_1 = kmtl.layers.SNRLayer(num_tasks=3, num_experts=3,
                                   expert_units=(32,))(inputs)
    ctr, cvr = kmtl.layers.get_switcher("snr_aver", 2, num_experts=3,
                                        expert_units=(16,))(level_1)
    model = keras.Model(inputs, [keras.layers.Dense(1)(ctr),
                                 keras.layers.Dense(1)(cvr)])
    ```

    Reference:
        - [Ma et al., 2019](https://ojs.aaai.org/index.php/AAAI/article/view/3788)
          (SNR: Sub-Network Routing for Flexible Parameter Sharing in
          Multi-Task Learning, AAAI 2019).
        - [Louizos et al., 2018](https://arxiv.org/abs/1712.01312)
          (Learning Sparse Neural Networks through L0 Regularization, ICLR
          2018): the hard-concrete distribution.
    """

    expert_budget = "pooled"

    def __init__(
        self,
        num_tasks: int,
        num_experts: int = 4,
        kind: str = "trans",
        l0_weight: float = 0.001,
        beta: float = 2.0 / 3.0,
        gamma: float = -0.1,
        zeta: float = 1.1,
        log_alpha_initializer: str | keras.initializers.Initializer = "zeros",
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_tasks, **kwargs)
        self.num_experts = validation.positive_int(num_experts, "num_experts")
        self.kind = validation.one_of(kind, "kind", choices=KINDS)
        self.l0_weight = validation.non_negative_float(l0_weight, "l0_weight")
        self.beta = validation.positive_float(beta, "beta")
        self.gamma = _float_beyond(gamma, "gamma", 0.0, below=True)
        self.zeta = _float_beyond(zeta, "zeta", 1.0, below=False)
        self.log_alpha_initializer = keras.initializers.get(
            log_alpha_initializer
        )
        if seed is not None and not validation.is_integer(seed):
            raise ValueError(
                f"`seed` must be an int or None. Received: seed={seed!r}"
            )
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    # --- Layer ---

    def build(self, input_shape: Any) -> None:
        shapes = shape_list(input_shape)
        if shapes is None:
            shape = tuple(input_shape)
            if len(shape) != 2:
                raise ValueError(
                    "`SNRLayer` takes a tensor of shape [B, d] or a list of "
                    f"num_experts = {self.num_experts} such tensors. "
                    f"Received: input_shape={input_shape}"
                )
            self._list_input = False
            expert_shape = shape
        else:
            dims = {s[-1] for s in shapes}
            if (
                len(shapes) != self.num_experts
                or any(len(s) != 2 for s in shapes)
                or len(dims) != 1
                or None in dims
            ):
                raise ValueError(
                    "A list input of `SNRLayer` must hold num_experts = "
                    f"{self.num_experts} tensors of shape [B, d] with the "
                    f"same known d. Received: input_shape={input_shape}"
                )
            self._list_input = True
            expert_shape = (shapes[0][0], self.num_experts, shapes[0][-1])
        self.experts = self.build_experts(expert_shape, self.num_experts)
        tasks, experts = self.num_tasks, self.num_experts
        self.log_alpha = self.add_weight(
            name="log_alpha",
            shape=(tasks, experts),
            initializer=self.log_alpha_initializer,
        )
        self.connection_kernel = None
        if self.kind == "trans":
            # W[k, e], one [H, H] matrix per connection, drawn one by one.
            width = self.expert_units[-1]
            self.connection_kernel = self.add_weight(
                name="connection_kernel",
                shape=(tasks, experts, width, width),
                initializer=_connection_initializer(
                    self.kernel_initializer, width, tasks, experts
                ),
                regularizer=self.kernel_regularizer,
            )
        self.built = True

    # --- Coding variables ---

    def coding_variables(self, training: bool = False) -> Any:
        """The coding variables `z`, `[num_tasks, num_experts]` in [0, 1].

        Args:
            training: bool. Draws them from the hard-concrete distribution
                when true; else the deterministic inference values.

        Returns:
            A `[num_tasks, num_experts]` tensor.
        """
        log_alpha = ops.convert_to_tensor(self.log_alpha)
        if training:
            noise = keras.random.uniform(
                ops.shape(log_alpha),
                minval=_EPSILON,
                maxval=1.0 - _EPSILON,
                dtype=log_alpha.dtype,
                seed=self.seed_generator,
            )
            logistic = ops.subtract(ops.log(noise), ops.log1p(-noise))
            s = ops.sigmoid(ops.divide(ops.add(logistic, log_alpha), self.beta))
        else:
            s = ops.sigmoid(log_alpha)
        stretched = ops.add(ops.multiply(s, self.zeta - self.gamma), self.gamma)
        return ops.clip(stretched, 0.0, 1.0)

    def l0_penalty(self) -> Any:
        """The expected number of open connections (unweighted), a scalar:
        `sum sigmoid(log_alpha - beta * log(-gamma / zeta))`."""
        shift = self.beta * math.log(-self.gamma / self.zeta)
        return ops.sum(ops.sigmoid(ops.subtract(self.log_alpha, shift)))

    def named_gate_weights(self, inputs: Any) -> dict[str, Any]:
        """The gate inspection protocol (`kmtl.inspection`).

        Args:
            inputs: as in `call` (only its batch size is used).

        Returns:
            dict `"task_<k>"` -> `[B, num_experts]`: the inference coding
            variables of branch `k`'s connections, the same on every row.
        """
        first = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        z = self.coding_variables()
        rows = ops.ones((ops.shape(first)[0], 1), dtype=z.dtype)
        return {
            f"task_{k}": ops.multiply(rows, z[k]) for k in range(self.num_tasks)
        }

    def call(self, inputs: Any, training: bool | None = None) -> list[Any]:
        if self._list_input:
            if not isinstance(inputs, (list, tuple)):
                raise ValueError(
                    f"This `SNRLayer` was built for a list of "
                    f"{self.num_experts} tensors. Received: one tensor"
                )
            inputs = ops.stack(list(inputs), axis=1)  # [B, E, d]
        experts = self.experts(inputs)  # [B, E, H]
        z = self.coding_variables(bool(training))  # [K, E]
        if self.l0_weight > 0:
            self.add_loss(ops.multiply(self.l0_penalty(), self.l0_weight))
        if self.kind == "aver":
            mixed = ops.einsum("ke,beh->bkh", z, experts)
        else:
            # All connections as one [B, E * H] @ [E * H, K * H] matmul.
            width = self.expert_units[-1]
            kernel = ops.multiply(
                self.connection_kernel,
                ops.reshape(z, (self.num_tasks, self.num_experts, 1, 1)),
            )
            kernel = ops.reshape(
                ops.transpose(kernel, (1, 2, 0, 3)),
                (self.num_experts * width, self.num_tasks * width),
            )
            flat = ops.reshape(experts, (-1, self.num_experts * width))
            mixed = ops.reshape(
                ops.matmul(flat, kernel), (-1, self.num_tasks, width)
            )
        return list(ops.unstack(mixed, num=self.num_tasks, axis=1))

    def compute_output_shape(self, input_shape: Any) -> list[tuple[Any, ...]]:
        shapes = shape_list(input_shape)
        batch = shapes[0][0] if shapes is not None else tuple(input_shape)[0]
        return [(batch, self.expert_units[-1])] * self.num_tasks

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, SNRLayer))
        return config


def _float_beyond(value: Any, name: str, bound: float, below: bool) -> float:
    """Returns `value` as a finite float `< bound` (`below`) or `> bound`,
    or raises a `ValueError`."""
    ok = validation.is_real(value) and math.isfinite(value)
    if not ok or (value >= bound if below else value <= bound):
        rule = f"{'<' if below else '>'} {bound:g}"
        raise ValueError(
            f"`{name}` must be a finite float {rule}. Received: "
            f"{name}={value!r}"
        )
    return float(value)


def _connection_initializer(
    initializer: keras.initializers.Initializer,
    width: int,
    num_tasks: int,
    num_experts: int,
) -> Any:
    """Draws each connection's `[width, width]` matrix on its own, as a
    `[num_tasks, num_experts, width, width]` weight."""
    members = stacked_initializer(
        initializer, (width, width), num_tasks * num_experts
    )

    def initialize(shape: Any, dtype: Any = None) -> Any:
        return ops.reshape(members(shape, dtype=dtype), tuple(shape))

    return initialize


__all__ = ["KINDS", "SNRLayer"]
