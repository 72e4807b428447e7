"""Shared-Bottom: one MLP shared by every task, then a tower per task."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.layers.shared_bottom import SharedBottomLayer
from kmtl.models.heads import check_units
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_towers
from kmtl.models.registry import register_model


@register_model("shared_bottom")
def build_shared_bottom(
    spec: FeatureSpec,
    *,
    bottom_units: Sequence[int] = (256, 128),
    tower_units: Sequence[int] = (64,),
    activation: str = "relu",
    dropout: float = 0.0,
) -> keras.Model:
    """Shared-Bottom MTL: a shared MLP, one tower per task (Caruana 1997).

    Args:
        spec: FeatureSpec.
        bottom_units: hidden units of the shared MLP.
        tower_units: hidden units of each task tower.
        activation: hidden activation. Defaults to `"relu"`.
        dropout: dropout rate in every MLP. Defaults to 0.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    check_units("shared_bottom", "bottom_units", bottom_units, False)
    check_units("shared_bottom", "tower_units", tower_units, True)
    # === Inputs ===
    inputs, _, flat = encoded_inputs(spec)
    # === Layers ===
    branches = SharedBottomLayer(
        num_tasks=len(spec.tasks),
        units=tuple(bottom_units),
        activation=activation,
        dropout=dropout,
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
    return keras.Model(inputs, outputs, name="shared_bottom")
