"""PEPNet and its halves EPNet and PPNet (Chang et al., KDD 2023)."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import keras

from kmtl.features.spec import CategoricalFeature
from kmtl.features.spec import FeatureSpec
from kmtl.features.spec import NumericalFeature
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
from kmtl.validation import OptionalNames
from kmtl.validation import OptionalUnits
from kmtl.validation import PositiveFloat

DOMAIN_GROUPS = ("domain", "context")
"""The `group` tags of the features EPNet's gate reads by default."""

PERSONA_GROUPS = ("user", "item", "author")
"""The `group` tags of the features in PPNet's persona by default."""


def _side_features(
    model: str,
    spec: FeatureSpec,
    encoded: Mapping[str, Any],
    hparam: str,
    names: Sequence[str] | None,
    groups: Sequence[str],
) -> list[Any]:
    """The encodings of the features `names` (None: those whose `group` is
    one of `groups`): each categorical / sequence field's embedding and
    each numerical's slice of the dense vector, flat `[B, w]` tensors.

    Bias features are never taken: only bias-aware models read them.
    """
    bias = set(spec.bias_names)
    features = [f for f in spec.features if f.name not in bias]
    fields = [
        f.name
        for f in features
        if isinstance(f, (CategoricalFeature, SequenceFeature))
    ]
    slices, start = {}, 0
    for f in features:
        if isinstance(f, NumericalFeature):
            slices[f.name] = (start, start + f.dim)
            start += f.dim
    if names is None:
        names = [f.name for f in features if f.group in groups]
    unknown = [n for n in names if n not in fields and n not in slices]
    if unknown:
        raise ValueError(
            f"Model {model!r}: hparam `{hparam}` must list features of the "
            f"spec (categorical, sequence or numerical, not bias: "
            f"{fields + list(slices)}). Received: {hparam}={tuple(names)!r}"
        )
    parts = []
    for name in names:
        if name in slices:
            begin, end = slices[name]
            parts.append(encoded["dense"][:, begin:end])
        else:
            index = fields.index(name)
            parts.append(encoded["fields"][:, index, :])
    return parts


def _joined(context: Any, parts: Sequence[Any], name: str) -> Any:
    """`context` alone, or concatenated with `parts`."""
    if not parts:
        return context
    return keras.layers.Concatenate(name=name)([context, *parts])


@register_model(
    "epnet",
    fixed={"use_epnet": True, "use_ppnet": False, "persona_features": ()},
    defaults={"hidden_units": (256, 128), "tower_units": (64,)},
    description="EPNet: field embeddings (and each numerical) scaled by a "
    "gate on the scenario context, a shared MLP, plain task towers.",
)
@register_model(
    "ppnet",
    fixed={"use_epnet": False, "use_ppnet": True, "domain_features": ()},
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
    domain_features: OptionalNames = None,
    persona_features: OptionalNames = None,
    gamma: PositiveFloat = 2.0,
    activation: Activation = "relu",
) -> keras.Model:
    """PEPNet: EPNet scales the field embeddings (and each numerical) by a
    gate on the domain-side features, then one PPNet tower per task, every
    hidden layer gated by the persona (Chang et al., KDD 2023).

    EPNet: `delta = GateNU([e_s, E(F_d), stop_gradient(E)])`, `O_ep =
    delta * E` field by field, with `e_s` the scenario (and level)
    embeddings, `F_d` the domain-side features and `E` every field. PPNet,
    per task: `h_{l+1} = GateNU_l([e_s, E(F_p), stop_gradient(O_ep)]) *
    act(h_l W_l + b_l)`, with `F_p` the persona features (the paper's
    user, item and author ids). The scenario embedding stays in the
    persona so that `ppnet` alone still sees the scenario.

    The features come from the spec's `group` tags unless given by name:
    `F_d` are the features tagged `"domain"` or `"context"`, `F_p` those
    tagged `"user"`, `"item"` or `"author"` (categorical and sequence
    fields by their embedding, numericals by their normalised value). A
    spec without such tags gives the gates the scenario embedding alone.

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
        domain_features: names of the features that join the scenario
            embedding in EPNet's gate; `None` for those tagged `"domain"`
            or `"context"`, `()` for none. Defaults to `None` (`()` fixed
            for `ppnet`).
        persona_features: names of the features that join the scenario
            embedding in the persona that gates the towers; `None` for
            those tagged `"user"`, `"item"` or `"author"`, `()` for none.
            Defaults to `None` (`()` fixed for `epnet`).
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
    # === Inputs ===
    inputs, encoded, flat = encoded_inputs(spec)
    context = scenario_context(spec, encoded)
    domain = _side_features(
        model, spec, encoded, "domain_features", domain_features, DOMAIN_GROUPS
    )
    persona = _side_features(
        model,
        spec,
        encoded,
        "persona_features",
        persona_features,
        PERSONA_GROUPS,
    )
    fields = encoded["fields"]
    # === Layers ===
    if use_epnet:
        if not fields.shape[1]:
            raise ValueError(
                f"Model {model!r} gates field embeddings; the spec has no "
                "categorical or sequence feature."
            )
        gate_input = _joined(context, domain, "domain_context")
        fields = EPNet(gamma=gamma, name="epnet")([fields, gate_input])
        parts = [keras.layers.Flatten(name="flatten_epnet")(fields)]
        if "dense" in encoded:
            # Each numerical is a field of width 1 with a gate of its own.
            dense = encoded["dense"]
            width = dense.shape[-1]
            dense = keras.layers.Reshape((width, 1), name="dense_fields")(dense)
            dense = EPNet(gamma=gamma, name="epnet_dense")([dense, gate_input])
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
    persona = _joined(context, persona, "persona")
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
