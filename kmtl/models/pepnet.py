"""PEPNet and its halves EPNet and PPNet (Chang et al., KDD 2023)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from kmtl.features.spec import CategoricalFeature
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import SequenceFeature
from kmtl.layers.epnet import EPNet
from kmtl.layers.mlp import MLP
from kmtl.layers.ppnet import PPNetMLP
from kmtl.models.heads import check_units
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_output
from kmtl.models.heads import task_towers
from kmtl.models.registry import register_model
from kmtl.models.scenario import require_scenario
from kmtl.models.scenario import scenario_context


def _persona_indices(
    model: str, spec: FeatureSpec, persona_features: Sequence[str]
) -> list[int]:
    """Positions of the persona features among the encoder's fields."""
    fields = [
        f.name
        for f in spec.features
        if isinstance(f, (CategoricalFeature, SequenceFeature))
    ]
    unknown = [name for name in persona_features if name not in fields]
    if unknown or isinstance(persona_features, str):
        raise ValueError(
            f"Model {model!r}: hparam `persona_features` must list "
            f"categorical or sequence features of the spec ({fields}). "
            f"Received: persona_features={persona_features!r}"
        )
    return [fields.index(name) for name in persona_features]


def _build(
    model: str,
    spec: FeatureSpec,
    *,
    use_epnet: bool,
    use_ppnet: bool,
    hidden_units: Sequence[int],
    tower_units: Sequence[int],
    persona_features: Sequence[str],
    gamma: float,
    activation: str,
) -> keras.Model:
    require_scenario(model, spec)
    check_units(model, "hidden_units", hidden_units, True)
    check_units(model, "tower_units", tower_units, not use_ppnet)
    persona_index = _persona_indices(model, spec, persona_features)
    # === Inputs ===
    inputs, encoded, flat = encoded_inputs(spec)
    context = scenario_context(spec, encoded)
    fields = encoded["fields"]
    # === Layers ===
    if use_epnet:
        if not fields.shape[1]:
            raise ValueError(
                f"Model {model!r} gates field embeddings; the spec has no "
                "categorical or sequence feature."
            )
        fields = EPNet(gamma=gamma, name="epnet")([fields, context])
        parts = [keras.layers.Flatten(name="flatten_epnet")(fields)]
        if "dense" in encoded:
            # Each numerical is a field of width 1 with a gate of its own.
            dense = encoded["dense"]
            width = dense.shape[-1]
            dense = keras.layers.Reshape((width, 1), name="dense_fields")(dense)
            dense = EPNet(gamma=gamma, name="epnet_dense")([dense, context])
            parts.append(
                keras.layers.Reshape((width,), name="flatten_dense")(dense)
            )
        flat = (
            parts[0]
            if len(parts) == 1
            else keras.layers.Concatenate(name="epnet_inputs")(parts)
        )
    x = flat
    if hidden_units:
        x = MLP(hidden_units, activation=activation, name="shared_mlp")(x)
    # === Outputs ===
    if not use_ppnet:
        return keras.Model(
            inputs,
            task_towers(
                [x] * len(spec.tasks),
                spec.tasks,
                tower_units,
                activation=activation,
            ),
            name=model,
        )
    persona = context
    if persona_index:
        picked = keras.layers.Flatten(name="persona_embeddings")(
            keras.ops.take(encoded["fields"], persona_index, axis=1)
        )
        persona = keras.layers.Concatenate(name="persona")([context, picked])
    outputs = {}
    for task in spec.tasks:
        h = PPNetMLP(
            tower_units,
            activation=activation,
            gamma=gamma,
            name=f"{task.name}_ppnet",
        )([x, persona])
        outputs[task.name] = task_output(h, task)
    return keras.Model(inputs, outputs, name=model)


@register_model("pepnet")
def build_pepnet(
    spec: FeatureSpec,
    *,
    hidden_units: Sequence[int] = (),
    tower_units: Sequence[int] = (256, 128, 64),
    persona_features: Sequence[str] = (),
    gamma: float = 2.0,
    activation: str = "relu",
) -> keras.Model:
    """PEPNet: EPNet scales the field embeddings (and each numerical) by a
    gate on the scenario, then one PPNet tower per task, every hidden layer
    gated by the persona.

    Args:
        spec: FeatureSpec with a scenario.
        hidden_units: widths of a shared MLP between the embeddings and the
            towers (may be empty).
        tower_units: hidden units of each task tower.
        persona_features: names of categorical / sequence features whose
            embeddings join the scenario embedding in the persona that gates
            the towers (PEPNet uses user, item and author ids). Defaults to
            none.
        gamma: float. Upper bound of every gate. Defaults to 2.0.
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    return _build(
        "pepnet",
        spec,
        use_epnet=True,
        use_ppnet=True,
        hidden_units=hidden_units,
        tower_units=tower_units,
        persona_features=persona_features,
        gamma=gamma,
        activation=activation,
    )


@register_model("epnet")
def build_epnet(
    spec: FeatureSpec,
    *,
    hidden_units: Sequence[int] = (256, 128),
    tower_units: Sequence[int] = (64,),
    gamma: float = 2.0,
    activation: str = "relu",
) -> keras.Model:
    """EPNet: field embeddings (and each numerical) scaled by a gate on the
    scenario context, a shared MLP, plain task towers.

    Args:
        spec: FeatureSpec with a scenario.
        hidden_units: widths of a shared MLP between the embeddings and the
            towers (may be empty).
        tower_units: hidden units of each task tower.
        gamma: float. Upper bound of every gate. Defaults to 2.0.
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    return _build(
        "epnet",
        spec,
        use_epnet=True,
        use_ppnet=False,
        hidden_units=hidden_units,
        tower_units=tower_units,
        persona_features=(),
        gamma=gamma,
        activation=activation,
    )


@register_model("ppnet")
def build_ppnet(
    spec: FeatureSpec,
    *,
    hidden_units: Sequence[int] = (),
    tower_units: Sequence[int] = (256, 128, 64),
    persona_features: Sequence[str] = (),
    gamma: float = 2.0,
    activation: str = "relu",
) -> keras.Model:
    """PPNet: plain embeddings, then one tower per task whose every hidden
    layer is gated by the persona (scenario and persona-feature embeddings).

    Args:
        spec: FeatureSpec with a scenario.
        hidden_units: widths of a shared MLP between the embeddings and the
            towers (may be empty).
        tower_units: hidden units of each task tower.
        persona_features: names of categorical / sequence features whose
            embeddings join the scenario embedding in the persona that gates
            the towers (PEPNet uses user, item and author ids). Defaults to
            none.
        gamma: float. Upper bound of every gate. Defaults to 2.0.
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    return _build(
        "ppnet",
        spec,
        use_epnet=False,
        use_ppnet=True,
        hidden_units=hidden_units,
        tower_units=tower_units,
        persona_features=persona_features,
        gamma=gamma,
        activation=activation,
    )
