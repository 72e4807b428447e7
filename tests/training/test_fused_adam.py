"""FusedAdam: Keras's Adam rule, dense and sparse gradients alike (and
LazyAdam's dense step and config, which are FusedAdam's)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kmtl
from kmtl.data import make_synthetic
from kmtl.training import FusedAdam
from kmtl.training import LazyAdam
from tests.training.adam_reference import LR
from tests.training.adam_reference import adam_rows


def _steps(optimizer, variable, grads):
    for grad in grads:
        optimizer.apply_gradients([(grad, variable)])


@pytest.mark.parametrize("optimizer_class", [FusedAdam, LazyAdam])
def test_dense_steps_follow_adam(optimizer_class):
    """The fused dense kernel (LazyAdam's dense step too) follows Adam's
    rule, as Keras's Adam does."""
    init = np.random.default_rng(1).normal(size=(5, 2)).astype("float32")
    grads = np.random.default_rng(2).normal(size=(3, 5, 2)).astype("float32")
    fused, plain = keras.Variable(init), keras.Variable(init)
    _steps(optimizer_class(LR), fused, [tf.constant(g) for g in grads])
    _steps(keras.optimizers.Adam(LR), plain, [tf.constant(g) for g in grads])
    w, m, v = init.astype("float64"), np.zeros((5, 2)), np.zeros((5, 2))
    for step, g in enumerate(grads, start=1):
        w, m, v = adam_rows(w, m, v, g, step)
    np.testing.assert_allclose(fused.numpy(), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused.numpy(), plain.numpy(), rtol=1e-6)
    assert not np.allclose(fused.numpy(), init)


def test_sparse_steps_are_dense_adam_steps():
    """Adam on the summed gradient of each row; unlike LazyAdam, rows
    outside the batch move on their momentum. (Keras's Adam squares each
    looked-up slice before summing repeated ids, so on row 1 it differs.)"""
    init = np.random.default_rng(3).normal(size=(6, 3)).astype("float32")
    batches = [(np.array([1, 4, 1]), 0), (np.array([4, 0]), 1)]
    grads, dense = [], []
    for ids, seed in batches:
        values = np.random.default_rng(seed).normal(size=(len(ids), 3))
        values = values.astype("float32")
        grads.append(
            tf.IndexedSlices(tf.constant(values), tf.constant(ids), [6, 3])
        )
        full = np.zeros((6, 3))
        np.add.at(full, ids, values)  # repeated ids are summed
        dense.append(full)
    fused = keras.Variable(init)
    _steps(FusedAdam(LR), fused, grads)
    w, m, v = init.astype("float64"), np.zeros((6, 3)), np.zeros((6, 3))
    for step, g in enumerate(dense, start=1):
        w, m, v = adam_rows(w, m, v, g, step)
    np.testing.assert_allclose(fused.numpy(), w, rtol=1e-5, atol=1e-6)
    assert not np.allclose(fused.numpy()[1], init[1])  # momentum, no grad


def test_amsgrad_takes_keras_step():
    init = np.ones((3, 2), "float32")
    grads = [tf.constant(np.full((3, 2), s, "float32")) for s in (1, -2, 0.5)]
    fused, plain = keras.Variable(init), keras.Variable(init)
    _steps(FusedAdam(LR, amsgrad=True), fused, grads)
    _steps(keras.optimizers.Adam(LR, amsgrad=True), plain, grads)
    np.testing.assert_array_equal(fused.numpy(), plain.numpy())


@pytest.mark.parametrize("optimizer_class", [FusedAdam, LazyAdam])
def test_config_round_trip_and_build_argument(optimizer_class):
    optimizer = optimizer_class(0.005, beta_1=0.8, clipnorm=1.0)
    restored = keras.optimizers.deserialize(
        keras.optimizers.serialize(optimizer)
    )
    assert isinstance(restored, optimizer_class)
    assert restored.get_config() == optimizer.get_config()
    df, _ = make_synthetic(300, seed=0)
    spec = kmtl.FeatureSpec.from_dataframe(
        df, labels={"ctr": "click"}, scenario="scenario"
    )
    model = kmtl.build("shared_bottom", spec, optimizer=optimizer_class())
    assert isinstance(model.optimizer, optimizer_class)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
