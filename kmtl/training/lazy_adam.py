"""`LazyAdam`: Adam that updates only the embedding rows a batch touched."""

from __future__ import annotations

from typing import Any

import keras

from kmtl.training.fused_adam import FusedAdam


@keras.saving.register_keras_serializable(package="kmtl")
class LazyAdam(FusedAdam):
    """Adam with row-wise (lazy) updates for sparse gradients.

    A gather from an embedding table has a sparse gradient (on the
    TensorFlow backend, `tf.IndexedSlices`): only the rows the batch looked
    up. Keras's `Adam` still decays both moments of every row and rewrites
    the whole table each step, which costs as much as the table is large.
    `LazyAdam` updates the moments and the weights of the touched rows only
    (repeated ids summed first), the rule of TF1's `LazyAdamOptimizer` and
    PyTorch's `SparseAdam`:

    `m_r = b1 m_r + (1 - b1) g_r`, `v_r = b2 v_r + (1 - b2) g_r^2`,
    `w_r -= lr sqrt(1 - b2^t) / (1 - b1^t) m_r / (sqrt(v_r) + eps)`

    for the rows `r` in the batch; other rows, and their moments, stay as
    they are (plain Adam would keep moving a row on its old momentum).
    Dense gradients take Adam's step unchanged (`FusedAdam`'s fused kernel
    on TensorFlow, Keras's `Adam` on other backends). Keras 3 and keras-rs
    have no lazy optimizer, hence this one.

    Args:
        learning_rate: float or schedule. Defaults to `0.001`.
        **kwargs: any other `keras.optimizers.Adam` argument (`beta_1`,
            `beta_2`, `epsilon`, `clipnorm`, ...). `amsgrad` is not
            supported.

    Example:

    ```python
    model = kmtl.build("mmoe", spec, optimizer=kmtl.training.LazyAdam())
    ```
    """

    def __init__(self, learning_rate: Any = 0.001, **kwargs: Any) -> None:
        if kwargs.get("amsgrad"):
            raise ValueError(
                "`LazyAdam` does not support `amsgrad=True`. "
                "Use `keras.optimizers.Adam(amsgrad=True)` instead."
            )
        kwargs.setdefault("name", "lazy_adam")
        super().__init__(learning_rate=learning_rate, **kwargs)

    def update_step(self, gradient: Any, variable: Any, learning_rate):
        if keras.backend.backend() != "tensorflow":
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        rows, position = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(
            tf.cast(gradient.values, dtype), position, tf.shape(rows)[0]
        )
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        alpha = (
            tf.cast(learning_rate, dtype)
            * tf.sqrt(1 - tf.pow(beta_2, step))
            / (1 - tf.pow(beta_1, step))
        )
        index = self._get_variable_index(variable)
        m = self._momentums[index]
        v = self._velocities[index]
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(values)
        # With `tf.IndexedSlices`, Keras's TF optimizer scatters the rows.
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        self.assign_sub(
            variable,
            tf.IndexedSlices(
                alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows
            ),
        )


__all__ = ["LazyAdam"]
