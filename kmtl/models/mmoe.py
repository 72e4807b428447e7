"""MMoE and its OMoE variant: expert MLPs mixed by a gate per task, or one."""

from __future__ import annotations

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.layers.mmoe import MMoELayer
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_towers
from kmtl.models.registry import register_model
from kmtl.validation import Activation
from kmtl.validation import Bool
from kmtl.validation import OptionalUnits
from kmtl.validation import PositiveInt
from kmtl.validation import Units


@register_model(
    "omoe",
    fixed={"shared_gate": True},
    description="OMoE: shared experts mixed by one gate for all tasks "
    "(the MMoE paper's baseline).",
)
@register_model("mmoe")
def build_mmoe(
    spec: FeatureSpec,
    *,
    num_experts: PositiveInt = 8,
    expert_units: Units = (256, 128),
    tower_units: OptionalUnits = (64,),
    activation: Activation = "relu",
    shared_gate: Bool = False,
) -> keras.Model:
    """MMoE: shared experts, one softmax gate per task (Ma et al., KDD 2018).

    `y_k = sum_e softmax(x W_k)[e] f_e(x)`, then a tower per task; with
    `shared_gate=True` one gate serves every task (OMoE, registered as
    `"omoe"`).

    Args:
        spec: FeatureSpec.
        num_experts: number of expert MLPs. Defaults to 8.
        expert_units: hidden units of each expert.
        tower_units: hidden units of each task tower (may be empty).
        activation: hidden activation. Defaults to `"relu"`.
        shared_gate: one gate for all tasks (OMoE). Defaults to `False`.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    num_tasks = len(spec.tasks)
    # === Inputs ===
    inputs, _, flat = encoded_inputs(spec)
    # === Layers ===
    branches = MMoELayer(
        num_tasks,
        num_experts,
        shared_gate,
        expert_units=expert_units,
        activation=activation,
        name="omoe" if shared_gate else "mmoe",
    )(flat)
    # === Outputs ===
    return keras.Model(
        inputs,
        task_towers(branches, spec.tasks, tower_units, activation=activation),
    )
