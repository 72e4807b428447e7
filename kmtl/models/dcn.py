"""DCN: a cross network beside a deep MLP, then a tower per task."""

from __future__ import annotations

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.layers.cross import CrossNet
from kmtl.layers.mlp import MLP
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_towers
from kmtl.models.registry import register_model
from kmtl.validation import Activation
from kmtl.validation import OneOf
from kmtl.validation import OptionalPositiveInt
from kmtl.validation import OptionalUnits
from kmtl.validation import PositiveInt
from kmtl.validation import Units


@register_model(
    "dcn_v1",
    fixed={"cross_kind": "vector", "projection_dim": None},
    description="DCN v1: a vector cross network beside a deep MLP "
    "(Wang et al. 2017), a tower per task.",
)
@register_model("dcn")
def build_dcn(
    spec: FeatureSpec,
    *,
    cross_layers: PositiveInt = 3,
    cross_kind: OneOf("vector", "matrix", "low_rank") = "matrix",
    projection_dim: OptionalPositiveInt = None,
    deep_units: Units = (256, 128),
    tower_units: OptionalUnits = (64,),
    activation: Activation = "relu",
) -> keras.Model:
    """DCN: cross network + deep network in parallel (Wang 2017, 2021).

    The cross and deep outputs are concatenated into a representation
    shared by every task; each task has a tower on it.

    Args:
        spec: FeatureSpec.
        cross_layers: number of cross layers. Defaults to 3.
        cross_kind: `"vector"` (DCN v1, registered as `"dcn_v1"`),
            `"matrix"` (DCN v2) or `"low_rank"` (DCN v2 with
            `projection_dim`). Defaults to `"matrix"`.
        projection_dim: rank of the low-rank cross. Defaults to `None`.
        deep_units: hidden units of the deep MLP.
        tower_units: hidden units of each task tower.
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    # === Inputs ===
    inputs, _, flat = encoded_inputs(spec)
    # === Layers ===
    crossed = CrossNet(
        num_layers=cross_layers,
        kind=cross_kind,
        projection_dim=projection_dim,
        name="cross",
    )(flat)
    deep = MLP(deep_units, activation=activation, name="deep")(flat)
    joint = keras.layers.Concatenate(name="cross_deep")([crossed, deep])
    branches = [joint] * len(spec.tasks)
    # === Outputs ===
    outputs = task_towers(
        branches, spec.tasks, tower_units, activation=activation
    )
    return keras.Model(inputs, outputs)
