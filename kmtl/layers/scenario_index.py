"""The scenario index check every scenario-conditioned layer shares."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def check_scenario_ids(ids: Any, num_scenarios: int, column: str) -> Any:
    """Casts scenario ids to int32 and, on the TensorFlow backend, fails
    with an error naming `column` when one is outside `[0, num_scenarios)`.

    A served model answers such a request with `InvalidArgument`. Other
    backends cannot raise on tensor values inside a compiled function;
    `kmtl.data` checks the ids before they reach the model there.

    Args:
        ids: int tensor `[B]`. Scenario indices.
        num_scenarios: int. Number of scenarios.
        column: str. The scenario column, for the message.

    The range is checked at the ids' own width (int64 at serving) before
    the cast, so `2**32 + 1` is an error, not scenario 1.

    Returns:
        The ids as int32, unchanged.
    """
    if keras.backend.backend() != "tensorflow":
        return ops.cast(ids, "int32")
    import tensorflow as tf

    ids = tf.convert_to_tensor(ids)
    ok = tf.reduce_all(
        tf.logical_and(ids >= 0, ids < num_scenarios), name="scenario_ok"
    )
    message = (
        f"Scenario column {column} must hold ids in [0, {num_scenarios}); "
        "received:"
    )
    with tf.control_dependencies(
        [tf.debugging.Assert(ok, [message, ids], summarize=16)]
    ):
        return tf.cast(ids, tf.int32)


__all__ = ["check_scenario_ids"]
