import numpy as np
import pytest

from kmtl.layers import GateNU
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import randomize
from kmtl.testing import to_numpy

X = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")


class TestGateNU(LayerTestCase):
    layer_cls = GateNU
    batteries = {
        # Two Dense layers: kernel and bias each.
        "default": LayerBattery(
            {"units": 3, "hidden_units": 6, "gamma": 1.5},
            X,
            (4, 3),
            expected_num_weights=(4, 0),
        )
    }
    invalid_args = [
        ({"units": 0}, "Received: units=0"),
        ({"units": 2, "hidden_units": 0}, "Received: hidden_units=0"),
        (
            {"units": 2, "gamma": 0.0},
            "`gamma` must be a positive finite float. Received: gamma=0.0",
        ),
        ({"units": 2, "gamma": -1}, "Received: gamma=-1"),
        ({"units": 2, "gamma": True}, "Received: gamma=True"),
    ]

    def test_numpy_reference(self):
        gate = GateNU(units=3, hidden_units=2)
        gate.build((None, 5))
        rng = np.random.default_rng(1)
        randomize(gate.trainable_weights, rng)
        w1, b1 = to_numpy(gate.hidden.kernel), to_numpy(gate.hidden.bias)
        w2, b2 = (
            to_numpy(gate.output_dense.kernel),
            to_numpy(gate.output_dense.bias),
        )
        hidden = np.maximum(X @ w1 + b1, 0.0)
        expected = 2.0 / (1.0 + np.exp(-(hidden @ w2 + b2)))
        np.testing.assert_allclose(
            to_numpy(gate(X)), expected, rtol=1e-5, atol=1e-6
        )

    def test_zero_logits_give_half_gamma(self):
        gate = GateNU(units=2, gamma=0.5, kernel_initializer="zeros")
        np.testing.assert_allclose(to_numpy(gate(X)), 0.25)

    @pytest.mark.parametrize("gamma", [2.0, 0.5, 3.0])
    def test_output_in_open_interval(self, gamma):
        gate = GateNU(units=8, gamma=gamma)
        x = np.random.default_rng(2).normal(size=(256, 5)).astype("float32")
        out = to_numpy(gate(x))
        assert out.min() > 0.0 and out.max() < gamma
        assert out.max() > 0.6 * gamma and out.min() < 0.4 * gamma

    def test_hidden_units_default_to_units(self):
        gate = GateNU(units=3)
        gate.build((None, 5))
        assert tuple(gate.hidden.kernel.shape) == (5, 3)
        assert tuple(gate.output_dense.kernel.shape) == (3, 3)

    def test_input_rank_is_checked(self):
        with pytest.raises(ValueError, match="shape \\[B, d\\]"):
            GateNU(units=3)(np.ones((2, 3, 4)))
