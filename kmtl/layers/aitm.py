"""AITM's two parts: the Adaptive Information Transfer (AIT) module and the
behavioural expectation calibrator."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kmtl import validation
from kmtl.layers.keras_objects import clone_initializer
from kmtl.layers.keras_objects import constructor_config


def _check_pair(owner: str, input_shape: Any) -> tuple[tuple, tuple]:
    """Validates `[shape, shape]` of two rank-2 tensors of one known width."""
    shapes = list(input_shape) if isinstance(input_shape, (list, tuple)) else []
    if len(shapes) != 2 or not all(_is_shape(s) for s in shapes):
        raise ValueError(
            f"`{owner}` takes a list of two tensors of shape [B, d]. "
            f"Received: input_shape={input_shape}"
        )
    first, second = (tuple(s) for s in shapes)
    if len(first) != 2 or len(second) != 2:
        raise ValueError(
            f"`{owner}` takes two rank-2 tensors [B, d]. "
            f"Received: input_shape={input_shape}"
        )
    if first[-1] is None or first[-1] != second[-1]:
        raise ValueError(
            f"`{owner}`: both inputs must have the same known last "
            f"dimension d. Received: input_shape={input_shape}"
        )
    return first, second


def _is_shape(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        v is None or isinstance(v, numbers.Integral) for v in value
    )


@keras.saving.register_keras_serializable(package="kmtl")
class AdaptiveInformationTransfer(keras.layers.Layer):
    """AITM's AIT module: attention over the transferred and own vectors.

    For task `t > 1` with `p = p_{t-1}` (the information transferred from
    the previous task, `[B, d]`) and `q = q_t` (this task's tower output,
    `[B, d]`), each of the two vectors `u` scores itself:

    `w_u = softmax_u(<h2(u), h3(u)> / sqrt(k))`, `u in {p, q}`

    `z_t = w_p * h1(p) + w_q * h1(q)`

    where `h1`, `h2`, `h3` are bias-free linear maps `R^d -> R^k` shared by
    the two vectors (value, query and key). The softmax runs over the two
    vectors, so `w_p + w_q = 1` for every example: the layer learns per
    example how much of the previous step to let through.

    Args:
        units: int or None. The projection width `k` (and the output
            width). `None` uses the input width `d`. Defaults to `None`.
        kernel_initializer: str or `keras.initializers.Initializer`.
            Initializer of the three projection kernels (cloned for each).
            Defaults to `"glorot_uniform"`.
        kernel_regularizer: str, `keras.regularizers.Regularizer` or None.
            Regularizer of the projection kernels. Defaults to `None`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list of two tensors `[transferred, own]`, each `[B, d]`:
            `p_{t-1}` then `q_t`.

    Returns:
        A tensor `[B, k]`, `z_t`.

    Example:

    ```python
    layer = kmtl.layers.AdaptiveInformationTransfer()
    p, q = np.random.rand(8, 16), np.random.rand(8, 16)
    z = layer([p, q])  # [8, 16]
    weights = layer.attention_weights([p, q])  # [8, 2], rows sum to 1

    transferred = keras.Input(shape=(16,))
    own = keras.Input(shape=(16,))
    z = kmtl.layers.AdaptiveInformationTransfer(units=8)([transferred, own])
    outputs = keras.layers.Dense(1, activation="sigmoid")(z)
    model = keras.Model([transferred, own], outputs)
    ```

    Reference:
        - [Xi et al., 2021](https://doi.org/10.1145/3447548.3467071)
          (Modeling the Sequential Dependence among Audience Multi-step
          Conversions with Multi-task Learning in Targeted Display
          Advertising, KDD 2021), section 3.2.
    """

    def __init__(
        self,
        units: int | None = None,
        kernel_initializer: str | keras.initializers.Initializer = (
            "glorot_uniform"
        ),
        kernel_regularizer: str | keras.regularizers.Regularizer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

        if units is not None:
            validation.positive_int(units, "units")

    def build(self, input_shape: Sequence[Any]) -> None:
        first, _ = _check_pair(type(self).__name__, input_shape)
        dim = first[-1]
        width = self.units or dim
        self.value_kernel, self.query_kernel, self.key_kernel = (
            self.add_weight(
                name=name,
                shape=(dim, width),
                initializer=clone_initializer(self.kernel_initializer),
                regularizer=self.kernel_regularizer,
            )
            for name in ("value_kernel", "query_kernel", "key_kernel")
        )
        self._scale = 1.0 / math.sqrt(width)
        self.built = True

    def _check_call_inputs(self, inputs: Any) -> None:
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            if isinstance(inputs, (list, tuple)):
                received = f"a list of {len(inputs)}"
            else:
                shape = tuple(getattr(inputs, "shape", ()))
                received = f"one tensor of shape {shape}"
            raise ValueError(
                f"`{type(self).__name__}` takes a list of two tensors "
                f"[transferred, own], each [B, d]. Received: {received}"
            )

    def _stack_and_weights(self, inputs: Any) -> tuple[Any, Any]:
        self._check_call_inputs(inputs)
        if not self.built:
            self.build([tuple(x.shape) for x in inputs])
        u = ops.stack([ops.convert_to_tensor(x) for x in inputs], axis=1)
        u = ops.cast(u, self.compute_dtype)  # [B, 2, d]
        query = ops.matmul(u, self.query_kernel)  # [B, 2, k]
        key = ops.matmul(u, self.key_kernel)
        scores = ops.sum(query * key, axis=-1) * self._scale  # [B, 2]
        return u, ops.softmax(scores, axis=-1)

    def attention_weights(self, inputs: Any) -> Any:
        """The attention weights `[B, 2]`: `w_p` (transferred), `w_q` (own)."""
        _, weights = self._stack_and_weights(inputs)
        return weights

    def call(self, inputs: Any) -> Any:
        u, weights = self._stack_and_weights(inputs)
        value = ops.matmul(u, self.value_kernel)  # [B, 2, k]
        return ops.sum(ops.expand_dims(weights, -1) * value, axis=1)

    def compute_output_shape(
        self, input_shape: Sequence[Any]
    ) -> tuple[int | None, ...]:
        first, _ = _check_pair(type(self).__name__, input_shape)
        return (first[0], self.units or first[-1])

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            **constructor_config(self, AdaptiveInformationTransfer),
        }


@keras.saving.register_keras_serializable(package="kmtl")
class BehavioralExpectationCalibrator(keras.layers.Layer):
    """AITM's calibrator: penalises a later funnel step above the earlier.

    Given the probabilities `[p_1, ..., p_T]` of the steps of a conversion
    funnel (each `[B, 1]`, `p_t` = P(reach step t)), adds through
    `add_loss`

    `L_lc = weight * sum_{t=2..T} mean_B(max(p_t - p_{t-1}, 0))`

    and returns its inputs unchanged, so that it sits on the output path
    of a functional model (and its loss is in `model.losses`). The
    constraint `p_t <= p_{t-1}` only holds for a funnel (a purchase needs
    a click); for unrelated tasks use `weight=0` (or leave the layer out).

    Args:
        weight: float. The loss weight `alpha` (0.6 in the paper), >= 0.
            With 0 no loss is added. Defaults to `0.6`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list of `T >= 2` tensors of the same shape `[B, 1]`, the
            step probabilities in funnel order.

    Returns:
        The same list of tensors.

    Example:

    ```python
    calibrator = kmtl.layers.BehavioralExpectationCalibrator(weight=0.6)
    ctr, ctcvr = calibrator([np.full((4, 1), 0.2), np.full((4, 1), 0.5)])
    calibrator.losses  # [0.6 * 0.3]

    click = keras.Input(shape=(1,))
    purchase = keras.Input(shape=(1,))
    outputs = calibrator([click, purchase])
    model = keras.Model([click, purchase], outputs)
    ```

    Reference:
        - [Xi et al., 2021](https://doi.org/10.1145/3447548.3467071)
          (KDD 2021), section 3.3, equation 7.
    """

    def __init__(self, weight: float = 0.6, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.weight = weight

        if (
            not isinstance(weight, numbers.Real)
            or isinstance(weight, bool)
            or not math.isfinite(weight)
            or weight < 0
        ):
            raise ValueError(
                "`weight` must be a finite number >= 0. "
                f"Received: weight={weight!r}"
            )

    def build(self, input_shape: Sequence[Any]) -> None:
        shapes = (
            list(input_shape) if isinstance(input_shape, (list, tuple)) else []
        )
        if len(shapes) < 2 or not all(_is_shape(s) for s in shapes):
            raise ValueError(
                "`BehavioralExpectationCalibrator` takes a list of at least "
                "two tensors (the step probabilities in funnel order). "
                f"Received: input_shape={input_shape}"
            )
        if len({tuple(s)[1:] for s in shapes}) != 1:
            raise ValueError(
                "`BehavioralExpectationCalibrator`: every step probability "
                "must have the same shape. "
                f"Received: input_shape={input_shape}"
            )
        self.built = True

    def calibration_loss(self, inputs: Sequence[Any]) -> Any:
        """The weighted loss `L_lc` of `inputs` (a scalar)."""
        steps = [ops.cast(p, self.compute_dtype) for p in inputs]
        total = ops.zeros((), self.compute_dtype)
        for before, after in zip(steps[:-1], steps[1:], strict=True):
            total = total + ops.mean(ops.relu(after - before))
        return ops.multiply(total, self.weight)

    def call(self, inputs: Sequence[Any]) -> list[Any]:
        if self.weight > 0:
            self.add_loss(self.calibration_loss(inputs))
        return [ops.convert_to_tensor(p) for p in inputs]

    def compute_output_shape(self, input_shape: Sequence[Any]) -> list[Any]:
        return [tuple(s) for s in input_shape]

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            **constructor_config(self, BehavioralExpectationCalibrator),
        }


__all__ = ["AdaptiveInformationTransfer", "BehavioralExpectationCalibrator"]
