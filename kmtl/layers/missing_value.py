"""MissingValueLayer: a learned fill for each missing numerical."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kmtl import validation
from kmtl.layers.keras_objects import constructor_config


@keras.saving.register_keras_serializable(package="kmtl")
class MissingValueLayer(keras.layers.Layer):
    """Replaces each missing numerical by a value learned for it.

    `x'_j = m_j x_j + (1 - m_j) w_j`, with `m_j = 1` where value `j` is
    present and `w` trained with the model: the fill a missing value gets
    is the one that serves the tasks best, not the feature's mean. When
    values are missing not at random (a high income is left out more often
    than a low one), the mean is the wrong guess for a missing value and
    the learned fill moves towards what missing means.

    `w` is stored as `w / fill_scale`: Adam moves a weight by about its
    learning rate per step whatever the gradient, and a fill, one scalar
    that only the missing rows train, may have to travel a few standard
    deviations (1e-3 per step would take thousands of steps).

    Args:
        fill_initializer: str or initializer of `w / fill_scale`. Defaults
            to `"zeros"` (the mean of a normalised feature, the encoder's
            default fill).
        fill_scale: float > 0. Defaults to 10.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list `[x, mask]`, both `[B, d]`: the numericals (missing
            entries already filled with anything finite, as
            `FeatureEncoder`'s `"dense"`) and 1/0 presence
            (`"dense_mask"`).

    Returns:
        `[B, d]` numericals with missing entries replaced by `w`.

    Example:

    ```python
    layer = kmtl.layers.MissingValueLayer()
    x = layer([np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]])])
    # [[1.0, w_1]]
    ```

    Reference:
        - Meituan's "Guess You Like" deep ranking model (the missing value
          layer; `industrial-mtl-survey.txt`, Meituan).
    """

    def __init__(
        self,
        fill_initializer: Any = "zeros",
        fill_scale: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.fill_initializer = keras.initializers.get(fill_initializer)
        self.fill_scale = validation.positive_float(fill_scale, "fill_scale")

    def build(self, input_shape: Sequence[Any]) -> None:
        width = tuple(input_shape[0])[-1]
        if width is None:
            raise ValueError(
                "MissingValueLayer: the last dimension of `x` must be known. "
                f"Received: input_shape={input_shape}"
            )
        self.fill = self.add_weight(
            name="fill", shape=(width,), initializer=self.fill_initializer
        )
        self.built = True

    def call(self, inputs: Sequence[Any]) -> Any:
        x, mask = inputs
        mask = ops.cast(mask, x.dtype)
        return x * mask + (1.0 - mask) * (self.fill * self.fill_scale)

    def compute_output_shape(self, input_shape: Sequence[Any]) -> tuple:
        return tuple(input_shape[0])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, MissingValueLayer))
        return config
