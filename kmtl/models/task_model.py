"""`TaskModel`: the functional model `kmtl.build` returns, which knows its
output tasks, completes the labels of the outputs it derives and trains
with a task balancing strategy when it has one."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import keras

from kmtl.features.spec import TaskSpec


@keras.saving.register_keras_serializable(package="kmtl")
class TaskModel(keras.Model):
    """A functional `keras.Model` that knows the task of each output.

    `tasks` are the model's output tasks (`kmtl.model_tasks(name, spec)`):
    for most models the spec's tasks; ESMM adds `ctcvr` (label click x
    purchase) and AITM trains a funnel step on its end-to-end label. So
    that the data of the spec (`kmtl.data.to_dataset(df, spec)`, labels
    keyed by the spec's tasks) trains every model, `compute_loss` and
    `compute_metrics` complete the labels first:

    - an output whose task has several label columns is derived: its label
      is the product of the labels that carry each column
      (`label_keys[column]`, the spec's single-column tasks), its sample
      weight that of its own sample space (1 everywhere without one);
    - every other output takes its label and sample weight as given.

    Data built for the output tasks (`to_dataset(df, spec,
    tasks=model.tasks)`) gives the same labels. A label that is neither
    given nor derivable is a `ValueError` naming the output.

    With a task balancing strategy (`kmtl.training.balance(model, name)`,
    or `kmtl.build(..., task_balancing=name)`), the loss is the strategy's
    combination of the tasks' losses (`<task>_loss` in the logs, unweighted)
    instead of the compiled weighted sum, a gradient strategy (GradNorm,
    MetaBalance) takes over the training step, and `fit` logs each task's
    weight as `weight_<task>` at the end of each epoch. The strategy and
    its state are saved with the model.

    Args:
        *args: the functional model's `inputs` and `outputs`.
        tasks: sequence of `TaskSpec` (or their dicts). One per output.
        label_keys: dict label column -> the label key that holds it.
            Defaults to none.
        task_balancing: dict or None. A serialized strategy (what
            `get_config` writes). Defaults to none (the compiled loss).
        **kwargs: `keras.Model` arguments (`name`, ...).

    Example:

    ```python
    model = kmtl.build("esmm", spec)
    [t.name for t in model.tasks]  # ['ctr', 'cvr', 'ctcvr']
    model.fit(kmtl.data.to_dataset(train_df, spec), epochs=2)
    ```
    """

    def __init__(
        self,
        *args: Any,
        tasks: Sequence[TaskSpec | Mapping[str, Any]] = (),
        label_keys: Mapping[str, str] | None = None,
        task_balancing: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        specs = tuple(
            t if isinstance(t, TaskSpec) else TaskSpec.from_dict(t)
            for t in tasks
        )
        outputs = sorted(
            self.output if isinstance(self.output, dict) else self.output_names
        )
        if sorted(t.name for t in specs) != outputs:
            raise ValueError(
                f"TaskModel {self.name!r}: `tasks` must name each output "
                f"once ({outputs}). Received: tasks="
                f"{[t.name for t in specs]}"
            )
        # Plain containers, kept out of Keras's attribute tracking.
        object.__setattr__(self, "_kmtl_tasks", specs)
        object.__setattr__(self, "_kmtl_label_keys", dict(label_keys or {}))
        self._task_balancing = None
        if task_balancing is not None:
            self.set_task_balancing(
                keras.saving.deserialize_keras_object(task_balancing)
            )

    @property
    def tasks(self) -> tuple[TaskSpec, ...]:
        """The output tasks, in output order."""
        return self._kmtl_tasks

    @property
    def label_keys(self) -> dict[str, str]:
        """Label column -> the key of the labels dict that holds it."""
        return dict(self._kmtl_label_keys)

    @property
    def task_balancing(self) -> Any:
        """The task balancing strategy (`kmtl.training.balancing`), or
        None."""
        return self._task_balancing

    def set_task_balancing(self, strategy: Any) -> None:
        """Trains the model with a task balancing strategy from now on.

        `kmtl.training.balance(model, name, **hparams)` is the usual way.

        Args:
            strategy: an unattached `kmtl.training.balancing.TaskBalancing`.

        Raises:
            ValueError: the model already has a strategy, or has trained
                (its optimizer is built without the strategy's variables).
        """
        if self._task_balancing is not None:
            raise ValueError(
                f"Model {self.name!r} is already balanced by "
                f"{self._task_balancing.strategy_name!r}; build a new model "
                "to train it with another strategy."
            )
        optimizer = getattr(self, "optimizer", None)
        if optimizer is not None and optimizer.built:
            raise ValueError(
                f"Model {self.name!r}: set the task balancing before the "
                "first `fit` (the optimizer is already built)."
            )
        strategy.attach(self, self.tasks)
        self._task_balancing = strategy
        self.train_function = self.test_function = None

    def complete_targets(self, y: Any, sample_weight: Any) -> tuple[Any, Any]:
        """Labels and sample weights of every output from those given.

        Args:
            y: dict label key -> tensor, or anything else (returned as is).
            sample_weight: dict, or None (1 everywhere).

        Returns:
            (y, sample_weight) keyed by output name.

        Raises:
            ValueError: an output's label is missing and not derivable.
        """
        if not isinstance(y, Mapping):
            return y, sample_weight
        given_weights = (
            sample_weight if isinstance(sample_weight, Mapping) else {}
        )
        labels, weights = {}, {}
        for task in self.tasks:
            keys = [self._kmtl_label_keys.get(c) for c in task.label_columns]
            derivable = len(keys) > 1 and all(k in y for k in keys)
            if derivable:
                label = y[keys[0]]
                for key in keys[1:]:
                    label = keras.ops.multiply(label, y[key])
                labels[task.name] = label
            elif task.name in y:
                labels[task.name] = y[task.name]
            else:
                raise ValueError(
                    f"Model {self.name!r}: no label for output "
                    f"{task.name!r} (label columns {list(task.label_columns)}"
                    f"). The data holds labels {sorted(y)}. Pass "
                    "`kmtl.data.to_dataset(df, spec)` with the spec the "
                    "model was built on, or `tasks=model.tasks`."
                )
        for task in self.tasks:
            label = labels[task.name]
            if len(task.label_columns) > 1:
                space = task.sample_space
                weight = labels[space] if space else keras.ops.ones_like(label)
            else:
                weight = given_weights.get(task.name)
                if weight is None:
                    weight = keras.ops.ones_like(label)
            weights[task.name] = keras.ops.cast(weight, "float32")
        return labels, weights

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        y, sample_weight = self.complete_targets(y, sample_weight)
        strategy = self._task_balancing
        if strategy is None:
            return super().compute_loss(
                x, y, y_pred, sample_weight, training=training
            )
        self._check_dict_labels(y)
        task_losses = strategy.task_losses(y, y_pred, sample_weight)
        loss = strategy.combine(task_losses, training)
        for added in self.losses:
            loss = loss + keras.ops.sum(keras.ops.cast(added, loss.dtype))
        return loss

    def compute_metrics(
        self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None
    ) -> Any:
        y, sample_weight = self.complete_targets(y, sample_weight)
        strategy = self._task_balancing
        if strategy is not None:
            self._check_dict_labels(y)
            strategy.track(strategy.task_losses(y, y_pred, sample_weight))
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def _check_dict_labels(self, y: Any) -> None:
        if not isinstance(y, Mapping):
            raise ValueError(
                f"Model {self.name!r}: a balanced model takes its labels as "
                "a dict keyed by task (`kmtl.data.to_dataset(df, spec)`). "
                f"Received: {type(y).__name__}"
            )

    def train_step(self, *args: Any) -> Any:
        strategy = self._task_balancing
        if strategy is None or not strategy.uses_task_gradients:
            return super().train_step(*args)
        from kmtl.training.balancing.gradient_step import train_step

        return train_step(self, *args)

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        if self._task_balancing is None:
            return super().fit(*args, **kwargs)
        from kmtl.training.balancing.weight_log import TaskWeightLog

        bound = inspect.signature(keras.Model.fit).bind(self, *args, **kwargs)
        arguments = dict(bound.arguments)
        arguments.pop("self")
        callbacks = arguments.get("callbacks") or []
        if isinstance(callbacks, keras.callbacks.CallbackList):
            listed = callbacks.callbacks
        else:
            listed = callbacks = list(callbacks)
        if not any(isinstance(c, TaskWeightLog) for c in listed):
            log = TaskWeightLog()  # first, so that History sees its logs
            log.set_model(self)
            listed.insert(0, log)
        arguments["callbacks"] = callbacks
        return super().fit(**arguments)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["tasks"] = [t.to_dict() for t in self.tasks]
        config["label_keys"] = self.label_keys
        if self._task_balancing is not None:
            config["task_balancing"] = keras.saving.serialize_keras_object(
                self._task_balancing
            )
        return config


__all__ = ["TaskModel"]
