"""DUPN: a behaviour sequence through an LSTM and query-aware attention
into a user representation shared by several task heads."""

from __future__ import annotations

import keras
from keras import ops

from kmtl.features.spec import FeatureSpec
from kmtl.layers.mlp import MLP
from kmtl.layers.sequence_attention import SequenceAttention
from kmtl.models.heads import encoded_inputs
from kmtl.models.heads import require_sequence
from kmtl.models.heads import sequence_steps
from kmtl.models.heads import task_towers
from kmtl.models.registry import register_model
from kmtl.validation import Activation
from kmtl.validation import OptionalName
from kmtl.validation import OptionalUnits
from kmtl.validation import PositiveInt
from kmtl.validation import Units


@register_model("dupn")
def build_dupn(
    spec: FeatureSpec,
    *,
    sequence: OptionalName = None,
    lstm_units: PositiveInt = 32,
    attention_units: PositiveInt = 32,
    shared_units: Units = (128, 64),
    tower_units: OptionalUnits = (32,),
    activation: Activation = "relu",
) -> keras.Model:
    """DUPN, Deep User Perception Network (Ni et al., KDD 2018).

    The behaviour sequence (item embeddings with their step features, e.g.
    each event's category or action type) runs through an LSTM; an
    attention keyed by the query (the target item's and the other features'
    embeddings) pools its states into a user representation,
    `u = sum_l a_l h_l`, `a = softmax_l(v^T tanh(W_h h_l + W_q q))`; `u`
    and the features go through shared layers to one head per task.

    Deviations: the attention attends over each step's LSTM state beside
    its own embeddings, and its score has a step x query product term (see
    `SequenceAttention`), so it can match a step to the target, which the
    LSTM's mixed states and an additive score alone learn poorly. The
    paper's tasks are CTR, learning to rank, price
    preference and fashion icon following, trained on their own logs and
    transferred; here the heads are the spec's tasks, trained jointly.

    Args:
        spec: FeatureSpec with a `SequenceFeature`.
        sequence: the behaviour sequence. Defaults to the first sequence
            that is not a step feature.
        lstm_units: LSTM state width. Defaults to 32.
        attention_units: attention hidden width. Defaults to 32.
        shared_units: hidden units of the shared layers on `[u, features]`.
        tower_units: hidden units of each task head (may be empty).
        activation: hidden activation. Defaults to `"relu"`.

    Returns:
        A functional `keras.Model`, one output per task.
    """
    sequence = require_sequence("dupn", spec, sequence)
    # === Inputs ===
    inputs, encoded, flat = encoded_inputs(spec)
    steps, mask = sequence_steps(encoded, spec, sequence)
    # === Layers ===
    states = keras.layers.LSTM(
        lstm_units, return_sequences=True, name=f"{sequence}_lstm"
    )(steps, mask=ops.greater(mask, 0.5))
    keys = keras.layers.Concatenate(name=f"{sequence}_keys")([states, steps])
    user = SequenceAttention(attention_units, name=f"{sequence}_attention")(
        [keys, mask, flat]
    )
    shared = MLP(shared_units, activation=activation, name="shared")(
        keras.layers.Concatenate(name="user_and_features")([user, flat])
    )
    # === Outputs ===
    outputs = task_towers(
        [shared] * len(spec.tasks),
        spec.tasks,
        tower_units,
        activation=activation,
    )
    return keras.Model(inputs, outputs)
