"""Shared-Bottom: one MLP shared by every task, then a tower per task."""

from __future__ import annotations

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.layers.shared_bottom import SharedBottomLayer
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_towers
from kmtl.models.registry import register_model
from kmtl.validation import Activation
from kmtl.validation import OptionalUnits
from kmtl.validation import Rate
from kmtl.validation import Units


@register_model("shared_bottom")
def build_shared_bottom(
    spec: FeatureSpec,
    *,
    bottom_units: Units = (256, 128),
    tower_units: OptionalUnits = (64,),
    activation: Activation = "relu",
    dropout: Rate = 0.0,
) -> keras.Model:
    """Shared-Bottom MTL: a shared MLP, one tower per task (Caruana 1997).

    Args:
        spec: FeatureSpec.
        bottom_units: hidden units of the shared MLP.
        tower_units: hidden units of each task tower (may be empty).
        activation: hidden activation. Defaults to `"relu"`.
        dropout: dropout rate in every MLP. Defaults to 0.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    # === Inputs ===
    inputs, _, flat = encoded_inputs(spec)
    # === Layers ===
    branches = SharedBottomLayer(
        len(spec.tasks),
        dropout,
        expert_units=bottom_units,
        activation=activation,
        name="shared_bottom",
    )(flat)
    # === Outputs ===
    outputs = task_towers(
        branches,
        spec.tasks,
        tower_units,
        activation=activation,
        dropout=dropout,
    )
    return keras.Model(inputs, outputs)
