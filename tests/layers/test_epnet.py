import numpy as np
import pytest
import tensorflow as tf

from kmtl.layers import EPNet
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import to_numpy

RNG = np.random.default_rng(0)
FIELDS = RNG.normal(size=(4, 3, 5)).astype("float32")
CONTEXT = RNG.normal(size=(4, 2)).astype("float32")


class TestEPNet(LayerTestCase):
    layer_cls = EPNet
    batteries = {
        # The gate: two Dense layers, kernel + bias each.
        "default": LayerBattery(
            {"hidden_units": 6, "gamma": 2.0},
            [FIELDS, CONTEXT],
            (4, 3, 5),
            expected_num_weights=(4, 0),
        )
    }


def test_scales_each_field_by_the_gate_of_its_example():
    layer = EPNet(hidden_units=6, gamma=1.5)
    out = to_numpy(layer([FIELDS, CONTEXT]))
    w1, b1 = (to_numpy(w) for w in layer.gate.hidden.weights)
    w2, b2 = (to_numpy(w) for w in layer.gate.output_dense.weights)
    g_in = np.concatenate([CONTEXT, FIELDS.reshape(4, 15)], axis=1)
    logits = np.maximum(g_in @ w1 + b1, 0) @ w2 + b2
    delta = 1.5 / (1.0 + np.exp(-logits))  # [4, 3]
    np.testing.assert_allclose(out, FIELDS * delta[..., None], rtol=1e-5)
    assert np.all((delta > 0) & (delta < 1.5))


def test_no_gradient_flows_into_the_embeddings_through_the_gate():
    layer = EPNet()
    fields = tf.constant(FIELDS)
    with tf.GradientTape() as tape:
        tape.watch(fields)
        out = layer([fields, CONTEXT])
    grad = tape.gradient(out, fields).numpy()
    # d out / d fields is the gate alone (the gate's input is stopped).
    delta = (out / fields).numpy()
    np.testing.assert_allclose(grad, delta, rtol=1e-4)


def test_rejects_non_3d_embeddings():
    with pytest.raises(ValueError, match=r"\[B, F, D\]"):
        EPNet()([FIELDS.reshape(4, 15), CONTEXT])
