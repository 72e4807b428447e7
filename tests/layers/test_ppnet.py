import numpy as np
import tensorflow as tf

from kmtl.layers import PPNetMLP
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import to_numpy

RNG = np.random.default_rng(1)
X = RNG.normal(size=(5, 6)).astype("float32")
PERSONA = RNG.normal(size=(5, 3)).astype("float32")


class TestPPNetMLP(LayerTestCase):
    layer_cls = PPNetMLP
    batteries = {
        # Per layer: Dense (2) + GateNU (4).
        "default": LayerBattery(
            {"units": (4, 2), "gamma": 2.0},
            [X, PERSONA],
            (5, 2),
            expected_num_weights=(12, 0),
        )
    }
    invalid_args = [({"units": ()}, "units")]


def test_every_hidden_layer_is_gated_by_the_persona():
    layer = PPNetMLP((4, 2), gamma=2.0)
    out = to_numpy(layer([X, PERSONA]))
    g_in = np.concatenate([PERSONA, X], axis=1)
    h = X
    for dense, gate in zip(layer.dense_layers, layer.gates, strict=True):
        w, b = (to_numpy(v) for v in dense.weights)
        gate_value = to_numpy(gate(g_in))
        assert np.all((gate_value > 0) & (gate_value < 2.0))
        h = np.maximum(h @ w + b, 0) * gate_value
    np.testing.assert_allclose(out, h, rtol=1e-5, atol=1e-6)
    # Another persona, another output for the same x.
    assert not np.allclose(to_numpy(layer([X, PERSONA + 1.0])), out)


def test_the_gate_does_not_send_gradient_into_x():
    layer = PPNetMLP((3,))
    x = tf.constant(X)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer([x, PERSONA])
    grad = tape.gradient(out, x).numpy()
    w = to_numpy(layer.dense_layers[0].kernel)
    b = to_numpy(layer.dense_layers[0].bias)
    gate = to_numpy(layer.gates[0](np.concatenate([PERSONA, X], axis=1)))
    active = (X @ w + b > 0) * gate  # d out_j / d (x w)_j
    np.testing.assert_allclose(grad, active @ w.T, rtol=1e-4, atol=1e-6)
