"""The training step of a model balanced by a `GradientBalancing` strategy
(GradNorm, MetaBalance): each task's own gradient on the probed variables,
on the TensorFlow and the JAX backends."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

SUPPORTED_BACKENDS = ("tensorflow", "jax")


def train_step(model: Any, *args: Any) -> Any:
    """One training step of `model`, balanced by its gradient strategy.

    Keras's own step with one change: the gradients come from
    `model.task_balancing.balance_gradients` (see `GradientBalancing`).
    Loss scaling (mixed-precision `LossScaleOptimizer`) is not applied.

    Args:
        model: the `TaskModel`.
        *args: the arguments of the backend's `train_step`: `(data,)` on
            TensorFlow, `(state, data)` on JAX.

    Returns:
        What the backend's `train_step` returns (the logs, and the new
        state on JAX).

    Raises:
        ValueError: another backend.
    """
    check_backend(model.task_balancing.strategy_name)
    if keras.backend.backend() == "jax":
        return _jax_step(model, *args)
    return _tensorflow_step(model, *args)


def check_backend(strategy_name: str) -> None:
    """Raises a `ValueError` unless Keras runs on a supported backend.

    Args:
        strategy_name: str. The strategy, named in the message.
    """
    backend = keras.backend.backend()
    if backend not in SUPPORTED_BACKENDS:
        raise ValueError(
            f"Task balancing {strategy_name!r} needs each task's gradient, "
            f"computed on the backends {SUPPORTED_BACKENDS}; Keras runs on "
            f"{backend!r}. Use 'fixed', 'uncertainty' or 'dwa', which run on "
            "every backend."
        )


def _tensorflow_step(model: Any, data: Any) -> Any:
    import tensorflow as tf

    def dense(gradient: Any, variable: Any) -> Any:
        # Zeros where the loss does not reach; embeddings' IndexedSlices.
        if gradient is None:
            return tf.zeros(variable.shape, variable.dtype)
        return tf.convert_to_tensor(gradient)

    strategy = model.task_balancing
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    variables = model.trainable_variables
    probed = strategy.probed_variables()
    with tf.GradientTape(persistent=True) as tape:
        y_pred = model(x, training=True)
        labels, weights = model.complete_targets(y, sample_weight)
        task_losses = strategy.task_losses(labels, y_pred, weights)
        loss = strategy.combine(task_losses, True) + _added_losses(model.losses)
    gradients = tape.gradient(loss, variables)
    task_gradients = [
        [
            dense(g, v)
            for g, v in zip(tape.gradient(t, probed), probed, strict=True)
        ]
        for t in task_losses
    ]
    del tape
    probed_ids = {id(v) for v in probed}
    by_variable = {
        id(v): dense(g, v) if id(v) in probed_ids else g
        for g, v in zip(gradients, variables, strict=True)
    }
    by_variable = strategy.balance_gradients(
        task_losses, by_variable, task_gradients
    )
    model.optimizer.apply_gradients(
        [(by_variable[id(v)], v) for v in variables]
    )
    model._loss_tracker.update_state(  # what Keras's own step does
        loss, sample_weight=tf.shape(next(iter(tf.nest.flatten(x))))[0]
    )
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def _jax_step(model: Any, state: Any, data: Any) -> Any:
    import jax
    import jax.numpy as jnp

    strategy = model.task_balancing
    trainable, non_trainable, optimizer_values, metrics_values = state
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    variables = model.trainable_variables
    fixed_variables = model.non_trainable_variables
    position = {id(v): i for i, v in enumerate(variables)}
    probed = [position[id(v)] for v in strategy.probed_variables()]

    def losses(trainable_values: Any) -> Any:
        y_pred, new_non_trainable, added = model.stateless_call(
            trainable_values,
            non_trainable,
            x,
            return_losses=True,
            training=True,
        )
        labels, weights = model.complete_targets(y, sample_weight)
        task_losses = strategy.task_losses(labels, y_pred, weights)
        values = jnp.stack([*task_losses, _added_losses(added)])
        return values, (y_pred, new_non_trainable)

    values, backward, (y_pred, new_non_trainable) = jax.vjp(
        losses, trainable, has_aux=True
    )
    count = strategy.num_tasks
    task_losses = [values[i] for i in range(count)]
    mapping = [
        *zip(variables, trainable, strict=True),
        *zip(fixed_variables, new_non_trainable, strict=True),
    ]
    with keras.StatelessScope(state_mapping=mapping) as scope:
        weights = ops.stop_gradient(strategy.loss_weights())
        (gradients,) = backward(jnp.concatenate([weights, jnp.ones((1,))]))
        task_gradients = []
        for i in range(count):
            (own,) = backward(jax.nn.one_hot(i, count + 1))
            task_gradients.append([own[p] for p in probed])
        by_variable = {
            id(v): g for v, g in zip(variables, gradients, strict=True)
        }
        by_variable = strategy.balance_gradients(
            task_losses, by_variable, task_gradients
        )
    non_trainable = _current(scope, fixed_variables, new_non_trainable)
    trainable, optimizer_values = model.optimizer.stateless_apply(
        optimizer_values, [by_variable[id(v)] for v in variables], trainable
    )
    loss = jnp.sum(weights * values[:count]) + values[count]
    logs, metrics_values = model._update_metrics_variables(  # Keras's own
        metrics_values, loss, x, y, y_pred, sample_weight
    )
    return logs, (trainable, non_trainable, optimizer_values, metrics_values)


def _added_losses(losses: Any) -> Any:
    """The sum of the model's `add_loss` and regularization terms."""
    total = ops.zeros(())
    for loss in losses:
        total = total + ops.sum(ops.cast(loss, "float32"))
    return total


def _current(scope: Any, variables: Any, values: Any) -> list[Any]:
    """The values of `variables` after the assignments made in `scope`."""
    out = []
    for variable, value in zip(variables, values, strict=True):
        new = scope.get_current_value(variable)
        out.append(value if new is None else new)
    return out


__all__ = ["SUPPORTED_BACKENDS", "check_backend", "train_step"]
