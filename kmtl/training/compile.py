"""`compile_args`: per-output losses, loss weights and metrics from
TaskSpecs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import TaskSpec


def metric(name: str, task: TaskSpec) -> Any:
    """A Keras metric object for a metric name of a task.

    `"auc"` is ROC AUC (`keras.metrics.AUC`, 1,000 thresholds),
    `"pr_auc"` the area under the precision-recall curve, both for binary
    and regression tasks with labels in [0, 1]. `"accuracy"` and
    `"logloss"` follow the task's kind: binary accuracy and cross-entropy of
    a `[B, 1]` probability, or sparse categorical ones of a multiclass
    task's `[B, num_classes]` softmax against integer labels `[B]`. Other
    names go to `keras.metrics.get`. Metrics are named plainly (`ctr_auc` in
    the logs), and count sample weights, so a task with a sample space is
    measured on that space only.

    Args:
        name: str. The metric name, as in `TaskSpec.metrics`.
        task: TaskSpec. The task it measures.

    Returns:
        A `keras.metrics.Metric` (or a metric function).

    Raises:
        ValueError: the name is unknown, or does not apply to the task's
            kind (AUC of a multiclass task).
    """
    multiclass = task.kind == "multiclass"
    if name in ("auc", "pr_auc"):
        if multiclass:
            raise ValueError(
                f"Task {task.name!r}: metric {name!r} is for binary tasks; "
                "a multiclass task takes 'accuracy', 'logloss' or a Keras "
                f"metric name. Received: metrics={list(task.metrics)}"
            )
        curve = "PR" if name == "pr_auc" else "ROC"
        return keras.metrics.AUC(num_thresholds=1000, curve=curve, name=name)
    if name == "accuracy":
        if multiclass:
            return keras.metrics.SparseCategoricalAccuracy(name=name)
        if task.kind == "binary":
            return keras.metrics.BinaryAccuracy(name=name)
    if name == "logloss":
        if multiclass:
            return keras.metrics.SparseCategoricalCrossentropy(name=name)
        return keras.metrics.BinaryCrossentropy(name=name)
    try:
        return keras.metrics.get(name)
    except ValueError as error:
        raise ValueError(
            f"Task {task.name!r}: unknown metric {name!r}. Expected 'auc', "
            "'pr_auc', 'logloss', 'accuracy' or a Keras metric name. "
            f"Received: metrics={list(task.metrics)}"
        ) from error


def compile_args(
    tasks: FeatureSpec | Sequence[TaskSpec],
) -> dict[str, dict[str, Any]]:
    """Losses, loss weights and weighted metrics keyed by output name.

    Outputs of weight 0 get no loss (ESMM's CVR output learns through
    CTCVR), only metrics. Metrics are passed as `weighted_metrics` so the
    sample weights that encode a task's sample space apply to them too.

    Args:
        tasks: a FeatureSpec (its tasks) or the output tasks of a model
            (`kmtl.model_tasks(name, spec)`).

    Returns:
        dict with `loss`, `loss_weights` and `weighted_metrics`, ready for
        `model.compile(optimizer, **compile_args(...))`.

    Example:

    ```python
    model.compile("adam", **kmtl.compile_args(kmtl.model_tasks("esmm", spec)))
    ```
    """
    if isinstance(tasks, FeatureSpec):
        tasks = tasks.tasks
    loss, loss_weights, metrics = {}, {}, {}
    for task in tasks:
        if task.weight > 0:
            loss[task.name] = task.loss
            loss_weights[task.name] = task.weight
        metrics[task.name] = [metric(m, task) for m in task.metrics]
    return {
        "loss": loss,
        "loss_weights": loss_weights,
        "weighted_metrics": metrics,
    }
