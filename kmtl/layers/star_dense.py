"""STARDense: a Dense layer whose kernel is the shared kernel times a
per-scenario one (STAR's star-topology fully connected layer)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kmtl import validation
from kmtl.layers.keras_objects import constructor_config
from kmtl.layers.partitioned_normalization import _check_scenario_input_shape
from kmtl.layers.partitioned_normalization import _scenario_ids

# Up to this many scenarios the full form multiplies the batch by every
# scenario's kernel at once (one [d_in, S * d_out] matmul) and keeps each
# example's column block; above it, it gathers one kernel per example.
# Measured on a 2-core CPU (B=2048, d_in=319, d_out=256, Adam train step):
# all kernels 59k ex/s at S=4, 15k at 16, 4.0k at 32; gathered kernels
# 4.0k-5.6k ex/s at any S from 2 to 32.
_MAX_SCENARIOS_FOR_ALL_KERNELS = 32


@keras.saving.register_keras_serializable(package="kmtl")
class STARDense(keras.layers.Layer):
    """A fully connected layer with a star topology over scenarios.

    For an example of scenario `p`, with a shared kernel `W` `[d_in, d_out]`
    and bias `b`, and per-scenario `W_p`, `b_p`:

    `y = activation(x @ (W_p * W) + b_p + b)`   (`*` is element-wise)

    The full form (`scenario_rank=0`, the paper's) stores `W_p` as one
    `[S, d_in, d_out]` weight, initialized to ones so that every scenario
    starts as the shared layer. No kernel is shared by a batch spread over
    many scenarios, so its cost grows with `S`: with at most 32 scenarios
    the batch is multiplied by all `S` kernels at once (`B S d_in d_out`
    multiply-adds in one matmul, cheapest for few scenarios), above that
    each example gathers its own `W_p * W` (`B d_in d_out` memory per
    batch) — and the optimizer updates all `S d_in d_out` entries each
    step in both cases.

    With `scenario_rank=k > 0`, `W_p = 1 + sum_k u_{p,k} v_{p,k}^T` with
    `u` `[S, k, d_in]` and `v` `[S, k, d_out]`, computed with the shared
    kernel only:

    `x @ (W_p * W) = x @ W + sum_k ((x * u_{p,k}) @ W) * v_{p,k}`

    one `[B (k + 1), d_in] @ [d_in, d_out]` matmul whose cost does not
    depend on `S`. `u` starts at zeros (every scenario starts as the shared
    layer) and `v` random (`scenario_factor_initializer`), so the gradient
    reaches `u` at once and `v` once `u` moves, as in LoRA.

    Args:
        units: int. The output width `d_out`.
        num_scenarios: int. The number of scenarios `S`.
        scenario_rank: int. `0` for the full per-scenario kernels, `k > 0`
            for the rank-`k` form. Defaults to `0`.
        activation: str, callable or None. Applied to the output. Defaults
            to `None` (linear).
        kernel_initializer: str or `keras.initializers.Initializer`.
            Initializer of the shared kernel `W`. Defaults to
            `"glorot_uniform"`.
        scenario_kernel_initializer: str or `keras.initializers.Initializer`.
            Initializer of the full form's `W_p`. Defaults to `"ones"`.
        scenario_factor_initializer: str, `keras.initializers.Initializer`
            or None. Initializer of the rank form's `v`; `None` draws from
            a normal distribution of standard deviation 1 (so that `u`
            learns at the scale of the shared kernel). Defaults to `None`.
        kernel_regularizer: str, `keras.regularizers.Regularizer` or None.
            Regularizer of the shared kernel. Defaults to `None`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list `[x, scenario]`: `x` a float tensor `[B, d_in]`,
            `scenario` an int tensor `[B]` or `[B, 1]` of ids in `[0, S)`
            (checked on the TensorFlow backend).

    Returns:
        A tensor of shape `[B, units]`.

    Example:

    ```python
    layer = kmtl.layers.STARDense(units=4, num_scenarios=3)
    y = layer([np.random.rand(8, 16), np.array([0, 1, 2, 0, 1, 2, 0, 1])])

    x = keras.Input(shape=(16,))
    scenario = keras.Input(shape=(), dtype="int32")
    h = kmtl.layers.STARDense(
        units=32, num_scenarios=1000, scenario_rank=2, activation="relu"
    )([x, scenario])
    model = keras.Model([x, scenario], keras.layers.Dense(1)(h))
    ```

    Reference:
        - [Sheng et al., 2021](https://arxiv.org/abs/2101.11427)
          (One Model to Serve All: Star Topology Adaptive Recommender for
          Multi-Domain CTR Prediction, CIKM 2021), section 4.4.
    """

    def __init__(
        self,
        units: int,
        num_scenarios: int,
        scenario_rank: int = 0,
        activation: str | Any | None = None,
        kernel_initializer: str | keras.initializers.Initializer = (
            "glorot_uniform"
        ),
        scenario_kernel_initializer: str | keras.initializers.Initializer = (
            "ones"
        ),
        scenario_factor_initializer: (
            str | keras.initializers.Initializer | None
        ) = None,
        kernel_regularizer: str | keras.regularizers.Regularizer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.scenario_kernel_initializer = keras.initializers.get(
            scenario_kernel_initializer
        )
        self.scenario_factor_initializer = keras.initializers.get(
            scenario_factor_initializer
        )
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

        self.units = validation.positive_int(units, "units")
        self.num_scenarios = validation.positive_int(
            num_scenarios, "num_scenarios"
        )
        self.scenario_rank = validation.non_negative_int(
            scenario_rank, "scenario_rank"
        )

    def build(self, input_shape: Sequence[Any]) -> None:
        dim = _check_scenario_input_shape("STARDense", input_shape)
        num, rank = self.num_scenarios, self.scenario_rank
        self.kernel = self.add_weight(
            name="kernel",
            shape=(dim, self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.units,), initializer="zeros"
        )
        self.scenario_bias = self.add_weight(
            name="scenario_bias", shape=(num, self.units), initializer="zeros"
        )
        if rank == 0:
            self.scenario_kernel = self.add_weight(
                name="scenario_kernel",
                shape=(num, dim, self.units),
                initializer=self.scenario_kernel_initializer,
            )
        else:
            self.scenario_u = self.add_weight(
                name="scenario_u", shape=(num, rank, dim), initializer="zeros"
            )
            self.scenario_v = self.add_weight(
                name="scenario_v",
                shape=(num, rank, self.units),
                initializer=(
                    self.scenario_factor_initializer
                    or keras.initializers.RandomNormal(stddev=1.0)
                ),
            )
        self.built = True

    def call(self, inputs: Sequence[Any]) -> Any:
        x, scenario = inputs
        ids = _scenario_ids(self, scenario)
        if self.scenario_rank > 0:
            y = self._low_rank(x, ids)
        elif self.num_scenarios <= _MAX_SCENARIOS_FOR_ALL_KERNELS:
            y = self._all_kernels(x, ids)
        else:
            y = self._gathered_kernels(x, ids)
        bias = ops.add(self.bias, ops.take(self.scenario_bias, ids, axis=0))
        return self.activation(ops.add(y, bias))

    def _kernels(self) -> Any:
        """`W_p * W` for every scenario, `[S, d_in, d_out]`."""
        return ops.multiply(self.scenario_kernel, self.kernel)

    def _all_kernels(self, x: Any, ids: Any) -> Any:
        """Multiplies by every scenario's kernel, keeps each example's."""
        dim, num = self.kernel.shape[0], self.num_scenarios
        wide = ops.reshape(
            ops.transpose(self._kernels(), (1, 0, 2)), (dim, num * self.units)
        )
        outputs = ops.reshape(ops.matmul(x, wide), (-1, num, self.units))
        picked = ops.take_along_axis(outputs, ids[:, None, None], axis=1)
        return picked[:, 0, :]

    def _gathered_kernels(self, x: Any, ids: Any) -> Any:
        """Multiplies each example by its own gathered kernel."""
        kernels = ops.take(self._kernels(), ids, axis=0)  # [B, d_in, d_out]
        return ops.einsum("bi,bio->bo", x, kernels)

    def _low_rank(self, x: Any, ids: Any) -> Any:
        """`x @ W + sum_k ((x * u_k) @ W) * v_k`, one shared matmul."""
        dim, rank = self.kernel.shape[0], self.scenario_rank
        u = ops.take(self.scenario_u, ids, axis=0)  # [B, k, d_in]
        v = ops.take(self.scenario_v, ids, axis=0)  # [B, k, d_out]
        rows = ops.concatenate([x[:, None, :], x[:, None, :] * u], axis=1)
        outputs = ops.reshape(
            ops.matmul(ops.reshape(rows, (-1, dim)), self.kernel),
            (-1, rank + 1, self.units),
        )
        return outputs[:, 0, :] + ops.sum(outputs[:, 1:, :] * v, axis=1)

    def compute_output_shape(
        self, input_shape: Sequence[Any]
    ) -> tuple[int | None, ...]:
        return (tuple(input_shape[0])[0], self.units)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, STARDense))
        return config


__all__ = ["STARDense"]
