"""MMoE and OMoE: a mixture of expert MLPs, gated per task or once."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.layers.mmoe import MMoELayer
from kmtl.models.heads import check_positive
from kmtl.models.heads import check_units
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_towers
from kmtl.models.registry import register_model


def _build_moe(
    name: str,
    spec: FeatureSpec,
    shared_gate: bool,
    num_experts: int,
    expert_units: Sequence[int],
    tower_units: Sequence[int],
    activation: str,
) -> keras.Model:
    check_positive(name, "num_experts", num_experts)
    check_units(name, "expert_units", expert_units, False)
    check_units(name, "tower_units", tower_units, True)
    # === Inputs ===
    inputs, _, flat = encoded_inputs(spec)
    # === Layers ===
    branches = MMoELayer(
        num_tasks=len(spec.tasks),
        num_experts=num_experts,
        expert_units=tuple(expert_units),
        shared_gate=shared_gate,
        activation=activation,
        name=name,
    )(flat)
    # === Outputs ===
    outputs = task_towers(
        branches, spec.tasks, tower_units, activation=activation
    )
    return keras.Model(inputs, outputs, name=name)


@register_model("mmoe")
def build_mmoe(
    spec: FeatureSpec,
    *,
    num_experts: int = 8,
    expert_units: Sequence[int] = (256, 128),
    tower_units: Sequence[int] = (64,),
    activation: str = "relu",
) -> keras.Model:
    """MMoE: shared experts, one softmax gate per task (Ma et al., KDD 2018).

    Args:
        spec: FeatureSpec.
        num_experts: number of expert MLPs. Defaults to 8.
        expert_units: hidden units of each expert.
        tower_units: hidden units of each task tower.
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    return _build_moe(
        "mmoe",
        spec,
        False,
        num_experts,
        expert_units,
        tower_units,
        activation,
    )


@register_model("omoe")
def build_omoe(
    spec: FeatureSpec,
    *,
    num_experts: int = 8,
    expert_units: Sequence[int] = (256, 128),
    tower_units: Sequence[int] = (64,),
    activation: str = "relu",
) -> keras.Model:
    """OMoE: shared experts mixed by one gate for all tasks (MMoE paper).

    Args:
        spec: FeatureSpec.
        num_experts: number of expert MLPs. Defaults to 8.
        expert_units: hidden units of each expert.
        tower_units: hidden units of each task tower.
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    return _build_moe(
        "omoe",
        spec,
        True,
        num_experts,
        expert_units,
        tower_units,
        activation,
    )
