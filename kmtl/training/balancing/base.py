"""`TaskBalancing`: the base of the strategies that weigh the tasks' losses
(or their gradients) while a `TaskModel` trains."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kmtl.features.spec import TaskSpec
from kmtl.layers.keras_objects import constructor_config
from kmtl.training.balancing.gradient_step import check_backend
from kmtl.training.compile import compile_args
from kmtl.validation import hparam_checks


class _FunctionLoss(keras.losses.Loss):
    """A loss function reduced like the losses of `compile` (the mean over
    the batch of `loss * sample_weight`), with their rank rule: a `[B]`
    label of a `[B, 1]` prediction is expanded, and the other way round."""

    def __init__(self, function: Any, name: str) -> None:
        super().__init__(name=name)
        self.function = function

    def call(self, y_true: Any, y_pred: Any) -> Any:
        true_rank, pred_rank = len(y_true.shape), len(y_pred.shape)
        if pred_rank == true_rank + 1 and y_pred.shape[-1] == 1:
            y_true = ops.expand_dims(y_true, -1)
        elif true_rank == pred_rank + 1 and y_true.shape[-1] == 1:
            y_true = ops.squeeze(y_true, -1)
        return self.function(y_true, y_pred)


def task_loss(loss: Any, name: str) -> keras.losses.Loss:
    """The `keras.losses.Loss` of one task, as `compile` would build it.

    Args:
        loss: str, function or `keras.losses.Loss`: what `kmtl.compile_args`
            gives the task (e.g. `"binary_crossentropy"`).
        name: str. The task name.

    Returns:
        A `keras.losses.Loss`: `loss(y_true, y_pred, sample_weight)`.

    Example:

    ```python
    task_loss("mean_squared_error", "dwell")(y_true, y_pred, weights)
    ```
    """
    resolved = keras.losses.get(loss)
    if isinstance(resolved, keras.losses.Loss):
        return resolved
    return _FunctionLoss(resolved, name)


class TaskBalancing(keras.layers.Layer):
    """Base of the task balancing strategies (`kmtl.training.balance`).

    A strategy balances the model's tasks that have a loss (the outputs of
    weight > 0 in `kmtl.compile_args`: ESMM's `cvr` learns through `ctcvr`
    and is left out), each on the loss `compile_args` gives it (a loss
    passed to `compile` by hand is not used), and replaces their fixed
    weights (`TaskSpec.weight`) by its own. The model trains on

    `L = combine([L_1, ..., L_T]) + (the model's add_loss terms)`,

    by default `sum_i w_i L_i` with `w = task_weights()`; a strategy that
    rescales gradients derives from `GradientBalancing`. The strategy's
    state is Keras variables of this layer, an attribute of the model, so
    it trains, saves and loads with it.

    Subclasses declare their hparams once, keyword-only on `__init__` with
    the annotated types of `kmtl.validation`; they call
    `super().__init__(**kwargs)`, keep each hparam as a public attribute,
    call `check_hparams()` and create their variables in `create_state`.

    Args:
        **kwargs: `keras.layers.Layer` arguments (`name`).
    """

    uses_task_gradients = False
    strategy_name = "balancing"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.task_names: tuple[str, ...] = ()

    def check_hparams(self) -> None:
        """Checks the hparam attributes with the annotated types of
        `__init__` and keeps their canonical values.

        Raises:
            ValueError: naming the strategy and the hparam, e.g. "Task
                balancing 'gradnorm': hparam `alpha` must be a non-negative
                finite float. Received: alpha=-1".
        """
        owner = f"Task balancing {self.strategy_name!r}: hparam "
        for key, check in hparam_checks(type(self).__init__).items():
            setattr(self, key, check(getattr(self, key), key, owner))

    @property
    def num_tasks(self) -> int:
        """The number of balanced tasks."""
        return len(self.task_names)

    def attach(self, model: Any, tasks: Sequence[TaskSpec]) -> None:
        """Binds the strategy to a model's output tasks and creates its
        state. `kmtl.training.balance` calls it once.

        Args:
            model: the `TaskModel`.
            tasks: its output tasks.

        Raises:
            ValueError: no task has a loss, or the strategy cannot balance
                this model (its own checks, e.g. GradNorm's shared layer).
        """
        losses = compile_args(tasks)["loss"]
        balanced = [t for t in tasks if t.name in losses]
        if not balanced:
            raise ValueError(
                f"Task balancing {self.strategy_name!r}: model "
                f"{model.name!r} has no task with a loss (every "
                "TaskSpec.weight is 0)."
            )
        self.task_names = tuple(t.name for t in balanced)
        self.task_loss_functions = [
            task_loss(losses[t.name], t.name) for t in balanced
        ]
        self.loss_trackers = [
            keras.metrics.Mean(name=f"{t.name}_loss") for t in balanced
        ]
        self.create_state(model, balanced)
        self.built = True

    def create_state(self, model: Any, tasks: Sequence[TaskSpec]) -> None:
        """Creates the strategy's variables (`add_weight`). Does nothing by
        default."""

    def task_losses(self, y: Any, y_pred: Any, sample_weight: Any) -> list:
        """Each balanced task's loss on a batch.

        Args:
            y: dict output name -> label (completed by the model).
            y_pred: dict output name -> prediction.
            sample_weight: dict output name -> sample weight.

        Returns:
            list of scalar tensors, in `task_names` order.
        """
        return [
            loss(y[name], y_pred[name], sample_weight.get(name))
            for name, loss in zip(
                self.task_names, self.task_loss_functions, strict=True
            )
        ]

    def track(self, task_losses: Sequence[Any]) -> None:
        """Adds a batch's task losses to the `<task>_loss` metrics."""
        for tracker, loss in zip(self.loss_trackers, task_losses, strict=True):
            tracker.update_state(loss)

    def task_weights(self) -> Any:
        """The current weight of each task `[T]` (logged as `weight_<task>`
        every epoch)."""
        raise NotImplementedError

    def combine(self, task_losses: Sequence[Any], training: bool) -> Any:
        """The balanced loss of a batch: `sum_i w_i L_i` by default.

        Args:
            task_losses: list of scalar tensors, in `task_names` order.
            training: bool. Whether the batch trains (state may change).

        Returns:
            A scalar tensor.
        """
        weights = ops.stop_gradient(self.task_weights())
        return ops.sum(weights * ops.stack(task_losses))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """Updates the state from an epoch's logs. Does nothing by default.

        Args:
            epoch: int. The epoch that ended (from 0).
            logs: dict. Its logs (`<task>_loss` is the mean training loss).
        """

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(constructor_config(self, type(self)))
        return config


class GradientBalancing(TaskBalancing):
    """Base of the strategies that rescale gradients: they need each task's
    gradient on some variables (`probed_variables`), which
    `kmtl.training.balancing.gradient_step` computes on TensorFlow and JAX.

    Each step: `gradients` = the gradient of `sum_i a_i L_i + aux` on every
    trainable variable of the model, `a = loss_weights()` held constant;
    `task_gradients[i]` = the gradient of `L_i` alone on each probed
    variable; `balance_gradients` returns the gradients the optimizer
    applies (and may update the strategy's non-trainable state).
    """

    uses_task_gradients = True

    def attach(self, model: Any, tasks: Sequence[TaskSpec]) -> None:
        check_backend(self.strategy_name)
        super().attach(model, tasks)

    def set_probed_variables(self, variables: Sequence[Any]) -> None:
        """Sets the variables of the model that each task's gradient is
        taken on (at `create_state`; the strategy's own are left out)."""
        own = {id(v) for v in self.variables}
        # A plain list: these variables belong to the model, not this layer.
        object.__setattr__(
            self, "_probed", [v for v in variables if id(v) not in own]
        )

    def probed_variables(self) -> list[Any]:
        """The variables each task's own gradient is taken on."""
        return self._probed

    def loss_weights(self) -> Any:
        """The constant weights `a` `[T]` of the loss the model's variables
        train on: `task_weights()` by default."""
        return self.task_weights()

    def combine(self, task_losses: Sequence[Any], training: bool) -> Any:
        weights = ops.stop_gradient(self.loss_weights())
        return ops.sum(weights * ops.stack(task_losses))

    def balance_gradients(
        self,
        task_losses: Sequence[Any],
        gradients: dict[int, Any],
        task_gradients: Sequence[Sequence[Any]],
    ) -> dict[int, Any]:
        """The gradients to apply.

        Args:
            task_losses: list of T scalar losses.
            gradients: dict `id(variable)` -> gradient of `sum_i a_i L_i +
                aux`, for every trainable variable of the model.
            task_gradients: T lists: task i's gradient of `L_i` on each of
                `probed_variables()`, dense, zeros where it does not reach.

        Returns:
            dict `id(variable)` -> gradient to apply (may be `gradients`
            updated in place).
        """
        raise NotImplementedError


__all__ = ["GradientBalancing", "TaskBalancing", "task_loss"]
