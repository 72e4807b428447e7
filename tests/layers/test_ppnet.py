import keras
import numpy as np
import pytest
import tensorflow as tf

from kmtl.layers import PPNetMLP
from kmtl.testing import run_layer_test

RNG = np.random.default_rng(1)
X = RNG.normal(size=(5, 6)).astype("float32")
PERSONA = RNG.normal(size=(5, 3)).astype("float32")


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_layer_battery():
    run_layer_test(
        PPNetMLP,
        init_kwargs={"units": (4, 2), "gamma": 2.0},
        input_data=[X, PERSONA],
        expected_output_shape=(5, 2),
        # Per layer: Dense (2) + GateNU (4).
        expected_num_trainable_weights=12,
        expected_num_non_trainable_weights=0,
    )


def test_every_hidden_layer_is_gated_by_the_persona():
    layer = PPNetMLP((4, 2), gamma=2.0)
    out = _np(layer([X, PERSONA]))
    g_in = np.concatenate([PERSONA, X], axis=1)
    h = X
    for dense, gate in zip(layer.dense_layers, layer.gates, strict=True):
        w, b = (_np(v) for v in dense.weights)
        gate_value = _np(gate(g_in))
        assert np.all((gate_value > 0) & (gate_value < 2.0))
        h = np.maximum(h @ w + b, 0) * gate_value
    np.testing.assert_allclose(out, h, rtol=1e-5, atol=1e-6)
    # Another persona, another output for the same x.
    assert not np.allclose(_np(layer([X, PERSONA + 1.0])), out)


def test_the_gate_does_not_send_gradient_into_x():
    layer = PPNetMLP((3,))
    x = tf.constant(X)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer([x, PERSONA])
    grad = tape.gradient(out, x).numpy()
    w = _np(layer.dense_layers[0].kernel)
    b = _np(layer.dense_layers[0].bias)
    gate = _np(layer.gates[0](np.concatenate([PERSONA, X], axis=1)))
    active = (X @ w + b > 0) * gate  # d out_j / d (x w)_j
    np.testing.assert_allclose(grad, active @ w.T, rtol=1e-4, atol=1e-6)


def test_bad_units():
    with pytest.raises(ValueError, match="units"):
        PPNetMLP(())
