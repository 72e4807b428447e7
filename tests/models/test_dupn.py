"""DUPN: the battery on a behaviour log (a sequence with a step feature),
and the spec it needs."""

import numpy as np
import pytest

from kmtl.data.behaviour import behaviour_spec
from kmtl.data.behaviour import make_behaviour_log
from kmtl.layers import SequenceAttention
from kmtl.testing import run_model_test
from kmtl.testing import to_numpy

TINY = dict(
    lstm_units=4, attention_units=4, shared_units=(8,), tower_units=(4,)
)


@pytest.fixture(scope="module")
def data():
    df, _ = make_behaviour_log(2000, seed=3)
    return df, behaviour_spec(df, embedding_dim=4)


def test_model_battery(data):
    df, spec = data
    no_sequence = [f for f in spec.features if f.kind != "sequence"]
    run_model_test(
        "dupn",
        df,
        spec,
        TINY,
        bad_hparams=[
            (dict(sequence="history_category"), "named 'history_category'"),
            (dict(lstm_units=0), "`lstm_units`"),
        ],
        bad_specs=[(dict(features=no_sequence), "needs a behaviour sequence")],
    )


def test_attention_ignores_padding_and_follows_the_match():
    layer = SequenceAttention(4)
    rng = np.random.default_rng(0)
    steps = rng.normal(size=(2, 5, 3)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], "float32")
    query = rng.normal(size=(2, 6)).astype("float32")
    pooled = to_numpy(layer([steps, mask, query]))
    weights = to_numpy(layer.attention_weights([steps, mask, query]))
    np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(weights[mask == 0], 0.0)
    np.testing.assert_allclose(weights[1, 0], 1.0)
    np.testing.assert_allclose(
        pooled, (weights[..., None] * steps).sum(1), rtol=1e-5, atol=1e-6
    )
    # Changing a padded step changes nothing.
    steps[0, 4] = 100.0
    np.testing.assert_allclose(to_numpy(layer([steps, mask, query])), pooled)
