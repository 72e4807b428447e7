import keras
import numpy as np
import pytest

from kmtl.layers import STARDense
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import randomize
from kmtl.testing import to_numpy

X = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
IDS = np.array([0, 1, 2, 0, 2, 2], dtype="int32")


def _full_reference(layer, x, ids):
    kernels = to_numpy(layer.scenario_kernel)[ids] * to_numpy(layer.kernel)
    bias = to_numpy(layer.bias) + to_numpy(layer.scenario_bias)[ids]
    return np.einsum("bi,bio->bo", x, kernels) + bias


def _star_battery(rank, num_weights):
    return LayerBattery(
        {
            "units": 3,
            "num_scenarios": 3,
            "scenario_rank": rank,
            "activation": "relu",
        },
        [X, IDS],
        (6, 3),
        expected_num_weights=(num_weights, 0),
    )


class TestSTARDense(LayerTestCase):
    layer_cls = STARDense
    # W, b, b_p and W_p, or u and v.
    batteries = {"full": _star_battery(0, 4), "rank_2": _star_battery(2, 5)}
    invalid_args = [
        ({"units": 0, "num_scenarios": 2}, "Received: units=0"),
        (
            {"units": 2, "num_scenarios": 0},
            "`num_scenarios` must be a positive integer. "
            "Received: num_scenarios=0",
        ),
        (
            {"units": 2, "num_scenarios": 2, "scenario_rank": -1},
            "`scenario_rank` must be a non-negative integer. "
            "Received: scenario_rank=-1",
        ),
    ]

    @pytest.mark.parametrize("rank", [0, 2])
    def test_every_scenario_starts_as_the_shared_layer(self, rank):
        layer = STARDense(units=3, num_scenarios=3, scenario_rank=rank)
        out = to_numpy(layer([X, IDS]))
        np.testing.assert_allclose(
            out, X @ to_numpy(layer.kernel), rtol=1e-5, atol=1e-6
        )

    # 3 scenarios: all kernels at once; 40: one gathered kernel per example.
    @pytest.mark.parametrize("num_scenarios", [3, 40])
    def test_full_form(self, num_scenarios):
        layer = STARDense(units=3, num_scenarios=num_scenarios)
        layer.build([(None, 4), (None,)])
        randomize(layer.trainable_weights, np.random.default_rng(1))
        ids = IDS * (num_scenarios // 3)
        out = to_numpy(layer([X, ids]))
        np.testing.assert_allclose(
            out, _full_reference(layer, X, ids), rtol=1e-5, atol=1e-5
        )

    def test_activation(self):
        layer = STARDense(units=3, num_scenarios=3, activation="relu")
        layer.build([(None, 4), (None,)])
        randomize(layer.trainable_weights, np.random.default_rng(2))
        out = to_numpy(layer([X, IDS]))
        expected = np.maximum(_full_reference(layer, X, IDS), 0)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)

    def test_rank_form_formula_and_equivalence_with_full_form(self):
        rng = np.random.default_rng(3)
        low = STARDense(units=3, num_scenarios=3, scenario_rank=2)
        low.build([(None, 4), (None,)])
        randomize(low.trainable_weights, rng)
        u, v = to_numpy(low.scenario_u), to_numpy(low.scenario_v)
        w = to_numpy(low.kernel)
        bias = to_numpy(low.bias) + to_numpy(low.scenario_bias)[IDS]
        out = to_numpy(low([X, IDS]))
        # x W + sum_k ((x * u_k) W) * v_k.
        uk, vk = u[IDS], v[IDS]
        formula = (
            X @ w + np.einsum("bko,bko->bo", (X[:, None] * uk) @ w, vk) + bias
        )
        np.testing.assert_allclose(out, formula, rtol=1e-4, atol=1e-4)
        # The same as the full form with W_p = 1 + sum_k u_k v_k^T.
        full = STARDense(units=3, num_scenarios=3)
        full.build([(None, 4), (None,)])
        full.kernel.assign(w)
        full.bias.assign(to_numpy(low.bias))
        full.scenario_bias.assign(to_numpy(low.scenario_bias))
        full.scenario_kernel.assign(1.0 + np.einsum("ski,sko->sio", u, v))
        np.testing.assert_allclose(
            to_numpy(full([X, IDS])), out, rtol=1e-4, atol=1e-4
        )

    # Full form with all kernels (4) and gathered kernels (40); rank form.
    @pytest.mark.parametrize("rank, num", [(0, 4), (0, 40), (2, 4)])
    def test_gradient_reaches_only_the_scenarios_in_the_batch(self, rank, num):
        x_in = keras.Input(shape=(4,))
        s_in = keras.Input(shape=(), dtype="int32")
        layer = STARDense(units=3, num_scenarios=num, scenario_rank=rank)
        model = keras.Model([x_in, s_in], layer([x_in, s_in]))
        randomize(layer.trainable_weights, np.random.default_rng(4))
        per_scenario = [
            w for w in layer.trainable_weights if w.name.startswith("scenario")
        ]
        assert len(per_scenario) == (2 if rank == 0 else 3)
        before = [to_numpy(w).copy() for w in per_scenario]
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        ids = np.array([0, 2, 0, 2, 2, 0], dtype="int32")
        model.fit([X, ids], np.ones((6, 3)), batch_size=6, verbose=0)
        for old, weight in zip(before, per_scenario, strict=True):
            changed = np.abs(to_numpy(weight) - old).reshape(num, -1).max(1) > 0
            assert np.flatnonzero(changed).tolist() == [0, 2], weight.path

    @pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="ids are checked in the graph on TensorFlow only",
    )
    def test_out_of_range_scenario_is_an_error(self):
        layer = STARDense(units=3, num_scenarios=2)
        with pytest.raises(Exception, match=r"must hold ids in \[0, 2\)"):
            layer([X, IDS])

    def test_wrong_input_rank_is_rejected(self):
        layer = STARDense(units=3, num_scenarios=3)
        with pytest.raises(ValueError, match="must have shape \\[B, d\\]"):
            layer([X[:, :, None], IDS])
