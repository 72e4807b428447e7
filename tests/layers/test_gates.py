import keras
import numpy as np
import pytest

from kmtl.layers import MixtureGate
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import to_numpy

X3 = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]], dtype="float32")
MASK = [[1, 1, 0], [0, 1, 1]]


class TestMixtureGate(LayerTestCase):
    layer_cls = MixtureGate
    batteries = {
        "masked": LayerBattery(
            {"num_gates": 2, "num_experts": 3, "expert_mask": MASK},
            np.random.default_rng(0).normal(size=(4, 5)),
            (4, 2, 3),
            expected_num_weights=(2, 0),
        ),
        "per_gate_input": LayerBattery(
            {"num_gates": 2, "num_experts": 3, "use_bias": False},
            np.random.default_rng(1).normal(size=(4, 2, 5)),
            (4, 2, 3),
            expected_num_weights=(1, None),
            run_saving_check=False,
        ),
    }
    invalid_args = [
        (
            {"num_gates": 0, "num_experts": 2},
            "`num_gates` must be a positive integer. Received: num_gates=0",
        ),
        ({"num_gates": 1, "num_experts": -1}, "Received: num_experts=-1"),
        (
            {"num_gates": 2, "num_experts": 3, "expert_mask": [[1, 1, 1]]},
            "`expert_mask` must be.*\\[2, 3\\].*"
            "Received: expert_mask=\\[\\[1, 1, 1\\]\\]",
        ),
        (
            {"num_gates": 2, "num_experts": 2, "expert_mask": [[1, 0], [0, 0]]},
            "at least one 1 in each row",
        ),
        (
            {"num_gates": 1, "num_experts": 2, "expert_mask": [[1, 2]]},
            "Received: expert_mask=\\[\\[1, 2\\]\\]",
        ),
        (
            {"num_gates": 1, "num_experts": 2, "use_bias": "yes"},
            "`use_bias` must be a bool. Received: use_bias='yes'",
        ),
    ]

    def test_ones_gives_uniform_over_unmasked(self):
        gate = MixtureGate(
            num_gates=2,
            num_experts=3,
            expert_mask=MASK,
            kernel_initializer="ones",
        )
        np.testing.assert_allclose(
            to_numpy(gate(X3)), [[[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]]] * 2
        )

    def test_hand_computed_logits(self):
        gate = MixtureGate(num_gates=1, num_experts=2)
        gate.build((None, 3))
        # Logits [0, log 3] for x = [1, 0, 0] -> weights [1/4, 3/4].
        gate.kernel.assign([[0.0, np.log(3.0)], [0.0, 0.0], [0.0, 0.0]])
        out = to_numpy(gate(np.array([[1.0, 0.0, 0.0]], dtype="float32")))
        np.testing.assert_allclose(out, [[[0.25, 0.75]]], rtol=1e-6)

    def test_per_gate_input(self):
        gate = MixtureGate(num_gates=2, num_experts=2, use_bias=False)
        gate.build((None, 2, 1))
        gate.kernel.assign([[[0.0, 1.0]], [[1.0, 0.0]]])  # [G, d, E]
        x = np.array([[[np.log(3.0)], [0.0]]], dtype="float32")
        # Gate 0: logits [0, log 3]; gate 1 sees 0: logits [0, 0].
        np.testing.assert_allclose(
            to_numpy(gate(x)), [[[0.25, 0.75], [0.5, 0.5]]], rtol=1e-6
        )

    def test_rows_sum_to_one_and_masked_are_exactly_zero(self):
        gate = MixtureGate(
            num_gates=2,
            num_experts=3,
            expert_mask=MASK,
            kernel_initializer=keras.initializers.RandomNormal(stddev=50.0),
        )
        x = np.random.default_rng(3).normal(size=(64, 5)).astype("float32")
        weights = to_numpy(gate(x))
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
        assert (weights[:, 0, 2] == 0.0).all()
        assert (weights[:, 1, 0] == 0.0).all()
        assert (weights[:, 0, :2] > 0).any()

    def test_gradient_is_finite_with_mask(self):
        gate = MixtureGate(num_gates=2, num_experts=3, expert_mask=MASK)
        inputs = keras.Input(shape=(5,))
        model = keras.Model(inputs, gate(inputs))
        model.compile(optimizer="sgd", loss="mse")
        x = np.random.default_rng(4).normal(size=(8, 5))
        history = model.fit(x, np.full((8, 2, 3), 0.3), verbose=0)
        assert np.isfinite(history.history["loss"][0])
        assert np.isfinite(to_numpy(gate.kernel)).all()

    def test_mask_accepts_array_and_serializes_as_lists(self):
        gate = MixtureGate(
            num_gates=2, num_experts=3, expert_mask=np.array(MASK)
        )
        assert gate.get_config()["expert_mask"] == MASK

    def test_wrong_number_of_gate_inputs(self):
        gate = MixtureGate(num_gates=2, num_experts=3)
        with pytest.raises(ValueError, match="one row per gate"):
            gate(np.ones((2, 3, 4)))
