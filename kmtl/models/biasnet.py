"""BiasNet: a multi-task backbone plus a shallow tower on bias features
(YouTube's position-debiasing shallow tower)."""

from __future__ import annotations

import keras

from kmtl.features.spec import FeatureSpec
from kmtl.layers.bias_tower import BiasTower
from kmtl.layers.mlp import MLP
from kmtl.layers.switcher import SwitcherName
from kmtl.layers.switcher import get_switcher
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_activation
from kmtl.models.heads import task_width
from kmtl.models.registry import register_model
from kmtl.validation import Activation
from kmtl.validation import NonNegativeInt
from kmtl.validation import OptionalUnits
from kmtl.validation import Rate
from kmtl.validation import Units


def require_bias_features(model: str, spec: FeatureSpec) -> None:
    """Raises a `ValueError` naming `model` when the spec has no bias
    feature."""
    if not spec.bias_names:
        raise ValueError(
            f"Model {model!r} needs bias features: declare the display "
            "position (or another bias column) with `bias=True`, e.g. "
            "`CategoricalFeature('position', vocabulary_size=10, bias=True)` "
            "or `FeatureSpec.from_dataframe(df, ..., bias=['position'])`. "
            f"Received features {spec.names()}, none of them a bias feature."
        )


@register_model("biasnet")
def build_biasnet(
    spec: FeatureSpec,
    *,
    backbone: SwitcherName = "mmoe",
    num_shared_experts: NonNegativeInt = 4,
    num_task_experts: NonNegativeInt = 1,
    expert_units: Units = (256, 128),
    tower_units: OptionalUnits = (64,),
    bias_units: OptionalUnits = (32,),
    bias_dropout: Rate = 0.1,
    activation: Activation = "relu",
) -> keras.Model:
    """BiasNet: main logits from a backbone, plus a bias tower's logit.

    `logit_t = tower_t(switcher(x))_t + b_t(x_bias)`, `y_t = act(logit_t)`
    in training; the bias tower (`BiasTower`) sees only the spec's bias
    features (`bias=True`: position, device), which every other part of the
    model ignores. The exported signatures do not take the bias features:
    they are sent missing, which zeroes the bias logit, so the served
    prediction is the position-free relevance `act(tower_t(...))`. The
    backbone is any registered switcher (MMoE as in the YouTube paper).

    Deviation: the paper feeds the bias tower position and device and adds
    its logit before the sigmoid of each objective; here it adds one logit
    per task output column (a regression task gets an additive offset),
    and a missing bias feature in training also zeroes the logit (a row
    with an unknown position is trained as served).

    Args:
        spec: FeatureSpec with at least one bias feature.
        backbone: a registered switcher (`kmtl.layers.switcher_names()`).
            Defaults to `"mmoe"`.
        num_shared_experts: the backbone's shared experts (its expert
            budget, mapped by the switcher as in `hinet`). Defaults to 4.
        num_task_experts: the backbone's experts per task. Defaults to 1.
        expert_units: hidden units of each expert.
        tower_units: hidden units of each task tower (may be empty).
        bias_units: hidden units of the bias tower (may be empty: a linear
            bias per feature value). Defaults to `(32,)`.
        bias_dropout: share of training rows whose bias logit is dropped.
            Defaults to 0.1.
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model`, one output per task.

    Reference:
        - [Zhao et al., RecSys 2019](https://dl.acm.org/doi/10.1145/3298689.3346997)
        - MFH (`mfh-paper.txt` §V.C) compares with this "biasnet".
    """
    require_bias_features("biasnet", spec)
    # === Inputs ===
    inputs, encoded, flat = encoded_inputs(spec)
    bias_parts = [
        keras.layers.Flatten(name="flatten_bias_fields")(encoded[key])
        if key == "bias_fields"
        else encoded[key]
        for key in ("bias_fields", "bias_dense")
        if key in encoded
    ]
    bias_x = (
        bias_parts[0]
        if len(bias_parts) == 1
        else keras.layers.Concatenate(name="bias_inputs")(bias_parts)
    )
    # === Layers ===
    branches = get_switcher(
        backbone,
        len(spec.tasks),
        num_shared_experts=num_shared_experts,
        num_task_experts=num_task_experts,
        expert_units=expert_units,
        activation=activation,
        name="backbone",
    )(flat)
    widths = [task_width(task) for task in spec.tasks]
    bias_logits = BiasTower(
        sum(widths),
        units=bias_units,
        dropout=bias_dropout,
        activation=activation,
        name="bias_tower",
    )([bias_x, encoded["bias_present"]])
    # === Outputs ===
    outputs, start = {}, 0
    for branch, task, width in zip(branches, spec.tasks, widths, strict=True):
        if tower_units:
            branch = MLP(
                tower_units, activation=activation, name=f"{task.name}_tower"
            )(branch)
        logit = keras.layers.Dense(width, name=f"{task.name}_logit")(branch)
        bias = bias_logits[:, start : start + width]
        start += width
        outputs[task.name] = task_activation(
            keras.layers.Add(name=f"{task.name}_biased_logit")([logit, bias]),
            task,
        )
    return keras.Model(inputs, outputs)
