"""The cross network of DCN (v1 vector, v2 matrix and low-rank)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import keras
import keras_rs
from keras import ops

from kmtl import validation
from kmtl.layers.keras_objects import clone_initializer
from kmtl.layers.keras_objects import constructor_config

CROSS_KINDS = ("vector", "matrix", "low_rank")


@keras.saving.register_keras_serializable(package="kmtl")
class CrossNet(keras.layers.Layer):
    """A stack of `num_layers` DCN cross layers: explicit feature crosses.

    With `x_0` the input and `*` the element-wise product, layer `l` is:

    - `kind="vector"` (DCN v1): `x_{l+1} = x_0 * (x_l @ w_l) + b_l + x_l`,
      `w_l` a `[d, 1]` vector, so each layer adds only `2 d` weights;
    - `kind="matrix"` (DCN v2): `x_{l+1} = x_0 * (W_l x_l + b_l +
      diag_scale * x_l) + x_l`, `W_l` a full `[d, d]` matrix;
    - `kind="low_rank"` (DCN v2): the same with `W_l = V_l U_l`, `U_l` of
      shape `[projection_dim, d]`.

    `"matrix"` and `"low_rank"` stack `keras_rs.layers.FeatureCross`
    layers. `"vector"` is implemented here because `FeatureCross` only has
    a full or a low-rank (`V U`, both factors trained) kernel: DCN v1's
    `x_l @ w`, broadcast to every feature, is the rank-1 kernel `1 w^T`
    whose left factor is fixed to ones, so it has `d` kernel weights per
    layer where a `FeatureCross(projection_dim=1)` has `2 d` and computes
    a different function.

    Args:
        num_layers: int. The number of cross layers. Defaults to `3`.
        kind: str. `"vector"`, `"matrix"` or `"low_rank"`. Defaults to
            `"matrix"`.
        projection_dim: int or None. The rank of `W` for `"low_rank"`
            (required there, and must be `None` otherwise). Defaults to
            `None`.
        diag_scale: float. Non-negative value added to the diagonal of `W`
            (DCN v2 kinds only; must be `0.0` for `"vector"`). Defaults to
            `0.0`.
        use_bias: bool. Whether the cross layers have a bias. Defaults to
            `True`.
        kernel_initializer: str or `keras.initializers.Initializer`.
            Initializer of the kernels (cloned per layer). Defaults to
            `"glorot_uniform"`.
        bias_initializer: str or `keras.initializers.Initializer`.
            Initializer of the biases. Defaults to `"zeros"`.
        kernel_regularizer: str, `keras.regularizers.Regularizer` or None.
            Regularizer of the kernels. Defaults to `None`.
        bias_regularizer: str, `keras.regularizers.Regularizer` or None.
            Regularizer of the biases. Defaults to `None`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor of shape `[B, d]`.

    Returns:
        A tensor of shape `[B, d]`.

    Example:

    ```python
    layer = kmtl.layers.CrossNet(num_layers=2, kind="vector")
    y = layer(np.random.rand(8, 10))  # [8, 10]

    inputs = keras.Input(shape=(10,))
    crossed = kmtl.layers.CrossNet(kind="low_rank", projection_dim=4)(inputs)
    deep = kmtl.layers.MLP(units=(32, 16))(inputs)
    merged = keras.layers.Concatenate()([crossed, deep])
    outputs = keras.layers.Dense(1, activation="sigmoid")(merged)
    model = keras.Model(inputs, outputs)
    ```

    Reference:
        - [Wang et al., 2017](https://arxiv.org/abs/1708.05123)
          (Deep & Cross Network for Ad Click Predictions, DCN v1).
        - [Wang et al., 2021](https://arxiv.org/abs/2008.13535)
          (DCN V2: Improved Deep & Cross Network).
    """

    def __init__(
        self,
        num_layers: int = 3,
        kind: str = "matrix",
        projection_dim: int | None = None,
        diag_scale: float = 0.0,
        use_bias: bool = True,
        kernel_initializer: str | keras.initializers.Initializer = (
            "glorot_uniform"
        ),
        bias_initializer: str | keras.initializers.Initializer = "zeros",
        kernel_regularizer: str | keras.regularizers.Regularizer | None = None,
        bias_regularizer: str | keras.regularizers.Regularizer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kind = kind
        self.projection_dim = projection_dim
        self.diag_scale = diag_scale
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

        self.num_layers = validation.positive_int(num_layers, "num_layers")
        if kind not in CROSS_KINDS:
            raise ValueError(
                f"`kind` must be one of {list(CROSS_KINDS)}. "
                f"Received: kind={kind!r}"
            )
        if kind == "low_rank":
            validation.positive_int(projection_dim, "projection_dim")
        elif projection_dim is not None:
            raise ValueError(
                "`projection_dim` is only used with kind='low_rank' and must "
                f"be None for kind={kind!r}. "
                f"Received: projection_dim={projection_dim!r}"
            )
        if (
            not isinstance(diag_scale, numbers.Real)
            or isinstance(diag_scale, bool)
            or diag_scale < 0
        ):
            raise ValueError(
                "`diag_scale` must be a non-negative float. "
                f"Received: diag_scale={diag_scale!r}"
            )
        if kind == "vector" and diag_scale != 0:
            raise ValueError(
                "`diag_scale` is a DCN v2 option and must be 0.0 for "
                f"kind='vector'. Received: diag_scale={diag_scale!r}"
            )
        self.use_bias = validation.boolean(use_bias, "use_bias")

    def build(self, input_shape: Sequence[int | None]) -> None:
        shape = tuple(input_shape)
        if len(shape) < 2 or shape[-1] is None:
            raise ValueError(
                "`CrossNet` expects an input of shape [B, d] with a known d. "
                f"Received: input_shape={shape}"
            )
        dim = int(shape[-1])
        if self.kind == "vector":
            self._kernels = []
            self._biases = []
            for i in range(self.num_layers):
                self._kernels.append(
                    self.add_weight(
                        name=f"kernel_{i}",
                        shape=(dim, 1),
                        initializer=clone_initializer(self.kernel_initializer),
                        regularizer=self.kernel_regularizer,
                    )
                )
                if self.use_bias:
                    self._biases.append(
                        self.add_weight(
                            name=f"bias_{i}",
                            shape=(dim,),
                            initializer=clone_initializer(
                                self.bias_initializer
                            ),
                            regularizer=self.bias_regularizer,
                        )
                    )
        else:
            self._cross_layers = []
            for i in range(self.num_layers):
                cross = keras_rs.layers.FeatureCross(
                    projection_dim=self.projection_dim,
                    diag_scale=self.diag_scale,
                    use_bias=self.use_bias,
                    kernel_initializer=clone_initializer(
                        self.kernel_initializer
                    ),
                    bias_initializer=clone_initializer(self.bias_initializer),
                    kernel_regularizer=self.kernel_regularizer,
                    bias_regularizer=self.bias_regularizer,
                    dtype=self.dtype_policy,
                    name=f"cross_{i}",
                )
                _build_feature_cross(cross, shape)
                self._cross_layers.append(cross)
        self.built = True

    def call(self, inputs: Any) -> Any:
        x0 = inputs
        x = inputs
        if self.kind == "vector":
            for i, kernel in enumerate(self._kernels):
                cross = ops.multiply(x0, ops.matmul(x, kernel))  # x0 (x . w)
                if self.use_bias:
                    cross = ops.add(cross, self._biases[i])
                x = ops.add(cross, x)
            return x
        for cross in self._cross_layers:
            x = cross(x0, x)
        return x

    def compute_output_shape(
        self, input_shape: Sequence[int | None]
    ) -> tuple[int | None, ...]:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, CrossNet))
        return config


def _build_feature_cross(
    cross: keras.layers.Layer, shape: tuple[int | None, ...]
) -> None:
    """Builds a `FeatureCross` and its Dense sub-layers (which it leaves
    to be built lazily on the first call) so that the weights exist after
    `CrossNet.build`."""
    cross.build(shape)
    down = getattr(cross, "down_proj_dense", None)
    if down is not None and not down.built:
        down.build(shape)
        shape = shape[:-1] + (down.units,)
    dense = getattr(cross, "dense", None)
    if dense is not None and not dense.built:
        dense.build(shape)


__all__ = ["CROSS_KINDS", "CrossNet"]
