import keras
import numpy as np
import pytest

from kmtl.layers import STARDense
from kmtl.testing import run_layer_test


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _randomize(layer, rng):
    for weight in layer.trainable_weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32"))


def _full_reference(layer, x, ids):
    kernels = _np(layer.scenario_kernel)[ids] * _np(layer.kernel)
    bias = _np(layer.bias) + _np(layer.scenario_bias)[ids]
    return np.einsum("bi,bio->bo", x, kernels) + bias


class TestSTARDense:
    def setup_method(self):
        rng = np.random.default_rng(0)
        self.x = rng.normal(size=(6, 4)).astype("float32")
        self.ids = np.array([0, 1, 2, 0, 2, 2], dtype="int32")

    @pytest.mark.parametrize(
        "rank, num_weights",
        [(0, 4), (2, 5)],  # W, b, b_p and W_p, or u and v.
    )
    def test_layer_battery(self, rank, num_weights):
        run_layer_test(
            STARDense,
            init_kwargs={
                "units": 3,
                "num_scenarios": 3,
                "scenario_rank": rank,
                "activation": "relu",
            },
            input_data=[self.x, self.ids],
            expected_output_shape=(6, 3),
            expected_num_trainable_weights=num_weights,
            expected_num_non_trainable_weights=0,
        )

    @pytest.mark.parametrize("rank", [0, 2])
    def test_every_scenario_starts_as_the_shared_layer(self, rank):
        layer = STARDense(units=3, num_scenarios=3, scenario_rank=rank)
        out = _np(layer([self.x, self.ids]))
        np.testing.assert_allclose(
            out, self.x @ _np(layer.kernel), rtol=1e-5, atol=1e-6
        )

    # 3 scenarios: all kernels at once; 40: one gathered kernel per example.
    @pytest.mark.parametrize("num_scenarios", [3, 40])
    def test_full_form(self, num_scenarios):
        layer = STARDense(units=3, num_scenarios=num_scenarios)
        layer.build([(None, 4), (None,)])
        _randomize(layer, np.random.default_rng(1))
        ids = self.ids * (num_scenarios // 3)
        out = _np(layer([self.x, ids]))
        np.testing.assert_allclose(
            out, _full_reference(layer, self.x, ids), rtol=1e-5, atol=1e-5
        )

    def test_activation(self):
        layer = STARDense(units=3, num_scenarios=3, activation="relu")
        layer.build([(None, 4), (None,)])
        _randomize(layer, np.random.default_rng(2))
        out = _np(layer([self.x, self.ids]))
        expected = np.maximum(_full_reference(layer, self.x, self.ids), 0)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)

    def test_rank_form_formula_and_equivalence_with_full_form(self):
        rng = np.random.default_rng(3)
        low = STARDense(units=3, num_scenarios=3, scenario_rank=2)
        low.build([(None, 4), (None,)])
        _randomize(low, rng)
        u, v = _np(low.scenario_u), _np(low.scenario_v)
        w = _np(low.kernel)
        bias = _np(low.bias) + _np(low.scenario_bias)[self.ids]
        out = _np(low([self.x, self.ids]))
        # x W + sum_k ((x * u_k) W) * v_k.
        uk, vk = u[self.ids], v[self.ids]
        formula = (
            self.x @ w
            + np.einsum("bko,bko->bo", (self.x[:, None] * uk) @ w, vk)
            + bias
        )
        np.testing.assert_allclose(out, formula, rtol=1e-4, atol=1e-4)
        # The same as the full form with W_p = 1 + sum_k u_k v_k^T.
        full = STARDense(units=3, num_scenarios=3)
        full.build([(None, 4), (None,)])
        full.kernel.assign(w)
        full.bias.assign(_np(low.bias))
        full.scenario_bias.assign(_np(low.scenario_bias))
        full.scenario_kernel.assign(1.0 + np.einsum("ski,sko->sio", u, v))
        np.testing.assert_allclose(
            _np(full([self.x, self.ids])), out, rtol=1e-4, atol=1e-4
        )

    # Full form with all kernels (4) and gathered kernels (40); rank form.
    @pytest.mark.parametrize("rank, num", [(0, 4), (0, 40), (2, 4)])
    def test_gradient_reaches_only_the_scenarios_in_the_batch(self, rank, num):
        x_in = keras.Input(shape=(4,))
        s_in = keras.Input(shape=(), dtype="int32")
        layer = STARDense(units=3, num_scenarios=num, scenario_rank=rank)
        model = keras.Model([x_in, s_in], layer([x_in, s_in]))
        _randomize(layer, np.random.default_rng(4))
        per_scenario = [
            w for w in layer.trainable_weights if w.name.startswith("scenario")
        ]
        assert len(per_scenario) == (2 if rank == 0 else 3)
        before = [_np(w).copy() for w in per_scenario]
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        ids = np.array([0, 2, 0, 2, 2, 0], dtype="int32")
        model.fit([self.x, ids], np.ones((6, 3)), batch_size=6, verbose=0)
        for old, weight in zip(before, per_scenario, strict=True):
            changed = np.abs(_np(weight) - old).reshape(num, -1).max(1) > 0
            assert np.flatnonzero(changed).tolist() == [0, 2], weight.path

    @pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="ids are checked in the graph on TensorFlow only",
    )
    def test_out_of_range_scenario_is_an_error(self):
        layer = STARDense(units=3, num_scenarios=2)
        with pytest.raises(Exception, match=r"must hold ids in \[0, 2\)"):
            layer([self.x, self.ids])

    def test_wrong_input_rank_is_rejected(self):
        layer = STARDense(units=3, num_scenarios=3)
        with pytest.raises(ValueError, match="must have shape \\[B, d\\]"):
            layer([self.x[:, :, None], self.ids])

    @pytest.mark.parametrize(
        "kwargs, match",
        [
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
        ],
    )
    def test_invalid_args(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            STARDense(**kwargs)
