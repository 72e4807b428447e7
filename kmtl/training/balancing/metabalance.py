"""`MetaBalance`: the auxiliary tasks' gradients on the shared parameters
rescaled towards the target task's gradient magnitude (He et al., 2022)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kmtl.features.spec import TaskSpec
from kmtl.training.balancing.base import GradientBalancing
from kmtl.training.balancing.registry import register_balancing
from kmtl.validation import OptionalName
from kmtl.validation import Rate

EPSILON = 1e-5


@register_balancing("metabalance")
@keras.saving.register_keras_serializable(package="kmtl")
class MetaBalance(GradientBalancing):
    """MetaBalance: each auxiliary task's gradient on a shared variable is
    scaled towards the magnitude of the target task's gradient there.

    For each trainable variable `theta` and task i, with `g_i = grad_theta
    L_i` and the moving average of its norm
    `m_i <- beta m_i + (1 - beta) ||g_i||`,

    `g_i <- g_i (r m_tar / (m_i + 1e-5) + 1 - r)` for each auxiliary task,
    `G = g_tar + sum_i g_i (+ the gradient of the model's add_loss terms)`.

    The relax factor `r` sets how close the auxiliary magnitudes come to
    the target's (1: equal; 0: plain sum). A variable is shared when the
    target and the auxiliary task both reach it (`m_tar > 0` and
    `m_i > 0`); elsewhere (task towers, one task's gate) the gradient is
    left as it is. Norms are taken per variable, as in the authors' code.
    The moving averages (`gradient_norms` `[V, T]`) are variables of this
    layer. Logged as `weight_<task>`: the mean factor of the last step
    over the shared variables (1 for the target).

    It needs each task's gradient: supported with the TensorFlow and JAX
    backends (`kmtl.training.balancing.gradient_step`), one backward pass
    per task; on TensorFlow sparse (embedding) gradients are made dense.

    Args:
        target: str or None. The target task. Defaults to the first task
            with a loss.
        relax_factor: float in [0, 1). Defaults to 0.7 (the paper's).
        beta: float in [0, 1). Moving-average factor of the norms.
            Defaults to 0.9 (the paper's).
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    ```python
    kmtl.training.balance(model, "metabalance", target="cvr")
    model.fit(ds, epochs=3)
    ```

    Reference:
        He, Feng, Liu, Zhang, et al. MetaBalance: Improving Multi-Task
        Recommendations via Adapting Gradient Magnitudes of Auxiliary
        Tasks. WWW 2022.
    """

    def __init__(
        self,
        *,
        target: OptionalName = None,
        relax_factor: Rate = 0.7,
        beta: Rate = 0.9,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.relax_factor = relax_factor
        self.beta = beta
        self.check_hparams()

    def create_state(self, model: Any, tasks: Sequence[TaskSpec]) -> None:
        names = [t.name for t in tasks]
        if self.target is not None and self.target not in names:
            raise ValueError(
                f"Task balancing 'metabalance': `target` must be one of the "
                f"tasks with a loss {names}. Received: target={self.target!r}"
            )
        self.target_index = names.index(self.target or names[0])
        self.set_probed_variables(model.trainable_variables)
        self.gradient_norms = self.add_weight(
            name="gradient_norms",
            shape=(len(self.probed_variables()), len(tasks)),
            initializer="zeros",
            trainable=False,
        )
        self.last_factors = self.add_weight(
            name="last_factors",
            shape=(len(tasks),),
            initializer="ones",
            trainable=False,
        )

    def task_weights(self) -> Any:
        return ops.convert_to_tensor(self.last_factors)

    def loss_weights(self) -> Any:
        return ops.ones((self.num_tasks,))

    def balance_gradients(
        self,
        task_losses: Sequence[Any],
        gradients: dict[int, Any],
        task_gradients: Sequence[Sequence[Any]],
    ) -> dict[int, Any]:
        """Scales the auxiliary tasks' gradients (see the class)."""
        tasks = range(self.num_tasks)
        norms = ops.stack(
            [
                ops.stack([ops.sqrt(ops.sum(ops.square(g))) for g in grads])
                for grads in task_gradients
            ],
            axis=1,
        )  # [V, T]
        averages = self.beta * self.gradient_norms + (1 - self.beta) * norms
        self.gradient_norms.assign(averages)
        target = averages[:, self.target_index : self.target_index + 1]
        shared = ops.logical_and(target > 0, averages > 0)
        ratio = target / (averages + EPSILON)
        factors = ops.where(
            shared, self.relax_factor * ratio + 1 - self.relax_factor, 1.0
        )
        own = ops.arange(self.num_tasks) == self.target_index
        factors = ops.where(own[None, :], 1.0, factors)  # [V, T]
        counted = ops.cast(shared, "float32")
        count = ops.sum(counted, axis=0)
        mean = ops.sum(factors * counted, axis=0) / ops.maximum(count, 1.0)
        self.last_factors.assign(ops.where(count > 0, mean, 1.0))
        for v, variable in enumerate(self.probed_variables()):
            plain = sum(task_gradients[i][v] for i in tasks)
            scaled = sum(factors[v, i] * task_gradients[i][v] for i in tasks)
            key = id(variable)
            gradients[key] = gradients[key] - plain + scaled
        return gradients


__all__ = ["MetaBalance"]
