"""PLE: stacked CGC levels of shared and task-specific experts."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.layers.cgc import CGCLayer
from kmtl.models.heads import check_positive
from kmtl.models.heads import check_units
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_towers
from kmtl.models.registry import register_model


@register_model("ple")
def build_ple(
    spec: FeatureSpec,
    *,
    num_levels: int = 2,
    num_shared_experts: int = 2,
    num_task_experts: int = 2,
    expert_units: Sequence[int] = (256, 128),
    tower_units: Sequence[int] = (64,),
    activation: str = "relu",
) -> keras.Model:
    """PLE: progressive layered extraction, CGC levels (Tang et al. 2020).

    Every level but the last also mixes all experts into a shared output
    that feeds the next level's shared experts; `num_levels=1` is CGC.

    Args:
        spec: FeatureSpec.
        num_levels: number of stacked CGC levels. Defaults to 2.
        num_shared_experts: shared experts per level. Defaults to 2.
        num_task_experts: experts of each task per level. Defaults to 2.
        expert_units: hidden units of each expert.
        tower_units: hidden units of each task tower.
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    check_positive("ple", "num_levels", num_levels)
    check_positive("ple", "num_shared_experts", num_shared_experts)
    check_positive("ple", "num_task_experts", num_task_experts)
    check_units("ple", "expert_units", expert_units, False)
    check_units("ple", "tower_units", tower_units, True)
    # === Inputs ===
    inputs, _, flat = encoded_inputs(spec)
    # === Layers ===
    branches = flat
    for level in range(num_levels):
        branches = CGCLayer(
            num_tasks=len(spec.tasks),
            num_shared_experts=num_shared_experts,
            num_task_experts=num_task_experts,
            expert_units=tuple(expert_units),
            return_shared=level < num_levels - 1,
            activation=activation,
            name=f"cgc_{level}",
        )(branches)
    # === Outputs ===
    outputs = task_towers(
        branches, spec.tasks, tower_units, activation=activation
    )
    return keras.Model(inputs, outputs, name="ple")
