"""DSelect-k: experts mixed by a differentiable top-k gate per task."""

from __future__ import annotations

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.layers.dselect_k import DSelectKLayer
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_towers
from kmtl.models.registry import register_model
from kmtl.validation import Activation
from kmtl.validation import Bool
from kmtl.validation import NonNegativeFloat
from kmtl.validation import OptionalUnits
from kmtl.validation import PositiveFloat
from kmtl.validation import PositiveInt
from kmtl.validation import Units


@register_model("dselect_k")
def build_dselect_k(
    spec: FeatureSpec,
    *,
    num_experts: PositiveInt = 8,
    num_selectors: PositiveInt = 2,
    per_example: Bool = True,
    gamma: PositiveFloat = 1.0,
    entropy_weight: NonNegativeFloat = 0.01,
    expert_units: Units = (256, 128),
    tower_units: OptionalUnits = (64,),
    activation: Activation = "relu",
) -> keras.Model:
    """DSelect-k: each task mixes at most k experts (Hazimeh et al., 2021).

    `y_t = sum_i a_t[i] f_i(x)`, where task `t`'s gate `a_t` mixes
    `num_selectors` single-expert selectors, each a product of smooth-step
    binary codes (`DSelectKLayer`), then a tower per task. The entropy
    regulariser and, when `num_experts` is not a power of 2, the
    unused-code penalty are added to the training loss.

    Args:
        spec: FeatureSpec.
        num_experts: number of expert MLPs. Defaults to 8.
        num_selectors: the most experts each task mixes (`k`), at most
            `num_experts` (checked by the layer). Defaults to 2.
        per_example: per-example gating, or one selection per task
            (static). Defaults to `True`.
        gamma: the smooth-step's width. Defaults to 1.0.
        entropy_weight: weight of the entropy regulariser. Defaults to
            0.01.
        expert_units: hidden units of each expert.
        tower_units: hidden units of each task tower (may be empty).
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    # === Inputs ===
    inputs, _, flat = encoded_inputs(spec)
    # === Layers ===
    branches = DSelectKLayer(
        len(spec.tasks),
        num_experts,
        num_selectors,
        per_example,
        gamma,
        entropy_weight,
        expert_units=expert_units,
        activation=activation,
        name="dselect_k",
    )(flat)
    # === Outputs ===
    return keras.Model(
        inputs,
        task_towers(branches, spec.tasks, tower_units, activation=activation),
    )
