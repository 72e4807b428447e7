"""SNR: the shared layers split into sub-networks, routed by coding
variables."""

from __future__ import annotations

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.layers.snr import KINDS
from kmtl.layers.snr import SNRLayer
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_towers
from kmtl.models.registry import register_model
from kmtl.validation import Activation
from kmtl.validation import NonNegativeFloat
from kmtl.validation import OneOf
from kmtl.validation import OptionalUnits
from kmtl.validation import PositiveInt
from kmtl.validation import Units


@register_model("snr")
def build_snr(
    spec: FeatureSpec,
    *,
    kind: OneOf(*KINDS) = "trans",
    num_experts: PositiveInt = 4,
    expert_units: Units = (256, 128),
    l0_weight: NonNegativeFloat = 0.001,
    tower_units: OptionalUnits = (64,),
    activation: Activation = "relu",
) -> keras.Model:
    """SNR: sub-networks routed by hard-concrete codes (Ma et al., AAAI 2019).

    The shared bottom's hidden layers (`expert_units`) are each split into
    `num_experts` sub-networks of one layer; level `l`'s sub-networks feed
    level `l + 1`'s, and the last level's feed the task towers, through
    connections gated by hard-concrete coding variables `z` (`SNRLayer`):
    `v_k = sum_e z[k, e] W[k, e] u_e` (`kind="trans"`) or `sum_e z[k, e]
    u_e` (`kind="aver"`). The L0 penalty `l0_weight * sum P(z != 0)` is
    added to the loss; `z` is deterministic when serving.

    Args:
        spec: FeatureSpec.
        kind: `"trans"` (SNR-Trans, a matrix per connection) or `"aver"`
            (SNR-Aver, a weighted sum). Defaults to `"trans"`.
        num_experts: sub-networks per level. Defaults to 4.
        expert_units: the width of each level's sub-networks, one level
            per entry. Defaults to `(256, 128)`.
        l0_weight: weight of the L0 penalty of every level. Defaults to
            0.001.
        tower_units: hidden units of each task tower (may be empty).
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    num_tasks = len(spec.tasks)
    last = len(expert_units) - 1
    # === Inputs ===
    inputs, _, branches = encoded_inputs(spec)
    # === Layers ===
    for level, units in enumerate(expert_units):
        branches = SNRLayer(
            num_tasks=num_tasks if level == last else num_experts,
            num_experts=num_experts,
            kind=kind,
            l0_weight=l0_weight,
            expert_units=(units,),
            activation=activation,
            name=f"snr_{level}",
        )(branches)
    # === Outputs ===
    outputs = task_towers(
        branches, spec.tasks, tower_units, activation=activation
    )
    return keras.Model(inputs, outputs)
