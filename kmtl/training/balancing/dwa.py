"""`DynamicWeightAverage`: task weights from the rates at which the tasks'
losses fell over the last two epochs (Liu, Johns and Davison, 2019)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from kmtl.features.spec import TaskSpec
from kmtl.training.balancing.base import TaskBalancing
from kmtl.training.balancing.registry import register_balancing
from kmtl.validation import PositiveFloat


def dwa_weights(
    last: np.ndarray, before_last: np.ndarray, temperature: float
) -> np.ndarray:
    """DWA's weights for the next epoch from the last two epochs' losses.

    `r_i = L_i(t-1) / L_i(t-2)`,
    `w_i(t) = T exp(r_i / temperature) / sum_j exp(r_j / temperature)`.

    Args:
        last: `[T]` mean training losses of epoch t-1.
        before_last: `[T]` those of epoch t-2.
        temperature: float. Softness of the weights (large: equal).

    Returns:
        `[T]` weights that sum to T.

    Example: `dwa_weights([0.5, 0.1], [1.0, 0.1], 2.0)` up-weights the
    second task, whose loss stopped falling: `[0.88, 1.12]`.
    """
    rate = np.asarray(last, "float64") / np.asarray(before_last, "float64")
    logits = rate / temperature
    exp = np.exp(logits - logits.max())
    return len(rate) * exp / exp.sum()


@register_balancing("dwa")
@keras.saving.register_keras_serializable(package="kmtl")
class DynamicWeightAverage(TaskBalancing):
    """Dynamic Weight Average: a task whose loss falls more slowly gets a
    larger weight in the next epoch.

    `L = sum_i w_i(t) L_i`, `w_i(t) = T softmax_i(r(t-1) / temperature)`,
    `r_i(t-1) = L_i(t-1) / L_i(t-2)`

    where `L_i(t)` is the mean training loss of task i over epoch t (the
    `<task>_loss` of the epoch's logs) and `w_i = 1` in the first two
    epochs. The weights (`task_weight`), the last two epochs' losses
    (`epoch_losses` `[2, T]`) and the count of epochs seen are variables,
    so a model saved between epochs resumes the schedule.

    Args:
        temperature: float > 0. `T_temp` of the paper. Defaults to 2.0 (the
            paper's).
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    ```python
    kmtl.training.balance(model, "dwa", temperature=2.0)
    model.fit(ds, epochs=5).history["weight_cvr"]  # 1, 1, then DWA's
    ```

    Reference:
        Liu, Johns, Davison. End-to-End Multi-Task Learning with Attention.
        CVPR 2019 (section 3.3).
    """

    def __init__(self, *, temperature: PositiveFloat = 2.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.temperature = temperature
        self.check_hparams()

    def create_state(self, model: Any, tasks: Sequence[TaskSpec]) -> None:
        count = len(tasks)
        self.task_weight = self.add_weight(
            name="task_weight",
            shape=(count,),
            initializer="ones",
            trainable=False,
        )
        self.epoch_losses = self.add_weight(
            name="epoch_losses",
            shape=(2, count),
            initializer="zeros",
            trainable=False,
        )
        self.epochs_seen = self.add_weight(
            name="epochs_seen",
            shape=(),
            initializer="zeros",
            trainable=False,
        )

    def task_weights(self) -> Any:
        return ops.convert_to_tensor(self.task_weight)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        missing = [n for n in self.task_names if f"{n}_loss" not in logs]
        if missing:
            raise ValueError(
                f"Task balancing 'dwa': the epoch's logs have no loss of "
                f"task(s) {missing}. Received logs: {sorted(logs)}"
            )
        losses = np.array([float(logs[f"{n}_loss"]) for n in self.task_names])
        before_last = self.epoch_losses.numpy()[1]
        seen = int(self.epochs_seen.numpy()) + 1
        self.epoch_losses.assign(np.stack([before_last, losses]))
        self.epochs_seen.assign(float(seen))
        if seen >= 2:
            self.task_weight.assign(
                dwa_weights(losses, before_last, self.temperature)
            )


__all__ = ["DynamicWeightAverage", "dwa_weights"]
