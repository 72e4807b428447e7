"""`PLEWeightSchedule`: PLE's per-task loss weights that decay or grow
geometrically with the epoch (Tang et al., 2020)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from kmtl.validation import positive_float


class PLEWeightSchedule(keras.callbacks.Callback):
    """Sets each task's loss weight at the start of each epoch:

    `w_k(t) = w_k,0 * gamma_k ** t`

    with `t` the epoch (from 0) and `w_k,0` the task's `TaskSpec.weight`
    (or `initial_weights`). PLE (section 4.3) uses it to weigh tasks whose
    importance changes as training goes on. The model must be balanced by
    `"fixed"` (`kmtl.training.balance(model, "fixed")`), whose weights are
    a variable this callback assigns; `weight_<task>` in the logs shows
    the schedule.

    Args:
        gammas: dict task -> gamma_k > 0. Tasks left out keep their weight
            (gamma 1).
        initial_weights: dict task -> w_k,0 >= 0. Defaults to the tasks'
            `TaskSpec.weight`.

    Example:

    ```python
    model = kmtl.build("ple", spec, task_balancing="fixed")
    model.fit(ds, epochs=5, callbacks=[
        kmtl.training.PLEWeightSchedule({"ctr": 0.8, "cvr": 1.2})])
    ```

    Reference:
        Tang, Liu, Zhao, Gong. Progressive Layered Extraction (PLE): A
        Novel Multi-Task Learning Model for Personalized Recommendations.
        RecSys 2020.
    """

    def __init__(
        self,
        gammas: Mapping[str, float],
        initial_weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        owner = "PLEWeightSchedule: "
        if not isinstance(gammas, Mapping):
            raise ValueError(
                f"{owner}`gammas` must be a dict task -> gamma. "
                f"Received: gammas={gammas!r}"
            )
        self.gammas = {
            k: positive_float(v, f"gammas[{k!r}]", owner)
            for k, v in gammas.items()
        }
        self.initial_weights = dict(initial_weights or {})

    def on_train_begin(self, logs: Any = None) -> None:
        from kmtl.training.balancing.fixed import FixedWeights

        strategy = getattr(self.model, "task_balancing", None)
        if not isinstance(strategy, FixedWeights):
            name = getattr(strategy, "strategy_name", None)
            raise ValueError(
                f"PLEWeightSchedule: model {self.model.name!r} must be "
                "balanced by 'fixed' (kmtl.training.balance(model, 'fixed') "
                f"before fit). Received: task_balancing={name!r}"
            )
        tasks = list(strategy.task_names)
        unknown = sorted(set(self.gammas) - set(tasks))
        unknown += sorted(set(self.initial_weights) - set(tasks))
        if unknown:
            raise ValueError(
                f"PLEWeightSchedule: unknown task(s) {unknown}; the tasks "
                f"with a loss are {tasks}."
            )
        defaults = dict(zip(tasks, strategy.initial_weights, strict=True))
        self._initial = np.array(
            [self.initial_weights.get(t, defaults[t]) for t in tasks]
        )
        self._gammas = np.array([self.gammas.get(t, 1.0) for t in tasks])

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        weights = self._initial * self._gammas**epoch
        self.model.task_balancing.task_weight.assign(weights)


__all__ = ["PLEWeightSchedule"]
