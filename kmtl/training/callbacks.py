"""Callbacks that make `fit` survive a kill and stop on a non-finite loss."""

from __future__ import annotations

import math
import os
import re
from typing import Any

import keras

_CHECKPOINT = re.compile(r"^epoch-(\d{6})\.weights\.h5$")
_PARTIAL = ".partial.weights.h5"


def _checkpoints(directory: str) -> list[tuple[int, str]]:
    """The complete checkpoints in `directory`, oldest first."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        match = _CHECKPOINT.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(directory, name)))
    return sorted(found)


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss (see `StopOnNonFiniteLoss`)."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops `fit` at the first step whose loss is NaN or infinite.

    Keras's `TerminateOnNaN` stops silently on the total loss; this one
    raises `NonFiniteLossError` naming the epoch, the step and every task
    whose loss is not finite (the per-output `<task>_loss` logs), so a NaN
    never trains on unnoticed. The weights are left as they were after the
    failing step; a checkpoint (`EpochCheckpoint`) holds the last good ones.

    Example:

    ```python
    model.fit(ds, epochs=3, callbacks=[kmtl.training.StopOnNonFiniteLoss()])
    ```
    """

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        logs = logs or {}
        bad = {
            key: float(value)
            for key, value in logs.items()
            if key == "loss" or key.endswith("_loss")
            if not math.isfinite(float(value))
        }
        if not bad:
            return
        tasks = sorted(k[: -len("_loss")] for k in bad if k != "loss")
        outputs = getattr(self.model, "output_names", None) or []
        if not tasks and len(outputs) == 1:  # one output: no per-task logs
            tasks = list(outputs)
        raise NonFiniteLossError(
            f"Training stopped at epoch {getattr(self, '_epoch', 0) + 1}, "
            f"step {batch + 1}: the loss is not finite ({bad}); "
            + (f"task(s) {tasks}. " if tasks else "")
            + "Check those tasks' labels and features for NaN or inf, "
            "and the learning rate."
        )


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the training state after every epoch so that a killed `fit`
    resumes where the last complete epoch ended.

    Each epoch's state (the model's weights, the optimizer's variables and
    every seed generator's state, as `model.save_weights` writes them) goes
    to `epoch-<n>.partial.weights.h5` in `directory`, is flushed to disk,
    then renamed to `epoch-<n>.weights.h5`: a rename is atomic, so a kill
    at any moment, during a write included, leaves the previous complete
    checkpoint or the new one, never a truncated file. Older checkpoints
    are removed after the rename. On `fit`'s start the newest complete
    checkpoint is loaded and training continues from the next epoch
    (`fit`'s initial epoch is set through the model, as Keras's
    `BackupAndRestore` does); partial files are removed.

    Resumed training ends with the same weights as an uninterrupted run
    when the data comes in the same order every epoch (no shuffling, or a
    pipeline whose order depends on the epoch only); with a shuffled
    `tf.data` pipeline the resumed epochs see other orders, so the weights
    differ by what another shuffle gives.

    Args:
        directory: str. Where the checkpoints go (created if needed).
        delete_on_end: bool. Remove the checkpoints when `fit` finishes
            normally. Defaults to `True`.

    Example:

    ```python
    model.fit(ds, epochs=10,
              callbacks=kmtl.training.resumable_callbacks("backup/"))
    # killed, then run again: it restarts after the last complete epoch.
    ```
    """

    def __init__(self, directory: str, delete_on_end: bool = True) -> None:
        super().__init__()
        if not isinstance(directory, (str, os.PathLike)) or not str(directory):
            raise ValueError(
                "EpochCheckpoint: `directory` must be a non-empty path. "
                f"Received: directory={directory!r}"
            )
        self.directory = os.fspath(directory)
        self.delete_on_end = delete_on_end

    def on_train_begin(self, logs: Any = None) -> None:
        os.makedirs(self.directory, exist_ok=True)
        for name in os.listdir(self.directory):
            if name.endswith(_PARTIAL):  # a write a kill interrupted
                os.remove(os.path.join(self.directory, name))
        checkpoints = _checkpoints(self.directory)
        if not checkpoints:
            return
        epoch, path = checkpoints[-1]
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(path)
        self.model._initial_epoch = epoch

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        done = epoch + 1
        final = os.path.join(self.directory, f"epoch-{done:06d}.weights.h5")
        # save_weights needs the .weights.h5 ending, so the partial file
        # keeps it.
        staging = os.path.join(self.directory, f"epoch-{done:06d}{_PARTIAL}")
        self.model.save_weights(staging, overwrite=True)
        with open(staging, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(staging, final)
        _fsync_directory(self.directory)
        for older, path in _checkpoints(self.directory):
            if older < done:
                os.remove(path)

    def on_train_end(self, logs: Any = None) -> None:
        if not self.delete_on_end or self.model.stop_training:
            return
        for _, path in _checkpoints(self.directory):
            os.remove(path)


def _fsync_directory(path: str) -> None:
    """Makes a rename inside `path` durable (no-op where unsupported)."""
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def resumable_callbacks(
    directory: str, delete_on_end: bool = True
) -> list[keras.callbacks.Callback]:
    """The callbacks that make `fit` survive a kill and a NaN.

    Args:
        directory: str. The checkpoint directory (`EpochCheckpoint`).
        delete_on_end: bool. Remove the checkpoints after a normal end.
            Defaults to `True`.

    Returns:
        `[StopOnNonFiniteLoss(), EpochCheckpoint(directory, ...)]`.
    """
    return [
        StopOnNonFiniteLoss(),
        EpochCheckpoint(directory, delete_on_end=delete_on_end),
    ]


def read_checkpoint_epoch(directory: str) -> int:
    """The epoch of the newest complete checkpoint in `directory` (0 if
    none)."""
    checkpoints = _checkpoints(directory)
    return checkpoints[-1][0] if checkpoints else 0


__all__ = [
    "EpochCheckpoint",
    "NonFiniteLossError",
    "StopOnNonFiniteLoss",
    "read_checkpoint_epoch",
    "resumable_callbacks",
]
