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
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import task_output
from kmtl.models.heads import task_towers
from kmtl.models.registry import register_model
from kmtl.models.scenario import require_scenario
from kmtl.models.scenario import scenario_context
from kmtl.validation import Activation
from kmtl.validation import Bool
from kmtl.validation import Names
from kmtl.validation import OptionalUnits
from kmtl.validation import PositiveFloat


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


@register_model(
    "epnet",
    fixed={"use_epnet": True, "use_ppnet": False, "persona_features": ()},
    defaults={"hidden_units": (256, 128), "tower_units": (64,)},
    description="EPNet: field embeddings (and each numerical) scaled by a "
    "gate on the scenario context, a shared MLP, plain task towers.",
)
@register_model(
    "ppnet",
    fixed={"use_epnet": False, "use_ppnet": True},
    description="PPNet: plain embeddings, then one tower per task whose "
    "every hidden layer is gated by the persona.",
)
@register_model("pepnet", fixed={"use_epnet": True, "use_ppnet": True})
def build_pepnet(
    spec: FeatureSpec,
    *,
    use_epnet: Bool = True,
    use_ppnet: Bool = True,
    hidden_units: OptionalUnits = (),
    tower_units: OptionalUnits = (256, 128, 64),
    persona_features: Names = (),
    gamma: PositiveFloat = 2.0,
    activation: Activation = "relu",
) -> keras.Model:
    """PEPNet: EPNet scales the field embeddings (and each numerical) by a
    gate on the scenario, then one PPNet tower per task, every hidden layer
    gated by the persona (Chang et al., KDD 2023).

    `epnet` (EPNet with plain towers) and `ppnet` (PPNet towers on plain
    embeddings) are this builder with one half switched off.

    Args:
        spec: FeatureSpec with a scenario.
        use_epnet: gate the embeddings by the scenario (EPNet). Fixed by
            each registered name.
        use_ppnet: gate the towers by the persona (PPNet). Fixed by each
            registered name.
        hidden_units: widths of a shared MLP between the embeddings and the
            towers (may be empty). Defaults to `()` (`(256, 128)` for
            `epnet`).
        tower_units: hidden units of each task tower; PPNet towers need at
            least one. Defaults to `(256, 128, 64)` (`(64,)` for `epnet`).
        persona_features: names of categorical / sequence features whose
            embeddings join the scenario embedding in the persona that gates
            the towers (PEPNet uses user, item and author ids). Defaults to
            none.
        gamma: float. Upper bound of every gate. Defaults to 2.0.
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    model = (
        "pepnet"
        if use_epnet and use_ppnet
        else ("epnet" if use_epnet else "ppnet")
    )
    require_scenario(model, spec)
    if use_ppnet and not tower_units:
        raise ValueError(
            f"Model {model!r}: hparam `tower_units` must hold at least one "
            "width, the layers PPNet gates. Received: tower_units=()"
        )
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
    return keras.Model(inputs, outputs)
