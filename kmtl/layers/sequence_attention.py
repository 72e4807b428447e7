"""SequenceAttention: query-aware attention pooling of a masked sequence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kmtl import validation
from kmtl.layers.keras_objects import constructor_config


@keras.saving.register_keras_serializable(package="kmtl")
class SequenceAttention(keras.layers.Layer):
    """Pools the steps of a sequence by their relevance to a query.

    With the query projected to the steps' width, `p = W_q q`, each step
    is scored by `s_l = v^T tanh(W_h h_l + W_p p + W_x (h_l * p) + b)` and
    pooled, `a = softmax(s)` over the real steps (padding gets no
    weight), output `sum_l a_l h_l`. The query is what the pooling is
    about (the target item, the search query, the user); the product term
    `h_l * p` lets a score test whether a step matches the query (an
    additive score alone cannot express a match), as DIN's activation
    unit does. A sequence with no real step pools to zeros.

    Args:
        units: int. Width of the attention's hidden projection. Defaults
            to 32.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list `[steps, mask, query]`: `[B, L, d]` step vectors,
            `[B, L]` 1/0 mask of the real steps, `[B, q]` query.

    Returns:
        `[B, d]` attention-pooled steps. `attention_weights(inputs)` gives
        the `[B, L]` weights.

    Example:

    ```python
    pooled = kmtl.layers.SequenceAttention(16)([steps, mask, target])
    ```

    Reference:
        - [Ni et al., KDD 2018](https://arxiv.org/abs/1805.10727) (DUPN's
          attention over the LSTM states, keyed by the query and user).
        - [Zhou et al., KDD 2018](https://arxiv.org/abs/1706.06978) (DIN's
          activation unit: the product of step and query).
    """

    def __init__(self, units: int = 32, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = validation.positive_int(units, "units")
        # The mask arrives as an input; a Keras mask on the steps (from an
        # LSTM) is consumed here, not passed on to the pooled output.
        self.supports_masking = True

    def build(self, input_shape: Sequence[Any]) -> None:
        steps, _, query = (tuple(s) for s in input_shape)
        width = steps[-1]
        self.query_projection = self.add_weight(
            name="query_projection", shape=(query[-1], width)
        )
        self.step_kernel = self.add_weight(
            name="step_kernel", shape=(width, self.units)
        )
        self.query_kernel = self.add_weight(
            name="query_kernel", shape=(width, self.units)
        )
        self.match_kernel = self.add_weight(
            name="match_kernel", shape=(width, self.units)
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.units,), initializer="zeros"
        )
        self.score = self.add_weight(name="score", shape=(self.units, 1))
        self.built = True

    def attention_weights(self, inputs: Sequence[Any]) -> Any:
        """The `[B, L]` attention weights of `inputs` (zero at padding)."""
        steps, mask, query = inputs
        projected = ops.expand_dims(ops.matmul(query, self.query_projection), 1)
        hidden = ops.tanh(
            ops.matmul(steps, self.step_kernel)
            + ops.matmul(projected, self.query_kernel)
            + ops.matmul(steps * projected, self.match_kernel)
            + self.bias
        )
        scores = ops.squeeze(ops.matmul(hidden, self.score), -1)
        mask = ops.cast(mask, scores.dtype)
        scores = ops.where(mask > 0, scores, ops.full_like(scores, -1e9))
        weights = ops.softmax(scores, axis=-1) * mask
        return weights / ops.maximum(ops.sum(weights, -1, keepdims=True), 1e-9)

    def call(self, inputs: Sequence[Any]) -> Any:
        weights = self.attention_weights(inputs)
        return ops.sum(ops.expand_dims(weights, -1) * inputs[0], axis=1)

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def compute_output_shape(self, input_shape: Sequence[Any]) -> tuple:
        steps = tuple(input_shape[0])
        return (steps[0], steps[-1])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, SequenceAttention))
        return config
