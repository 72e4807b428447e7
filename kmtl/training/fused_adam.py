"""`FusedAdam`: Keras's Adam rule in TensorFlow's fused kernel."""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="kmtl")
class FusedAdam(keras.optimizers.Adam):
    """Keras's `Adam`, stepped by TensorFlow's fused `ResourceApplyAdam`.

    The rule is Adam's, unchanged:

    `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
    `w -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)`

    with `g` the gradient of the loss. Keras's `Adam` issues about a dozen
    element-wise ops per variable and, given an embedding table's sparse
    gradient (`tf.IndexedSlices`), scatters it into a dense tensor twice
    (for `m` and for `v`); it also squares each looked-up slice before
    summing repeated ids, so its `v` for a row seen several times in a
    batch is not the square of that row's gradient (for a row whose
    per-example gradients agree, it is smaller, and the row's steps
    larger). Here the sparse gradient is summed per row into a dense
    tensor once and every step is one fused pass over weight, moments and
    gradient. On ae-synth's 188,898 x 16 table, Keras's two scatters alone
    took 8 ms of a 2048-row training step. Other backends, and
    `amsgrad=True`, take Keras's `Adam` step.

    A model tuned with Keras's `Adam` may therefore need a larger learning
    rate for rows looked up many times per batch, such as a scenario
    embedding (we have not shown this is the only cause). In
    `tests/models/test_scenario_learning.py`, LHUC's AUC on its smallest
    scenario fell from above the test's 0.898 floor to 0.872 with
    `FusedAdam` at the same rate, so `kmtl.build` keeps Keras's `Adam` as
    its default.

    Args:
        learning_rate: float or schedule. Defaults to `0.001`.
        **kwargs: any other `keras.optimizers.Adam` argument (`beta_1`,
            `beta_2`, `epsilon`, `amsgrad`, `clipnorm`, ...).

    Example:

    ```python
    model = kmtl.build("mmoe", spec, optimizer=FusedAdam(3e-4))
    ```
    """

    def __init__(self, learning_rate: Any = 0.001, **kwargs: Any) -> None:
        kwargs.setdefault("name", "fused_adam")
        super().__init__(learning_rate=learning_rate, **kwargs)

    def update_step(self, gradient: Any, variable: Any, learning_rate):
        if keras.backend.backend() != "tensorflow" or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        dtype = variable.dtype
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.math.unsorted_segment_sum(
                gradient.values, gradient.indices, tf.shape(variable)[0]
            )
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )


__all__ = ["FusedAdam"]
