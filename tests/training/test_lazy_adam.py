"""LazyAdam: Adam's rule on the touched rows, nothing on the others."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import roc_auc_score

import kmtl
from kmtl.data import make_synthetic
from kmtl.data import to_dataset
from kmtl.features.spec import FeatureSpec
from kmtl.training import LazyAdam
from tests.training.adam_reference import LR
from tests.training.adam_reference import adam_rows


def _sparse_steps(optimizer, table, batches):
    """Applies the gradient of `sum(take(table, ids) * weights)`."""
    for ids, weights in batches:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(
                tf.gather(table.value, ids) * tf.constant(weights)
            )
        (grad,) = tape.gradient(loss, [table.value])
        assert isinstance(grad, tf.IndexedSlices)
        optimizer.apply_gradients([(grad, table)])


def test_sparse_gradients_update_only_the_touched_rows():
    init = np.random.default_rng(0).normal(size=(6, 3)).astype("float32")
    table = keras.Variable(init)
    optimizer = LazyAdam(LR)
    ids = [np.array([1, 4, 1]), np.array([4, 0])]
    weights = [
        np.random.default_rng(s).normal(size=(len(i), 3)).astype("float32")
        for s, i in enumerate(ids)
    ]
    _sparse_steps(optimizer, table, zip(ids, weights, strict=True))

    w, m, v = init.astype("float64"), np.zeros((6, 3)), np.zeros((6, 3))
    for step, (i, g_rows) in enumerate(zip(ids, weights, strict=True), start=1):
        grad = np.zeros((6, 3))
        np.add.at(grad, i, g_rows)  # repeated ids are summed
        rows = np.unique(i)
        w[rows], m[rows], v[rows] = adam_rows(
            w[rows], m[rows], v[rows], grad[rows], step
        )
    np.testing.assert_allclose(table.numpy(), w, rtol=1e-5, atol=1e-6)
    # Rows 2, 3 and 5 were never looked up: untouched, unlike plain Adam's.
    np.testing.assert_array_equal(table.numpy()[[2, 3, 5]], init[[2, 3, 5]])
    # Row 1 was only in the first batch: the second step left it alone.
    assert not np.allclose(table.numpy()[1], init[1])


def test_plain_adam_moves_rows_a_batch_did_not_touch():
    """The difference from Keras's Adam: momentum keeps moving old rows."""
    init = np.ones((4, 2), "float32")
    batches = [
        (np.array([0]), np.ones((1, 2), "float32")),
        (np.array([1]), np.ones((1, 2), "float32")),
    ]
    plain, lazy = keras.Variable(init), keras.Variable(init)
    _sparse_steps(keras.optimizers.Adam(LR), plain, batches)
    _sparse_steps(LazyAdam(LR), lazy, batches)
    after_first = keras.Variable(init)
    _sparse_steps(LazyAdam(LR), after_first, batches[:1])
    np.testing.assert_array_equal(lazy.numpy()[0], after_first.numpy()[0])
    assert np.all(plain.numpy()[0] < after_first.numpy()[0])


def test_amsgrad_refused():
    """(Dense steps and the config round trip: `test_fused_adam.py`.)"""
    with pytest.raises(ValueError, match="amsgrad"):
        LazyAdam(amsgrad=True)


@pytest.mark.slow
def test_model_learns_as_well_as_with_adam(tmp_path):
    """Same yardstick as tests/models/test_learning.py: within 0.02 of the
    CTR oracle after 3 epochs on 100k rows, and close to Adam's AUC."""
    train, _ = make_synthetic(100_000, seed=0)
    test, truth = make_synthetic(40_000, seed=1)
    spec = FeatureSpec.from_dataframe(
        train,
        labels={"ctr": "click", "cvr": "purchase"},
        scenario="scenario",
        sample_spaces={"cvr": "ctr"},
    )
    oracle = roc_auc_score(test["click"], truth["ctr"])
    aucs, models = {}, {}
    for name, optimizer in (("adam", "adam"), ("lazy", LazyAdam())):
        keras.utils.set_random_seed(0)
        model = kmtl.build(
            "shared_bottom",
            spec,
            optimizer=optimizer,
            bottom_units=(128, 64),
            tower_units=(32,),
        )
        model.fit(
            to_dataset(train, spec, batch_size=512, shuffle=True, seed=0),
            epochs=3,
            verbose=0,
        )
        table = kmtl.evaluate(model, test, spec=spec)
        aucs[name] = table[table.scenario == "all"].set_index("task").auc
        models[name] = model
    print(aucs, oracle)
    assert aucs["lazy"]["ctr"] > oracle - 0.02, (aucs, oracle)
    assert aucs["lazy"]["ctr"] > aucs["adam"]["ctr"] - 0.005, aucs
    path = tmp_path / "model.keras"
    models["lazy"].save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(reloaded.optimizer, LazyAdam)
    batch = next(iter(to_dataset(test[:256], spec, with_labels=False)))
    np.testing.assert_allclose(
        reloaded.predict_on_batch(batch)["ctr"],
        models["lazy"].predict_on_batch(batch)["ctr"],
        atol=1e-6,
    )
