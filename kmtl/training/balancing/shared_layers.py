"""The layers of a functional model that several outputs depend on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras


def shared_layers(model: Any, outputs: Sequence[str]) -> list[Any]:
    """The layers with trainable weights on the path of at least two of
    `outputs`, in the model's topological order (`model.layers`).

    Args:
        model: a functional `keras.Model` with dict outputs.
        outputs: output names.

    Returns:
        list of layers (the last one is the last shared layer).

    Example: for a shared-bottom model with towers `ctr` and `cvr`, the
    encoder and the bottom MLP, not the towers.
    """
    uses: dict[int, int] = {}
    for name in outputs:
        graph = keras.Function(model.inputs, [model.output[name]])
        for operation in {id(op): op for op in graph.operations}.values():
            uses[id(operation)] = uses.get(id(operation), 0) + 1
    return [
        layer
        for layer in model.layers
        if uses.get(id(layer), 0) >= 2 and layer.trainable_weights
    ]


__all__ = ["shared_layers"]
