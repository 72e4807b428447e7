"""Task heads: the encoded-input block every model starts from, towers,
and the named output of each task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from kmtl.features.encoder import FeatureEncoder
from kmtl.features.inputs import inputs as make_inputs
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import TaskSpec
from kmtl.layers.missing_value import MissingValueLayer
from kmtl.layers.mlp import MLP


def encoded_inputs(
    spec: FeatureSpec, *, missing_values: str = "mean"
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Inputs, their encoding and the flat vector most backbones take.

    Args:
        spec: FeatureSpec.
        missing_values: str. How a missing numerical reaches the flat
            vector: `"mean"`, the encoder's fill (the feature's mean, 0 once
            normalised), or `"learned"`, a fill learned per numerical
            (`MissingValueLayer`). Defaults to `"mean"`.

    Returns:
        (inputs, encoded, flat): the dict of `keras.Input`s, the
        `FeatureEncoder` output dict, and `[B, F * D + Dd]`, the field
        embeddings flattened and concatenated with the dense vector.
    """
    inputs = make_inputs(spec)
    encoded = FeatureEncoder(spec, name="feature_encoder")(inputs)
    parts = []
    fields = encoded["fields"]
    if fields.shape[1]:
        parts.append(keras.layers.Flatten(name="flatten_fields")(fields))
    if "dense" in encoded:
        dense = encoded["dense"]
        if missing_values == "learned":
            dense = MissingValueLayer(name="missing_values")(
                [dense, encoded["dense_mask"]]
            )
        parts.append(dense)
    flat = (
        parts[0]
        if len(parts) == 1
        else keras.layers.Concatenate(name="flat_inputs")(parts)
    )
    return inputs, encoded, flat


_ACTIVATIONS = {
    "binary": "sigmoid",
    "regression": None,
    "multiclass": "softmax",
}


def task_width(task: TaskSpec) -> int:
    """Output width of a task: its classes when multiclass, else 1."""
    return task.num_classes if task.kind == "multiclass" else 1


def task_output(x: Any, task: TaskSpec, name: str | None = None) -> Any:
    """The output layer of one task: sigmoid probability (binary), linear
    value (regression) or softmax over classes (multiclass), named after
    the task.

    Args:
        x: tensor `[B, h]`, the task's tower output.
        task: TaskSpec.
        name: str. Layer (and output) name. Defaults to `task.name`.

    Returns:
        `[B, 1]` (or `[B, num_classes]`) tensor.
    """
    return keras.layers.Dense(
        task_width(task),
        activation=_ACTIVATIONS[task.kind],
        name=name or task.name,
    )(x)


def task_activation(logits: Any, task: TaskSpec) -> Any:
    """The task's output activation on logits it was given (for models that
    sum several logits), named after the task.

    Args:
        logits: tensor `[B, task_width(task)]`.
        task: TaskSpec.

    Returns:
        The task's output tensor.
    """
    return keras.layers.Activation(
        _ACTIVATIONS[task.kind] or "linear", name=task.name
    )(logits)


def task_towers(
    branches: Sequence[Any],
    tasks: Sequence[TaskSpec],
    tower_units: Sequence[int],
    *,
    activation: str = "relu",
    dropout: float = 0.0,
) -> dict[str, Any]:
    """One tower (MLP) and output per task, on that task's branch.

    Args:
        branches: one tensor per task (a switcher's outputs).
        tasks: the TaskSpecs, in the same order.
        tower_units: hidden units of each tower; empty for none.
        activation: str. Defaults to `"relu"`.
        dropout: float. Defaults to 0.

    Returns:
        dict task name -> output tensor.
    """
    outputs = {}
    for branch, task in zip(branches, tasks, strict=True):
        if tower_units:
            branch = MLP(
                tower_units,
                activation=activation,
                dropout=dropout,
                name=f"{task.name}_tower",
            )(branch)
        outputs[task.name] = task_output(branch, task)
    return outputs


def sequence_steps(
    encoded: dict[str, Any], spec: FeatureSpec, name: str
) -> tuple[Any, Any]:
    """The steps of sequence `name` with its step features beside them.

    Args:
        encoded: the `FeatureEncoder` output.
        spec: FeatureSpec.
        name: a `SequenceFeature` that is not itself a step feature.

    Returns:
        (steps, mask): `[B, L, D * (1 + k)]`, the sequence's step
        embeddings concatenated with those of its `k` step features
        (`spec.step_features(name)`), and its `[B, L]` 1/0 mask.
    """
    parts = [encoded["sequences"][name]] + [
        encoded["sequences"][step] for step in spec.step_features(name)
    ]
    steps = (
        parts[0]
        if len(parts) == 1
        else keras.layers.Concatenate(name=f"{name}_steps")(parts)
    )
    return steps, encoded["sequence_masks"][name]


def require_sequence(model: str, spec: FeatureSpec, name: str | None) -> str:
    """The behaviour sequence a sequence model reads: `name`, or the spec's
    first sequence that is not a step feature.

    Raises:
        ValueError: naming `model`, when the spec has no such sequence.
    """
    heads = [
        f.name
        for f in spec.features
        if f.kind == "sequence" and f.step_of is None
    ]
    if name is None and heads:
        return heads[0]
    if name in heads:
        return name
    raise ValueError(
        f"Model {model!r} needs a behaviour sequence: declare a "
        "SequenceFeature (e.g. `SequenceFeature('history', max_length=20, "
        "shared_with='item_id')`)"
        + (f" named {name!r}" if name is not None else "")
        + f". Received the sequences {heads or 'none'}."
    )
