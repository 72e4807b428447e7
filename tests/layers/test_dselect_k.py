import keras
import numpy as np
import pytest
from keras import ops

from kmtl.layers import DSelectKGate
from kmtl.layers import DSelectKLayer
from kmtl.layers import get_switcher
from kmtl.layers.dselect_k import binary_codes
from kmtl.layers.dselect_k import smooth_step
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import randomize
from kmtl.testing import softmax
from kmtl.testing import to_numpy

X = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")


def _smooth_step(t, gamma=1.0):
    """NumPy smooth-step, written from its definition."""
    cubic = -2 * t**3 / gamma**3 + 3 * t / (2 * gamma) + 0.5
    return np.where(t <= -gamma / 2, 0.0, np.where(t >= gamma / 2, 1.0, cubic))


def _reference_weights(gate, x):
    """NumPy DSelect-k weights `[B, G, n]`, selector outputs `[B, G, k, n]`
    and selector logits `z`, from the gate's weights."""
    g, k, m = gate.num_gates, gate.num_selectors, gate.num_bits
    if gate.per_example:
        z = x @ to_numpy(gate.z_kernel) + to_numpy(gate.z_bias)
        z = z.reshape(-1, g, k, m)
    else:
        z = to_numpy(gate.z_logits)[None]
    bits = _smooth_step(z.astype("float64"), gate.gamma)
    n = gate.num_experts
    r = np.ones(z.shape[:-1] + (n,))
    for i in range(n):
        code = [int(c) for c in np.binary_repr(i, m)]
        for j, bit in enumerate(code):
            r[..., i] *= bits[..., j] if bit else 1 - bits[..., j]
    if k == 1:
        s = np.ones(z.shape[:-1])
    elif gate.per_example:
        w = x @ to_numpy(gate.w_kernel) + to_numpy(gate.w_bias)
        s = softmax(w.reshape(-1, g, k))
    else:
        s = softmax(to_numpy(gate.w_logits)[None])
    weights = np.einsum("bgl,bgle->bge", s, r)
    return np.broadcast_to(weights, (len(x), g, n)), r, z


