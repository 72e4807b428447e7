"""`GradNorm`: task weights trained so that the tasks' gradient norms on
the last shared layer train at balanced rates (Chen et al., 2018)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kmtl.features.spec import TaskSpec
from kmtl.training.balancing.base import GradientBalancing
from kmtl.training.balancing.registry import register_balancing
from kmtl.training.balancing.shared_layers import shared_layers
from kmtl.validation import NonNegativeFloat
from kmtl.validation import OptionalName
from kmtl.validation import PositiveFloat

MIN_WEIGHT = 1e-3


def global_norm(tensors: Sequence[Any]) -> Any:
    """`sqrt(sum ||t||^2)` over a list of tensors (a scalar)."""
    return ops.sqrt(sum(ops.sum(ops.square(t)) for t in tensors))


@register_balancing("gradnorm")
@keras.saving.register_keras_serializable(package="kmtl")
class GradNorm(GradientBalancing):
    """GradNorm: task weights adapted so that the tasks' gradient norms on
    the last shared layer `W` reflect how fast each task trains.

    Each step, with `G_i = ||grad_W w_i L_i||`, `G = mean_i G_i`, the
    relative inverse training rate `r_i = L~_i / mean_j L~_j`,
    `L~_i = L_i(t) / L_i(0)` (`L_i(0)`: the loss of the first step),

    `L_grad = sum_i | G_i - sg(G r_i^alpha) |`,

    the model trains on `sum_i w_i L_i` (weights held constant) and the
    weights take one gradient step on `L_grad / sg(G)`:

    `w_i <- w_i - learning_rate * sign(G_i - G r_i^alpha) ||grad_W L_i|| / G`

    then are clipped at 1e-3 and renormalised to `sum_i w_i = T`. A task
    whose gradients are smaller than its share, or that trains more slowly
    than the others (`r_i > 1`), has its weight raised. Dividing by `G`
    (a positive factor common to all tasks) makes the step size free of
    the gradients' scale, so the weights have their own learning rate
    instead of the model optimizer's.

    It needs each task's gradient on W: supported with the TensorFlow and
    JAX backends (`kmtl.training.balancing.gradient_step`), one extra
    backward pass per task.

    Args:
        alpha: float >= 0. The restoring force towards equal training
            rates (0: equal gradient norms only). Defaults to 1.5.
        learning_rate: float > 0. The weights' step size. Defaults to
            0.025.
        shared_layer: str or None. The name of the layer W. Defaults to the
            last layer with trainable weights that two tasks share
            (`kmtl.training.balancing.shared_layers`), e.g. the MMoE layer
            or the shared-bottom MLP.
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    ```python
    kmtl.training.balance(model, "gradnorm", alpha=1.5)
    history = model.fit(ds, epochs=3)
    history.history["weight_cvr"]
    ```

    Reference:
        Chen, Badrinarayanan, Lee, Rabinovich. GradNorm: Gradient
        Normalization for Adaptive Loss Balancing in Deep Multitask
        Networks. ICML 2018.
    """

    def __init__(
        self,
        *,
        alpha: NonNegativeFloat = 1.5,
        learning_rate: PositiveFloat = 0.025,
        shared_layer: OptionalName = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.shared_layer = shared_layer
        self.check_hparams()

    def create_state(self, model: Any, tasks: Sequence[TaskSpec]) -> None:
        names = [t.name for t in tasks]
        if self.shared_layer is None:
            shared = shared_layers(model, names)
            if not shared:
                raise ValueError(
                    f"Task balancing 'gradnorm': no layer of model "
                    f"{model.name!r} with trainable weights is shared by "
                    f"two of the tasks {names}."
                )
            layer = shared[-1]
        else:
            found = [x for x in model.layers if x.name == self.shared_layer]
            if not found or not found[0].trainable_weights:
                raise ValueError(
                    f"Task balancing 'gradnorm': model {model.name!r} has no "
                    f"layer {self.shared_layer!r} with trainable weights. "
                    f"Its layers: {[x.name for x in model.layers]}"
                )
            layer = found[0]
        self.probed_layer_name = layer.name
        self.set_probed_variables(layer.trainable_weights)
        self.task_weight = self.add_weight(
            name="task_weight",
            shape=(len(tasks),),
            initializer="ones",
            trainable=False,
        )
        self.initial_losses = self.add_weight(
            name="initial_losses",
            shape=(len(tasks),),
            initializer="zeros",
            trainable=False,
        )

    def task_weights(self) -> Any:
        return ops.convert_to_tensor(self.task_weight)

    def balance_gradients(
        self,
        task_losses: Sequence[Any],
        gradients: dict[int, Any],
        task_gradients: Sequence[Sequence[Any]],
    ) -> dict[int, Any]:
        """Steps the weights (see the class); the model's gradients are
        those of `sum_i w_i L_i`, returned as they are."""
        losses = ops.stop_gradient(ops.stack(task_losses))
        initial = ops.convert_to_tensor(self.initial_losses)
        initial = ops.where(initial > 0, initial, losses)
        self.initial_losses.assign(initial)
        norms = ops.stack([global_norm(g) for g in task_gradients])
        weighted = self.task_weight * norms
        mean = ops.maximum(ops.mean(weighted), 1e-12)
        ratio = losses / initial
        target = mean * ops.power(ratio / ops.mean(ratio), self.alpha)
        step = ops.sign(weighted - target) * norms / mean
        weight = ops.maximum(
            self.task_weight - self.learning_rate * step, MIN_WEIGHT
        )
        self.task_weight.assign(self.num_tasks * weight / ops.sum(weight))
        return gradients


__all__ = ["GradNorm", "global_norm"]
