import keras
import numpy as np
import pytest

from kmtl.layers import SNRLayer
from kmtl.layers import get_switcher
from kmtl.testing import LayerBattery
from kmtl.testing import LayerTestCase
from kmtl.testing import randomize
from kmtl.testing import to_numpy

X = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
KWARGS = {"num_tasks": 2, "num_experts": 3, "expert_units": (4, 3)}
BETA, GAMMA, ZETA = 2.0 / 3.0, -0.1, 1.1


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _inference_z(log_alpha):
    """NumPy: clip(sigmoid(log_alpha) * (zeta - gamma) + gamma, 0, 1)."""
    return np.clip(_sigmoid(log_alpha) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


class TestSNRLayer(LayerTestCase):
    layer_cls = SNRLayer
    batteries = {
        # Experts: 2 kernels + 2 biases; log_alpha; connection kernel.
        "trans": LayerBattery(
            KWARGS, X, [(4, 3), (4, 3)], expected_num_weights=(6, 0)
        ),
        "aver": LayerBattery(
            {**KWARGS, "kind": "aver"},
            X,
            [(4, 3), (4, 3)],
            expected_num_weights=(5, 0),
        ),
    }
    invalid_args = [
        ({"num_tasks": 0}, "Received: num_tasks=0"),
        ({"num_tasks": 2, "num_experts": 0}, "Received: num_experts=0"),
        ({"num_tasks": 2, "kind": "dense"}, "`kind`.*Received: kind='dense'"),
        ({"num_tasks": 2, "l0_weight": -1.0}, "Received: l0_weight=-1.0"),
        ({"num_tasks": 2, "beta": 0.0}, "`beta`.*Received: beta=0.0"),
        ({"num_tasks": 2, "gamma": 0.1}, "`gamma` must be a finite float < 0"),
        ({"num_tasks": 2, "zeta": 1.0}, "`zeta` must be a finite float > 1"),
        ({"num_tasks": 2, "seed": "a"}, "Received: seed='a'"),
    ]

    @pytest.mark.parametrize("kind", ["trans", "aver"])
    @pytest.mark.parametrize("list_input", [False, True])
    def test_inference_matches_numpy(self, kind, list_input):
        rng = np.random.default_rng(1)
        inputs = [X, X[::-1], 2 * X] if list_input else X
        layer = SNRLayer(
            num_tasks=2, num_experts=3, kind=kind, expert_units=(4,)
        )
        layer(inputs)
        randomize(layer.trainable_weights, rng)
        # Closed (z = 0), open (z = 1) and partly open connections.
        log_alpha = np.array([[-3.0, 0.2, 4.0], [1.0, -2.5, -0.4]])
        layer.log_alpha.assign(log_alpha.astype("float32"))
        z = _inference_z(log_alpha)
        np.testing.assert_allclose(
            to_numpy(layer.coding_variables()), z, rtol=1e-6, atol=1e-7
        )
        assert (z == 0).sum() == 2 and (z == 1).sum() == 1
        stacked = np.stack(inputs, 1) if list_input else inputs
        u = to_numpy(layer.experts(stacked))  # [B, E, H]
        if list_input:  # Expert e reads input e.
            alone = to_numpy(layer.experts(np.stack([inputs[1]] * 3, 1)))
            np.testing.assert_allclose(u[:, 1], alone[:, 1], rtol=1e-6)
        if kind == "trans":
            w = to_numpy(layer.connection_kernel)  # [K, E, H, H]
            expected = np.einsum("ke,beh,keho->bko", z, u, w)
        else:
            expected = np.einsum("ke,beh->bkh", z, u)
        outputs = layer(inputs)  # training=None: deterministic
        for k in range(2):
            np.testing.assert_allclose(
                to_numpy(outputs[k]), expected[:, k], rtol=1e-5, atol=1e-5
            )

    def test_training_draws_are_hard_concrete(self):
        # 4000 branches x 6 connections: each call draws every entry on
        # its own, so each row is one draw of the same 6 coding variables.
        values = np.array([-2.0, 0.0, 3.0, 1.0, -1.0, 5.0])
        layer = SNRLayer(
            num_tasks=4000, num_experts=6, kind="aver", expert_units=(1,)
        )
        layer(X)
        layer.log_alpha.assign(np.tile(values, (4000, 1)).astype("float32"))
        draws = to_numpy(layer.coding_variables(True)).astype("float64")
        # P(z != 0) is the L0 penalty's term; P(z = 1) follows from the
        # stretched logistic: s >= (1 - gamma) / (zeta - gamma).
        nonzero = _sigmoid(values - BETA * np.log(-GAMMA / ZETA))
        q = (1 - GAMMA) / (ZETA - GAMMA)
        one = _sigmoid(values - BETA * np.log(q / (1 - q)))
        # Binomial standard errors are <= 0.008 with 4000 draws.
        np.testing.assert_allclose(np.mean(draws > 0, 0), nonzero, atol=0.03)
        np.testing.assert_allclose(np.mean(draws == 1, 0), one, atol=0.03)
        np.testing.assert_allclose(
            to_numpy(layer.l0_penalty()), 4000 * nonzero.sum(), rtol=1e-4
        )
        # The mean of a NumPy draw of the same distribution.
        u = np.random.default_rng(0).uniform(size=(200_000, 1))
        s = _sigmoid((np.log(u) - np.log1p(-u) + values) / BETA)
        z = np.clip(s * (ZETA - GAMMA) + GAMMA, 0, 1)
        np.testing.assert_allclose(draws.mean(0), z.mean(0), atol=0.03)
        # Draws vary from call to call; inference does not.
        again = to_numpy(layer.coding_variables(True))
        assert np.mean(again != draws) > 0.5
        np.testing.assert_allclose(
            to_numpy(layer.coding_variables())[0],
            _inference_z(values),
            rtol=1e-6,
        )

    def test_l0_penalty_is_added_as_a_loss(self):
        inputs = keras.Input(shape=(5,))
        layer = SNRLayer(num_tasks=2, num_experts=3, l0_weight=0.5)
        model = keras.Model(inputs, layer(inputs))
        layer.log_alpha.assign(np.full((2, 3), 1.0, dtype="float32"))
        model(X, training=True)
        (loss,) = model.losses
        expected = 0.5 * 6 * _sigmoid(1.0 - BETA * np.log(-GAMMA / ZETA))
        np.testing.assert_allclose(to_numpy(loss), expected, rtol=1e-5)
        layer = SNRLayer(num_tasks=2, num_experts=3, l0_weight=0.0)
        keras.Model(inputs, layer(inputs))(X, training=True)
        assert not layer.losses

    @pytest.mark.slow
    def test_a_large_l0_weight_prunes_connections(self):
        """Two regression tasks on 3 sub-networks, for each kind a layer
        with no penalty and one with a penalty of 1 per open connection
        (far above what a connection buys in MSE), side by side in one
        model (separate paths, one fit): with no penalty every connection
        stays open; the penalty closes most (z = 0 at inference)."""
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(1024, 6)).astype("float32")
        y = [
            (np.sin(x[:, :1]) + x[:, 1:2] * x[:, 2:3]).astype("float32"),
            (np.cos(x[:, 3:4]) - x[:, 4:5]).astype("float32"),
        ]
        inputs = keras.Input(shape=(6,))
        layers, outputs = {}, []
        for kind in ("trans", "aver"):
            for l0_weight in (0.0, 1.0):
                layer = SNRLayer(
                    num_tasks=2,
                    num_experts=3,
                    kind=kind,
                    l0_weight=l0_weight,
                    expert_units=(8,),
                    seed=1,
                )
                layers[kind, l0_weight] = layer
                outputs += [keras.layers.Dense(1)(v) for v in layer(inputs)]
        model = keras.Model(inputs, outputs)
        model.compile(keras.optimizers.Adam(0.1), ["mse"] * len(outputs))
        model.fit(x, y * 4, batch_size=64, epochs=5, verbose=0)
        closed = {
            key: int(np.sum(to_numpy(layer.coding_variables()) == 0))
            for key, layer in layers.items()
        }
        for kind in ("trans", "aver"):
            assert closed[kind, 0.0] == 0, closed
            assert closed[kind, 1.0] >= 5, closed

    def test_named_gate_weights_are_the_coding_variables(self):
        layer = SNRLayer(num_tasks=2, num_experts=3, expert_units=(4,))
        layer(X)
        gates = layer.named_gate_weights(X)
        z = to_numpy(layer.coding_variables())
        assert sorted(gates) == ["task_0", "task_1"]
        for k in range(2):
            np.testing.assert_array_equal(
                to_numpy(gates[f"task_{k}"]), np.tile(z[k], (4, 1))
            )

    def test_list_input_of_the_wrong_length_is_refused(self):
        layer = SNRLayer(num_tasks=2, num_experts=3)
        with pytest.raises(ValueError, match="num_experts = 3 tensors"):
            layer([X, X])


@pytest.mark.parametrize(
    "name, kind", [("snr_trans", "trans"), ("snr_aver", "aver")]
)
def test_registered_switchers_pool_the_expert_budget(name, kind):
    layer = get_switcher(name, 3, num_shared_experts=2, num_task_experts=1)
    assert isinstance(layer, SNRLayer)
    assert (layer.kind, layer.num_experts) == (kind, 5)
    with pytest.raises(ValueError, match=f"always has kind='{kind}'"):
        get_switcher(name, 3, kind="other")
