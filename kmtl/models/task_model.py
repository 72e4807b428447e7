"""`TaskModel`: the functional model `kmtl.build` returns, which knows its
output tasks and completes the labels of the outputs it derives."""

from __future__ import annotations

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

    Args:
        *args: the functional model's `inputs` and `outputs`.
        tasks: sequence of `TaskSpec` (or their dicts). One per output.
        label_keys: dict label column -> the label key that holds it.
            Defaults to none.
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

    @property
    def tasks(self) -> tuple[TaskSpec, ...]:
        """The output tasks, in output order."""
        return self._kmtl_tasks

    @property
    def label_keys(self) -> dict[str, str]:
        """Label column -> the key of the labels dict that holds it."""
        return dict(self._kmtl_label_keys)

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
        return super().compute_loss(
            x, y, y_pred, sample_weight, training=training
        )

    def compute_metrics(
        self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None
    ) -> Any:
        y, sample_weight = self.complete_targets(y, sample_weight)
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["tasks"] = [t.to_dict() for t in self.tasks]
        config["label_keys"] = self.label_keys
        return config


__all__ = ["TaskModel"]
