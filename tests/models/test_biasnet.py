"""BiasNet: the battery on position-biased data (its signatures take no
bias feature), and what it needs from the spec."""

import numpy as np
import pytest

import kmtl
from kmtl.data.position_bias import make_position_biased
from kmtl.testing import run_model_test

TINY = dict(
    num_shared_experts=2,
    num_task_experts=1,
    expert_units=(8,),
    tower_units=(4,),
    bias_units=(4,),
)
EXCLUDE = ["relevant_click", "relevant_like"]


@pytest.fixture(scope="module")
def biased():
    df, _ = make_position_biased(3000, seed=5)
    spec = kmtl.FeatureSpec.from_dataframe(
        df,
        ["click", "like"],
        exclude=EXCLUDE,
        bias=["position", "device"],
        embedding_dim=4,
    )
    return df, spec


def test_model_battery(biased):
    df, spec = biased
    run_model_test(
        "biasnet",
        df,
        spec,
        TINY,
        bad_hparams=[
            (dict(backbone="nope"), "`backbone`"),
            (dict(bias_dropout=1.5), "`bias_dropout`"),
        ],
        bad_specs=[
            (
                dict(features=[f for f in spec.features if not f.bias]),
                "needs bias features: declare the display position",
            )
        ],
    )


def test_served_prediction_leaves_the_bias_out(biased, tmp_path):
    import tensorflow as tf

    df, spec = biased
    model = kmtl.build("biasnet", spec, **TINY)
    model.fit(kmtl.data.to_dataset(df, spec), epochs=1, verbose=0)
    features = kmtl.data.features_from_dataframe(df[:32], spec)
    path = kmtl.export(model, tmp_path / "biasnet", sample=df[:32])
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    _, inputs = served.structured_input_signature
    assert "position" not in inputs and "device" not in inputs
    out = served(**{k: tf.constant(features[k]) for k in inputs})
    missing = {
        **features,
        "position": np.full(32, -1),
        "device": np.full(32, "", object),
    }
    unbiased = model.predict(missing, verbose=0)
    np.testing.assert_allclose(
        out["click"].numpy(), unbiased["click"], atol=1e-5
    )
    # In training the position moves the prediction; at serving it cannot.
    biased_pred = model.predict(features, verbose=0)
    assert not np.allclose(biased_pred["click"], unbiased["click"], atol=1e-4)
