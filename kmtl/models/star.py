"""STAR: one star-topology network for all scenarios (Sheng et al., 2021)."""

from __future__ import annotations

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.layers.mlp import MLP
from kmtl.layers.partitioned_normalization import PartitionedNormalization
from kmtl.layers.star_dense import STARDense
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_activation
from kmtl.models.heads import task_width
from kmtl.models.registry import register_model
from kmtl.models.scenario import require_scenario
from kmtl.models.scenario import scenario_context
from kmtl.validation import Activation
from kmtl.validation import NonNegativeInt
from kmtl.validation import OptionalUnits
from kmtl.validation import Units


@register_model("star")
def build_star(
    spec: FeatureSpec,
    *,
    star_units: Units = (256, 128),
    tower_units: OptionalUnits = (64,),
    auxiliary_units: OptionalUnits = (32,),
    scenario_rank: NonNegativeInt = 0,
    activation: Activation = "relu",
) -> keras.Model:
    """STAR: partitioned normalisation, a star-topology FCN and an
    auxiliary network on the scenario, their logits summed.

    Every `STARDense` layer multiplies a shared kernel by the example's
    scenario kernel (`W_p * W`) and adds the biases; `scenario_rank > 0`
    replaces the full per-scenario kernels by rank-k factors whose cost
    does not grow with the number of scenarios. Each task has a tower on
    the star network's output; its logit is summed with the auxiliary
    network's logit (scenario and hierarchy-level embeddings).

    Args:
        spec: FeatureSpec with a scenario.
        star_units: widths of the star-topology layers.
        tower_units: hidden units of each task tower (may be empty).
        auxiliary_units: hidden units of the auxiliary network (may be
            empty).
        scenario_rank: int. 0 for the paper's full per-scenario kernels,
            k > 0 for rank-k scenario factors. Defaults to 0.
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    scenario = require_scenario("star", spec)
    num = scenario.num_scenarios
    # === Inputs ===
    inputs, encoded, flat = encoded_inputs(spec)
    ids = encoded["scenario"]
    context = scenario_context(spec, encoded)
    # === Layers ===
    x = PartitionedNormalization(num, name="partitioned_norm")([flat, ids])
    for i, units in enumerate(star_units):
        x = STARDense(
            units,
            num,
            scenario_rank=scenario_rank,
            activation=activation,
            name=f"star_dense_{i}",
        )([x, ids])
    if auxiliary_units:
        context = MLP(
            auxiliary_units, activation=activation, name="auxiliary_mlp"
        )(context)
    # === Outputs ===
    outputs = {}
    for task in spec.tasks:
        h = x
        if tower_units:
            h = MLP(
                tower_units, activation=activation, name=f"{task.name}_tower"
            )(h)
        main = keras.layers.Dense(task_width(task), name=f"{task.name}_logit")
        auxiliary = keras.layers.Dense(
            task_width(task), name=f"{task.name}_auxiliary_logit"
        )
        logits = keras.layers.Add(name=f"{task.name}_logits")(
            [main(h), auxiliary(context)]
        )
        outputs[task.name] = task_activation(logits, task)
    return keras.Model(inputs, outputs)
