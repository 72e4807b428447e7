"""`UncertaintyWeighting`: tasks weighted by learned homoscedastic
uncertainty (Kendall, Gal and Cipolla, 2018)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kmtl.features.spec import TaskSpec
from kmtl.training.balancing.base import TaskBalancing
from kmtl.training.balancing.registry import register_balancing
from kmtl.validation import OneOf


@register_balancing("uncertainty")
@keras.saving.register_keras_serializable(package="kmtl")
class UncertaintyWeighting(TaskBalancing):
    """Uncertainty weighting: each task's loss is scaled by a learned
    precision, with the log-variance as a penalty.

    `L = sum_i c_i exp(-s_i) L_i + s_i / 2`, `s_i = log sigma_i^2`

    with `c_i = 1/2` for a regression task (a Gaussian likelihood:
    `L_i / (2 sigma^2) + log sigma`) and `c_i = 1` for a binary or
    multiclass one (a scaled softmax: `L_i / sigma^2 + log sigma`); twice
    this loss is `sum_i 2 c_i exp(-s_i) L_i + s_i`. The log-variances are
    trained with the model and settle where `exp(s_i) = 2 c_i L_i`: a task
    with a smaller loss gets a smaller variance and so a larger weight
    `c_i exp(-s_i)`, logged as `weight_<task>`.

    `s_i` moves by about the learning rate per step (Adam), so from 0 it
    needs thousands of steps to reach a small loss's `log(2 c_i L_i)` (-5
    for an MSE of 0.007). `start="calibrated"` (the default) therefore
    starts each `s_i` at that value for the first training batch's loss
    (`s = s0 + ds`, `s0` fixed then, `ds` trained from 0); `start="zero"`
    is the paper's `s_i = 0`.

    Args:
        start: `"calibrated"` or `"zero"`. Defaults to `"calibrated"`.
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    ```python
    kmtl.training.balance(model, "uncertainty")
    model.fit(ds, epochs=3)
    np.exp(model.task_balancing.log_variance())  # sigma^2 per task
    ```

    Reference:
        Kendall, Gal, Cipolla. Multi-Task Learning Using Uncertainty to
        Weigh Losses for Scene Geometry and Semantics. CVPR 2018.
    """

    def __init__(
        self, *, start: OneOf("calibrated", "zero") = "calibrated", **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.start = start
        self.check_hparams()

    def create_state(self, model: Any, tasks: Sequence[TaskSpec]) -> None:
        count = len(tasks)
        self.likelihood_factor = tuple(
            0.5 if t.kind == "regression" else 1.0 for t in tasks
        )
        self.log_variance_start = self.add_weight(
            name="log_variance_start",
            shape=(count,),
            initializer="zeros",
            trainable=False,
        )
        self.log_variance_change = self.add_weight(
            name="log_variance_change",
            shape=(count,),
            initializer="zeros",
            trainable=True,
        )
        self.started = self.add_weight(
            name="started", shape=(), initializer="zeros", trainable=False
        )

    def log_variance(self) -> Any:
        """The learned `s_i = log sigma_i^2` `[T]`."""
        return self.log_variance_start + self.log_variance_change

    def task_weights(self) -> Any:
        factor = ops.convert_to_tensor(self.likelihood_factor, "float32")
        return factor * ops.exp(-self.log_variance())

    def combine(self, task_losses: Sequence[Any], training: bool) -> Any:
        losses = ops.stack(task_losses)
        if training and self.start == "calibrated":
            factor = ops.convert_to_tensor(self.likelihood_factor, "float32")
            calibrated = ops.log(
                2 * factor * ops.maximum(ops.stop_gradient(losses), 1e-8)
            )
            start = ops.convert_to_tensor(self.log_variance_start)
            self.log_variance_start.assign(
                ops.where(self.started > 0, start, calibrated)
            )
            self.started.assign(1.0)
        return ops.sum(self.task_weights() * losses + 0.5 * self.log_variance())


__all__ = ["UncertaintyWeighting"]