class TestDSelectKGate(LayerTestCase):
    layer_cls = DSelectKGate
    batteries = {
        # z kernel and bias, w kernel and bias.
        "per_example": LayerBattery(
            {"num_gates": 2, "num_experts": 4},
            X,
            (4, 2, 4),
            expected_num_weights=(4, 0),
        ),
        # One selector: no w.
        "one_selector": LayerBattery(
            {"num_gates": 3, "num_experts": 3, "num_selectors": 1},
            X,
            (4, 3, 3),
            expected_num_weights=(2, 0),
        ),
    }
    invalid_args = [
        ({"num_gates": 0, "num_experts": 2}, "Received: num_gates=0"),
        ({"num_gates": 1, "num_experts": 0}, "Received: num_experts=0"),
        (
            {"num_gates": 1, "num_experts": 3, "num_selectors": 4},
            "`num_selectors` must be at most `num_experts` \\(3\\). "
            "Received: num_selectors=4",
        ),
        ({"num_gates": 1, "num_experts": 2, "gamma": 0}, "Received: gamma=0"),
        (
            {"num_gates": 1, "num_experts": 2, "entropy_weight": -1.0},
            "Received: entropy_weight=-1.0",
        ),
        (
            {"num_gates": 1, "num_experts": 2, "per_example": "yes"},
            "Received: per_example='yes'",
        ),
    ]

    @pytest.mark.parametrize("gamma", [1.0, 0.4])
    def test_smooth_step(self, gamma):
        t = np.linspace(-1.0, 1.0, 41)
        got = to_numpy(smooth_step(t.astype("float32"), gamma))
        np.testing.assert_allclose(got, _smooth_step(t, gamma), atol=1e-6)
        # Exactly 0 and 1 outside (-gamma/2, gamma/2), 1/2 at 0, and
        # continuous at the edges with a zero slope there.
        assert np.all(got[t <= -gamma / 2] == 0)
        assert np.all(got[t >= gamma / 2] == 1)
        np.testing.assert_allclose(got[t == 0], 0.5)
        near = np.array([-gamma / 2 + 1e-3, gamma / 2 - 1e-3], "float32")
        np.testing.assert_allclose(
            to_numpy(smooth_step(near, gamma)), [0, 1], atol=1e-4
        )
        np.testing.assert_allclose(
            to_numpy(smooth_step(np.array([0.25], "float32"))), [0.84375]
        )

    def test_binary_codes(self):
        np.testing.assert_array_equal(
            binary_codes(5).astype(int),
            [[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1], [1, 0, 0]],
        )
        assert binary_codes(2).shape == (2, 1)
        assert binary_codes(1).shape == (1, 1)

    @pytest.mark.parametrize("per_example", [True, False])
    @pytest.mark.parametrize("num_experts, k", [(4, 2), (5, 3), (6, 1)])
    def test_weights_match_numpy(self, per_example, num_experts, k):
        gate = DSelectKGate(
            2, num_experts, k, gamma=1.5, per_example=per_example
        )
        gate(X)
        rng = np.random.default_rng(2)
        randomize(gate.trainable_weights, rng)
        expected, _, z = _reference_weights(gate, X)
        # Some soft bits saturated, some not: both branches are checked.
        assert np.any(np.abs(z) >= 0.75) and np.any(np.abs(z) < 0.75)
        np.testing.assert_allclose(
            to_numpy(gate(X)), expected, rtol=1e-5, atol=1e-6
        )
        if num_experts == 4:  # A power of 2: every code is an expert.
            np.testing.assert_allclose(expected.sum(-1), 1.0, rtol=1e-6)

    def test_saturated_selectors_pick_at_most_k_experts(self):
        gate = DSelectKGate(2, 8, 2, per_example=False)
        gate(X)
        # Logits beyond gamma / 2: every selector one-hot, on experts
        # 0b101 = 5 and 0b011 = 3 for gate 0, and 0b000 = 0 twice for 1.
        z = np.array(
            [[[1, -1, 1], [-1, 1, 1]], [[-1, -1, -1], [-2, -2, -2]]], "float32"
        )
        gate.z_logits.assign(z)
        weights = to_numpy(gate(X))[0]
        w0 = softmax(to_numpy(gate.w_logits)[0])
        np.testing.assert_allclose(weights[0, [5, 3]], w0, rtol=1e-6)
        assert np.count_nonzero(weights[0]) == 2
        np.testing.assert_array_equal(weights[1], np.eye(8)[0])

    def test_regularizers_are_added_in_training_only(self):
        gate = DSelectKGate(2, 5, 2, entropy_weight=0.3)
        inputs = keras.Input(shape=(5,))
        model = keras.Model(inputs, gate(inputs))
        rng = np.random.default_rng(3)
        for weight in gate.trainable_weights:  # Small: no bit saturates.
            weight.assign(0.1 * rng.normal(size=weight.shape))
        model(X)
        assert not model.losses
        model(X, training=True)
        entropy_loss, unused_loss = (to_numpy(v) for v in model.losses)
        _, r, _ = _reference_weights(gate, X)  # [B, G, k, n]
        entropy = -np.sum(r * np.log(r + 1e-6), -1)
        np.testing.assert_allclose(
            entropy_loss, 0.3 * entropy.sum((1, 2)).mean(), rtol=1e-5
        )
        np.testing.assert_allclose(
            unused_loss, (1 / r.sum(-1) - 1).sum((1, 2)).mean(), rtol=1e-5
        )
        assert unused_loss > 0  # Some weight is on the 3 unused codes.
        # A power of 2 has no unused codes, hence no second loss.
        gate = DSelectKGate(2, 4, 2)
        keras.Model(inputs, gate(inputs))(X, training=True)
        assert len(gate.losses) == 1

    @pytest.mark.slow
    @pytest.mark.parametrize(
        "per_example, needed", [(False, [4, 1]), (True, [2, 0])]
    )
    def test_training_selects_the_expert_each_task_needs(
        self, per_example, needed
    ):
        """Fixed expert outputs `f_e(x)`, 5 experts (3 codes without an
        expert); task `t`'s target is `f_{needed[t]}`. A gate with k = 1
        trained on the MSE of its mixture selects exactly those experts:
        weight 1 (up to rounding) on the needed expert, 0 on the others.

        Static gating reaches even expert 4 (code 0b100, whose leading bit
        the unused-code penalty pushes away); per-example gating there
        leaves, after 10 epochs, about 40 % of the rows saturated on
        experts 0 and 1 (their bits have no gradient left), so it is
        checked on experts 2 and 0."""
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(2048, 6)).astype("float32")
        projections = rng.normal(size=(5, 6))
        experts = np.tanh(np.einsum("bd,ed->be", x, projections))
        experts = experts.astype("float32")[..., None]  # [B, 5, 1]
        targets = experts[:, needed, 0]  # [B, 2]
        x_in = keras.Input(shape=(6,))
        experts_in = keras.Input(shape=(5, 1))
        gate = DSelectKGate(2, 5, 1, per_example=per_example)
        mixed = ops.matmul(gate(x_in), experts_in)[..., 0]  # [B, 2]
        model = keras.Model([x_in, experts_in], mixed)
        model.compile(keras.optimizers.Adam(0.05), "mse")
        model.fit([x, experts], targets, batch_size=256, epochs=10, verbose=0)
        weights = to_numpy(gate(x))  # [B, 2, 5]
        for task, expert in enumerate(needed):
            chosen = weights[:, task].argmax(-1)
            assert np.all(chosen == expert), np.bincount(chosen)
            assert weights[:, task, expert].mean() > 0.99
            if not per_example:
                np.testing.assert_allclose(weights[:, task, expert], 1.0)


