"""ConsistencyBound: a KL penalty tying p(a) * p(b | a) to a predicted
p(a and b)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kmtl import validation
from kmtl.layers.keras_objects import constructor_config


@keras.saving.register_keras_serializable(package="kmtl")
class ConsistencyBound(keras.layers.Layer):
    """Adds a KL-divergence bound between related predicted probabilities.

    With `q = p_click * p_conversion` and `p = p_order` (labels related by
    order = click and conversion), the layer adds
    `weight * mean(KL(p || q) + KL(q || p))` to the model's losses, the
    Bernoulli `KL(p || q) = p log(p/q) + (1-p) log((1-p)/(1-q))`, and
    returns `p` unchanged. Each tower keeps its own loss; the bound pushes
    the three predictions to agree where one label is sparse.

    Args:
        weight: float >= 0. Weight of the bound in the loss. Defaults to
            0.1.
        epsilon: float > 0. Probabilities are clipped to
            `[epsilon, 1 - epsilon]`. Defaults to 1e-6.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list `[p_a, p_b_given_a, p_ab]`, each `[B, 1]`.

    Returns:
        `p_ab`, unchanged (the layer sits on the path to that output, so
        the functional model keeps it).

    Example:

    ```python
    order = kmtl.layers.ConsistencyBound(0.1)([ctr, cvr, order_tower])
    ```

    Reference:
        - Meituan's "Guess You Like" deep ranking model (the KL-divergence
          bound; `industrial-mtl-survey.txt`, Meituan).
    """

    def __init__(
        self, weight: float = 0.1, epsilon: float = 1e-6, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.weight = validation.non_negative_float(weight, "weight")
        self.epsilon = validation.positive_float(epsilon, "epsilon")

    def call(self, inputs: Sequence[Any]) -> Any:
        p_a, p_b, p_ab = inputs
        if self.weight > 0:
            lo, hi = self.epsilon, 1.0 - self.epsilon
            q = ops.clip(p_a * p_b, lo, hi)
            p = ops.clip(p_ab, lo, hi)
            kl = _bernoulli_kl(p, q) + _bernoulli_kl(q, p)
            self.add_loss(self.weight * ops.mean(kl))
        return p_ab

    def compute_output_shape(self, input_shape: Sequence[Any]) -> tuple:
        return tuple(input_shape[2])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, ConsistencyBound))
        return config


def _bernoulli_kl(p: Any, q: Any) -> Any:
    """KL(Bernoulli(p) || Bernoulli(q)), element-wise."""
    return p * ops.log(p / q) + (1.0 - p) * ops.log((1.0 - p) / (1.0 - q))
