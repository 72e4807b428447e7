"""LHUC: per-scenario scaling of hidden units."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kmtl import validation
from kmtl.layers.keras_objects import constructor_config
from kmtl.layers.partitioned_normalization import _check_scenario_input_shape
from kmtl.layers.partitioned_normalization import _scenario_ids


@keras.saving.register_keras_serializable(package="kmtl")
class LHUC(keras.layers.Layer):
    """Learning Hidden Unit Contributions, indexed by scenario.

    For an example of scenario `p`:

    `y = x * 2 sigmoid(a_p)`

    where `a_p` is row `p` of one `[S, d]` weight, initialized to zeros so
    that every scale starts at 1; each scale lies in `(0, 2)`. The scales
    are a gather, so the cost does not depend on `S`. To scale by a context
    tensor (scenario embedding, user priors) rather than by an index, use
    `GateNU`, whose output lies in `(0, gamma)`.

    Args:
        num_scenarios: int. The number of scenarios `S`.
        scale_initializer: str or `keras.initializers.Initializer`.
            Initializer of the `[S, d]` amplitudes `a`. Defaults to
            `"zeros"`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list `[x, scenario]`: `x` a float tensor `[B, d]`,
            `scenario` an int tensor `[B]` or `[B, 1]` of ids in `[0, S)`
            (checked on the TensorFlow backend).

    Returns:
        A tensor of shape `[B, d]`.

    Example:

    ```python
    layer = kmtl.layers.LHUC(num_scenarios=3)
    y = layer([np.random.rand(8, 16), np.array([0, 1, 2, 0, 1, 2, 0, 1])])

    x = keras.Input(shape=(16,))
    scenario = keras.Input(shape=(), dtype="int32")
    h = keras.layers.Dense(32, activation="relu")(x)
    h = kmtl.layers.LHUC(num_scenarios=3)([h, scenario])
    model = keras.Model([x, scenario], keras.layers.Dense(1)(h))
    ```

    Reference:
        - [Swietojanski and Renals, 2014](https://arxiv.org/abs/1601.02828)
          (Learning Hidden Unit Contributions for Unsupervised Speaker
          Adaptation of Neural Network Acoustic Models, SLT 2014).
    """

    def __init__(
        self,
        num_scenarios: int,
        scale_initializer: str | keras.initializers.Initializer = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.scale_initializer = keras.initializers.get(scale_initializer)

        self.num_scenarios = validation.positive_int(
            num_scenarios, "num_scenarios"
        )

    def build(self, input_shape: Sequence[Any]) -> None:
        dim = _check_scenario_input_shape("LHUC", input_shape)
        self.scale = self.add_weight(
            name="scale",
            shape=(self.num_scenarios, dim),
            initializer=self.scale_initializer,
        )
        self.built = True

    def call(self, inputs: Sequence[Any]) -> Any:
        x, scenario = inputs
        ids = _scenario_ids(self, scenario)
        amplitude = ops.take(self.scale, ids, axis=0)
        return ops.multiply(x, ops.multiply(ops.sigmoid(amplitude), 2.0))

    def compute_output_shape(
        self, input_shape: Sequence[Any]
    ) -> tuple[int | None, ...]:
        return tuple(input_shape[0])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, LHUC))
        return config


__all__ = ["LHUC"]