class TestDSelectKLayer(LayerTestCase):
    layer_cls = DSelectKLayer
    batteries = {
        # Experts: 2 kernels + 2 biases; gate: 4.
        "per_example": LayerBattery(
            {"num_tasks": 2, "num_experts": 5, "expert_units": (4, 3)},
            X,
            [(4, 3), (4, 3)],
            expected_num_weights=(8, 0),
        ),
        "static": LayerBattery(
            # z logits (one selector: no w); 5 experts: 3 bits, 3 codes
            # without an expert.
            {
                "num_tasks": 3,
                "num_experts": 5,
                "num_selectors": 1,
                "per_example": False,
                "expert_units": (3,),
            },
            X,
            [(4, 3), (4, 3), (4, 3)],
            expected_num_weights=(3, 0),
        ),
    }
    invalid_args = [
        ({"num_tasks": 0}, "Received: num_tasks=0"),
        (
            {"num_tasks": 2, "num_experts": 1},
            "`num_selectors` must be at most `num_experts` \\(1\\)",
        ),
        ({"num_tasks": 2, "gamma": -1.0}, "Received: gamma=-1.0"),
        ({"num_tasks": 2, "per_example": 1}, "Received: per_example=1"),
    ]

    @pytest.mark.parametrize("per_example", [True, False])
    def test_outputs_are_gate_weighted_sums_of_experts(self, per_example):
        layer = DSelectKLayer(
            num_tasks=3,
            num_experts=6,
            num_selectors=2,
            per_example=per_example,
            expert_units=(5, 2),
        )
        layer(X)
        randomize(layer.gate.trainable_weights, np.random.default_rng(4))
        weights = to_numpy(layer.gate_weights(X))  # [B, K, n]
        expected_weights, _, _ = _reference_weights(layer.gate, X)
        np.testing.assert_allclose(weights, expected_weights, atol=1e-6)
        experts = to_numpy(layer.experts(X))  # [B, n, H]
        outputs = [to_numpy(o) for o in layer(X)]
        for k in range(3):
            expected = (weights[:, k, :, None] * experts).sum(1)
            np.testing.assert_allclose(outputs[k], expected, rtol=1e-5)
        gates = layer.named_gate_weights(X)
        assert sorted(gates) == ["task_0", "task_1", "task_2"]
        np.testing.assert_allclose(to_numpy(gates["task_1"]), weights[:, 1])

    def test_the_gate_losses_reach_the_model(self):
        inputs = keras.Input(shape=(5,))
        layer = DSelectKLayer(num_tasks=2, num_experts=3, expert_units=(4,))
        model = keras.Model(inputs, layer(inputs))
        model(X, training=True)
        assert len(model.losses) == 2  # entropy, unused code


def test_registered_switcher_pools_the_expert_budget():
    layer = get_switcher(
        "dselect_k", 3, num_shared_experts=2, num_task_experts=2
    )
    assert isinstance(layer, DSelectKLayer)
    assert layer.num_experts == 8
