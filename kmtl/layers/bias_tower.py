"""BiasTower: a shallow tower on bias features whose logit is added in
training and left out at serving."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kmtl import validation
from kmtl.layers.keras_objects import constructor_config
from kmtl.layers.mlp import MLP


@keras.saving.register_keras_serializable(package="kmtl")
class BiasTower(keras.layers.Layer):
    """The shallow tower of a position-bias (BiasNet) model.

    `b(x_bias) = present * keep * MLP(x_bias) W + c`, one logit per output
    column, added to the main logits of every task:
    `logit_t = main_t(x) + b_t(x_bias)`. The tower sees only the bias
    features (display position, device, ...), so the main network is left
    to explain what the bias does not. `present` is 1 where every bias
    feature is present and 0 where one is missing: the serving signatures
    send the bias features missing, so the served logit is the main one
    alone, the unbiased relevance. `keep` drops the bias logit of a
    `dropout` share of the rows in training (the YouTube paper's 10 %
    dropout of the position feature), so the main network also learns to
    predict without it.

    Args:
        num_logits: int. Output width (the sum of the tasks' logit widths).
        units: sequence of int. Hidden units of the tower; may be empty (a
            linear bias, as a per-position offset). Defaults to `(32,)`.
        dropout: float in `[0, 1)`. Share of training rows whose bias logit
            is dropped. Defaults to 0.1.
        activation: str. Hidden activation. Defaults to `"relu"`.
        seed: int or None. Seed of the row dropout. Defaults to `None`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list `[x_bias, present]`: `[B, d]` encoded bias features and
            `[B, 1]` presence (`FeatureEncoder`'s `"bias_present"`).
        training: bool or None. Whether the row dropout runs.

    Returns:
        `[B, num_logits]` bias logits (0 where a bias feature is missing).

    Example:

    ```python
    tower = kmtl.layers.BiasTower(2, units=(16,))
    logits = tower([np.ones((4, 3)), np.array([[1.0], [1.0], [0.0], [1.0]])])
    # row 2 has no bias feature: its logits are 0
    ```

    Reference:
        - [Zhao et al., RecSys 2019](https://dl.acm.org/doi/10.1145/3298689.3346997)
          (Recommending What Video to Watch Next: the shallow tower).
    """

    def __init__(
        self,
        num_logits: int,
        units: Sequence[int] = (32,),
        dropout: float = 0.1,
        activation: str = "relu",
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_logits = validation.positive_int(num_logits, "num_logits")
        self.units = validation.units(units, "units", allow_empty=True)
        self.dropout = validation.rate(dropout, "dropout")
        self.activation = keras.activations.get(
            validation.activation(activation, "activation")
        )
        self.seed = seed
        self._seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape: Any) -> None:
        shape = tuple(input_shape[0])
        self._hidden = None
        if self.units:
            self._hidden = MLP(
                self.units,
                activation=self.activation,
                dtype=self.dtype_policy,
                name="hidden",
            )
            self._hidden.build(shape)
            shape = shape[:-1] + (self.units[-1],)
        self._logits = keras.layers.Dense(
            self.num_logits, dtype=self.dtype_policy, name="logits"
        )
        self._logits.build(shape)
        self.built = True

    def call(self, inputs: Sequence[Any], training: bool | None = None) -> Any:
        x, present = inputs
        if self._hidden is not None:
            x = self._hidden(x, training=training)
        logits = self._logits(x) * ops.cast(present, self.compute_dtype)
        if training and self.dropout > 0:
            keep = keras.random.uniform(
                ops.shape(present), seed=self._seed_generator
            )
            logits = logits * ops.cast(keep >= self.dropout, logits.dtype)
        return logits

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (*tuple(input_shape[0])[:-1], self.num_logits)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, BiasTower))
        return config
