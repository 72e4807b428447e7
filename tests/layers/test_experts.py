import keras
import numpy as np
import pytest

from kmtl.layers import Experts
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import to_numpy

X3 = np.array([[1.0, 2.0, 3.0]], dtype="float32")
KWARGS = {"num_experts": 3, "units": (4, 2)}


class TestExperts(LayerTestCase):
    layer_cls = Experts
    batteries = {
        "shared_input": LayerBattery(
            KWARGS,
            np.random.default_rng(0).normal(size=(4, 5)),
            (4, 3, 2),
            expected_num_weights=(4, 0),
        ),
        "per_expert_input": LayerBattery(
            KWARGS,
            np.random.default_rng(1).normal(size=(4, 3, 5)),
            (4, 3, 2),
            expected_num_weights=(4, None),
            run_training_check=False,
        ),
    }
    invalid_args = [
        (
            {"num_experts": 0, "units": (2,)},
            "`num_experts` must be a positive integer. Received: num_experts=0",
        ),
        ({"num_experts": 2.0, "units": (2,)}, "Received: num_experts=2.0"),
        ({"num_experts": 2, "units": []}, "Received: units=\\[\\]"),
        ({"num_experts": 2, "units": (2, -1)}, "`units` must be"),
    ]

    def test_ones_shared_input(self):
        layer = Experts(num_experts=2, units=(2, 3), kernel_initializer="ones")
        # Layer 1: 1 + 2 + 3 = 6 per unit; layer 2: 6 + 6 = 12 per unit.
        np.testing.assert_allclose(
            to_numpy(layer(X3)), np.full((1, 2, 3), 12.0)
        )

    def test_ones_per_expert_input(self):
        layer = Experts(num_experts=2, units=(1,), kernel_initializer="ones")
        x = np.array([[[1.0, 2.0, 3.0], [1.0, 1.0, -5.0]]], dtype="float32")
        # Expert 0 sums its row (6); expert 1 sums -3, then relu -> 0.
        np.testing.assert_allclose(to_numpy(layer(x)), [[[6.0], [0.0]]])

    def test_first_kernel_rows_belong_to_experts(self):
        layer = Experts(num_experts=2, units=(2,), kernel_initializer="ones")
        layer.build((None, 3))
        kernel = np.ones((2, 3, 2), dtype="float32")  # [E, d, h]
        kernel[1] = 2.0  # expert 1's kernel
        layer.weights[0].assign(kernel)
        layer.weights[1].assign([[0.0, 1.0], [0.0, 0.0]])  # bias [E, h]
        np.testing.assert_allclose(
            to_numpy(layer(X3)), [[[6.0, 7.0], [12.0, 12.0]]]
        )

    def test_matches_independent_mlps(self):
        layer = Experts(num_experts=3, units=(4, 2), activation="tanh")
        x = np.random.default_rng(2).normal(size=(5, 6)).astype("float32")
        out = to_numpy(layer(x))
        k0, b0, k1, b1 = (to_numpy(w) for w in layer.weights)
        assert k0.shape == (3, 6, 4)
        for e in range(3):
            h = np.tanh(x @ k0[e] + b0[e])
            np.testing.assert_allclose(
                out[:, e], np.tanh(h @ k1[e] + b1[e]), rtol=1e-5, atol=1e-6
            )

    def test_experts_start_different_with_per_expert_scale(self):
        layer = Experts(num_experts=4, units=(64, 32))
        layer.build((None, 96))
        k0 = to_numpy(layer.weights[0])
        k1 = to_numpy(layer.weights[2])
        for kernel in (k0[0], k0[1], k1[0], k1[3]):
            fan_in, fan_out = kernel.shape
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            assert np.abs(kernel).max() <= limit
            assert np.abs(kernel).max() > 0.9 * limit
        assert not np.allclose(k0[0], k0[1])
        assert not np.allclose(k1[0], k1[1])

    def test_seeded_initializer_is_reproducible(self):
        def kernel():
            init = keras.initializers.GlorotUniform(seed=7)
            layer = Experts(num_experts=2, units=(3,), kernel_initializer=init)
            layer.build((None, 4))
            return to_numpy(layer.weights[0])

        first, second = kernel(), kernel()
        np.testing.assert_array_equal(first, second)
        assert not np.allclose(first[0], first[1])

    def test_wrong_number_of_expert_inputs(self):
        layer = Experts(num_experts=3, units=(2,))
        with pytest.raises(ValueError, match="one row per expert"):
            layer(np.ones((2, 4, 5)))

    def test_wrong_rank(self):
        with pytest.raises(ValueError, match="\\[B, d\\] or"):
            Experts(num_experts=3, units=(2,))(np.ones((2,)))
