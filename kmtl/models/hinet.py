"""HiNet: scenario extraction, then task extraction with a switcher."""

from __future__ import annotations

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.layers.hinet import SPECIFIC_KINDS
from kmtl.layers.hinet import ScenarioExtractionLayer
from kmtl.layers.switcher import SwitcherName
from kmtl.layers.switcher import get_switcher
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_towers
from kmtl.models.registry import register_model
from kmtl.models.scenario import require_scenario
from kmtl.validation import Activation
from kmtl.validation import NonNegativeInt
from kmtl.validation import OneOf
from kmtl.validation import OptionalUnits
from kmtl.validation import PositiveInt
from kmtl.validation import Units


@register_model("hinet")
def build_hinet(
    spec: FeatureSpec,
    *,
    expert_units: Units = (256, 128),
    num_shared_experts: PositiveInt = 4,
    num_specific_experts: PositiveInt = 2,
    scenario_embedding_dim: PositiveInt = 8,
    specific_kind: OneOf("auto", *SPECIFIC_KINDS) = "auto",
    attention_top_k: NonNegativeInt = 3,
    task_switcher: SwitcherName = "cgc",
    num_task_experts: PositiveInt = 2,
    num_shared_task_experts: PositiveInt = 2,
    task_expert_units: Units = (128,),
    tower_units: OptionalUnits = (64,),
    activation: Activation = "relu",
) -> keras.Model:
    """HiNet: scenario experts with scenario attention, then task experts.

    The scenario extraction layer (`ScenarioExtractionLayer`) mixes
    scenario-shared experts, the example's scenario's own experts and, by
    a scenario-aware attention, the other scenarios' experts; its output
    goes to a task extraction switcher (CGC as in the paper, or MMoE),
    then one tower per task (Zhou et al., ICDE 2023).

    The paper's form computes every scenario's experts on every example
    (the attention reads them all), so its cost grows with the number of
    scenarios `S` (ae-synth workload, batch 2048: 3.1k examples/s at 4
    scenarios, 0.6k and 3.75 GiB peak RSS at 32, out of memory at 100 on
    24 GiB). `specific_kind="auto"` keeps it while the factored form's
    attention would read every other scenario anyway (`S <=
    attention_top_k + 1`, 12 expert passes by default) and switches to
    the factored form above, whose cost per example does not depend on
    `S` (see `ScenarioExtractionLayer`; 3.1-6.1k examples/s and 1.3 GiB
    at 32, 100 and 1,000 scenarios, `benchmarks/scenario_scaling.py` on a
    shared 2-core CPU, two runs).

    Args:
        spec: FeatureSpec with a scenario.
        num_shared_experts: scenario-shared experts. Defaults to 4.
        num_specific_experts: experts of each scenario. Defaults to 2.
        expert_units: hidden units of each scenario expert.
        scenario_embedding_dim: width of the scenario embedding of the
            scenario-aware attention. Defaults to 8.
        specific_kind: the scenario-specific experts: `"full"` (the
            paper's, a set of experts per scenario, the attention over
            every other scenario), `"factored"` (shared experts rescaled
            by per-scenario rank-1 factors, the attention over the
            `attention_top_k` other scenarios it weighs most) or `"auto"`:
            `"full"` when `S <= attention_top_k + 1`, else `"factored"`.
            Defaults to `"auto"`.
        attention_top_k: other scenarios the factored attention reads per
            example. Defaults to 3 (with up to 4 scenarios, every other
            one).
        task_switcher: any registered switcher
            (`kmtl.layers.switcher_names()`): `"cgc"` (the paper),
            `"mmoe"`, `"omoe"`, `"shared_bottom"`, ... Defaults to `"cgc"`.
        num_task_experts: the task switcher's experts of each task.
            Defaults to 2.
        num_shared_task_experts: the task switcher's shared experts.
            Defaults to 2. This budget is mapped by each switcher: CGC
            takes it as is, MMoE pools it into `num_shared_task_experts +
            num_tasks * num_task_experts` experts (as many as CGC).
        task_expert_units: hidden units of each task expert.
        tower_units: hidden units of each task tower.
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    num_scenarios = require_scenario("hinet", spec).num_scenarios
    if specific_kind == "auto":
        specific_kind = (
            "full" if num_scenarios <= attention_top_k + 1 else "factored"
        )
    # === Inputs ===
    inputs, encoded, flat = encoded_inputs(spec)
    # === Layers ===
    scenario_out = ScenarioExtractionLayer(
        num_scenarios=num_scenarios,
        num_shared_experts=num_shared_experts,
        num_specific_experts=num_specific_experts,
        expert_units=expert_units,
        scenario_embedding_dim=scenario_embedding_dim,
        specific_kind=specific_kind,
        attention_top_k=attention_top_k,
        activation=activation,
        name="scenario_extraction",
    )([flat, encoded["scenario"]])
    branches = get_switcher(
        task_switcher,
        len(spec.tasks),
        num_shared_experts=num_shared_task_experts,
        num_task_experts=num_task_experts,
        expert_units=task_expert_units,
        activation=activation,
        name="task_extraction",
    )(scenario_out)
    # === Outputs ===
    outputs = task_towers(
        branches, spec.tasks, tower_units, activation=activation
    )
    return keras.Model(inputs, outputs)
