"""`TaskWeightLog`: the balanced model's task weights in each epoch's logs,
and the strategy's per-epoch update (DWA)."""

from __future__ import annotations

from typing import Any

import keras


class TaskWeightLog(keras.callbacks.Callback):
    """Adds `weight_<task>` (the weight the epoch trained with) to the logs
    at the end of each epoch, then lets the strategy update from the
    epoch's logs (`TaskBalancing.on_epoch_end`).

    A balanced `TaskModel` adds it to every `fit` itself; it runs before
    `History`, so `history.history["weight_ctr"]` has one value per epoch.
    """

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        strategy = self.model.task_balancing
        weights = keras.ops.convert_to_numpy(strategy.task_weights())
        if logs is not None:
            for name, weight in zip(strategy.task_names, weights, strict=True):
                logs[f"weight_{name}"] = float(weight)
        strategy.on_epoch_end(epoch, logs or {})


__all__ = ["TaskWeightLog"]
