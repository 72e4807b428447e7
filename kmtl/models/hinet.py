"""HiNet: scenario extraction, then task extraction with a switcher."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.layers.hinet import ScenarioExtractionLayer
from kmtl.layers.switcher import get_switcher
from kmtl.models.heads import check_positive
from kmtl.models.heads import check_units
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_towers
from kmtl.models.registry import register_model
from kmtl.models.scenario import require_scenario

TASK_SWITCHERS = ("cgc", "mmoe")


@register_model("hinet")
def build_hinet(
    spec: FeatureSpec,
    *,
    num_shared_experts: int = 4,
    num_specific_experts: int = 2,
    expert_units: Sequence[int] = (256, 128),
    scenario_embedding_dim: int = 8,
    task_switcher: str = "cgc",
    num_task_experts: int = 2,
    num_shared_task_experts: int = 2,
    task_expert_units: Sequence[int] = (128,),
    tower_units: Sequence[int] = (64,),
    activation: str = "relu",
) -> keras.Model:
    """HiNet: scenario experts with scenario attention, then task experts.

    The scenario extraction layer (`ScenarioExtractionLayer`) mixes
    scenario-shared experts, the example's scenario's own experts and, by
    a scenario-aware attention, the other scenarios' experts; its output
    goes to a task extraction switcher (CGC as in the paper, or MMoE),
    then one tower per task (Zhou et al., ICDE 2023).

    Args:
        spec: FeatureSpec with a scenario.
        num_shared_experts: scenario-shared experts. Defaults to 4.
        num_specific_experts: experts of each scenario. Defaults to 2.
        expert_units: hidden units of each scenario expert.
        scenario_embedding_dim: width of the scenario embedding of the
            scenario-aware attention. Defaults to 8.
        task_switcher: `"cgc"` (the paper) or `"mmoe"`. Defaults to
            `"cgc"`.
        num_task_experts: CGC experts of each task. Defaults to 2.
        num_shared_task_experts: CGC shared experts. Defaults to 2. MMoE
            gets `num_shared_task_experts + num_tasks * num_task_experts`
            experts, as many as CGC.
        task_expert_units: hidden units of each task expert.
        tower_units: hidden units of each task tower.
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    require_scenario("hinet", spec)
    check_positive("hinet", "num_shared_experts", num_shared_experts)
    check_positive("hinet", "num_specific_experts", num_specific_experts)
    check_units("hinet", "expert_units", expert_units, False)
    check_positive("hinet", "scenario_embedding_dim", scenario_embedding_dim)
    if task_switcher not in TASK_SWITCHERS:
        raise ValueError(
            f"Model 'hinet': hparam `task_switcher` must be one of "
            f"{list(TASK_SWITCHERS)}. Received: task_switcher="
            f"{task_switcher!r}"
        )
    check_positive("hinet", "num_task_experts", num_task_experts)
    check_positive("hinet", "num_shared_task_experts", num_shared_task_experts)
    check_units("hinet", "task_expert_units", task_expert_units, False)
    check_units("hinet", "tower_units", tower_units, True)
    num_tasks = len(spec.tasks)
    if task_switcher == "cgc":
        switcher_args = dict(
            num_shared_experts=num_shared_task_experts,
            num_task_experts=num_task_experts,
        )
    else:
        switcher_args = dict(
            num_experts=num_shared_task_experts + num_tasks * num_task_experts
        )
    # === Inputs ===
    inputs, encoded, flat = encoded_inputs(spec)
    # === Layers ===
    scenario_out = ScenarioExtractionLayer(
        num_scenarios=spec.scenario.num_scenarios,
        num_shared_experts=num_shared_experts,
        num_specific_experts=num_specific_experts,
        expert_units=tuple(expert_units),
        scenario_embedding_dim=scenario_embedding_dim,
        activation=activation,
        name="scenario_extraction",
    )([flat, encoded["scenario"]])
    branches = get_switcher(
        task_switcher,
        num_tasks,
        expert_units=tuple(task_expert_units),
        activation=activation,
        name="task_extraction",
        **switcher_args,
    )(scenario_out)
    # === Outputs ===
    outputs = task_towers(
        branches, spec.tasks, tower_units, activation=activation
    )
    return keras.Model(inputs, outputs, name="hinet")
