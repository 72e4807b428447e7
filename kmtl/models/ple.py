"""PLE: stacked CGC levels of shared and task-specific experts; CGC is one."""

from __future__ import annotations

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.layers.cgc import CGCLayer
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_towers
from kmtl.models.registry import register_model
from kmtl.validation import Activation
from kmtl.validation import NonNegativeInt
from kmtl.validation import OptionalUnits
from kmtl.validation import PositiveInt
from kmtl.validation import Units


@register_model(
    "cgc",
    fixed={"num_levels": 1},
    description="CGC: one PLE level, task-specific and shared experts per "
    "task (Tang et al. 2020).",
)
@register_model("ple")
def build_ple(
    spec: FeatureSpec,
    *,
    num_levels: PositiveInt = 2,
    num_shared_experts: NonNegativeInt = 2,
    num_task_experts: NonNegativeInt = 2,
    expert_units: Units = (256, 128),
    tower_units: OptionalUnits = (64,),
    activation: Activation = "relu",
) -> keras.Model:
    """PLE: progressive layered extraction, CGC levels (Tang et al. 2020).

    Every level but the last also mixes all experts into a shared output
    that feeds the next level's shared experts; `num_levels=1` is CGC
    (registered as `"cgc"`). Each task gate needs at least one expert
    (`num_shared_experts + num_task_experts >= 1`, checked by `CGCLayer`).

    Args:
        spec: FeatureSpec.
        num_levels: number of stacked CGC levels. Defaults to 2.
        num_shared_experts: shared experts per level. Defaults to 2.
        num_task_experts: experts of each task per level. Defaults to 2.
        expert_units: hidden units of each expert.
        tower_units: hidden units of each task tower (may be empty).
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    # === Inputs ===
    inputs, _, branches = encoded_inputs(spec)
    # === Layers ===
    for level in range(num_levels):
        branches = CGCLayer(
            num_tasks=len(spec.tasks),
            num_shared_experts=num_shared_experts,
            num_task_experts=num_task_experts,
            expert_units=expert_units,
            return_shared=level < num_levels - 1,
            activation=activation,
            name=f"cgc_{level}",
        )(branches)
    # === Outputs ===
    outputs = task_towers(
        branches, spec.tasks, tower_units, activation=activation
    )
    return keras.Model(inputs, outputs)
