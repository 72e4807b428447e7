import numpy as np
import pytest

from kmtl.layers import MMoELayer
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import to_numpy

X3 = np.array([[1.0, 2.0, 3.0]], dtype="float32")


class TestMMoELayer(LayerTestCase):
    layer_cls = MMoELayer
    batteries = {
        # Experts: 2 kernels + 2 biases; gate: kernel + bias.
        "default": LayerBattery(
            {"num_tasks": 2, "num_experts": 3, "expert_units": (4, 3)},
            np.random.default_rng(0).normal(size=(4, 5)),
            [(4, 3), (4, 3)],
            expected_num_weights=(6, 0),
        )
    }
    invalid_args = [
        (
            {"num_tasks": 0},
            "`num_tasks` must be a positive integer. Received: num_tasks=0",
        ),
        ({"num_tasks": 2, "num_experts": 0}, "Received: num_experts=0"),
        (
            {"num_tasks": 2, "expert_units": (4, 0)},
            "`expert_units` must be.*Received: expert_units=\\(4, 0\\)",
        ),
        ({"num_tasks": 2, "shared_gate": "yes"}, "Received: shared_gate='yes'"),
    ]

    def test_ones_mixture_of_equal_experts(self):
        layer = MMoELayer(
            num_tasks=2,
            num_experts=3,
            expert_units=(2,),
            kernel_initializer="ones",
        )
        for output in layer(X3):
            np.testing.assert_allclose(
                to_numpy(output), [[6.0, 6.0]], rtol=1e-6
            )
        np.testing.assert_allclose(
            to_numpy(layer.gate_weights(X3)), np.full((1, 2, 3), 1.0 / 3.0)
        )

    def test_outputs_are_gate_weighted_sums_of_experts(self):
        layer = MMoELayer(num_tasks=3, num_experts=4, expert_units=(5, 2))
        x = np.random.default_rng(1).normal(size=(6, 7)).astype("float32")
        outputs = [to_numpy(o) for o in layer(x)]
        weights = to_numpy(layer.gate_weights(x))  # [B, G, E]
        experts = to_numpy(layer.experts(x))  # [B, E, H]
        assert weights.shape == (6, 3, 4)
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
        for k in range(3):
            expected = (weights[:, k, :, None] * experts).sum(1)
            np.testing.assert_allclose(outputs[k], expected, rtol=1e-5)
        # Different gates give different mixtures.
        assert not np.allclose(outputs[0], outputs[1])

    def test_shared_gate_is_omoe(self):
        layer = MMoELayer(
            num_tasks=3, num_experts=4, expert_units=(5,), shared_gate=True
        )
        x = np.random.default_rng(2).normal(size=(6, 7)).astype("float32")
        outputs = [to_numpy(o) for o in layer(x)]
        assert len(outputs) == 3
        for output in outputs[1:]:
            np.testing.assert_array_equal(output, outputs[0])
        assert layer.gate_weights(x).shape == (6, 1, 4)
        # One gate: kernel [d, 1 * E].
        assert tuple(layer.gate.kernel.shape) == (7, 4)

    def test_gate_weights_before_call(self):
        layer = MMoELayer(num_tasks=2, num_experts=3, expert_units=(2,))
        assert layer.gate_weights(X3).shape == (1, 2, 3)

    def test_list_input_is_rejected(self):
        layer = MMoELayer(num_tasks=2, num_experts=3, expert_units=(2,))
        with pytest.raises(ValueError, match="one tensor of shape"):
            layer([X3, X3])
