import keras
import numpy as np
import pytest

from kmtl.layers import CGCLayer
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import to_numpy

X3 = np.array([[1.0, 2.0, 3.0]], dtype="float32")
KWARGS = {
    "num_tasks": 2,
    "num_shared_experts": 1,
    "num_task_experts": 2,
    "expert_units": (4, 3),
}
RNG = np.random.default_rng(0)
INPUT = RNG.normal(size=(4, 5))
LIST_INPUT = [RNG.normal(size=(4, 5)) for _ in range(3)]


class TestCGCLayer(LayerTestCase):
    layer_cls = CGCLayer
    batteries = {
        "single_input": LayerBattery(
            KWARGS, INPUT, [(4, 3), (4, 3)], expected_num_weights=(6, 0)
        ),
        "list_input_with_shared_output": LayerBattery(
            {**KWARGS, "return_shared": True},
            LIST_INPUT,
            [(4, 3), (4, 3), (4, 3)],
            expected_num_weights=(6, None),
        ),
    }
    invalid_args = [
        ({"num_tasks": 0}, "Received: num_tasks=0"),
        (
            {"num_tasks": 2, "num_shared_experts": -1},
            "`num_shared_experts` must be a non-negative integer. "
            "Received: num_shared_experts=-1",
        ),
        (
            {"num_tasks": 2, "num_task_experts": 1.5},
            "Received: num_task_experts=1.5",
        ),
        (
            {"num_tasks": 2, "num_shared_experts": 0, "num_task_experts": 0},
            "at least one expert.*Received: num_shared_experts=0, "
            "num_task_experts=0",
        ),
        ({"num_tasks": 2, "expert_units": None}, "Received: expert_units=None"),
        (
            {"num_tasks": 2, "return_shared": 1},
            "`return_shared` must be a bool. Received: return_shared=1",
        ),
    ]

    def test_expert_mask(self):
        layer = CGCLayer(
            num_tasks=2,
            num_shared_experts=1,
            num_task_experts=2,
            return_shared=True,
        )
        assert layer.num_experts == 5
        assert layer.expert_mask == [
            [1, 1, 0, 0, 1],
            [0, 0, 1, 1, 1],
            [1, 1, 1, 1, 1],
        ]

    def test_task_gates_ignore_other_tasks_experts(self):
        layer = CGCLayer(
            num_tasks=3,
            num_shared_experts=2,
            num_task_experts=2,
            expert_units=(4,),
            return_shared=True,
            kernel_initializer=keras.initializers.RandomNormal(stddev=5.0),
        )
        x = np.random.default_rng(1).normal(size=(16, 5)).astype("float32")
        weights = to_numpy(layer.gate_weights(x))
        assert weights.shape == (16, 4, 8)
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
        for k in range(3):
            own = [2 * k, 2 * k + 1, 6, 7]
            other = [e for e in range(8) if e not in own]
            assert (weights[:, k, other] == 0.0).all()
            assert (weights[:, k, own] > 0.0).all()
        assert (weights[:, 3] > 0.0).all()  # The shared gate uses all.

    def test_ones_single_input(self):
        layer = CGCLayer(
            num_tasks=2, expert_units=(2,), kernel_initializer="ones"
        )
        for output in layer(X3):
            np.testing.assert_allclose(
                to_numpy(output), [[6.0, 6.0]], rtol=1e-6
            )

    def test_ones_list_input_routes_each_input(self):
        layer = CGCLayer(
            num_tasks=2,
            num_shared_experts=1,
            num_task_experts=1,
            expert_units=(1,),
            return_shared=True,
            kernel_initializer="ones",
        )
        task_0, task_1, shared = (
            np.full((1, 3), v, dtype="float32") for v in (1.0, 2.0, 3.0)
        )
        # Experts: task 0 -> 3, task 1 -> 6, shared -> 9. Each gate sees
        # equal logits (ones kernel), so it averages its unmasked experts.
        outputs = [to_numpy(o) for o in layer([task_0, task_1, shared])]
        np.testing.assert_allclose(outputs[0], [[6.0]], rtol=1e-6)
        np.testing.assert_allclose(outputs[1], [[7.5]], rtol=1e-6)
        np.testing.assert_allclose(outputs[2], [[6.0]], rtol=1e-6)

    def test_ple_two_levels(self):
        inputs = keras.Input(shape=(5,))
        level_1 = CGCLayer(
            num_tasks=2,
            num_shared_experts=1,
            num_task_experts=1,
            expert_units=(4,),
            return_shared=True,
            name="level_1",
        )(inputs)
        assert len(level_1) == 3
        level_2 = CGCLayer(
            num_tasks=2,
            num_shared_experts=1,
            num_task_experts=1,
            expert_units=(3,),
            name="level_2",
        )(level_1)
        assert [tuple(t.shape) for t in level_2] == [(None, 3), (None, 3)]
        heads = [keras.layers.Dense(1)(t) for t in level_2]
        model = keras.Model(inputs, heads)
        model.compile(optimizer="adam", loss="mse")
        x = np.random.default_rng(2).normal(size=(8, 5)).astype("float32")
        y = [np.ones((8, 1)), np.zeros((8, 1))]
        history = model.fit(x, y, epochs=2, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        level_2_layer = model.get_layer("level_2")
        # The second level's experts take [B, E, d] inputs, one per expert.
        assert tuple(level_2_layer.experts.weights[0].shape) == (3, 4, 3)
        weights = to_numpy(level_2_layer.gate_weights([x[:, :4]] * 3))
        assert weights.shape == (8, 2, 3)
        assert (weights[:, 0, 1] == 0.0).all()
        assert (weights[:, 1, 0] == 0.0).all()

    def test_only_shared_experts_is_mmoe_like(self):
        layer = CGCLayer(num_tasks=2, num_shared_experts=3, num_task_experts=0)
        assert layer.expert_mask == [[1, 1, 1], [1, 1, 1]]
        assert len(layer(X3)) == 2

    def test_wrong_list_length(self):
        layer = CGCLayer(num_tasks=2, expert_units=(2,))
        with pytest.raises(ValueError, match="num_tasks \\+ 1 = 3 tensors"):
            layer([X3, X3])

    def test_list_layer_rejects_single_tensor(self):
        layer = CGCLayer(num_tasks=2, expert_units=(2,))
        layer([X3, X3, X3])
        with pytest.raises(ValueError, match="built for a list of 3"):
            layer.gate_weights(X3)
