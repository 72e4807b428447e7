"""`FixedWeights`: the tasks' own loss weights, kept in a variable that a
schedule (`PLEWeightSchedule`) may change between epochs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kmtl.features.spec import TaskSpec
from kmtl.training.balancing.base import TaskBalancing
from kmtl.training.balancing.registry import register_balancing


@register_balancing("fixed")
@keras.saving.register_keras_serializable(package="kmtl")
class FixedWeights(TaskBalancing):
    """Fixed task weights: `L = sum_i w_i L_i`, `w_i = TaskSpec.weight`.

    The loss `compile` gives a model, with the weights held in a
    non-trainable variable `task_weight` `[T]` so that a callback can set
    them between epochs (`kmtl.training.PLEWeightSchedule`).

    Args:
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    ```python
    kmtl.training.balance(model, "fixed")
    model.fit(ds, epochs=4, callbacks=[
        kmtl.training.PLEWeightSchedule({"ctr": 0.9, "cvr": 1.1})])
    ```
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def create_state(self, model: Any, tasks: Sequence[TaskSpec]) -> None:
        self.initial_weights = tuple(float(t.weight) for t in tasks)
        self.task_weight = self.add_weight(
            name="task_weight",
            shape=(len(tasks),),
            initializer=keras.initializers.Constant(self.initial_weights),
            trainable=False,
        )

    def task_weights(self) -> Any:
        return ops.convert_to_tensor(self.task_weight)


__all__ = ["FixedWeights"]
