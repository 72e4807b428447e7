import keras
import numpy as np
import pytest

from kmtl.layers import GateNU
from kmtl.testing import run_layer_test


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class TestGateNU:
    def setup_method(self):
        self.x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")

    def test_layer_battery(self):
        run_layer_test(
            GateNU,
            init_kwargs={"units": 3, "hidden_units": 6, "gamma": 1.5},
            input_data=self.x,
            expected_output_shape=(4, 3),
            # Two Dense layers: kernel and bias each.
            expected_num_trainable_weights=4,
            expected_num_non_trainable_weights=0,
        )

    def test_numpy_reference(self):
        gate = GateNU(units=3, hidden_units=2)
        gate.build((None, 5))
        rng = np.random.default_rng(1)
        for weight in gate.trainable_weights:
            weight.assign(rng.normal(size=weight.shape))
        w1, b1 = _np(gate.hidden.kernel), _np(gate.hidden.bias)
        w2, b2 = _np(gate.output_dense.kernel), _np(gate.output_dense.bias)
        hidden = np.maximum(self.x @ w1 + b1, 0.0)
        expected = 2.0 * _sigmoid(hidden @ w2 + b2)
        np.testing.assert_allclose(
            _np(gate(self.x)), expected, rtol=1e-5, atol=1e-6
        )

    def test_zero_logits_give_half_gamma(self):
        gate = GateNU(units=2, gamma=0.5, kernel_initializer="zeros")
        np.testing.assert_allclose(_np(gate(self.x)), 0.25)

    @pytest.mark.parametrize("gamma", [2.0, 0.5, 3.0])
    def test_output_in_open_interval(self, gamma):
        gate = GateNU(units=8, gamma=gamma)
        x = np.random.default_rng(2).normal(size=(256, 5)).astype("float32")
        out = _np(gate(x))
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

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"units": 0}, "Received: units=0"),
            ({"units": 2, "hidden_units": 0}, "Received: hidden_units=0"),
            (
                {"units": 2, "gamma": 0.0},
                "`gamma` must be a positive float. Received: gamma=0.0",
            ),
            ({"units": 2, "gamma": -1}, "Received: gamma=-1"),
            ({"units": 2, "gamma": True}, "Received: gamma=True"),
        ],
    )
    def test_invalid_args(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            GateNU(**kwargs)
