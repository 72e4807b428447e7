"""ESCM2 and Multi-IPW / Multi-DR: the battery, clean outputs, and the
counterfactual gradient against the estimator written out directly."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import kmtl
from kmtl.features.spec import TaskSpec
from kmtl.testing import raw_tensors
from kmtl.training.counterfactual import CounterfactualRegularizer
from kmtl.training.counterfactual import case_values

TINY = dict(tower_units=(8, 4))
BAD = [
    (dict(estimator="snips"), "`estimator` must be one of"),
    (dict(counterfactual_weight=0.0), "counterfactual_weight"),
    (dict(min_propensity=1.5), r"`min_propensity` must be in \(0, 1\]"),
    (dict(cvr_task="cvr"), "give every one of"),
]
FOCAL_CTR = [
    (
        dict(
            tasks=[
                TaskSpec("ctr", "click", loss="binary_focal_crossentropy"),
                TaskSpec("cvr", "purchase", sample_space="ctr"),
            ]
        ),
        "needs loss='binary_crossentropy'",
    ),
    (dict(tasks=[TaskSpec("ctr", "click")]), "exactly 2 binary tasks"),
]


def test_model_battery(model_battery):
    model_battery("escm2", TINY, bad_hparams=BAD, bad_specs=FOCAL_CTR)


@pytest.mark.slow  # the same battery with the imputation tower (30 s)
def test_model_battery_doubly_robust(model_battery):
    model_battery("escm2", dict(TINY, estimator="dr"))


@pytest.mark.parametrize(
    "name, estimator", [("multi_ipw", "ips"), ("multi_dr", "dr")]
)
def test_multi_variants(name, estimator, synthetic_small):
    _, _, spec = synthetic_small
    with pytest.raises(ValueError, match="estimator is fixed"):
        kmtl.build(name, spec, estimator="ips")
    model = kmtl.build(name, spec, **TINY)
    assert model.get_layer("counterfactual").estimator == estimator
    tasks = model.tasks
    assert [t.weight for t in tasks] == [1.0, 0.5, 0.0]  # no CTCVR loss
    assert sorted(kmtl.compile_args(tasks)["loss"]) == ["ctr", "cvr"]
    assert list(model.output) == ["ctr", "cvr", "ctcvr"]


def test_serves_only_ctr_cvr_ctcvr(synthetic_small):
    """The imputation tower and the regulariser leave the outputs alone:
    three outputs, the same values in training and inference."""
    df, _, spec = synthetic_small
    model = kmtl.build("escm2", spec, estimator="dr", **TINY)
    assert list(model.output) == ["ctr", "cvr", "ctcvr"]
    x = raw_tensors(df[:32], spec)
    trained, served = model(x, training=True), model(x, training=False)
    for name in ("ctr", "cvr", "ctcvr"):
        np.testing.assert_array_equal(trained[name], served[name])
    tasks = model.tasks
    assert tasks[1].label_columns == ("click", "purchase")
    assert tasks[1].sample_space == "ctr"


@pytest.mark.parametrize("estimator", ["ips", "dr"])
def test_gradient_is_the_estimators(estimator):
    """Through the CTR log loss, the clicked-row CVR log loss and its
    zero-valued `add_loss`, the layer's gradient equals that of
    `w_ctr L_CTR + weight mean(J)` with J written out per impression."""
    rng = np.random.default_rng(0)
    n = 64
    click = (rng.random((n, 1)) < 0.4).astype("float32")
    bought = click * (rng.random((n, 1)) < 0.5).astype("float32")
    logits = [
        tf.Variable(rng.normal(size=(n, 1)).astype("float32")) for _ in range(3)
    ]
    layer = CounterfactualRegularizer(
        estimator,
        weight=0.7,
        ctr_loss_weight=1.3,
        cvr_loss_weight=0.4,
        min_propensity=0.3,
    )
    log_loss = keras.losses.BinaryCrossentropy()
    with tf.GradientTape(persistent=True) as tape:
        ctr, cvr = ops.sigmoid(logits[0]), ops.sigmoid(logits[1])
        error = ops.softplus(logits[2])
        inputs = [ctr, cvr, error] if estimator == "dr" else [ctr, cvr]
        ctr_out, cvr_out = layer(inputs, training=True)
        through_keras = (
            1.3 * log_loss(click, ctr_out)
            + 0.4 * log_loss(bought, cvr_out, sample_weight=click)
            + sum(layer.losses)
        )
        propensity = ops.clip(ops.stop_gradient(ctr), 0.3, 1.0)
        j0, j10, j11 = case_values(
            estimator, propensity, cvr, error if estimator == "dr" else None
        )
        j = (1 - click) * j0 + click * ((1 - bought) * j10 + bought * j11)
        direct = 1.3 * log_loss(click, ctr) + 0.7 * ops.mean(j)
    np.testing.assert_array_equal(ctr_out, ctr)
    np.testing.assert_array_equal(cvr_out, cvr)
    for variable in logits[: 3 if estimator == "dr" else 2]:
        got = tape.gradient(through_keras, variable)
        want = tape.gradient(direct, variable)
        assert np.abs(want).max() > 1e-3
        np.testing.assert_allclose(got, want, atol=1e-7)


def test_layer_config_round_trip():
    layer = CounterfactualRegularizer("dr", weight=0.2, min_propensity=0.1)
    clone = CounterfactualRegularizer.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="takes 3 tensors"):
        clone([np.ones((2, 1)), np.ones((2, 1))])
