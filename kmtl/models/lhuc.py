"""LHUC: a shared network whose hidden units each scenario rescales."""

from __future__ import annotations

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.layers.lhuc import LHUC
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_towers
from kmtl.models.registry import register_model
from kmtl.models.scenario import require_scenario
from kmtl.validation import Activation
from kmtl.validation import OptionalUnits
from kmtl.validation import Units


@register_model("lhuc")
def build_lhuc(
    spec: FeatureSpec,
    *,
    hidden_units: Units = (256, 128),
    activation: Activation = "relu",
    tower_units: OptionalUnits = (64,),
) -> keras.Model:
    """LHUC: shared bottom layers, each followed by a per-scenario scaling of
    its hidden units (`2 * sigmoid(a_s)`, 1 at initialisation), then task
    towers (Swietojanski & Renals, 2016; as used for scenarios in
    industrial rankers).

    Args:
        spec: FeatureSpec with a scenario.
        hidden_units: widths of the shared, scenario-scaled layers.
        tower_units: hidden units of each task tower (may be empty).
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    scenario = require_scenario("lhuc", spec)
    # === Inputs ===
    inputs, encoded, x = encoded_inputs(spec)
    # === Layers ===
    for i, units in enumerate(hidden_units):
        x = keras.layers.Dense(units, activation=activation, name=f"dense_{i}")(
            x
        )
        x = LHUC(scenario.num_scenarios, name=f"lhuc_{i}")(
            [x, encoded["scenario"]]
        )
    # === Outputs ===
    outputs = task_towers(
        [x] * len(spec.tasks), spec.tasks, tower_units, activation=activation
    )
    return keras.Model(inputs, outputs)
