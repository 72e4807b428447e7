"""`GateStatistics`: each gate's entropy and largest share, every epoch."""

from __future__ import annotations

import importlib.util
from typing import Any

import keras

from kmtl.features.spec import FeatureSpec


class GateStatistics(keras.callbacks.Callback):
    """Logs the gate statistics of the model at the end of each epoch.

    For every gate of every gated layer (`kmtl.inspection.gated_layers`),
    on the rows of `data`:

    `entropy = mean_b -sum_e p[b, e] log p[b, e]` (nats) and
    `max_share = max_e mean_b w[b, e] / sum_e' mean_b w[b, e']`

    (`kmtl.inspection.gate_summary`). They are added to the epoch's logs as
    `"<prefix>/<layer>/<gate>/entropy"` and `".../max_share"`, so they
    appear in `History.history` and in a `keras.callbacks.TensorBoard`
    listed after this callback; with `log_dir`, they are also written as
    TensorBoard scalars there (needs the `tensorboard` package, the
    `kmtl[tensorboard]` extra). A gate collapsing onto one
    expert shows as `max_share` rising to 1 and `entropy` falling to 0.

    Args:
        data: pandas.DataFrame, dict of input arrays or `tf.data.Dataset`:
            the rows the statistics are computed on (a validation sample
            of a few thousand rows is enough).
        spec: FeatureSpec. Defaults to the one the model's encoder holds.
        batch_size: int. Rows per batch. Defaults to 4096.
        log_dir: str or None. A TensorBoard log folder to write the scalars
            to (step = epoch). Defaults to `None`.
        prefix: str. The prefix of the log keys. Defaults to `"gates"`.

    Example:

    ```python
    model = kmtl.build("mmoe", spec)
    history = model.fit(
        train_ds, epochs=3,
        callbacks=[kmtl.training.GateStatistics(valid_df)],
    )
    history.history["gates/mmoe/ctr/entropy"]  # one value per epoch
    ```
    """

    def __init__(
        self,
        data: Any,
        *,
        spec: FeatureSpec | None = None,
        batch_size: int = 4096,
        log_dir: str | None = None,
        prefix: str = "gates",
    ) -> None:
        super().__init__()
        if log_dir is not None and not all(
            importlib.util.find_spec(package)
            for package in ("tensorflow", "tensorboard")
        ):
            raise ValueError(
                "GateStatistics: `log_dir` writes TensorBoard summaries, "
                "which need TensorFlow and TensorBoard: pip install "
                '"kmtl[tensorboard]". Received: '
                f"log_dir={log_dir!r}"
            )
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(
                "GateStatistics: `prefix` must be a non-empty str. "
                f"Received: prefix={prefix!r}"
            )
        self.data = data
        self.spec = spec
        self.batch_size = batch_size
        self.log_dir = log_dir
        self.prefix = prefix
        self._writer = None

    def on_epoch_end(
        self, epoch: int, logs: dict[str, Any] | None = None
    ) -> None:
        from kmtl.inspection import gate_statistics
        from kmtl.inspection import gate_summary

        table = gate_statistics(
            self.model,
            self.data,
            spec=self.spec,
            batch_size=self.batch_size,
            by_scenario=False,
        )
        values = {
            f"{self.prefix}/{key}": value
            for key, value in gate_summary(table).items()
        }
        if logs is not None:
            logs.update(values)
        if self.log_dir is not None:
            self._write(epoch, values)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write(self, epoch: int, values: dict[str, float]) -> None:
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            for name, value in values.items():
                tf.summary.scalar(name, value, step=epoch)
        self._writer.flush()


__all__ = ["GateStatistics"]
