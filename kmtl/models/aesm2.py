"""AESM2: multi-scenario layers per hierarchy level, then a multi-task layer."""

from __future__ import annotations

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.layers.aesm2 import GATE_KINDS
from kmtl.layers.aesm2 import ExpertSelectionLayer
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_towers
from kmtl.models.registry import register_model
from kmtl.models.scenario import require_scenario
from kmtl.validation import Activation
from kmtl.validation import NonNegativeFloat
from kmtl.validation import NonNegativeInt
from kmtl.validation import OneOf
from kmtl.validation import OptionalUnits
from kmtl.validation import PositiveInt
from kmtl.validation import PositiveInts
from kmtl.validation import Units

# With "auto", a level with more values than this gets the shared gates:
# the per-gate scores cost O(d m n) per example beside the experts' own
# O(d units n), i.e. m / units of it: 25 % at 64 values and 256 units, 4x
# at 1,000 (measured: 0.30x the 4-scenario speed; benchmarks/
# scenario_scaling.py).
AUTO_SHARED_ABOVE = 64


def _level_gate_kind(gate_kind: str, num_gates: int) -> str:
    """The layer's `gate_kind` for a level of `num_gates` values."""
    if gate_kind != "auto":
        return gate_kind
    return "shared" if num_gates > AUTO_SHARED_ABOVE else "per_gate"


@register_model("aesm2")
def build_aesm2(
    spec: FeatureSpec,
    *,
    scenario_experts: PositiveInts = 8,
    task_experts: PositiveInt = 8,
    expert_units: Units = (256, 128),
    top_k_specific: NonNegativeInt = 2,
    top_k_shared: NonNegativeInt = 2,
    gate_embedding_dim: PositiveInt = 8,
    noise_stddev: NonNegativeFloat = 0.1,
    aux_loss_weight: NonNegativeFloat = 0.01,
    tower_units: OptionalUnits = (64,),
    activation: Activation = "relu",
    gate_kind: OneOf("auto", *GATE_KINDS) = "auto",
    layers_per_level: PositiveInt = 1,
) -> keras.Model:
    """AESM2: KL-based top-K expert selection per scenario level and task.

    `layers_per_level` multi-scenario `ExpertSelectionLayer`s per
    hierarchy level of the spec's scenario (`scenario.levels`, coarse to
    fine, then the scenario column itself; just the scenario without
    levels), each routing an example by its id at that level, and each
    gate reading, beside the hidden representation and its own gate
    embedding, the embeddings of the example's parent levels (the coarser
    ones: a channel's gate knows the country it is in); then one
    multi-task layer whose gates are the tasks and whose gate input adds
    the embeddings of the scenario and all its levels; then one tower per
    task. Each layer selects, per gate, the top-K specific and
    top-K shared experts by -KL to a one-hot and to the uniform target,
    with Gaussian noise on the gate logits in training and an auxiliary KL
    loss (Zou et al., SIGIR 2022).

    Args:
        spec: FeatureSpec with a scenario.
        scenario_experts: experts of each multi-scenario layer: an int for
            every level, or one per level (coarse to fine, the scenario
            last). Defaults to 8.
        task_experts: experts of the multi-task layer. Defaults to 8.
        top_k_specific: specific experts selected per gate, in every
            layer. Defaults to 2.
        top_k_shared: shared experts selected per gate, in every layer.
            Defaults to 2.
        expert_units: hidden units of each expert.
        gate_embedding_dim: width of the gate (scenario, task) embeddings
            in the gate inputs. Defaults to 8.
        noise_stddev: standard deviation of the gate logit noise in
            training; 0 disables it. Defaults to 0.1.
        aux_loss_weight: weight of each layer's auxiliary KL loss.
            Defaults to 0.01.
        tower_units: hidden units of each task tower.
        activation: hidden activation. Defaults to `"relu"`.
        gate_kind: the gates of the multi-scenario layers: `"per_gate"`
            (the paper's, a kernel per scenario, `O(d m n)` per example),
            `"shared"` (one kernel plus a bias per scenario, with a
            closed-form selection, `O(d n)` per example; see
            `ExpertSelectionLayer`), or `"auto"`: per level, `"per_gate"`
            up to 64 values and `"shared"` above, so that the cost stays
            flat as scenarios grow. The task layer keeps `"per_gate"`.
            Defaults to `"auto"`.
        layers_per_level: expert-selection layers stacked per scenario
            level, each routed by that level's id. Defaults to 1.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    scenario = require_scenario("aesm2", spec)
    num_gates = (*scenario.level_sizes, scenario.num_scenarios)
    if isinstance(scenario_experts, int):
        scenario_experts = (scenario_experts,) * len(num_gates)
    elif len(scenario_experts) != len(num_gates):
        raise ValueError(
            "Model 'aesm2': hparam `scenario_experts` must be an int or one "
            f"int per scenario level ({len(num_gates)}: "
            f"{[*scenario.level_names, scenario.name]}). "
            f"Received: scenario_experts={scenario_experts!r}"
        )
    layer_args = dict(
        top_k_specific=top_k_specific,
        top_k_shared=top_k_shared,
        expert_units=expert_units,
        gate_embedding_dim=gate_embedding_dim,
        noise_stddev=noise_stddev,
        aux_loss_weight=aux_loss_weight,
        activation=activation,
    )
    # === Inputs ===
    inputs, encoded, flat = encoded_inputs(spec)
    level_ids = [
        encoded["levels"][:, i] for i in range(len(scenario.levels))
    ] + [encoded["scenario"]]
    level_names = [*scenario.level_names, scenario.name]
    # The scenario's and its levels' embeddings (as `scenario_context`).
    embeddings = [
        keras.layers.Embedding(
            gates,
            gate_embedding_dim,
            name=(
                "scenario_embedding"
                if name == scenario.name
                else f"{name}_embedding"
            ),
        )(ids)
        for name, ids, gates in zip(
            level_names, level_ids, num_gates, strict=True
        )
    ]
    # === Layers ===
    hidden = flat
    for level, (name, ids, gates, experts) in enumerate(
        zip(level_names, level_ids, num_gates, scenario_experts, strict=True)
    ):
        parents = embeddings[:level]
        if len(parents) > 1:
            parents = [
                keras.layers.Concatenate(name=f"{name}_parents")(parents)
            ]
        for i in range(layers_per_level):
            hidden = ExpertSelectionLayer(
                num_gates=gates,
                num_experts=experts,
                name=f"scenario_layer_{name}" + (f"_{i}" if i else ""),
                gate_kind=_level_gate_kind(gate_kind, gates),
                **layer_args,
            )([hidden, ids, *parents])
    context = (
        embeddings[-1]
        if len(embeddings) == 1
        else keras.layers.Concatenate(name="scenario_context")(
            [embeddings[-1], *embeddings[:-1]]
        )
    )
    branches = ExpertSelectionLayer(
        num_gates=len(spec.tasks),
        num_experts=task_experts,
        per_gate_outputs=True,
        name="task_layer",
        **layer_args,
    )([hidden, context])
    # === Outputs ===
    outputs = task_towers(
        branches, spec.tasks, tower_units, activation=activation
    )
    return keras.Model(inputs, outputs)
